/**
 * Noise of the Real-ESRGAN degradation (BasicSR `random_add_gaussian_noise_pt`,
 * `random_add_poisson_noise_pt`): per image a random strength and, with `grayProb`, the
 * same noise on all three channels. Per-pixel sampling happens here in JavaScript.
 */
import type { Rng } from '../../random.js';
import type { HostTensor } from '../../tensor.js';
import { uniform } from '../rng.js';
import { dims4 } from '../tensor-ops.js';

/** What was drawn for one image. */
export interface NoiseInfo {
  kind: 'gaussian' | 'poisson';
  /** σ on the 0–255 scale (Gaussian) or the scale factor (Poisson). */
  strength: number;
  gray: boolean;
}

/** Adds N(0, (σ/255)²) noise to each image (σ uniform in `sigmaRange`), gray with `grayProb`; clips to [0,1]. In place. */
export function addGaussianNoise(x: HostTensor<'float32'>, rng: Rng, sigmaRange: readonly [number, number], grayProb: number): NoiseInfo[] {
  const [n, c, h, w] = dims4(x, 'gaussian noise');
  const hw = h * w;
  const d = x.data;
  const infos: NoiseInfo[] = [];
  for (let i = 0; i < n; i++) {
    const sigma = uniform(rng, sigmaRange[0], sigmaRange[1]);
    const gray = rng.uniform() < grayProb;
    infos.push({ kind: 'gaussian', strength: sigma, gray });
    const s = sigma / 255;
    const base = i * c * hw;
    if (gray) {
      for (let p = 0; p < hw; p++) {
        const z = rng.normal() * s;
        for (let ch = 0; ch < c; ch++) d[base + ch * hw + p] = clip01(d[base + ch * hw + p]! + z);
      }
    } else {
      for (let q = base; q < base + c * hw; q++) d[q] = clip01(d[q]! + rng.normal() * s);
    }
  }
  return infos;
}

function clip01(v: number): number {
  return v > 0 ? (v < 1 ? v : 1) : 0;
}

/** round(clamp(v,0,1)·255)/255 with round-half-even (torch.round). */
function q255(v: number): number {
  const t = Math.fround(clip01(v) * 255);
  let r = Math.round(t);
  if (r - t === 0.5 && r % 2 !== 0) r -= 1;
  return r;
}

const LGAMMA_TABLE = (() => {
  const t = new Float64Array(1024);
  for (let k = 2; k < 1024; k++) t[k] = t[k - 1]! + Math.log(k);
  return t;
})();

/** log(k!) for a non-negative integer k. */
function logFactorial(k: number): number {
  if (k < 1024) return LGAMMA_TABLE[k]!;
  // Stirling series, exact to double precision for k ≥ 1024.
  const x = k + 1;
  return (x - 0.5) * Math.log(x) - x + 0.5 * Math.log(2 * Math.PI) + 1 / (12 * x) - 1 / (360 * x ** 3);
}

/**
 * A Poisson(λ) sample: multiplication of uniforms for λ < 10, Hörmann's transformed
 * rejection (PTRS, as numpy) above.
 */
export function poisson(rng: Rng, lam: number): number {
  if (!(lam > 0)) return 0;
  if (lam < 10) {
    const limit = Math.exp(-lam);
    let k = 0;
    let p = rng.uniform();
    while (p > limit) {
      k++;
      p *= rng.uniform();
    }
    return k;
  }
  const slam = Math.sqrt(lam);
  const loglam = Math.log(lam);
  const b = 0.931 + 2.53 * slam;
  const a = -0.059 + 0.02483 * b;
  const invalpha = 1.1239 + 1.1328 / (b - 3.4);
  const vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    const U = rng.uniform() - 0.5;
    const V = rng.uniform();
    const us = 0.5 - Math.abs(U);
    const k = Math.floor(((2 * a) / us + b) * U + lam + 0.43);
    if (us >= 0.07 && V <= vr) return k;
    if (k < 0 || (us < 0.013 && V > us)) continue;
    if (Math.log(V) + Math.log(invalpha) - Math.log(a / (us * us) + b) <= -lam + k * loglam - logFactorial(k)) return k;
  }
}

/** 2^ceil(log2(number of distinct 8-bit levels)), the "vals" of BasicSR's Poisson noise. */
function levels(hist: Uint32Array): number {
  let distinct = 0;
  for (const v of hist) if (v) distinct++;
  return 2 ** Math.ceil(Math.log2(Math.max(distinct, 1)));
}

/**
 * Adds Poisson (shot) noise to each image, as BasicSR: the image is rounded to 8 bits,
 * `vals` = 2^ceil(log2(distinct levels)), noise = Poisson(img·vals)/vals − img, scaled by a
 * factor uniform in `scaleRange`; gray noise (with `grayProb`) is computed on the luma
 * (0.2989 R + 0.587 G + 0.114 B) and added to every channel. Clips to [0,1]. In place.
 */
export function addPoissonNoise(x: HostTensor<'float32'>, rng: Rng, scaleRange: readonly [number, number], grayProb: number): NoiseInfo[] {
  const [n, c, h, w] = dims4(x, 'poisson noise');
  const hw = h * w;
  const d = x.data;
  const infos: NoiseInfo[] = [];
  const hist = new Uint32Array(256);
  for (let i = 0; i < n; i++) {
    const scale = uniform(rng, scaleRange[0], scaleRange[1]);
    const gray = rng.uniform() < grayProb && c === 3;
    infos.push({ kind: 'poisson', strength: scale, gray });
    const base = i * c * hw;
    hist.fill(0);
    if (gray) {
      const lum = new Uint8Array(hw);
      for (let p = 0; p < hw; p++) {
        const y = 0.2989 * d[base + p]! + 0.587 * d[base + hw + p]! + 0.114 * d[base + 2 * hw + p]!;
        lum[p] = q255(y);
        hist[lum[p]!]!++;
      }
      const vals = levels(hist);
      for (let p = 0; p < hw; p++) {
        const v = lum[p]! / 255;
        const noise = (poisson(rng, v * vals) / vals - v) * scale;
        for (let ch = 0; ch < c; ch++) d[base + ch * hw + p] = clip01(d[base + ch * hw + p]! + noise);
      }
    } else {
      const q = new Uint8Array(c * hw);
      for (let k = 0; k < c * hw; k++) {
        q[k] = q255(d[base + k]!);
        hist[q[k]!]!++;
      }
      const vals = levels(hist);
      for (let k = 0; k < c * hw; k++) {
        const v = q[k]! / 255;
        d[base + k] = clip01(d[base + k]! + (poisson(rng, v * vals) / vals - v) * scale);
      }
    }
  }
  return infos;
}
