/** Blur kernels of the Real-ESRGAN degradation: analytic properties and the random draws. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  besselJ1,
  bivariateGaussian,
  bivariateGeneralizedGaussian,
  bivariatePlateau,
  circularLowpassKernel,
  gaussianKernel1d,
  KERNEL_SIZES,
  padKernel,
  pulseKernel,
  randomBlurKernel,
  randomFinalSinc,
  sigmaMatrix2,
  type Kernel,
} from '../src/data/degrade/kernels.js';
import { DIFFIR_REALSR_OPTIONS, drawKernels } from '../src/data/degrade/realesrgan.js';
import { deriveRng } from '../src/data/rng.js';

const at = (k: Kernel, y: number, x: number): number => k.data[y * k.size + x]!;
const sum = (k: Kernel): number => k.data.reduce((a, v) => a + v, 0);

/** Second moments E[x²], E[xy], E[y²] (x = column offset, y = row offset from the centre). */
function moments(k: Kernel): [number, number, number] {
  const c = (k.size - 1) / 2;
  let xx = 0;
  let xy = 0;
  let yy = 0;
  for (let y = 0; y < k.size; y++) {
    for (let x = 0; x < k.size; x++) {
      const w = at(k, y, x);
      xx += w * (x - c) ** 2;
      xy += w * (x - c) * (y - c);
      yy += w * (y - c) ** 2;
    }
  }
  return [xx, xy, yy];
}

function assertClose(a: number, b: number, tol: number, what: string): void {
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tol ${tol})`);
}

function assertPointSymmetric(k: Kernel, tol = 1e-15): void {
  const n = k.size;
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) assertClose(at(k, y, x), at(k, n - 1 - y, n - 1 - x), tol, `k[${y}][${x}] vs its mirror`);
}

function assertIsotropicSymmetry(k: Kernel, tol = 1e-15): void {
  const n = k.size;
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      assertClose(at(k, y, x), at(k, x, y), tol, 'transpose symmetry');
      assertClose(at(k, y, x), at(k, y, n - 1 - x), tol, 'mirror symmetry');
    }
  }
}

describe('kernels', () => {
  test('isotropic Gaussian: sums to 1, 8-fold symmetric, variance σ² per axis, no covariance', () => {
    for (const sigma of [1, 1.4, 2]) {
      const k = bivariateGaussian(21, sigma, 0, 0, true);
      assertClose(sum(k), 1, 1e-12, 'sum');
      assertIsotropicSymmetry(k);
      const [xx, xy, yy] = moments(k);
      assertClose(xx, sigma * sigma, 1e-4, 'E[x²]'); // truncation at ±10 = 5σ costs 1e-5
      assertClose(yy, sigma * sigma, 1e-4, 'E[y²]');
      assertClose(xy, 0, 1e-12, 'E[xy]');
    }
  });

  test('anisotropic Gaussian: point-symmetric, second moments equal the rotated covariance U·diag(σx²,σy²)·Uᵀ', () => {
    for (const [sx, sy, th] of [
      [2, 1.2, 0.7],
      [1.1, 1.9, -2.3],
      [1.5, 1.0, Math.PI / 2],
    ] as const) {
      const k = bivariateGaussian(21, sx, sy, th, false);
      assertClose(sum(k), 1, 1e-12, 'sum');
      assertPointSymmetric(k);
      const [a, b, , d] = sigmaMatrix2(sx, sy, th);
      const [xx, xy, yy] = moments(k);
      assertClose(xx, a, 1e-6, 'E[x²]');
      assertClose(xy, b, 1e-6, 'E[xy]');
      assertClose(yy, d, 1e-6, 'E[y²]');
    }
    // θ = π/2 swaps the axes.
    const k = bivariateGaussian(15, 2, 1, Math.PI / 2, false);
    const [xx, , yy] = moments(k);
    assert.ok(yy > xx);
  });

  test('generalized Gaussian with β = 1 is the Gaussian; plateau peaks at the centre and is flatter for larger β', () => {
    const g = bivariateGaussian(13, 1.7, 0.9, 0.4, false);
    const gg = bivariateGeneralizedGaussian(13, 1.7, 0.9, 0.4, 1, false);
    for (let i = 0; i < g.data.length; i++) assertClose(gg.data[i]!, g.data[i]!, 1e-15, 'β = 1');
    for (const beta of [0.5, 1.5, 4]) {
      const k = bivariateGeneralizedGaussian(21, 2.2, 1.3, -0.8, beta, false);
      assertClose(sum(k), 1, 1e-12, 'sum');
      assertPointSymmetric(k);
      assert.equal(Math.max(...k.data), at(k, 10, 10));
    }
    const p1 = bivariatePlateau(21, 2, 2, 0, 1, true);
    const p2 = bivariatePlateau(21, 2, 2, 0, 2, true);
    for (const p of [p1, p2]) {
      assertClose(sum(p), 1, 1e-12, 'sum');
      assertIsotropicSymmetry(p);
      assert.equal(Math.max(...p.data), at(p, 10, 10));
      // 1/(1 + q^β): at q = 1 (distance σ along an axis) the value is half the centre.
      assertClose(at(p, 10, 12) / at(p, 10, 10), 0.5, 1e-12, 'half height at one σ');
    }
    // Larger β: flatter top (closer to the centre value inside σ) and lighter tails.
    assert.ok(at(p2, 10, 11) / at(p2, 10, 10) > at(p1, 10, 11) / at(p1, 10, 10));
    assert.ok(at(p2, 10, 20) / at(p2, 10, 10) < at(p1, 10, 20) / at(p1, 10, 10));
  });

  test('Bessel J1 matches tabulated values', () => {
    const table: [number, number][] = [
      [0, 0],
      [1, 0.44005058574493355],
      [2.5, 0.4970941024642741],
      [3.8317059702075125, 0],
      [5, -0.3275791375914652],
      [7.9, 0.21917939992175126],
      [10, 0.04347274616886144],
      [20, 0.06683312417584994],
      [-1, -0.44005058574493355],
    ];
    for (const [x, v] of table) assertClose(besselJ1(x), v, 1e-8, `J1(${x})`);
  });

  test('sinc (circular low-pass): sums to 1, circularly symmetric, centre ω²/(4π) before normalising, passes DC and stops high frequencies', () => {
    for (const [omega, size] of [
      [Math.PI / 3, 21],
      [Math.PI / 2, 13],
      [2.5, 7],
    ] as const) {
      const k = circularLowpassKernel(omega, size);
      assertClose(sum(k), 1, 1e-12, 'sum');
      assertIsotropicSymmetry(k, 1e-15);
      // The ratio of two entries is that of the unnormalised formula.
      const c = (size - 1) / 2;
      const centre = (omega * omega) / (4 * Math.PI);
      const next = (omega * besselJ1(omega)) / (2 * Math.PI);
      assertClose(at(k, c, c) / at(k, c, c + 1), centre / next, 1e-9, 'centre / neighbour');
    }
    // Frequency response at (π, 0): Σ k[y][x]·(−1)^x, small for a cutoff well below π.
    const k = circularLowpassKernel(Math.PI / 3, 21);
    let hi = 0;
    for (let y = 0; y < 21; y++) for (let x = 0; x < 21; x++) hi += at(k, y, x) * (x % 2 ? -1 : 1);
    assert.ok(Math.abs(hi) < 0.05, `response at Nyquist ${hi}`);
    const padded = circularLowpassKernel(2, 7, 21);
    assert.equal(padded.size, 21);
    assertClose(sum(padded), 1, 1e-12, 'padded sum');
    assert.equal(at(padded, 6, 6), 0);
    assert.equal(at(padded, 10, 10), circularLowpassKernel(2, 7).data[24]);
  });

  test('pulse, padding and the USM Gaussian', () => {
    const p = pulseKernel(21);
    assert.equal(sum(p), 1);
    assert.equal(at(p, 10, 10), 1);
    const k = padKernel(bivariateGaussian(7, 1, 1, 0), 21);
    assertClose(sum(k), 1, 1e-12, 'padded sum');
    assert.throws(() => padKernel(k, 20), /cannot pad/);
    // cv2.getGaussianKernel(51, 0): σ = 0.3·((51−1)/2 − 1) + 0.8 = 8.
    const g = gaussianKernel1d(51);
    assertClose(g.reduce((a, v) => a + v, 0), 1, 1e-12, 'sum');
    assertClose(g[25]! / g[24]!, Math.exp(1 / 128), 1e-12, 'σ = 8');
    for (let i = 0; i < 51; i++) assert.equal(g[i], g[50 - i]);
  });

  test('random blur kernels follow the option file: sizes 7–21 padded to 21, sinc 10%, family frequencies, ranges', () => {
    const o = DIFFIR_REALSR_OPTIONS;
    const stage1 = { kernelList: o.kernelList, kernelProb: o.kernelProb, blurSigma: o.blurSigma, betagRange: o.betagRange, betapRange: o.betapRange, sincProb: o.sincProb };
    const N = 3000;
    const counts = new Map<string, number>();
    const sizes = new Map<number, number>();
    for (let i = 0; i < N; i++) {
      const { kernel, info } = randomBlurKernel(deriveRng(11, i), stage1, 21);
      assert.equal(kernel.size, 21);
      assertClose(sum(kernel), 1, 1e-9, 'sum');
      assert.ok(KERNEL_SIZES.includes(info.size));
      // Zero outside the drawn size.
      const pad = (21 - info.size) / 2;
      if (pad > 0) assert.equal(at(kernel, pad - 1, 10), 0);
      counts.set(info.type, (counts.get(info.type) ?? 0) + 1);
      sizes.set(info.size, (sizes.get(info.size) ?? 0) + 1);
      if (info.type === 'sinc') {
        const lo = info.size < 13 ? Math.PI / 3 : Math.PI / 5;
        assert.ok(info.omega! >= lo && info.omega! < Math.PI);
      } else {
        assert.ok(info.sigmaX! >= 0.2 && info.sigmaX! < 3);
        if (info.type.includes('aniso')) assert.ok(info.theta! >= -Math.PI && info.theta! < Math.PI && info.sigmaY! >= 0.2 && info.sigmaY! < 3);
        if (info.type.startsWith('generalized')) assert.ok(info.beta! >= 0.5 && info.beta! <= 4);
        if (info.type.startsWith('plateau')) assert.ok(info.beta! >= 1 && info.beta! <= 2);
      }
    }
    // Binomial 4σ bounds.
    const near = (count: number, p: number, what: string) => {
      const sd = Math.sqrt(N * p * (1 - p));
      assert.ok(Math.abs(count - N * p) <= 4 * sd + 1, `${what}: ${count} of ${N}, expected ${(N * p).toFixed(0)}`);
    };
    near(counts.get('sinc') ?? 0, 0.1, 'sinc');
    o.kernelList.forEach((t, i) => near(counts.get(t) ?? 0, 0.9 * o.kernelProb[i]!, t));
    for (const s of KERNEL_SIZES) near(sizes.get(s) ?? 0, 1 / 8, `size ${s}`);
    let pulses = 0;
    for (let i = 0; i < N; i++) if (randomFinalSinc(deriveRng(12, i), 0.8).info.type === 'pulse') pulses++;
    near(pulses, 0.2, 'final pulse');
  });

  test('kernel draws are deterministic per seed', () => {
    const a = drawKernels(deriveRng(5, 1));
    const b = drawKernels(deriveRng(5, 1));
    const c = drawKernels(deriveRng(5, 2));
    assert.deepEqual(a.info, b.info);
    assert.deepEqual(Array.from(a.kernel1.data), Array.from(b.kernel1.data));
    assert.notDeepEqual(a.info, c.info);
  });
});
