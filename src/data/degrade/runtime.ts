/**
 * The ONNX Runtime side of the degradations: three small graphs with dynamic sizes,
 * built once per thread and cached.
 *
 * - `resize`: y = Mh · x · Mwᵀ (two MatMuls) with caller-built interpolation matrices, which
 *   covers PyTorch bilinear / bicubic / area and MATLAB's antialiased bicubic alike.
 * - `filter<K>`: reflect-pad by K//2 and correlate with a K×K kernel fed at run time
 *   (BasicSR's `filter2D`).
 * - `usm`: USM sharpening (BasicSR's `USMSharp`: 51×51 Gaussian, weight 0.5, threshold 10).
 */
import { Graph, attr, type Value } from '../../graph/ir.js';
import { sym } from '../../graph/dim.js';
import { abs, add, cast, clip, constF32, constI64, greater, matmul, mul, sub } from '../../graph/ops.js';
import { toOnnx } from '../../graph/onnx.js';
import { SessionCache } from '../../runtime/cache.js';
import type { Session } from '../../runtime/session.js';
import { f32 } from '../../tensor.js';
import type { HostTensor } from '../../tensor.js';
import { gaussianKernel1d } from './kernels.js';

let threads = 1;
let cache = new SessionCache({ threads }, 8);

/**
 * Sets the ONNX Runtime threads of the data sessions in this thread (default 1, so that
 * data workers leave the other cores to the trainer). Drops the cached sessions.
 */
export async function setDataThreads(n: number): Promise<void> {
  if (!Number.isInteger(n) || n < 1) throw new Error(`data threads must be a positive integer, got ${n}`);
  if (n === threads) return;
  const old = cache;
  threads = n;
  cache = new SessionCache({ threads }, 8);
  await old.clear();
}

/** Releases the data sessions of this thread. */
export async function releaseDataSessions(): Promise<void> {
  await cache.clear();
}

function padNode(x: Value, p: number, h: string, w: string): Value {
  const g = x.graph;
  return g.node('Pad', [x, constI64(g, [0, 0, p, p, 0, 0, p, p])], { mode: attr.string('reflect') }, [
    { dtype: 'float32', shape: [x.dim(0), x.dim(1), sym(h), sym(w)] },
  ])[0]!;
}

function convNode(x: Value, w: Value, kh: number, kw: number, outH: Value['shape'][number], outW: Value['shape'][number]): Value {
  const g = x.graph;
  return g.node('Conv', [x, w], { kernel_shape: attr.ints([kh, kw]), pads: attr.ints([0, 0, 0, 0]), strides: attr.ints([1, 1]) }, [
    { dtype: 'float32', shape: [x.dim(0), 1, outH, outW] },
  ])[0]!;
}

function resizeModel(): Uint8Array {
  const g = new Graph('data_resize');
  const x = g.input('x', [sym('N'), sym('C'), sym('H'), sym('W')]);
  const mh = g.input('mh', [sym('Ho'), sym('H')]);
  const mwt = g.input('mwt', [sym('W'), sym('Wo')]);
  g.output(matmul(mh, matmul(x, mwt)), 'y');
  return toOnnx(g, { params: 'initializers' });
}

function filterModel(k: number): Uint8Array {
  const g = new Graph(`data_filter${k}`);
  const x = g.input('x', [sym('B'), 1, sym('H'), sym('W')]);
  const w = g.input('k', [1, 1, k, k]);
  const p = (k - 1) / 2;
  g.output(convNode(padNode(x, p, 'Hp', 'Wp'), w, k, k, sym('H'), sym('W')), 'y');
  return toOnnx(g, { params: 'initializers' });
}

/** USM radius (kernel size) of BasicSR's USMSharp. */
export const USM_RADIUS = 51;

function usmModel(weight: number, threshold: number): Uint8Array {
  const g = new Graph('data_usm');
  const x = g.input('x', [sym('B'), 1, sym('H'), sym('W')]);
  const k1 = gaussianKernel1d(USM_RADIUS, 0);
  const kh = constF32(g, [1, 1, 1, USM_RADIUS], k1, 'usm_h');
  const kv = constF32(g, [1, 1, USM_RADIUS, 1], k1, 'usm_v');
  const p = (USM_RADIUS - 1) / 2;
  // The 2-D Gaussian is the outer product of the 1-D one: filter rows, then columns.
  const blur2d = (v: Value, tag: string): Value => {
    const padded = padNode(v, p, `Hp_${tag}`, `Wp_${tag}`);
    const rows = convNode(padded, kh, 1, USM_RADIUS, sym(`Hp_${tag}`), sym('W'));
    return convNode(rows, kv, USM_RADIUS, 1, sym('H'), sym('W'));
  };
  const blur = blur2d(x, 'a');
  const residual = sub(x, blur);
  const mask = cast(greater(mul(abs(residual), 255), threshold), 'float32');
  const soft = blur2d(mask, 'b');
  const sharp = clip(add(x, mul(residual, weight)), 0, 1);
  g.output(add(mul(soft, sharp), mul(sub(1, soft), x)), 'y');
  return toOnnx(g, { params: 'initializers' });
}

async function session(key: string, build: () => Uint8Array): Promise<Session> {
  return cache.get(key, build);
}

/** Runs y = Mh · x · Mwᵀ on [N,C,H,W] with Mh (Ho×H) and Mw (Wo×W) given row-major. */
export async function separableMap(x: HostTensor<'float32'>, mh: Float32Array, ho: number, mw: Float32Array, wo: number): Promise<HostTensor<'float32'>> {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  if (mh.length !== ho * h || mw.length !== wo * w) throw new Error('separableMap: matrix sizes do not match the image');
  // ORT wants Mwᵀ (W × Wo).
  const mwt = new Float32Array(w * wo);
  for (let o = 0; o < wo; o++) for (let i = 0; i < w; i++) mwt[i * wo + o] = mw[o * w + i]!;
  const s = await session('resize', resizeModel);
  const out = f32([n, c, ho, wo]);
  await s.run({ x, mh: f32([ho, h], mh), mwt: f32([w, wo], mwt) }, ['y'], { y: out });
  return out;
}

/**
 * Correlates every channel of image `i` of the batch with `kernels[i]` (K×K, K odd, all the
 * same K), after reflect-padding by K//2, as BasicSR's `filter2D`.
 */
export async function filter2D(x: HostTensor<'float32'>, kernels: readonly { size: number; data: ArrayLike<number> }[]): Promise<HostTensor<'float32'>> {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  if (kernels.length !== n) throw new Error(`filter2D: ${kernels.length} kernels for a batch of ${n}`);
  const out = f32([n, c, h, w]);
  const per = c * h * w;
  for (let i = 0; i < n; i++) {
    const k = kernels[i]!;
    if (k.size % 2 !== 1) throw new Error(`filter2D: kernel size must be odd, got ${k.size}`);
    const p = (k.size - 1) / 2;
    if (p >= h || p >= w) throw new Error(`filter2D: a ${k.size}x${k.size} kernel needs an image larger than ${p}x${p}, got ${h}x${w}`);
    const s = await session(`filter${k.size}`, () => filterModel(k.size));
    const xi = { dtype: 'float32' as const, shape: [c, 1, h, w], data: x.data.subarray(i * per, (i + 1) * per) };
    const yi = { dtype: 'float32' as const, shape: [c, 1, h, w], data: out.data.subarray(i * per, (i + 1) * per) };
    await s.run({ x: xi, k: f32([1, 1, k.size, k.size], Float32Array.from(k.data)) }, ['y'], { y: yi });
  }
  return out;
}

/**
 * USM sharpening of a batch [N,C,H,W] in [0,1] (BasicSR `USMSharp`, radius 51, σ 8):
 * blur B, residual R = I − B, mask M = |R|·255 > threshold, soft mask S = blur(M),
 * out = S·clip(I + weight·R, 0, 1) + (1 − S)·I.
 */
export async function usmSharp(x: HostTensor<'float32'>, weight = 0.5, threshold = 10): Promise<HostTensor<'float32'>> {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const p = (USM_RADIUS - 1) / 2;
  if (p >= h || p >= w) throw new Error(`USM sharpening needs images larger than ${p}x${p}, got ${h}x${w}`);
  const s = await session(`usm:${weight}:${threshold}`, () => usmModel(weight, threshold));
  const out = f32([n, c, h, w]);
  await s.run({ x: { dtype: 'float32', shape: [n * c, 1, h, w], data: x.data } }, ['y'], { y: { dtype: 'float32', shape: [n * c, 1, h, w], data: out.data } });
  return out;
}
