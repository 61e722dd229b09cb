/**
 * Resizing for the degradation pipelines, as separable interpolation matrices applied
 * in ONNX Runtime (y = Mh · x · Mwᵀ):
 *
 * - `interpolate`: PyTorch `F.interpolate` (align_corners=False, no antialias) in the
 *   modes Real-ESRGAN draws from — 'area' (adaptive average pooling), 'bilinear' and
 *   'bicubic' (a = −0.75) — with either a scale factor (output floor(in·s), coordinates
 *   mapped with 1/s) or an output size.
 * - `imresize`: MATLAB's `imresize(x, scale)` bicubic (a = −0.5, antialiased when
 *   downscaling, symmetric borders, output ceil(in·s)) as BasicSR's `matlab_functions.imresize`,
 *   for the bicubic-downsampling (SRGAN) recipe.
 */
import { interpolationMatrix } from '../../graph/resize-matrix.js';
import type { HostTensor } from '../../tensor.js';
import { dims4 } from '../tensor-ops.js';
import { separableMap } from './runtime.js';

/** Interpolation modes of the Real-ESRGAN pipeline. */
export type InterpMode = 'area' | 'bilinear' | 'bicubic';

/** The modes Real-ESRGAN chooses from, in its order. */
export const INTERP_MODES: readonly InterpMode[] = ['area', 'bilinear', 'bicubic'];

/** PyTorch adaptive average pooling as an (out × in) matrix: bins [floor(o·in/out), ceil((o+1)·in/out)). */
export function areaMatrix(inLen: number, outLen: number): Float32Array {
  const m = new Float32Array(outLen * inLen);
  for (let o = 0; o < outLen; o++) {
    const start = Math.floor((o * inLen) / outLen);
    const end = Math.ceil(((o + 1) * inLen) / outLen);
    const wgt = 1 / (end - start);
    for (let i = start; i < end; i++) m[o * inLen + i] = wgt;
  }
  return m;
}

/** PyTorch bilinear / bicubic (align_corners=False) as an (out × in) matrix; `scale` maps coordinates (out/in when a size is given). */
export function torchMatrix(inLen: number, outLen: number, scale: number, mode: 'bilinear' | 'bicubic'): Float32Array {
  return interpolationMatrix(inLen, outLen, scale, {
    mode: mode === 'bilinear' ? 'linear' : 'cubic',
    coord: 'half_pixel',
    nearestMode: 'floor',
    cubicA: -0.75,
    excludeOutside: false,
  });
}

/** MATLAB's bicubic kernel (Keys, a = −0.5). */
export function matlabCubic(x: number): number {
  const ax = Math.abs(x);
  const ax2 = ax * ax;
  const ax3 = ax2 * ax;
  if (ax <= 1) return 1.5 * ax3 - 2.5 * ax2 + 1;
  if (ax <= 2) return -0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2;
  return 0;
}

/**
 * MATLAB `imresize` weights along one axis as an (out × in) matrix, BasicSR's
 * `calculate_weights_indices` with its symmetric border copies folded in. Weights are
 * computed in double precision, as MATLAB does.
 */
export function matlabMatrix(inLen: number, outLen: number, scale: number, antialiasing = true): Float32Array {
  const aa = scale < 1 && antialiasing;
  const kernelWidth = aa ? 4 / scale : 4;
  const p = Math.ceil(kernelWidth) + 2;
  const m = new Float64Array(outLen * inLen);
  const row = new Float64Array(p);
  for (let o = 0; o < outLen; o++) {
    // 1-based output x maps to input u so that 0.5 ↦ 0.5 and 0.5 + scale ↦ 1.5.
    const x = o + 1;
    const u = x / scale + 0.5 * (1 - 1 / scale);
    const left = Math.floor(u - kernelWidth / 2);
    let sum = 0;
    for (let j = 0; j < p; j++) {
      const d = u - (left + j);
      row[j] = aa ? scale * matlabCubic(d * scale) : matlabCubic(d);
      sum += row[j]!;
    }
    for (let j = 0; j < p; j++) {
      // 1-based index → 0-based, mirrored with the edge sample repeated (MATLAB 'symmetric').
      let i = left + j - 1;
      const period = 2 * inLen;
      i = ((i % period) + period) % period;
      if (i >= inLen) i = period - 1 - i;
      m[o * inLen + i] += row[j]! / sum;
    }
  }
  return Float32Array.from(m);
}

/** Output size and interpolation matrices of `interpolate`. */
function checkSize(h: number, w: number, what: string): void {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) throw new Error(`${what}: output size ${h}x${w} is empty; the scale is too small for this image`);
}

/** Options of {@link interpolate}: a scale factor or an output size. */
export interface InterpolateOptions {
  mode: InterpMode;
  /** Scale factor for both axes: output floor(in·scale), coordinates mapped with 1/scale (F.interpolate(scale_factor=…)). */
  scale?: number;
  /** Output [height, width] (F.interpolate(size=…)). */
  size?: readonly [number, number];
}

/** PyTorch `F.interpolate` of a batch [N,C,H,W] (align_corners=False), run in ONNX Runtime. */
export async function interpolate(x: HostTensor<'float32'>, o: InterpolateOptions): Promise<HostTensor<'float32'>> {
  const [, , h, w] = dims4(x, 'interpolate');
  let ho: number;
  let wo: number;
  let sh: number;
  let sw: number;
  if (o.size) {
    [ho, wo] = o.size;
    sh = ho / h;
    sw = wo / w;
  } else {
    const s = o.scale;
    if (s === undefined || !(s > 0)) throw new Error('interpolate: give a positive scale or a size');
    // PyTorch computes floor(in · scale) in double precision.
    ho = Math.floor(h * s);
    wo = Math.floor(w * s);
    sh = sw = s;
  }
  checkSize(ho, wo, 'interpolate');
  if (ho === h && wo === w && sh === 1 && sw === 1) return { dtype: 'float32', shape: [...x.shape], data: Float32Array.from(x.data) };
  const mat = (inLen: number, outLen: number, s: number): Float32Array =>
    o.mode === 'area' ? areaMatrix(inLen, outLen) : torchMatrix(inLen, outLen, s, o.mode);
  return separableMap(x, mat(h, ho, sh), ho, mat(w, wo, sw), wo);
}

/** Output size of MATLAB `imresize(x, scale)` along one axis: ceil(in·scale). */
export function imresizeSize(inLen: number, scale: number): number {
  // Guard against 1/3·3 style rounding: a product within 1e-9 of an integer is that integer.
  const v = inLen * scale;
  const r = Math.round(v);
  return Math.abs(v - r) < 1e-9 ? r : Math.ceil(v);
}

/** MATLAB-exact bicubic `imresize(x, scale)` of a batch [N,C,H,W] (antialiased when downscaling), run in ONNX Runtime. */
export async function imresize(x: HostTensor<'float32'>, scale: number, antialiasing = true): Promise<HostTensor<'float32'>> {
  const [, , h, w] = dims4(x, 'imresize');
  if (!(scale > 0)) throw new Error(`imresize: scale must be positive, got ${scale}`);
  const ho = imresizeSize(h, scale);
  const wo = imresizeSize(w, scale);
  checkSize(ho, wo, 'imresize');
  return separableMap(x, matlabMatrix(h, ho, scale, antialiasing), ho, matlabMatrix(w, wo, scale, antialiasing), wo);
}
