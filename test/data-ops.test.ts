/**
 * Degradation building blocks run on ONNX Runtime / sharp / JS: resizing (PyTorch and
 * MATLAB), filtering, USM sharpening, noise statistics, JPEG round trips, and the cheap
 * tensor operations (crops, padding, flips).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { f32 } from '../src/tensor.js';
import type { HostTensor } from '../src/tensor.js';
import { areaMatrix, imresize, imresizeSize, interpolate, matlabMatrix, torchMatrix } from '../src/data/degrade/resize.js';
import { filter2D, releaseDataSessions, usmSharp } from '../src/data/degrade/runtime.js';
import { addGaussianNoise, addPoissonNoise, poisson } from '../src/data/degrade/noise.js';
import { jpegCompress, randomJpeg } from '../src/data/degrade/jpeg.js';
import { applyAugment, crop, drawAugment, padBottomRight, pairedRandomCrop, quantize8, reflect101, stack, item } from '../src/data/tensor-ops.js';
import { deriveRng, permutation, weightedChoice } from '../src/data/rng.js';
import { image } from './helpers/tensors.js';

after(() => releaseDataSessions());

type T = HostTensor<'float32'>;


const px = (t: T, b: number, c: number, y: number, x: number): number => {
  const [, C, H, W] = t.shape as number[];
  return t.data[((b * C! + c) * H! + y) * W! + x]!;
};

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Smooth pseudo-random test image in [0,1]. */
const smooth = (b: number, c: number, y: number, x: number): number =>
  0.5 + 0.2 * Math.sin(0.11 * x + 0.7 * c + b) * Math.cos(0.07 * y - 0.3 * c) + 0.1 * Math.sin(0.031 * (x + 2 * y));

/** Reference separable map in JS: out = Mh · img · Mwᵀ. */
function separableRef(x: T, mh: Float32Array, ho: number, mw: Float32Array, wo: number): Float32Array {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const out = new Float32Array(n * c * ho * wo);
  for (let p = 0; p < n * c; p++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        let s = 0;
        for (let y = 0; y < h; y++) {
          const a = mh[oy * h + y]!;
          if (a === 0) continue;
          for (let xx = 0; xx < w; xx++) s += a * mw[ox * w + xx]! * x.data[p * h * w + y * w + xx]!;
        }
        out[(p * ho + oy) * wo + ox] = s;
      }
    }
  }
  return out;
}

describe('resize', () => {
  test('output sizes: PyTorch floor(in·s) or the size given; MATLAB ceil(in·s)', async () => {
    const x = image(1, 3, 61, 100, smooth);
    assert.deepEqual((await interpolate(x, { mode: 'bicubic', scale: 0.37 })).shape, [1, 3, 22, 37]);
    assert.deepEqual((await interpolate(x, { mode: 'area', scale: 1.5 })).shape, [1, 3, 91, 150]);
    assert.deepEqual((await interpolate(x, { mode: 'bilinear', size: [17, 29] })).shape, [1, 3, 17, 29]);
    assert.deepEqual((await imresize(x, 0.25)).shape, [1, 3, 16, 25]);
    assert.deepEqual((await imresize(x, 2)).shape, [1, 3, 122, 200]);
    assert.equal(imresizeSize(300, 1 / 3), 100);
    assert.equal(imresizeSize(101, 0.25), 26);
    await assert.rejects(interpolate(x, { mode: 'area', scale: 0.001 }), /empty/);
  });

  test('every mode keeps a constant image constant', async () => {
    const x = image(2, 3, 23, 31, (b, c) => 0.25 + 0.1 * c + 0.3 * b);
    const outs = [
      await interpolate(x, { mode: 'area', scale: 0.43 }),
      await interpolate(x, { mode: 'bilinear', scale: 1.37 }),
      await interpolate(x, { mode: 'bicubic', size: [40, 9] }),
      await imresize(x, 0.3),
      await imresize(x, 1.7),
    ];
    for (const o of outs) {
      const [, , h, w] = o.shape as number[];
      for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) for (let y = 0; y < h!; y++) for (let xx = 0; xx < w!; xx++) {
        assert.ok(Math.abs(px(o, b, c, y, xx) - (0.25 + 0.1 * c + 0.3 * b)) < 2e-6);
      }
    }
  });

  test("MATLAB bicubic: the ×½ antialiasing kernel, the ×2 kernel, and linear ramps mapped through MATLAB's coordinates", async () => {
    // ×½: output o is centred on input 2o + 0.5 with weights ½·cubic(d/2).
    const half = matlabMatrix(32, 16, 0.5);
    const w8 = [-0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875];
    for (let k = 0; k < 8; k++) assert.equal(half[5 * 32 + 2 * 5 - 3 + k], Math.fround(w8[k]!));
    // ×2: output o is centred on input (o + 0.5)/2 − 0.5; for o = 4 that is 1.75.
    const two = matlabMatrix(10, 20, 2);
    const w4 = [-0.0234375, 0.2265625, 0.8671875, -0.0703125];
    for (let k = 0; k < 4; k++) assert.equal(two[4 * 10 + k], w4[k]);
    // Borders are mirrored with the edge repeated: row 0 of ×2 (centre 0.75, 1-based) folds 1-based 0 onto 1 and −1 onto 2.
    assert.equal(two[0], 0.2265625 + 0.8671875);
    assert.equal(two[1], -0.0234375 - 0.0703125);
    // Linear ramps stay linear away from the borders: out(o) = a + b·u(o).
    const ramp = image(1, 1, 8, 96, (_, __, ___, x) => 0.1 + 0.004 * x);
    for (const s of [0.25, 0.5, 2, 1 / 3]) {
      const o = await imresize(ramp, s);
      const wo = o.shape[3]!;
      const margin = Math.ceil(3 / Math.min(1, s));
      for (let ox = 0; ox < wo; ox++) {
        const u = (ox + 0.5) / s - 0.5;
        if (u < margin || u > 95 - margin) continue;
        assert.ok(Math.abs(px(o, 0, 0, 0, ox) - (0.1 + 0.004 * u)) < 2e-6, `scale ${s} column ${ox}`);
      }
    }
  });

  test('PyTorch modes: bicubic a = −0.75 weights, area = block average, bilinear ×½ = area ×½', async () => {
    const m = torchMatrix(12, 24, 2, 'bicubic');
    // o = 5 → source 2.25: weights on 1..4.
    const w = [-0.10546875, 0.87890625, 0.26171875, -0.03515625];
    for (let k = 0; k < 4; k++) assert.ok(Math.abs(m[5 * 12 + 1 + k]! - w[k]!) < 1e-7);
    const a = areaMatrix(6, 3);
    assert.deepEqual(Array.from(a.subarray(0, 6)), [0.5, 0.5, 0, 0, 0, 0]);
    const up = areaMatrix(3, 6);
    assert.deepEqual(Array.from(up.subarray(3, 6)), [1, 0, 0]);
    assert.deepEqual(Array.from(up.subarray(6, 9)), [0, 1, 0]);
    const x = image(1, 3, 16, 20, smooth);
    const area = await interpolate(x, { mode: 'area', scale: 0.5 });
    const bil = await interpolate(x, { mode: 'bilinear', scale: 0.5 });
    assert.ok(maxAbsDiff(area.data, bil.data) < 1e-6);
    assert.ok(Math.abs(px(area, 0, 1, 3, 4) - (px(x, 0, 1, 6, 8) + px(x, 0, 1, 6, 9) + px(x, 0, 1, 7, 8) + px(x, 0, 1, 7, 9)) / 4) < 1e-6);
  });

  test('ONNX Runtime applies the matrices exactly (vs a JS reference)', async () => {
    const x = image(2, 3, 9, 13, smooth);
    const out = await interpolate(x, { mode: 'bicubic', scale: 1.4 });
    const ref = separableRef(x, torchMatrix(9, 12, 1.4, 'bicubic'), 12, torchMatrix(13, 18, 1.4, 'bicubic'), 18);
    assert.ok(maxAbsDiff(out.data, ref) < 1e-5);
  });
});

describe('filter2D and USM', () => {
  test('the pulse is the identity; an off-centre pulse shifts (cross-correlation) with reflect borders', async () => {
    const x = image(2, 3, 12, 15, smooth);
    const pulse = { size: 5, data: new Float64Array(25) };
    pulse.data[12] = 1;
    const id = await filter2D(x, [pulse, pulse]);
    assert.ok(maxAbsDiff(id.data, x.data) < 1e-7);
    const shift = { size: 3, data: new Float64Array(9) };
    shift.data[1 * 3 + 2] = 1; // row 1, column 2 → out[y][x] = in[y][x+1]
    const s = await filter2D(x, [shift, pulse]);
    for (let y = 0; y < 12; y++) {
      for (let xx = 0; xx < 15; xx++) {
        assert.ok(Math.abs(px(s, 0, 2, y, xx) - px(x, 0, 2, y, reflect101(xx + 1, 15))) < 1e-7);
        assert.ok(Math.abs(px(s, 1, 0, y, xx) - px(x, 1, 0, y, xx)) < 1e-7);
      }
    }
  });

  test('an arbitrary kernel matches a direct reflect-padded correlation', async () => {
    const x = image(1, 3, 14, 11, smooth);
    const rng = deriveRng(3);
    const k = { size: 7, data: Float64Array.from({ length: 49 }, () => rng.uniform() - 0.3) };
    const out = await filter2D(x, [k]);
    let m = 0;
    for (let c = 0; c < 3; c++) for (let y = 0; y < 14; y++) for (let xx = 0; xx < 11; xx++) {
      let s = 0;
      for (let i = 0; i < 7; i++) for (let j = 0; j < 7; j++) s += k.data[i * 7 + j]! * px(x, 0, c, reflect101(y + i - 3, 14), reflect101(xx + j - 3, 11));
      m = Math.max(m, Math.abs(s - px(out, 0, c, y, xx)));
    }
    assert.ok(m < 1e-5, `max diff ${m}`);
    await assert.rejects(filter2D(image(1, 3, 8, 8, smooth), [{ size: 21, data: new Float64Array(441) }]), /larger than 10x10/);
  });

  test('USM: constant images and linear ramps are unchanged; edges get an overshoot bounded by the weight', async () => {
    const flat = image(1, 3, 60, 60, (_, c) => 0.2 + 0.3 * c);
    assert.ok(maxAbsDiff((await usmSharp(flat)).data, flat.data) < 1e-6);
    // A Gaussian blur leaves a linear ramp unchanged away from the borders, so the residual is 0 there.
    const ramp = image(1, 1, 100, 100, (_, __, y, x) => 0.1 + 0.004 * x + 0.002 * y);
    const r = await usmSharp(ramp);
    for (let y = 30; y < 70; y++) for (let x = 30; x < 70; x++) assert.ok(Math.abs(px(r, 0, 0, y, x) - px(ramp, 0, 0, y, x)) < 1e-5);
    const step = image(1, 1, 64, 64, (_, __, ___, x) => (x < 32 ? 0.3 : 0.7));
    const s = await usmSharp(step);
    for (let x = 0; x < 64; x++) {
      const v = px(s, 0, 0, 32, x);
      if (x < 32) assert.ok(v <= 0.3 + 1e-6 && v >= 0.3 - 0.5 * 0.4);
      else assert.ok(v >= 0.7 - 1e-6 && v <= 0.7 + 0.5 * 0.4);
    }
    assert.ok(px(s, 0, 0, 32, 31) < 0.29 && px(s, 0, 0, 32, 32) > 0.71, 'contrast at the edge increases');
  });
});

describe('noise', () => {
  test('Poisson sampler: mean and variance λ, small and large λ', () => {
    const rng = deriveRng(9);
    for (const lam of [0.3, 4, 9.9, 10, 37.5, 300]) {
      const n = 20000;
      let s = 0;
      let s2 = 0;
      for (let i = 0; i < n; i++) {
        const k = poisson(rng, lam);
        assert.ok(Number.isInteger(k) && k >= 0);
        s += k;
        s2 += k * k;
      }
      const mean = s / n;
      const variance = s2 / n - mean * mean;
      assert.ok(Math.abs(mean - lam) < 4 * Math.sqrt(lam / n), `λ=${lam}: mean ${mean}`);
      assert.ok(Math.abs(variance / lam - 1) < 0.08, `λ=${lam}: variance ${variance}`);
    }
    assert.equal(poisson(rng, 0), 0);
  });

  test('Gaussian noise: σ/255 standard deviation, zero mean; gray noise is the same on every channel', () => {
    const x = image(2, 3, 96, 96, () => 0.5);
    const info = addGaussianNoise(x, deriveRng(1), [12, 12], 0);
    assert.deepEqual(info.map((i) => [i.kind, i.strength, i.gray]), [
      ['gaussian', 12, false],
      ['gaussian', 12, false],
    ]);
    let s = 0;
    let s2 = 0;
    let cross = 0;
    const n = x.data.length;
    const hw = 96 * 96;
    for (let i = 0; i < n; i++) {
      const e = x.data[i]! - 0.5;
      s += e;
      s2 += e * e;
    }
    for (let p = 0; p < hw; p++) cross += (x.data[p]! - 0.5) * (x.data[hw + p]! - 0.5);
    const sd = Math.sqrt(s2 / n);
    assert.ok(Math.abs(sd * 255 - 12) / 12 < 0.02, `σ ${sd * 255}`);
    assert.ok(Math.abs(s / n) < 4 * (12 / 255) / Math.sqrt(n));
    assert.ok(Math.abs(cross / hw / (sd * sd)) < 0.05, 'colour noise is independent across channels');
    const g = image(1, 3, 32, 32, () => 0.5);
    const gi = addGaussianNoise(g, deriveRng(2), [5, 20], 1);
    assert.ok(gi[0]!.gray && gi[0]!.strength >= 5 && gi[0]!.strength < 20);
    for (let p = 0; p < 1024; p++) {
      assert.equal(g.data[p], g.data[1024 + p]);
      assert.equal(g.data[p], g.data[2048 + p]);
    }
    // Clipped to [0,1].
    const dark = image(1, 3, 16, 16, () => 0.01);
    addGaussianNoise(dark, deriveRng(3), [30, 30], 0);
    assert.ok(dark.data.every((v) => v >= 0 && v <= 1) && dark.data.some((v) => v === 0));
  });

  test('Poisson noise: variance v/vals·scale² with vals = 2^ceil(log2(distinct levels)); gray noise shared by channels', () => {
    // 256 distinct levels (a ramp over the columns): vals = 256.
    const x = image(1, 3, 128, 256, (_, __, ___, col) => col / 255);
    const ref = Float32Array.from(x.data);
    addPoissonNoise(x, deriveRng(4), [1, 1], 0);
    let s2 = 0;
    let pred = 0;
    let cnt = 0;
    for (let c = 0; c < 3; c++) for (let y = 0; y < 128; y++) for (let col = 100; col < 156; col++) {
      const i = (c * 128 + y) * 256 + col;
      const e = x.data[i]! - ref[i]!;
      s2 += e * e;
      pred += col / 255 / 256;
      cnt++;
    }
    assert.ok(Math.abs(s2 / pred - 1) < 0.05, `variance ratio ${s2 / pred}`);
    // Two levels: vals = 2, λ = 2v.
    const two = image(1, 3, 100, 100, (_, __, y) => (y < 50 ? 0.25 : 0.75));
    const r2 = Float32Array.from(two.data);
    addPoissonNoise(two, deriveRng(5), [0.5, 0.5], 0);
    let v = 0;
    for (let c = 0; c < 3; c++) for (let y = 0; y < 50; y++) for (let col = 0; col < 100; col++) v += (px(two, 0, c, y, col) - r2[(c * 100 + y) * 100 + col]!) ** 2;
    // Rows with v = 0.25: noise = (Poisson(0.5)/2 − 0.25)·0.5, variance 0.5/4·0.25 (never clipped: the smallest value is 0.125).
    const samples = 3 * 50 * 100;
    assert.ok(Math.abs(v / samples / (0.5 / 4 / 4) - 1) < 0.1, `two-level variance ${v / samples}`);
    const g = image(1, 3, 64, 64, (_, __, y, col) => (y * 64 + col) / 4096);
    addPoissonNoise(g, deriveRng(6), [1, 2], 1);
    for (let p = 0; p < 4096; p++) {
      const base = p / 4096;
      const e0 = g.data[p]! - base;
      if (g.data[p]! > 0 && g.data[p]! < 1 && g.data[4096 + p]! > 0 && g.data[4096 + p]! < 1) assert.ok(Math.abs(g.data[4096 + p]! - base - e0) < 1e-6);
    }
  });
});

describe('JPEG', () => {
  function psnr(a: ArrayLike<number>, b: ArrayLike<number>): number {
    let s = 0;
    for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
    return 10 * Math.log10(1 / (s / a.length));
  }

  test('round trip: sizes kept (odd sizes too), 8-bit values, quality orders the error, flat gray is exact', async () => {
    const x = image(2, 3, 70, 90, smooth);
    const q95 = { ...x, data: Float32Array.from(x.data) };
    const q30 = { ...x, data: Float32Array.from(x.data) };
    await jpegCompress(q95, [95, 95]);
    await jpegCompress(q30, [30, 30]);
    assert.deepEqual(q95.shape, [2, 3, 70, 90]);
    for (const v of q30.data) assert.ok(Math.abs(v * 255 - Math.round(v * 255)) < 1e-4 && v >= 0 && v <= 1);
    const p95 = psnr(q95.data, x.data);
    const p30 = psnr(q30.data, x.data);
    assert.ok(p95 > 38, `PSNR at 95: ${p95}`);
    assert.ok(p30 > 28 && p30 < p95, `PSNR at 30: ${p30}`);
    const gray = image(1, 3, 33, 47, () => 128 / 255);
    await jpegCompress(gray, [40]);
    for (const v of gray.data) assert.equal(Math.round(v * 255), 128);
    const r = image(3, 3, 16, 16, smooth);
    const qs = await randomJpeg(r, deriveRng(1), [30, 95]);
    assert.equal(qs.length, 3);
    for (const q of qs) assert.ok(Number.isInteger(q) && q >= 30 && q <= 95);
  });
});

describe('tensor ops and seeds', () => {
  test('crop, reflect-101 padding, flips and transposes, stacking', () => {
    const x = image(1, 2, 4, 5, (_, c, y, xx) => c * 100 + y * 10 + xx);
    const c = crop(x, 1, 2, 2, 3);
    assert.deepEqual(Array.from(c.data.subarray(0, 6)), [12, 13, 14, 22, 23, 24]);
    assert.deepEqual(Array.from({ length: 9 }, (_, i) => reflect101(i - 2, 4)), [2, 1, 0, 1, 2, 3, 2, 1, 0]);
    const p = padBottomRight(x, 2, 1);
    assert.deepEqual(p.shape, [1, 2, 6, 6]);
    assert.equal(px(p, 0, 1, 5, 5), 100 + 10 + 3); // row 5 → 1, column 5 → 3
    const a = { hflip: true, vflip: true, transpose: true };
    const t = applyAugment(x, a);
    assert.deepEqual(t.shape, [1, 2, 5, 4]);
    // Transposed output (y, x) reads the flipped source at (x, y): source (3 − x, 4 − y).
    assert.equal(px(t, 0, 1, 1, 0), 100 + 3 * 10 + 3);
    const back = applyAugment(applyAugment(x, { hflip: true, vflip: false, transpose: false }), { hflip: true, vflip: false, transpose: false });
    assert.deepEqual(Array.from(back.data), Array.from(x.data));
    const s = stack([x, x]);
    assert.deepEqual(s.shape, [2, 2, 4, 5]);
    assert.deepEqual(Array.from(item(s, 1).data), Array.from(x.data));
    assert.throws(() => stack([x, crop(x, 0, 0, 3, 3)]), /differ in size/);
    const q = f32([1, 1, 1, 3], [0.5 / 255, 1.5 / 255, 2.5 / 255]);
    quantize8(q);
    assert.deepEqual(Array.from(q.data, (v) => Math.round(v * 255)), [0, 2, 2]);
    let flips = 0;
    for (let i = 0; i < 2000; i++) if (drawAugment(deriveRng(1, i), { hflip: true }).hflip) flips++;
    assert.ok(Math.abs(flips - 1000) < 4 * Math.sqrt(500));
  });

  test('paired random crop keeps LQ and GT aligned', () => {
    const lq = image(2, 3, 20, 24, (b, c, y, x) => b * 1000 + c * 100 + y + x / 100);
    // GT = nearest ×4 upsampling of the LQ.
    const gt = image(2, 3, 80, 96, (b, c, y, x) => b * 1000 + c * 100 + Math.floor(y / 4) + Math.floor(x / 4) / 100);
    const r = pairedRandomCrop(lq, [gt], 32, 4, deriveRng(2));
    assert.deepEqual(r.lq.shape, [2, 3, 8, 8]);
    assert.deepEqual(r.gts[0]!.shape, [2, 3, 32, 32]);
    for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) assert.equal(px(r.gts[0]!, 1, 2, y, x), px(r.lq, 1, 2, Math.floor(y / 4), Math.floor(x / 4)));
    assert.throws(() => pairedRandomCrop(lq, [gt], 30, 4, deriveRng(2)), /multiple/);
  });

  test('derived generators are reproducible and independent; choices and permutations', () => {
    const a = deriveRng(42, 1, 7);
    const b = deriveRng(42, 1, 7);
    const c = deriveRng(42, 1, 8);
    const sa = Array.from({ length: 5 }, () => a.nextU32());
    assert.deepEqual(sa, Array.from({ length: 5 }, () => b.nextU32()));
    assert.notDeepEqual(sa, Array.from({ length: 5 }, () => c.nextU32()));
    assert.notDeepEqual(sa, Array.from({ length: 5 }, () => deriveRng(43, 1, 7).nextU32()));
    assert.throws(() => deriveRng(-1), /non-negative/);
    const perm = permutation(deriveRng(1), 50);
    assert.deepEqual([...perm].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
    let ups = 0;
    for (let i = 0; i < 3000; i++) if (weightedChoice(deriveRng(3, i), ['up', 'down', 'keep'], [0.2, 0.7, 0.1]) === 'up') ups++;
    assert.ok(Math.abs(ups - 600) < 4 * Math.sqrt(3000 * 0.2 * 0.8));
  });
});
