/**
 * FID statistics and the Fréchet distance as pytorch-fid computes them (`calculate_activation_statistics`,
 * `calculate_frechet_distance`), in float64, plus their `.npz` files (`mu`, `sigma`, as
 * `--save-stats` writes them).
 *
 * pytorch-fid takes `scipy.linalg.sqrtm(sigma1 @ sigma2)` and uses only its trace. For positive
 * semi-definite sigmas that trace is Σ √λᵢ over the eigenvalues of `Fᵀ sigma2 F`, where
 * `F Fᵀ = sigma1` (a pivoted Cholesky factor, which also covers the rank-deficient covariances of
 * small sets: `Fᵀ sigma2 F` is then r×r with the same non-zero eigenvalues as `sigma1 sigma2`).
 * That form is always finite, so the package's fallback (retry with `eps·I` added to both sigmas
 * when sqrtm returns non-finite values) is never needed; tiny negative eigenvalues from rounding
 * are clipped to 0, and clearly negative ones (sigmas that are not covariances) raise the
 * package's "Imaginary component" error.
 */
import { pivotedCholesky, symmetricEigenvalues } from './linalg.js';
import { npzArray, readNpz, writeNpz, type NdArray } from './npy.js';

/** Mean and covariance of a feature set (dimension `dim`, `sigma` row-major dim×dim). */
export interface FidStats {
  readonly dim: number;
  readonly mu: Float64Array;
  readonly sigma: Float64Array;
  /** Number of feature rows, when known (not stored in `.npz` files). */
  readonly count?: number;
}

/** `mu = mean(act, 0)`, `sigma = np.cov(act, rowvar=False)` of `n` rows of `dim` features (float32 or float64). */
export function fidStatistics(features: ArrayLike<number>, n: number, dim: number): FidStats {
  if (features.length !== n * dim) throw new Error(`FID statistics: ${features.length} values are not ${n} rows of ${dim}`);
  if (n < 2) throw new Error(`FID needs at least 2 images per set (got ${n}): the covariance of one sample is undefined`);
  const mu = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) mu[j] = mu[j]! + features[i * dim + j]!;
  for (let j = 0; j < dim; j++) mu[j] = mu[j]! / n;
  const sigma = new Float64Array(dim * dim);
  // Σ over samples in chunks: a chunk of centred features, transposed (dim × chunk), stays in
  // cache while every pair of rows is dotted, four rows of `a` at a time.
  const CH = 128;
  const ct = new Float64Array(dim * CH);
  for (let i0 = 0; i0 < n; i0 += CH) {
    const m = Math.min(CH, n - i0);
    for (let i = 0; i < m; i++) for (let j = 0; j < dim; j++) ct[j * CH + i] = features[(i0 + i) * dim + j]! - mu[j]!;
    let a = 0;
    for (; a + 4 <= dim; a += 4) {
      const r0 = a * CH;
      const r1 = r0 + CH;
      const r2 = r1 + CH;
      const r3 = r2 + CH;
      for (let b = a; b < dim; b++) {
        const rb = b * CH;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        for (let k = 0; k < m; k++) {
          const v = ct[rb + k]!;
          s0 += ct[r0 + k]! * v;
          s1 += ct[r1 + k]! * v;
          s2 += ct[r2 + k]! * v;
          s3 += ct[r3 + k]! * v;
        }
        sigma[a * dim + b] = sigma[a * dim + b]! + s0;
        sigma[(a + 1) * dim + b] = sigma[(a + 1) * dim + b]! + s1;
        sigma[(a + 2) * dim + b] = sigma[(a + 2) * dim + b]! + s2;
        sigma[(a + 3) * dim + b] = sigma[(a + 3) * dim + b]! + s3;
      }
    }
    for (; a < dim; a++) {
      for (let b = a; b < dim; b++) {
        let s0 = 0;
        for (let k = 0; k < m; k++) s0 += ct[a * CH + k]! * ct[b * CH + k]!;
        sigma[a * dim + b] = sigma[a * dim + b]! + s0;
      }
    }
  }
  // Rows a+1..a+3 of a block also summed a few entries left of their diagonal; the upper triangle is what counts.
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) {
      const v = sigma[a * dim + b]! / (n - 1);
      sigma[a * dim + b] = v;
      sigma[b * dim + a] = v;
    }
  }
  return { dim, mu, sigma, count: n };
}

/** The parts of the Fréchet distance (for reports and debugging). */
export interface FrechetParts {
  readonly value: number;
  readonly meanSqDiff: number;
  readonly trace1: number;
  readonly trace2: number;
  /** tr sqrtm(sigma1 · sigma2). */
  readonly traceSqrtProduct: number;
  /** Numerical rank of sigma1. */
  readonly rank: number;
}

/** pytorch-fid's `calculate_frechet_distance(mu1, sigma1, mu2, sigma2)`: ‖mu1−mu2‖² + tr σ1 + tr σ2 − 2 tr √(σ1σ2). */
export function frechetDistance(a: FidStats, b: FidStats): FrechetParts {
  const n = a.dim;
  if (b.dim !== n) throw new Error(`FID: the statistics have different dimensions (${a.dim} and ${b.dim})`);
  for (const s of [a, b]) {
    for (const v of s.mu) if (!Number.isFinite(v)) throw new Error('FID: the mean vector holds non-finite values');
    for (const v of s.sigma) if (!Number.isFinite(v)) throw new Error('FID: the covariance holds non-finite values');
  }
  let meanSqDiff = 0;
  for (let i = 0; i < n; i++) meanSqDiff += (a.mu[i]! - b.mu[i]!) ** 2;
  let trace1 = 0;
  let trace2 = 0;
  let maxDiag = 0;
  for (let i = 0; i < n; i++) {
    trace1 += a.sigma[i * n + i]!;
    trace2 += b.sigma[i * n + i]!;
    maxDiag = Math.max(maxDiag, Math.abs(a.sigma[i * n + i]!));
  }
  // Pivoted Cholesky of sigma1 down to its numerical rank (rounding-level remainders dropped).
  const { factor: f, rank: r } = pivotedCholesky(a.sigma, n, maxDiag * n * Number.EPSILON * 4);
  let traceSqrtProduct = 0;
  if (r > 0) {
    // F is lower-triangular up to the row order: row k has non-zeros in columns < last[k] only.
    const last = new Int32Array(n);
    for (let k = 0; k < n; k++) {
      let j = r;
      while (j > 0 && f[k * r + j - 1] === 0) j--;
      last[k] = j;
    }
    // G = sigma2 · F (n×r), four rows of sigma2 per pass over F.
    const g = new Float64Array(n * r);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const g0 = i * r;
      const s0 = i * n;
      for (let k = 0; k < n; k++) {
        const a0 = b.sigma[s0 + k]!;
        const a1 = b.sigma[s0 + n + k]!;
        const a2 = b.sigma[s0 + 2 * n + k]!;
        const a3 = b.sigma[s0 + 3 * n + k]!;
        const fk = k * r;
        const lk = last[k]!;
        for (let j = 0; j < lk; j++) {
          const v = f[fk + j]!;
          g[g0 + j] = g[g0 + j]! + a0 * v;
          g[g0 + r + j] = g[g0 + r + j]! + a1 * v;
          g[g0 + 2 * r + j] = g[g0 + 2 * r + j]! + a2 * v;
          g[g0 + 3 * r + j] = g[g0 + 3 * r + j]! + a3 * v;
        }
      }
    }
    for (; i < n; i++) {
      for (let k = 0; k < n; k++) {
        const a0 = b.sigma[i * n + k]!;
        for (let j = 0; j < last[k]!; j++) g[i * r + j] = g[i * r + j]! + a0 * f[k * r + j]!;
      }
    }
    // M = Fᵀ G (r×r, symmetric; the lower triangle is what the eigen-solver reads).
    const m = new Float64Array(r * r);
    for (let k = 0; k < n; k++) {
      const fk = k * r;
      const lk = last[k]!;
      for (let a = 0; a < lk; a++) {
        const fa = f[fk + a]!;
        const ma = a * r;
        for (let c = 0; c <= a; c++) m[ma + c] = m[ma + c]! + fa * g[fk + c]!;
      }
    }
    const lambda = symmetricEigenvalues(m, r);
    let imaginary = 0;
    for (const l of lambda) {
      if (l >= 0) traceSqrtProduct += Math.sqrt(l);
      else imaginary += Math.sqrt(-l);
    }
    if (imaginary > 1e-3) throw new Error(`FID: Imaginary component ${imaginary.toPrecision(3)} (the covariances are not positive semi-definite)`);
  }
  return { value: meanSqDiff + trace1 + trace2 - 2 * traceSqrtProduct, meanSqDiff, trace1, trace2, traceSqrtProduct, rank: r };
}

/** Reads FID statistics from a pytorch-fid `.npz` (`mu` [d], `sigma` [d, d]; float64 or float32, stored or deflated). */
export function loadFidStats(path: string): FidStats {
  const arrays = readNpz(path);
  const mu = npzArray(arrays, 'mu', path, 1);
  const sigma = npzArray(arrays, 'sigma', path, 2);
  const d = mu.shape[0]!;
  if (sigma.shape[0] !== d || sigma.shape[1] !== d) throw new Error(`${path}: sigma has shape (${sigma.shape.join(', ')}), expected (${d}, ${d}) to match mu`);
  return { dim: d, mu: mu.data, sigma: sigma.data };
}

/** Writes FID statistics as pytorch-fid's `.npz` (`mu`, `sigma`, float64); an existing file is replaced only with `overwrite`. */
export async function saveFidStats(path: string, s: FidStats, overwrite = false): Promise<void> {
  const arrays = new Map<string, NdArray>([
    ['mu', { shape: [s.dim], data: s.mu }],
    ['sigma', { shape: [s.dim, s.dim], data: s.sigma }],
  ]);
  await writeNpz(path, arrays, overwrite);
}
