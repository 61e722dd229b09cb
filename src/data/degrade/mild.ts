/**
 * The two lighter degradations of the default model's training mix, beside the Real-ESRGAN
 * second-order pipeline: clean MATLAB-bicubic downscaling (what most photos that were simply
 * made smaller look like), and a mild first-order one — a light isotropic Gaussian blur, the
 * bicubic ×1/scale, a little Gaussian noise and one JPEG. `MILD_EVAL` is the fixed version the
 * default-model benchmark reports (blur σ 0.8, ×1/4, JPEG 80).
 */
import type { Rng } from '../../random.js';
import { uniform, weightedChoice } from '../rng.js';
import { clamp01, dims4, quantize8, type Image } from '../tensor-ops.js';
import { bivariateGaussian } from './kernels.js';
import { imresize } from './resize.js';
import { addGaussianNoise } from './noise.js';
import { jpegCompress } from './jpeg.js';
import { filter2D } from './runtime.js';

/** The mild degradation's ranges (each step happens with its probability). */
export interface MildOptions {
  scale: number;
  blurProb: number;
  /** Isotropic Gaussian σ (GT pixels). */
  blurSigma: readonly [number, number];
  noiseProb: number;
  /** Gaussian noise σ in 8-bit levels. */
  noiseRange: readonly [number, number];
  grayNoiseProb: number;
  jpegProb: number;
  jpegRange: readonly [number, number];
}

/** Training ranges of the mild share (light: the bench's σ 0.8 / JPEG 80 lies inside). */
export const MILD_OPTIONS: Readonly<MildOptions> = Object.freeze({
  scale: 4,
  blurProb: 0.8,
  blurSigma: [0.3, 1.5],
  noiseProb: 0.3,
  noiseRange: [1, 8],
  grayNoiseProb: 0.4,
  jpegProb: 0.8,
  jpegRange: [60, 95],
} as MildOptions);

/** The benchmark's fixed mild degradation: blur σ 0.8, bicubic ×1/4, JPEG 80. */
export const MILD_EVAL: Readonly<MildOptions> = Object.freeze({
  scale: 4,
  blurProb: 1,
  blurSigma: [0.8, 0.8],
  noiseProb: 0,
  noiseRange: [0, 0],
  grayNoiseProb: 0,
  jpegProb: 1,
  jpegRange: [80, 80],
} as MildOptions);

/** What `degradeMild` drew for one image. */
export interface MildInfo {
  blurSigma: number | null;
  noise: number | null;
  jpeg: number | null;
}

/** Checks ranges; one line naming the bad option. */
export function mildOptions(o: Partial<MildOptions> = {}): MildOptions {
  const r = { ...MILD_OPTIONS, ...o } as MildOptions;
  for (const k of ['blurProb', 'noiseProb', 'grayNoiseProb', 'jpegProb'] as const) {
    if (!(r[k] >= 0 && r[k] <= 1)) throw new Error(`mild degradation: ${k} must be a probability, got ${r[k]}`);
  }
  for (const k of ['blurSigma', 'noiseRange', 'jpegRange'] as const) {
    const [lo, hi] = r[k];
    if (!(lo <= hi) || lo < 0) throw new Error(`mild degradation: ${k} [${lo}, ${hi}] is not a [low, high] range of non-negative numbers`);
  }
  if (r.blurSigma[1] > 3.3) throw new Error(`mild degradation: blurSigma up to ${r.blurSigma[1]} needs kernels over 21 pixels; keep it at most 3.3`);
  if (!Number.isInteger(r.scale) || r.scale < 1) throw new Error(`mild degradation: scale must be a positive integer, got ${r.scale}`);
  return r;
}

/** Gaussian kernel of σ, cut at 3σ (odd size, at least 3). */
function gaussian(sigma: number): { size: number; data: Float64Array } {
  const size = Math.max(3, 2 * Math.ceil(3 * sigma) + 1);
  return bivariateGaussian(size, sigma, sigma, 0);
}

/** MATLAB bicubic ×1/scale of a GT batch, rounded to 8 bits: the clean LQ. */
export async function degradeBicubic(gt: Image, scale: number): Promise<Image> {
  const [, , h, w] = dims4(gt, 'bicubic degradation');
  if (h % scale || w % scale) throw new Error(`bicubic degradation: GT ${h}x${w} is not a multiple of the scale ${scale}`);
  return quantize8(clamp01(await imresize(gt, 1 / scale)));
}

/**
 * The mild degradation of one GT image [1,3,H,W] (H, W multiples of the scale): blur, MATLAB
 * bicubic ×1/scale, noise, 8-bit rounding, JPEG — each with its probability.
 */
export async function degradeMild(gt: Image, rng: Rng, opts: Partial<MildOptions> = {}): Promise<{ lq: Image; info: MildInfo }> {
  const o = mildOptions(opts);
  const [n, , h, w] = dims4(gt, 'mild degradation');
  if (n !== 1) throw new Error(`mild degradation: one image at a time, got a batch of ${n}`);
  if (h % o.scale || w % o.scale) throw new Error(`mild degradation: GT ${h}x${w} is not a multiple of the scale ${o.scale}`);
  const info: MildInfo = { blurSigma: null, noise: null, jpeg: null };
  let x = gt;
  if (rng.uniform() < o.blurProb) {
    info.blurSigma = uniform(rng, o.blurSigma[0], o.blurSigma[1]);
    const k = gaussian(info.blurSigma);
    if ((k.size - 1) / 2 < Math.min(h, w)) x = await filter2D(x, [k]);
  }
  x = clamp01(await imresize(x, 1 / o.scale));
  if (rng.uniform() < o.noiseProb) info.noise = addGaussianNoise(x, rng, o.noiseRange, o.grayNoiseProb)[0]!.strength;
  quantize8(x);
  if (rng.uniform() < o.jpegProb) {
    info.jpeg = Math.round(uniform(rng, o.jpegRange[0], o.jpegRange[1]));
    await jpegCompress(x, [info.jpeg]);
  }
  return { lq: x, info };
}

/** The three kinds of input the default model trains on. */
export const DEGRADATION_KINDS = ['bicubic', 'mild', 'realesrgan'] as const;
export type DegradationKind = (typeof DEGRADATION_KINDS)[number];

/** Shares of each kind in the training mix (relative weights). */
export type DegradationMix = Readonly<Record<DegradationKind, number>>;

/** Checks a mix: non-negative weights, not all zero. */
export function checkMix(m: Partial<Record<string, unknown>>): DegradationMix {
  for (const k of Object.keys(m)) if (!(DEGRADATION_KINDS as readonly string[]).includes(k)) throw new Error(`degradation mix: unknown kind '${k}' (have ${DEGRADATION_KINDS.join(', ')})`);
  const r = Object.fromEntries(DEGRADATION_KINDS.map((k) => [k, m[k] ?? 0])) as Record<DegradationKind, unknown>;
  for (const k of DEGRADATION_KINDS) if (typeof r[k] !== 'number' || !((r[k] as number) >= 0)) throw new Error(`degradation mix: ${k} must be a non-negative number, got ${String(r[k])}`);
  if (DEGRADATION_KINDS.every((k) => r[k] === 0)) throw new Error('degradation mix: every share is 0');
  return r as DegradationMix;
}

/** Draws one kind from the mix. */
export function drawKind(rng: Rng, mix: DegradationMix): DegradationKind {
  return weightedChoice(rng, DEGRADATION_KINDS, DEGRADATION_KINDS.map((k) => mix[k]));
}
