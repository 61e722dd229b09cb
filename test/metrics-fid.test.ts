/**
 * FID math and statistics files against ../shared/fixtures/metrics (computed by pytorch-fid with
 * scipy): the Fréchet distance from pytorch-fid `.npz` files (compressed float64, stored float32,
 * rank-deficient pairs), from a full-rank 2048-d feature set, and the `.npz` round trip.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { fidStatistics, frechetDistance, loadFidStats, saveFidStats } from '../src/metrics/frechet.js';
import { pinvSymmetric, symmetricEigenvalues } from '../src/metrics/linalg.js';
import { parseNpy, readNpz } from '../src/metrics/npy.js';
import { Rng } from '../src/random.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const M = resolve(root, '../shared/fixtures/metrics');
const expected = JSON.parse(readFileSync(join(M, 'expected.json'), 'utf8'));
const rel = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);

test('FID between pytorch-fid .npz statistics (deflated <f8, stored <f4, rank-deficient)', () => {
  const a = loadFidStats(join(M, 'stats_a.npz'));
  const b = loadFidStats(join(M, 'stats_b.npz'));
  assert.equal(a.dim, 8);
  const ab = frechetDistance(a, b).value;
  assert.ok(rel(ab, expected.fid_npz['stats_a.npz~stats_b.npz']) < 1e-3, `a~b ${ab}`);
  const cd = frechetDistance(loadFidStats(join(M, 'stats_c.npz')), loadFidStats(join(M, 'stats_d.npz')));
  assert.ok(rel(cd.value, expected.fid_npz['stats_c.npz~stats_d.npz']) < 1e-3, `c~d ${cd.value}`);
  assert.ok(cd.rank < 8, `stats_c is rank-deficient, got rank ${cd.rank}`);
});

test('FID from a full-rank 2048-d feature set (2100 and 2200 rows) matches pytorch-fid', async () => {
  const { tensorValues } = (await import(pathToFileURL(resolve(root, '../shared/fixtures/tools/synth-weights.mjs')).href)) as {
    tensorValues: (name: string, shape: number[], init: unknown, seed: number) => Float32Array;
  };
  const man = JSON.parse(readFileSync(join(M, 'fid_features.manifest.json'), 'utf8'));
  const d = 2048;
  const z1 = tensorValues('fid_z1', [2100, d], { kind: 'uniform', exp: 0 }, man.seed);
  const z2 = tensorValues('fid_z2', [2200, d], { kind: 'uniform', exp: 0 }, man.seed);
  const fa = new Float64Array(2100 * d);
  for (let n = 0; n < 2100; n++) for (let j = 0; j < d; j++) fa[n * d + j] = (1 + (j % 4) / 4) * z1[n * d + j]!;
  const fb = new Float64Array(2200 * d);
  for (let n = 0; n < 2200; n++) for (let j = 0; j < d; j++) fb[n * d + j] = 0.25 + 0.5 * (z2[n * d + j]! + z2[n * d + ((j + 1) % d)]!);
  const sa = fidStatistics(fa, 2100, d);
  const sb = fidStatistics(fb, 2200, d);
  const e = expected.fid_from_features;
  assert.ok(Math.abs(sa.mu[0]! - e.mu_a_head[0]) < 1e-12);
  assert.ok(Math.abs(sa.sigma[1]! - e.sigma_a_00_01[1]) < 1e-12);
  const parts = frechetDistance(sa, sb);
  assert.ok(rel(parts.trace1, e.trace_sigma_a) < 1e-9);
  assert.ok(rel(parts.meanSqDiff, e.mean_sq_diff) < 1e-9);
  assert.ok(rel(parts.traceSqrtProduct, e.trace_sqrt_product) < 1e-6, `tr sqrt ${parts.traceSqrtProduct} vs ${e.trace_sqrt_product}`);
  assert.ok(rel(parts.value, e.value) < 1e-3, `FID ${parts.value} vs ${e.value}`);
  assert.equal(parts.rank, d);
});

test('FID statistics .npz: save then load gives the same values; np.load-compatible npy header', async () => {
  const rng = new Rng(3);
  const n = 9;
  const d = 5;
  const f = Float64Array.from({ length: n * d }, () => rng.uniform() * 2 - 1);
  const s = fidStatistics(f, n, d);
  const dir = mkdtempSync(join(tmpdir(), 'diffir-npz-'));
  const p = join(dir, 'stats.npz');
  await saveFidStats(p, s);
  const back = loadFidStats(p);
  assert.deepEqual([...back.mu], [...s.mu]);
  assert.deepEqual([...back.sigma], [...s.sigma]);
  await assert.rejects(saveFidStats(p, s), /exists/);
  const raw = readNpz(p);
  assert.deepEqual(raw.get('sigma')!.shape, [d, d]);
  assert.equal(frechetDistance(s, back).value < 1e-9, true);
  // A Fortran-order npy is read in C order.
  const hdr = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }";
  const h = new TextEncoder().encode(hdr.padEnd(118, ' ') + '\n');
  const bytes = new Uint8Array(10 + h.length + 48);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(bytes.buffer).setUint16(8, h.length, true);
  bytes.set(h, 10);
  const dv = new DataView(bytes.buffer, 10 + h.length);
  [1, 4, 2, 5, 3, 6].forEach((v, i) => dv.setFloat64(i * 8, v, true));
  assert.deepEqual([...parseNpy(bytes, 'f.npy').data], [1, 2, 3, 4, 5, 6]);
});

test('symmetric eigenvalues and pseudo-inverse against analytic cases', () => {
  const rng = new Rng(7);
  const n = 40;
  // Q diag(λ) Qᵀ from a random orthogonal Q (Gram–Schmidt) has eigenvalues λ.
  const lambda = Float64Array.from({ length: n }, (_, i) => (i < 5 ? 0 : i - 20 + 0.5));
  const q = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const v = Float64Array.from({ length: n }, () => rng.uniform() - 0.5);
    for (let k = 0; k < j; k++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += v[i]! * q[i * n + k]!;
      for (let i = 0; i < n; i++) v[i] = v[i]! - dot * q[i * n + k]!;
    }
    const norm = Math.hypot(...v);
    for (let i = 0; i < n; i++) q[i * n + j] = v[i]! / norm;
  }
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) a[i * n + j] = a[i * n + j]! + q[i * n + k]! * lambda[k]! * q[j * n + k]!;
  const got = symmetricEigenvalues(a, n);
  const want = Float64Array.from(lambda).sort();
  for (let i = 0; i < n; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-10, `λ${i} ${got[i]} vs ${want[i]}`);
  // pinv(A)·A·pinv(A) = pinv(A) with the 5 zero eigenvalues cut off.
  const p = pinvSymmetric(a, n, 1e-10);
  const mul = (x: Float64Array, y: Float64Array): Float64Array => {
    const o = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) o[i * n + j] = o[i * n + j]! + x[i * n + k]! * y[k * n + j]!;
    return o;
  };
  const apa = mul(mul(a, p), a);
  for (let i = 0; i < n * n; i++) assert.ok(Math.abs(apa[i]! - a[i]!) < 1e-9);
});
