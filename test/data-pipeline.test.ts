/**
 * The Real-ESRGAN pipeline end to end, the training pair pool, the datasets (GT-only
 * with on-the-fly degradation, inpainting), the worker-thread prefetcher and
 * `diffir degrade`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { parse as parseYaml } from 'yaml';
import { f32 } from '../src/tensor.js';
import type { HostTensor } from '../src/tensor.js';
import {
  degradeRealESRGAN,
  DIFFIR_REALSR_OPTIONS,
  realESRGANOptionsFromBasicSR,
  TrainingPairPool,
} from '../src/data/degrade/realesrgan.js';
import { releaseDataSessions, usmSharp } from '../src/data/degrade/runtime.js';
import { imresize } from '../src/data/degrade/resize.js';
import { BicubicDataset, InpaintingDataset, openDataset, RealESRGANDataset } from '../src/data/datasets.js';
import { DIFFIR_DEBLUR_PROGRESSIVE, Prefetcher, progressiveSchedule } from '../src/data/prefetch.js';
import { applyAugment, crop, type Augment } from '../src/data/tensor-ops.js';
import { deriveRng } from '../src/data/rng.js';
import { listImages, matchByName } from '../src/data/folder.js';
import { plannedDataset } from '../src/data/adapters.js';
import { loadImage } from '../src/image/io.js';
import { image } from './helpers/tensors.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = join(root, 'dist/src/cli/main.js');
const TMP = mkdtempSync(join(tmpdir(), 'diffir-data-'));
const IMG = join(TMP, 'images');
after(async () => {
  await releaseDataSessions();
  rmSync(TMP, { recursive: true, force: true });
});

type T = HostTensor<'float32'>;


const texture = (b: number, c: number, y: number, x: number): number =>
  Math.min(1, Math.max(0, 0.5 + 0.25 * Math.sin(0.21 * x + c + b) * Math.cos(0.13 * y - c) + 0.15 * Math.sin(0.9 * (x - y) + b) + 0.05 * Math.cos(2.1 * x * y / 97)));

async function writePng(path: string, h: number, w: number, seed: number): Promise<void> {
  const px = Buffer.alloc(h * w * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) px[(y * w + x) * 3 + c] = Math.round(255 * texture(seed, c, y, x));
  mkdirSync(dirname(path), { recursive: true });
  await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(path);
}

before(async () => {
  await writePng(join(IMG, 'a.png'), 150, 170, 1);
  await writePng(join(IMG, 'b.png'), 140, 140, 2);
  await writePng(join(IMG, 'sub/c.png'), 160, 132, 3);
  await writePng(join(IMG, 'd.png'), 100, 120, 4); // smaller than the 128 crop: reflect-padded
});

const sameData = (a: T, b: T): boolean => a.data.length === b.data.length && a.data.every((v, i) => v === b.data[i]);

describe('Real-ESRGAN pipeline', () => {
  test('shapes, 8-bit LQ, aligned GT crop, input untouched, recorded draws within the option ranges', async () => {
    const gt = image(2, 3, 400, 400, texture);
    const copy = Float32Array.from(gt.data);
    const r = await degradeRealESRGAN(gt, deriveRng(1));
    assert.deepEqual(r.lq.shape, [2, 3, 64, 64]);
    assert.deepEqual(r.gt.shape, [2, 3, 256, 256]);
    assert.ok(gt.data.every((v, i) => v === copy[i]));
    for (const v of r.lq.data) assert.ok(v >= 0 && v <= 1 && Math.abs(v * 255 - Math.round(v * 255)) < 1e-4);
    // The GT patch is the input at a scale-aligned offset.
    let found = false;
    for (let top = 0; top <= 144 && !found; top += 4) {
      for (let left = 0; left <= 144 && !found; left += 4) found = sameData(crop(gt, top, left, 256, 256), r.gt);
    }
    assert.ok(found, 'GT patch is a crop of the input');
    const i = r.info;
    const o = DIFFIR_REALSR_OPTIONS;
    assert.equal(i.kernels.length, 2);
    assert.ok(i.stage1.resize.scale >= o.resizeRange[0] && i.stage1.resize.scale <= o.resizeRange[1]);
    assert.ok(i.stage2.resize.scale >= o.resizeRange2[0] && i.stage2.resize.scale <= o.resizeRange2[1]);
    for (const q of [...i.stage1.jpeg, ...i.final.jpeg]) assert.ok(q >= 30 && q <= 95);
    for (const n of i.stage1.noise) assert.ok(n.kind === 'gaussian' ? n.strength >= 1 && n.strength <= 30 : n.strength >= 0.05 && n.strength <= 3);
    assert.ok(['area', 'bilinear', 'bicubic'].includes(i.final.mode));
    assert.deepEqual(i.stage2.resize.size, [Math.trunc(100 * i.stage2.resize.scale), Math.trunc(100 * i.stage2.resize.scale)]);
  });

  test('deterministic per seed; the LQ depends on the seed', async () => {
    const gt = image(1, 3, 200, 200, texture);
    const o = { gtSize: 128 };
    const a = await degradeRealESRGAN(gt, deriveRng(3, 1), o);
    const b = await degradeRealESRGAN(gt, deriveRng(3, 1), o);
    const c = await degradeRealESRGAN(gt, deriveRng(3, 2), o);
    assert.ok(sameData(a.lq, b.lq) && sameData(a.gt, b.gt));
    assert.deepEqual(a.info, b.info);
    assert.ok(!sameData(a.lq, c.lq));
  });

  test('V2: USM(GT patch) as the extra target; gt_usm sharpens the GT before degrading; too-small inputs are refused', async () => {
    const gt = image(1, 3, 200, 200, texture);
    const v2 = await degradeRealESRGAN(gt, deriveRng(4), { gtSize: 128, usmTarget: true });
    assert.ok(v2.gtUsm);
    assert.ok(sameData(v2.gtUsm!, await usmSharp(v2.gt)));
    const pre = await degradeRealESRGAN(gt, deriveRng(4), { gtSize: null, gtUsm: true });
    assert.ok(sameData(pre.gt, await usmSharp(gt)));
    assert.deepEqual(pre.lq.shape, [1, 3, 50, 50]);
    // Real-ESRGAN's own model degrades USM(GT) but keeps GT as the target.
    const fromUsm = await degradeRealESRGAN(gt, deriveRng(5), { gtSize: null, degradeFromUsm: true });
    const direct = await degradeRealESRGAN(await usmSharp(gt), deriveRng(5), { gtSize: null });
    assert.ok(sameData(fromUsm.lq, direct.lq) && sameData(fromUsm.gt, gt));
    await assert.rejects(degradeRealESRGAN(image(1, 3, 48, 48, texture), deriveRng(1), { gtSize: null }), /too small/);
    await assert.rejects(degradeRealESRGAN(image(1, 3, 202, 200, texture), deriveRng(1)), /multiple of the scale/);
  });

  test("options read from DiffIR's BasicSR option file equal the built-in defaults", () => {
    const text = `
scale: 4
gt_usm: False
resize_prob: [0.2, 0.7, 0.1]
resize_range: [0.15, 1.5]
gaussian_noise_prob: 0.5
noise_range: [1, 30]
poisson_scale_range: [0.05, 3]
gray_noise_prob: 0.4
jpeg_range: [30, 95]
second_blur_prob: 0.8
resize_prob2: [0.3, 0.4, 0.3]
resize_range2: [0.3, 1.2]
gaussian_noise_prob2: 0.5
noise_range2: [1, 25]
poisson_scale_range2: [0.05, 2.5]
gray_noise_prob2: 0.4
jpeg_range2: [30, 95]
gt_size: 256
queue_size: 180
datasets:
  train:
    blur_kernel_size: 21
    kernel_list: ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']
    kernel_prob: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
    sinc_prob: 0.1
    blur_sigma: [0.2, 3]
    betag_range: [0.5, 4]
    betap_range: [1, 2]
    blur_kernel_size2: 21
    kernel_list2: ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']
    kernel_prob2: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
    sinc_prob2: 0.1
    blur_sigma2: [0.2, 1.5]
    betag_range2: [0.5, 4]
    betap_range2: [1, 2]
    final_sinc_prob: 0.8
    gt_size: 256
`;
    const opt = parseYaml(text) as Record<string, unknown>;
    assert.deepEqual({ ...realESRGANOptionsFromBasicSR(opt) }, { ...DIFFIR_REALSR_OPTIONS });
    const v2 = realESRGANOptionsFromBasicSR({ ...opt, gt_usm: undefined, l1_gt_usm: true, percep_gt_usm: true });
    assert.equal(v2.usmTarget, true);
    assert.equal(realESRGANOptionsFromBasicSR({ scale: 2, gt_size: 128 }).scale, 2);
    assert.throws(() => realESRGANOptionsFromBasicSR({ datasets: { train: { kernel_list: ['iso', 'skew'], kernel_prob: [0.5, 0.5] } } }), /unknown kernel types skew/);
    assert.throws(() => realESRGANOptionsFromBasicSR({ gt_size: 250 }), /multiple of the scale/);
  });

  test('training pair pool: passes batches through while filling, then trades them for earlier pairs, each pair leaving once', () => {
    const pool = new TrainingPairPool(6, deriveRng(1));
    const batch = (tag: number) => ({
      lq: f32([2, 1, 1, 1], [tag, tag + 0.5]),
      gt: f32([2, 1, 2, 2], [tag, tag, tag, tag, tag + 0.5, tag + 0.5, tag + 0.5, tag + 0.5]),
      names: [`${tag}`, `${tag}.5`],
    });
    const inPool = new Set<number>();
    const everSeen = new Set<number>();
    for (let t = 0; t < 20; t++) {
      const b = batch(t);
      const out = pool.push(b);
      if (t < 3) {
        assert.equal(out, b, 'passes through while filling');
        [t, t + 0.5].forEach((v) => inPool.add(v));
      } else {
        const tags = Array.from(out.lq.data);
        for (const v of tags) {
          assert.ok(inPool.has(v), `pair ${v} was in the pool`);
          inPool.delete(v);
        }
        // gt and names travel with their lq.
        assert.deepEqual(Array.from(out.gt.data), tags.flatMap((v) => [v, v, v, v]));
        assert.deepEqual(out.names, tags.map((v) => (Number.isInteger(v) ? `${v}` : `${Math.floor(v)}.5`)));
        [t, t + 0.5].forEach((v) => inPool.add(v));
      }
      [t, t + 0.5].forEach((v) => everSeen.add(v));
      assert.equal(pool.filled, Math.min(6, 2 * (t + 1)));
    }
    assert.equal(inPool.size, 6);
    assert.throws(() => new TrainingPairPool(5, deriveRng(1)).push(batch(0)), /divisible by batch size/);
  });
});

describe('datasets', () => {
  test('folders: sorted recursive listing; name matching reports orphans on either side', async () => {
    assert.deepEqual(await listImages(IMG), ['a.png', 'b.png', 'd.png', 'sub/c.png']);
    await assert.rejects(listImages(join(TMP, 'missing')), /folder not found/);
    assert.deepEqual([...matchByName(['x.png', 'y.jpg'], ['y.png', 'x.png'], { a: 'lq', b: 'gt' })], [
      ['x.png', 'x.png'],
      ['y.jpg', 'y.png'],
    ]);
    assert.throws(() => matchByName(['x.png', 'z.png'], ['x.png'], { a: 'lq', b: 'gt' }), /lq: 1 file\(s\) without a partner in gt: z\.png/);
    assert.throws(() => matchByName(['x.png'], ['x.png', 'w.png'], { a: 'lq', b: 'gt' }), /gt: 1 file\(s\) without a partner in lq: w\.png/);
  });

  test('Real-ESRGAN dataset: samples and batches of the right shapes, reproducible, small images padded', async () => {
    const ds = await RealESRGANDataset.open({ root: IMG, cropPadSize: 128, degradation: { gtSize: 64 } });
    assert.equal(ds.size, 4);
    const s = await ds.sample(2, deriveRng(1));
    assert.deepEqual(s.lq.shape, [1, 3, 16, 16]);
    assert.deepEqual(s.gt.shape, [1, 3, 64, 64]);
    assert.equal(s.name, 'd.png');
    const again = await ds.sample(2, deriveRng(1));
    assert.ok(sameData(s.lq, again.lq));
    const b = await ds.batch([{ index: 0, rng: deriveRng(2) }, { index: 3, rng: deriveRng(3) }], deriveRng(4), { patchSize: 32 });
    assert.deepEqual(b.lq.shape, [2, 3, 8, 8]);
    assert.deepEqual(b.gt.shape, [2, 3, 32, 32]);
    assert.deepEqual(b.names, ['a.png', 'sub/c.png']);
    await assert.rejects(ds.sample(4, deriveRng(1)), /out of range/);
    await assert.rejects(RealESRGANDataset.open({ root: IMG, cropPadSize: 130 }), /multiple of the scale/);
  });

  test("bicubic dataset: the LQ patch equals MATLAB imresize of the whole image, cropped", async () => {
    const ds = await BicubicDataset.open({ root: IMG, scale: 4, gtSize: 48 });
    const full = (await loadImage(join(IMG, 'a.png'))).rgb;
    const whole = await imresize(crop(full, 0, 0, 148, 168), 0.25);
    for (let i = 0; i < 6; i++) {
      const s = await ds.sample(0, deriveRng(5, i));
      const { top, left, augment } = s.info as { top: number; left: number; augment: Augment };
      const want = applyAugment(crop(whole, top, left, 12, 12), augment);
      let m = 0;
      for (let k = 0; k < want.data.length; k++) m = Math.max(m, Math.abs(want.data[k]! - s.lq.data[k]!));
      assert.ok(m < 2e-6, `patch at (${top},${left}): max diff ${m}`);
      assert.ok(sameData(s.gt, applyAugment(crop(full, top * 4, left * 4, 48, 48), augment)));
    }
    const w = await (await BicubicDataset.open({ root: IMG, scale: 4, gtSize: null })).sample(0, deriveRng(1));
    assert.deepEqual(w.gt.shape.slice(2).sort(), [148, 168].sort());
    await assert.rejects((await BicubicDataset.open({ root: IMG, gtSize: 400 })).sample(0, deriveRng(1)), /smaller than the patch/);
  });

  test('inpainting dataset: generated masks (binary, lq = gt·(1−mask)), given masks matched by name, orphans and size errors', async () => {
    const ds = await InpaintingDataset.open({ root: IMG, size: 96, masks: 'thick256' });
    const s = await ds.sample(1, deriveRng(6));
    assert.deepEqual(s.gt.shape, [1, 3, 96, 96]);
    assert.deepEqual(s.mask!.shape, [1, 1, 96, 96]);
    const hw = 96 * 96;
    let holes = 0;
    for (let p = 0; p < hw; p++) {
      const m = s.mask!.data[p]!;
      assert.ok(m === 0 || m === 1);
      holes += m;
      for (let c = 0; c < 3; c++) assert.equal(s.lq.data[c * hw + p], s.gt.data[c * hw + p]! * (1 - m));
    }
    assert.ok(holes > 0 && holes <= hw / 2);
    assert.ok(sameData(s.mask!, (await ds.sample(1, deriveRng(6))).mask!));
    // Given masks: LaMa layout (name_mask000.png beside name.png) and a separate folder.
    const lama = join(TMP, 'lama');
    await writePng(join(lama, 'p.png'), 64, 64, 5);
    await writePng(join(lama, 'q.png'), 64, 64, 6);
    const maskPng = async (path: string, h: number, w: number) => {
      const buf = Buffer.alloc(h * w);
      for (let y = 10; y < 30; y++) buf.fill(255, y * w + 5, y * w + 40);
      await sharp(buf, { raw: { width: w, height: h, channels: 1 } }).png().toFile(path);
    };
    await maskPng(join(lama, 'p_mask000.png'), 64, 64);
    await maskPng(join(lama, 'q_mask000.png'), 64, 64);
    const given = await InpaintingDataset.open({ root: lama, size: null, masks: { dir: lama }, hflip: false });
    assert.equal(given.size, 2);
    const g = await given.sample(0, deriveRng(1));
    assert.equal(g.name, 'p.png');
    assert.equal(g.mask!.data.reduce((a, v) => a + v, 0), 20 * 35);
    assert.equal(g.mask!.data[15 * 64 + 10], 1);
    const sep = join(TMP, 'masks');
    mkdirSync(sep);
    await maskPng(join(sep, 'p.png'), 64, 64);
    const lamaImgs = join(TMP, 'lama-imgs');
    await writePng(join(lamaImgs, 'p.png'), 64, 64, 5);
    await writePng(join(lamaImgs, 'q.png'), 64, 64, 6);
    await assert.rejects(InpaintingDataset.open({ root: lamaImgs, masks: { dir: sep } }), /1 file\(s\) without a partner in .*masks: q\.png/);
    await maskPng(join(sep, 'q.png'), 32, 64);
    const bad = await InpaintingDataset.open({ root: lamaImgs, masks: { dir: sep } });
    await assert.rejects(bad.sample(1, deriveRng(1)), /mask is 64x32 but the image is 64x64/);
    await assert.rejects(InpaintingDataset.open({ root: IMG, masks: 'thick' as 'thick256' }), /unknown mask set/);
  });
});

describe('prefetch', () => {
  test('worker threads give the same batches as this thread, in order; resuming at batch k gives batch k', async () => {
    const spec = { kind: 'inpainting' as const, options: { root: IMG, size: 64 } };
    const local = await Prefetcher.open({ dataset: spec, seed: 9, batchSize: 3, workers: 0 });
    const pooled = await Prefetcher.open({ dataset: spec, seed: 9, batchSize: 3, workers: 2, depth: 3 });
    try {
      for (let b = 0; b < 4; b++) {
        const x = await local.next();
        const y = await pooled.next();
        assert.equal(x.index, b);
        assert.deepEqual(x.positions, [3 * b, 3 * b + 1, 3 * b + 2]);
        assert.deepEqual(x.indices, y.indices);
        assert.ok(sameData(x.gt, y.gt) && sameData(x.mask!, y.mask!) && sameData(x.lq, y.lq));
        assert.deepEqual(x.lq.shape, [3, 3, 64, 64]);
      }
      // Epochs: every image once per 4 positions.
      const seen = [];
      const walk = await Prefetcher.open({ dataset: spec, seed: 9, batchSize: 4, workers: 0 });
      for (let e = 0; e < 2; e++) seen.push([...(await walk.next()).indices].sort());
      await walk.close();
      assert.deepEqual(seen, [
        [0, 1, 2, 3],
        [0, 1, 2, 3],
      ]);
      const resumed = await Prefetcher.open({ dataset: spec, seed: 9, batchSize: 3, workers: 0, start: 2 });
      const r = await resumed.next();
      await resumed.close();
      const fresh = await Prefetcher.open({ dataset: spec, seed: 9, batchSize: 3, workers: 0 });
      await fresh.next();
      await fresh.next();
      const f = await fresh.next();
      await fresh.close();
      assert.equal(r.index, 2);
      assert.ok(sameData(r.gt, f.gt) && sameData(r.mask!, f.mask!));
    } finally {
      await local.close();
      await pooled.close();
    }
  });

  test('Real-ESRGAN batches with the pool in a worker; progressive schedule; module datasets; errors reach next()', async () => {
    const spec = { kind: 'realesrgan' as const, options: { root: IMG, cropPadSize: 128, degradation: { gtSize: 64 } } };
    const a = await Prefetcher.open({ dataset: spec, seed: 1, batchSize: 2, workers: 1, pool: 4 });
    const b = await Prefetcher.open({ dataset: spec, seed: 1, batchSize: 2, workers: 0, pool: 4 });
    try {
      for (let k = 0; k < 4; k++) {
        const x = await a.next();
        const y = await b.next();
        assert.deepEqual(x.lq.shape, [2, 3, 16, 16]);
        assert.ok(sameData(x.lq, y.lq) && sameData(x.gt, y.gt));
        assert.deepEqual(x.names, y.names);
      }
    } finally {
      await a.close();
      await b.close();
    }
    const plan = progressiveSchedule();
    assert.deepEqual(plan(0), { batchSize: 8, patchSize: 192 });
    assert.deepEqual(plan(149999), { batchSize: 8, patchSize: 192 });
    assert.deepEqual(plan(150000), { batchSize: 4, patchSize: 256 });
    assert.deepEqual(plan(10 ** 7), { batchSize: 1, patchSize: 512 });
    assert.equal(DIFFIR_DEBLUR_PROGRESSIVE.iters.reduce((s, v) => s + v, 0), 400000);
    const sched = await Prefetcher.open({
      dataset: { kind: 'inpainting', options: { root: IMG, masks: { irregularProba: 0, boxProba: 1, box: { margin: 2, bboxMinSize: 4, bboxMaxSize: 10, minTimes: 1, maxTimes: 2 } } } },
      seed: 2,
      workers: 0,
      schedule: (i) => (i < 1 ? { batchSize: 3, patchSize: 32 } : { batchSize: 1, patchSize: 48 }),
    });
    const s0 = await sched.next();
    const s1 = await sched.next();
    await sched.close();
    assert.deepEqual(s0.gt.shape, [3, 3, 32, 32]);
    assert.deepEqual(s1.gt.shape, [1, 3, 48, 48]);
    assert.deepEqual(s1.positions, [3]);
    // A dataset from a module (e.g. the trainer's paired folders), opened inside the worker.
    const mod = join(TMP, 'toy-dataset.mjs');
    writeFileSync(
      mod,
      `export default function (o) {
        return { size: 5, async sample(index, rng) {
          const v = rng.uniform();
          if (index === o.bad) throw new Error('sample ' + index + ' is broken');
          return { lq: { dtype: 'float32', shape: [1, 1, 1, 1], data: new Float32Array([index]) }, gt: { dtype: 'float32', shape: [1, 1, 1, 1], data: new Float32Array([v]) }, name: 'n' + index };
        } };
      }`,
    );
    const m = await Prefetcher.open({ dataset: { kind: 'module', module: pathToFileURL(mod).href, options: { bad: -1 } }, seed: 3, batchSize: 5, workers: 1 });
    const mb = await m.next();
    await m.close();
    assert.deepEqual([...mb.lq.data].sort(), [0, 1, 2, 3, 4]);
    const broken = await Prefetcher.open({ dataset: { kind: 'module', module: mod, options: { bad: 2 } }, seed: 3, batchSize: 5, workers: 1 });
    await assert.rejects(broken.next(), /sample 2 is broken/);
    await broken.close();
    await assert.rejects(Prefetcher.open({ dataset: { kind: 'inpainting', options: { root: join(TMP, 'nothing') } }, seed: 1, batchSize: 1, workers: 1 }), /folder not found/);
    const viaSpec = await openDataset({ kind: 'bicubic', options: { root: IMG, gtSize: 64 } });
    assert.equal(viaSpec.size, 4);
    // The plan/load adapter: random decisions drawn synchronously, loading deterministic given them.
    const planned = plannedDataset(viaSpec);
    const p1 = planned.plan(1, deriveRng(4));
    const l1 = await planned.load(p1);
    const l2 = await planned.load(p1);
    assert.equal(l1.gt.height, 64);
    assert.equal(l1.lq.width, 16);
    assert.deepEqual(l1.lq.data, l2.lq.data);
    assert.notDeepEqual((await planned.load(planned.plan(1, deriveRng(5)))).gt.data, l1.gt.data);
  });
});

describe('diffir degrade', () => {
  function diffir(...args: string[]): { code: number; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, DIFFIR_DEBUG: '' } });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  test('writes LQ/GT (or masked image and mask) per image with a JSON log; the same seed gives the same files', () => {
    const out1 = join(TMP, 'deg1');
    const out2 = join(TMP, 'deg2');
    const r1 = diffir('degrade', IMG, '--out', out1, '--size', '64', '--samples', '2', '--seed', '5', '--threads', '1');
    assert.equal(r1.code, 0, r1.stderr);
    assert.match(r1.stdout, /wrote 8 sample\(s\) from 4 image\(s\)/);
    const files = readdirSync(out1).sort();
    assert.ok(files.includes('a_0_lq.png') && files.includes('a_1_gt.png') && files.includes('sub'));
    const log = readFileSync(join(out1, 'degrade.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { image: string; info: { stage1: unknown } });
    assert.equal(log.length, 8);
    assert.ok(log[0]!.info.stage1);
    const r2 = diffir('degrade', IMG, '--out', out2, '--size', '64', '--samples', '2', '--seed', '5', '--threads', '1');
    assert.equal(r2.code, 0, r2.stderr);
    assert.deepEqual(readFileSync(join(out2, 'sub/c_1_lq.png')), readFileSync(join(out1, 'sub/c_1_lq.png')));
    const inp = join(TMP, 'deg-inp');
    const r3 = diffir('degrade', IMG, '--out', inp, '--recipe', 'inpaint', '--masks', 'thin256', '--size', '64');
    assert.equal(r3.code, 0, r3.stderr);
    assert.ok(readdirSync(inp).includes('a_mask.png') && readdirSync(inp).includes('a_masked.png'));
    const again = diffir('degrade', IMG, '--out', inp, '--recipe', 'inpaint');
    assert.notEqual(again.code, 0);
    assert.match(again.stderr.trim(), /^diffir: .*degrade\.jsonl exists; pass --overwrite/);
    const bad = diffir('degrade', IMG, '--out', inp, '--recipe', 'nope');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown recipe 'nope'/);
    const missing = diffir('degrade', join(TMP, 'none'), '--out', inp);
    assert.equal(missing.stderr.trim().split('\n').length, 1);
    assert.match(missing.stderr, /folder not found/);
  });
});
