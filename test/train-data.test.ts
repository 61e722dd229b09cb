/**
 * Training data: LQ/GT pairing by name, crops aligned across the scale, BasicSR's and
 * Restormer's flips/rotations, reflect padding, and a loader that is deterministic, resumable
 * from its state, visits every sample once per epoch, and applies the progressive schedule.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../src/random.js';
import { basicsrAugment, beta, DataError, gaussians, pairedPaths, PairedFolderDataset, restormerAugment, TrainLoader } from '../src/train/data.js';
import type { DatasetPlan } from '../src/train/options.js';
import { makeTinyDataset } from './train-helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'diffir-data-'));
let data = '';
before(async () => {
  data = await makeTinyDataset(join(tmp, 'd'), 5, 32);
});

function dsPlan(o: Partial<DatasetPlan>): DatasetPlan {
  return {
    key: 'datasets.train',
    name: 'tiny',
    type: 'PairedImageDataset',
    phase: 'train',
    scale: 4,
    gtRoot: join(data, 'gt'),
    lqRoot: join(data, 'lqx4'),
    metaInfoFile: null,
    filenameTmpl: '{}',
    gtSize: 16,
    useHflip: true,
    useRot: true,
    geometricAugs: false,
    useShuffle: true,
    batchSize: 2,
    enlargeRatio: 1,
    progressive: null,
    raw: {},
    ...o,
  };
}

/** Applies a coordinate map to a p×p grid of labels y·p+x. */
function apply(map: (y: number, x: number) => [number, number], p: number): number[][] {
  return Array.from({ length: p }, (_, y) => Array.from({ length: p }, (_, x) => {
    const [a, b] = map(y, x);
    return a * p + b;
  }));
}

test("augmentations: BasicSR's hflip / vflip / transpose and Restormer's 8 modes (numpy rot90, flipud)", () => {
  const p = 3;
  const M = Array.from({ length: p }, (_, y) => Array.from({ length: p }, (_, x) => y * p + x));
  const hflip = (m: number[][]) => m.map((r) => [...r].reverse());
  const vflip = (m: number[][]) => [...m].reverse();
  const transpose = (m: number[][]) => m[0]!.map((_, x) => m.map((r) => r[x]!));
  const rot90 = (m: number[][]) => transpose(m).reverse(); // numpy rot90: counter-clockwise
  for (const h of [false, true]) {
    for (const v of [false, true]) {
      for (const t of [false, true]) {
        let want = M;
        if (h) want = hflip(want);
        if (v) want = vflip(want);
        if (t) want = transpose(want);
        assert.deepEqual(apply(basicsrAugment(h, v, t, p), p), want, `h${h} v${v} t${t}`);
      }
    }
  }
  for (let mode = 0; mode < 8; mode++) {
    let want = M;
    for (let k = 0; k < mode >> 1; k++) want = rot90(want);
    if (mode & 1) want = vflip(want);
    assert.deepEqual(apply(restormerAugment(mode, p), p), want, `mode ${mode}`);
  }
});

test('LQ/GT pairs match by name (filename_tmpl, other extensions) or by meta_info_file; mismatches name the key', () => {
  const d = join(tmp, 'pairs');
  mkdirSync(join(d, 'gt'), { recursive: true });
  mkdirSync(join(d, 'lq'), { recursive: true });
  for (const n of ['b', 'a']) {
    copyFileSync(join(data, 'gt', 'im00.png'), join(d, 'gt', `${n}.png`));
    copyFileSync(join(data, 'lqx4', 'im00.png'), join(d, 'lq', `${n}x4.png`));
  }
  const p = dsPlan({ gtRoot: join(d, 'gt'), lqRoot: join(d, 'lq'), filenameTmpl: '{}x4' });
  assert.deepEqual(pairedPaths(p).map((x) => [x.name, x.lq.slice(d.length)]), [['a', '/lq/ax4.png'], ['b', '/lq/bx4.png']]);
  writeFileSync(join(d, 'meta.txt'), 'b.png (32,32,3)\n');
  assert.deepEqual(pairedPaths({ ...p, metaInfoFile: join(d, 'meta.txt') }).map((x) => x.name), ['b']);
  renameSync(join(d, 'lq', 'bx4.png'), join(d, 'lq', 'c.png'));
  assert.throws(() => pairedPaths(p), (e: unknown) => e instanceof DataError && e.key === 'datasets.train.dataroot_lq' && /no LQ image named 'bx4\.\*' for GT 'b\.png'/.test(e.message));
  assert.throws(() => pairedPaths({ ...p, gtRoot: join(d, 'none') }), /datasets\.train\.dataroot_gt: '.*none' is not a folder/);
});

test('SR crops: the GT patch is the scale× region of the LQ patch, flipped and rotated alike', async () => {
  const ds = new PairedFolderDataset(dsPlan({}));
  const rng = new Rng(3);
  for (let i = 0; i < 6; i++) {
    const pair = await ds.load(ds.plan(i % ds.size, rng));
    assert.equal(pair.lq.height, 4);
    assert.equal(pair.gt.height, 16);
    // The LQ images are 4×4 box averages of the GT (8-bit each): so must the patches be.
    let worst = 0;
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 4; y++) {
        for (let x = 0; x < 4; x++) {
          let s = 0;
          for (let a = 0; a < 4; a++) for (let b = 0; b < 4; b++) s += pair.gt.data[(c * 16 + 4 * y + a) * 16 + 4 * x + b]!;
          worst = Math.max(worst, Math.abs(s / 16 - pair.lq.data[(c * 4 + y) * 4 + x]!));
        }
      }
    }
    assert.ok(worst < 1.01 / 255, `patch ${i}: LQ differs from the box-downsampled GT by ${worst}`);
  }
  const big = new PairedFolderDataset(dsPlan({ gtSize: 64 }));
  await assert.rejects(big.load(big.plan(0, rng)), /LQ \(8, 8\) is smaller than the patch size \(16, 16\)/);
});

test('deblurring data: images smaller than the patch are reflect-padded (DeblurPairedDataset)', async () => {
  const ds = new PairedFolderDataset(dsPlan({ type: 'DeblurPairedDataset', scale: 1, lqRoot: join(data, 'lq'), gtSize: 40, geometricAugs: false, useHflip: false, useRot: false }));
  const pair = await ds.load({ index: 0, u: [0, 0, 0, 0, 0] });
  assert.equal(pair.gt.height, 40);
  const row = (y: number, x: number) => pair.gt.data[y * 40 + x]!;
  for (let k = 0; k < 8; k++) assert.equal(row(32 + k, 5), row(31 - k, 5), 'BORDER_REFLECT repeats the edge pixel');
});

test('the loader is deterministic, resumable from its state, and visits every sample once per epoch', async () => {
  const ds = new PairedFolderDataset(dsPlan({}));
  const mk = () => new TrainLoader(ds, dsPlan({}), { seed: 5, worldSize: 1, mixup: null });
  const a = mk();
  const plans = Array.from({ length: 6 }, (_, i) => a.plan(i + 1));
  // 5 images, batch 2: two batches per epoch (the last image of each epoch is dropped).
  const epochOf = (k: number) => plans.slice(2 * k, 2 * k + 2).flatMap((p) => p.micro[0]!.samples.map((s) => s.index));
  for (const k of [0, 1, 2]) assert.equal(new Set(epochOf(k)).size, 4, `epoch ${k} draws distinct samples`);
  assert.notDeepEqual(epochOf(0), epochOf(1));
  const b = mk();
  b.setState(plans[3]!.before);
  assert.deepEqual(b.plan(4), plans[3]);
  assert.deepEqual(mk().plan(1), plans[0]);
  const batches = await a.load(plans[0]!);
  assert.deepEqual(batches[0]!.lq.shape, [2, 3, 4, 4]);
  assert.deepEqual(batches[0]!.gt.shape, [2, 3, 16, 16]);
});

test('progressive training picks mini-batches and sub-patches; mixup mixes GT and LQ alike', async () => {
  const p = dsPlan({ type: 'DeblurPairedDataset', scale: 1, lqRoot: join(data, 'lq'), gtSize: 24, batchSize: 3, geometricAugs: true, progressive: { iters: [2, 10], batchSizes: [2, 1], gtSizes: [16, 24] } });
  const ds = new PairedFolderDataset(p);
  const loader = new TrainLoader(ds, p, { seed: 1, worldSize: 2, mixup: { beta: 1.2, useIdentity: false } });
  const first = loader.plan(1);
  assert.equal(first.micro.length, 2, 'one micro-batch per simulated device');
  assert.equal(first.micro[0]!.samples.length, 2);
  assert.deepEqual({ size: first.micro[0]!.sub!.size }, { size: 16 });
  const b1 = await loader.load(first);
  assert.deepEqual(b1[0]!.gt.shape, [2, 3, 16, 16]);
  const later = loader.plan(3);
  assert.equal(later.micro[0]!.samples.length, 1);
  assert.equal(later.micro[0]!.sub, null);
  const m = first.micro[0]!.mixup!;
  assert.ok(m.lam > 0 && m.lam < 1);
  // Mixed LQ = λ·LQ + (1−λ)·LQ[perm]: check against the unmixed samples.
  const plain = new TrainLoader(ds, p, { seed: 1, worldSize: 2, mixup: null });
  const raw = await plain.load({ ...first, micro: first.micro.map((x) => ({ ...x, mixup: null })) });
  const n = 3 * 16 * 16;
  for (let i = 0; i < 2; i++) {
    const j = m.perm[i]!;
    for (const k of [0, 100, 700]) {
      const want = Math.fround(m.lam) * raw[0]!.lq.data[i * n + k]! + Math.fround(1 - m.lam) * raw[0]!.lq.data[j * n + k]!;
      assert.ok(Math.abs(b1[0]!.lq.data[i * n + k]! - want) < 1e-6);
    }
  }
});

test('random draws: Box–Muller normals and Beta samples have the right moments', () => {
  const rng = new Rng(11);
  const z = gaussians(rng, 20000);
  const mean = z.reduce((a, b) => a + b, 0) / z.length;
  const v = z.reduce((a, b) => a + (b - mean) ** 2, 0) / z.length;
  assert.ok(Math.abs(mean) < 0.03 && Math.abs(v - 1) < 0.04, `mean ${mean} var ${v}`);
  const bs = Array.from({ length: 5000 }, () => beta(rng, 1.2, 1.2));
  const bm = bs.reduce((a, b) => a + b, 0) / bs.length;
  assert.ok(bs.every((x) => x > 0 && x < 1) && Math.abs(bm - 0.5) < 0.02, `beta mean ${bm}`);
  // Beta(1.2, 1.2) variance = ab / ((a+b)²(a+b+1)) = 1.44 / (5.76·3.4)
  const bv = bs.reduce((a, b) => a + (b - bm) ** 2, 0) / bs.length;
  assert.ok(Math.abs(bv - 1.44 / (5.76 * 3.4)) < 0.01, `beta variance ${bv}`);
});
