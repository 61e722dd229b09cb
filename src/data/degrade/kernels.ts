/**
 * Blur kernels of the Real-ESRGAN degradation (BasicSR `degradations.py`): isotropic and
 * anisotropic Gaussians, generalized Gaussians, plateau kernels and the circular
 * low-pass (2-D sinc) filter, and the random draws the Real-ESRGAN dataset makes.
 *
 * A kernel is a k×k row-major Float64Array; row index = y, column index = x, both
 * centred on (k−1)/2. Kernels are applied as cross-correlation (PyTorch conv2d).
 */
import type { Rng } from '../../random.js';
import { choice, uniform, weightedChoice } from '../rng.js';

/** A square kernel: `size`² weights, row-major. */
export interface Kernel {
  size: number;
  data: Float64Array;
}

/** The 2×2 covariance U·diag(σx², σy²)·Uᵀ with U the rotation by `theta` (radians). */
export function sigmaMatrix2(sigX: number, sigY: number, theta: number): [number, number, number, number] {
  const c = Math.cos(theta);
  const s = Math.sin(theta);
  const a = sigX * sigX;
  const b = sigY * sigY;
  // [[c,-s],[s,c]] · diag(a,b) · [[c,s],[-s,c]]
  return [c * c * a + s * s * b, c * s * a - s * c * b, s * c * a - c * s * b, s * s * a + c * c * b];
}

/** Quadratic form gridᵀ Σ⁻¹ grid at every kernel position (x = column offset, y = row offset). */
function quadForm(size: number, sigma: readonly [number, number, number, number]): Float64Array {
  if (size % 2 !== 1 || size < 1) throw new Error(`kernel size must be odd, got ${size}`);
  const [a, b, c, d] = sigma;
  const det = a * d - b * c;
  if (!(det > 0)) throw new Error('kernel covariance must be positive definite');
  const i00 = d / det;
  const i01 = -b / det;
  const i10 = -c / det;
  const i11 = a / det;
  const r = (size - 1) / 2;
  const q = new Float64Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const gx = x - r;
      const gy = y - r;
      // [gx gy] · Σ⁻¹ · [gx gy]ᵀ (the grid holds (x, y) pairs, as BasicSR's mesh_grid)
      q[y * size + x] = gx * (i00 * gx + i10 * gy) + gy * (i01 * gx + i11 * gy);
    }
  }
  return q;
}

function normalize(k: Float64Array): Float64Array {
  let s = 0;
  for (const v of k) s += v;
  for (let i = 0; i < k.length; i++) k[i]! /= s;
  return k;
}

function covariance(sigX: number, sigY: number, theta: number, isotropic: boolean): [number, number, number, number] {
  return isotropic ? [sigX * sigX, 0, 0, sigX * sigX] : sigmaMatrix2(sigX, sigY, theta);
}

/** Bivariate Gaussian exp(−½ xᵀΣ⁻¹x), normalised to sum 1. Isotropic uses σx only. */
export function bivariateGaussian(size: number, sigX: number, sigY: number, theta: number, isotropic = true): Kernel {
  const q = quadForm(size, covariance(sigX, sigY, theta, isotropic));
  for (let i = 0; i < q.length; i++) q[i] = Math.exp(-0.5 * q[i]!);
  return { size, data: normalize(q) };
}

/** Generalized Gaussian exp(−½ (xᵀΣ⁻¹x)^β), normalised; β = 1 is the Gaussian. */
export function bivariateGeneralizedGaussian(size: number, sigX: number, sigY: number, theta: number, beta: number, isotropic = true): Kernel {
  const q = quadForm(size, covariance(sigX, sigY, theta, isotropic));
  for (let i = 0; i < q.length; i++) q[i] = Math.exp(-0.5 * Math.pow(q[i]!, beta));
  return { size, data: normalize(q) };
}

/** Plateau kernel 1 / (1 + (xᵀΣ⁻¹x)^β), normalised. */
export function bivariatePlateau(size: number, sigX: number, sigY: number, theta: number, beta: number, isotropic = true): Kernel {
  const q = quadForm(size, covariance(sigX, sigY, theta, isotropic));
  for (let i = 0; i < q.length; i++) q[i] = 1 / (Math.pow(q[i]!, beta) + 1);
  return { size, data: normalize(q) };
}

/** Bessel function of the first kind, order 1 (rational approximations, |error| < 1e-8). */
export function besselJ1(x: number): number {
  const ax = Math.abs(x);
  if (ax < 8) {
    const y = x * x;
    const p = x * (72362614232.0 + y * (-7895059235.0 + y * (242396853.1 + y * (-2972611.439 + y * (15704.4826 + y * -30.16036606)))));
    const q = 144725228442.0 + y * (2300535178.0 + y * (18583304.74 + y * (99447.43394 + y * (376.9991397 + y))));
    return p / q;
  }
  const z = 8 / ax;
  const y = z * z;
  const xx = ax - 2.356194491;
  const p = 1.0 + y * (0.183105e-2 + y * (-0.3516396496e-4 + y * (0.2457520174e-5 + y * -0.240337019e-6)));
  const q = 0.04687499995 + y * (-0.2002690873e-3 + y * (0.8449199096e-5 + y * (-0.88228987e-6 + y * 0.105787412e-6)));
  const ans = Math.sqrt(0.636619772 / ax) * (Math.cos(xx) * p - z * Math.sin(xx) * q);
  return x < 0 ? -ans : ans;
}

/**
 * The circularly symmetric low-pass filter ω·J1(ω r) / (2π r) with cutoff ω (radians, π
 * is the Nyquist limit), centre ω²/(4π), normalised to sum 1; zero-padded to `padTo`.
 */
export function circularLowpassKernel(cutoff: number, size: number, padTo = 0): Kernel {
  if (size % 2 !== 1) throw new Error(`sinc kernel size must be odd, got ${size}`);
  const r0 = (size - 1) / 2;
  const k = new Float64Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const r = Math.hypot(x - r0, y - r0);
      k[y * size + x] = r === 0 ? (cutoff * cutoff) / (4 * Math.PI) : (cutoff * besselJ1(cutoff * r)) / (2 * Math.PI * r);
    }
  }
  const kern = { size, data: normalize(k) };
  return padTo > size ? padKernel(kern, padTo) : kern;
}

/** Zero-pads a kernel symmetrically to `to`×`to` (both odd). */
export function padKernel(k: Kernel, to: number): Kernel {
  if (to === k.size) return k;
  if (to < k.size || (to - k.size) % 2 !== 0) throw new Error(`cannot pad a ${k.size}x${k.size} kernel to ${to}x${to}`);
  const p = (to - k.size) / 2;
  const out = new Float64Array(to * to);
  for (let y = 0; y < k.size; y++) out.set(k.data.subarray(y * k.size, (y + 1) * k.size), (y + p) * to + p);
  return { size: to, data: out };
}

/** The identity kernel (1 at the centre). */
export function pulseKernel(size: number): Kernel {
  const data = new Float64Array(size * size);
  data[(size * size - 1) / 2] = 1;
  return { size, data };
}

/** Kernel families of `random_mixed_kernels`. */
export type KernelType = 'iso' | 'aniso' | 'generalized_iso' | 'generalized_aniso' | 'plateau_iso' | 'plateau_aniso';

/** Every kernel family, in BasicSR's order. */
export const KERNEL_TYPES: readonly KernelType[] = ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso'];

/** Parameters of `random_mixed_kernels` (one blur stage of the Real-ESRGAN dataset). */
export interface MixedKernelOptions {
  kernelList: readonly KernelType[];
  kernelProb: readonly number[];
  /** σ range of both axes. */
  blurSigma: readonly [number, number];
  /** β range of generalized Gaussians. */
  betagRange: readonly [number, number];
  /** β range of plateau kernels. */
  betapRange: readonly [number, number];
  /** Rotation range of anisotropic kernels (BasicSR: [−π, π]). */
  rotationRange?: readonly [number, number];
}

/** What was drawn for a kernel (for logs and `diffir degrade`). */
export interface KernelInfo {
  type: KernelType | 'sinc' | 'pulse';
  size: number;
  sigmaX?: number;
  sigmaY?: number;
  theta?: number;
  beta?: number;
  omega?: number;
}

/** β as BasicSR draws it: uniform below 1 or above 1 with equal chance. */
function drawBeta(rng: Rng, range: readonly [number, number]): number {
  return rng.uniform() < 0.5 ? uniform(rng, range[0], 1) : uniform(rng, 1, range[1]);
}

/** One kernel of `random_mixed_kernels` (no multiplicative noise, as Real-ESRGAN uses it). */
export function randomMixedKernel(rng: Rng, size: number, o: MixedKernelOptions): { kernel: Kernel; info: KernelInfo } {
  const type = weightedChoice(rng, o.kernelList, o.kernelProb);
  const iso = type.endsWith('iso') && !type.endsWith('aniso');
  const [rLo, rHi] = o.rotationRange ?? [-Math.PI, Math.PI];
  const sigmaX = uniform(rng, o.blurSigma[0], o.blurSigma[1]);
  let sigmaY = sigmaX;
  let theta = 0;
  if (!iso) {
    sigmaY = uniform(rng, o.blurSigma[0], o.blurSigma[1]);
    theta = uniform(rng, rLo, rHi);
  }
  const info: KernelInfo = { type, size, sigmaX, ...(iso ? {} : { sigmaY, theta }) };
  let kernel: Kernel;
  if (type === 'iso' || type === 'aniso') kernel = bivariateGaussian(size, sigmaX, sigmaY, theta, iso);
  else if (type === 'generalized_iso' || type === 'generalized_aniso') {
    info.beta = drawBeta(rng, o.betagRange);
    kernel = bivariateGeneralizedGaussian(size, sigmaX, sigmaY, theta, info.beta, iso);
  } else {
    info.beta = drawBeta(rng, o.betapRange);
    kernel = bivariatePlateau(size, sigmaX, sigmaY, theta, info.beta, iso);
  }
  return { kernel, info };
}

/** Kernel sizes the Real-ESRGAN dataset draws from: 7, 9, …, 21. */
export const KERNEL_SIZES: readonly number[] = [7, 9, 11, 13, 15, 17, 19, 21];

/** One blur stage's kernel as the Real-ESRGAN dataset draws it: sinc with `sincProb`, else mixed; padded to `padTo`. */
export function randomBlurKernel(rng: Rng, o: MixedKernelOptions & { sincProb: number }, padTo = 21): { kernel: Kernel; info: KernelInfo } {
  const size = choice(rng, KERNEL_SIZES);
  if (rng.uniform() < o.sincProb) {
    // This cutoff range suits kernels of size 7–21.
    const omega = size < 13 ? uniform(rng, Math.PI / 3, Math.PI) : uniform(rng, Math.PI / 5, Math.PI);
    return { kernel: circularLowpassKernel(omega, size, padTo), info: { type: 'sinc', size, omega } };
  }
  const r = randomMixedKernel(rng, size, o);
  return { kernel: padKernel(r.kernel, padTo), info: r.info };
}

/** The final sinc filter: with `prob`, a sinc of random size and cutoff in [π/3, π]; otherwise the pulse. */
export function randomFinalSinc(rng: Rng, prob: number, padTo = 21): { kernel: Kernel; info: KernelInfo } {
  if (rng.uniform() < prob) {
    const size = choice(rng, KERNEL_SIZES);
    const omega = uniform(rng, Math.PI / 3, Math.PI);
    return { kernel: circularLowpassKernel(omega, size, padTo), info: { type: 'sinc', size, omega } };
  }
  return { kernel: pulseKernel(padTo), info: { type: 'pulse', size: padTo } };
}

/** cv2.getGaussianKernel(size, sigma): sigma ≤ 0 means 0.3·((size−1)/2 − 1) + 0.8. */
export function gaussianKernel1d(size: number, sigma = 0): Float64Array {
  const s = sigma > 0 ? sigma : 0.3 * ((size - 1) * 0.5 - 1) + 0.8;
  const k = new Float64Array(size);
  const c = (size - 1) / 2;
  for (let i = 0; i < size; i++) k[i] = Math.exp(-((i - c) ** 2) / (2 * s * s));
  return normalize(k);
}
