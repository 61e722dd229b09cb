/**
 * The default model's degradation mix: clean MATLAB bicubic, the mild first-order degradation
 * (checked against the same steps composed by hand), the Real-ESRGAN dataset's per-sample kind
 * with its shares, and the option-file keys that set them.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { f32, type HostTensor } from '../src/tensor.js';
import { Rng } from '../src/random.js';
import { imresize } from '../src/data/degrade/resize.js';
import { filter2D, releaseDataSessions } from '../src/data/degrade/runtime.js';
import { jpegCompress } from '../src/data/degrade/jpeg.js';
import { degradeBicubic, degradeMild, MILD_EVAL, MILD_OPTIONS, type MildInfo } from '../src/data/degrade/mild.js';
import { RealESRGANDataset } from '../src/data/datasets.js';
import { deriveRng } from '../src/data/rng.js';
import { readOptions, resolveOptions, parseOptions } from '../src/train/options.js';
import { image } from './helpers/tensors.js';

type T = HostTensor<'float32'>;
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TMP = mkdtempSync(join(tmpdir(), 'diffir-mix-'));
const IMG = join(TMP, 'images');
const texture = (b: number, c: number, y: number, x: number): number =>
  Math.min(1, Math.max(0, 0.5 + 0.3 * Math.sin(0.37 * x + c + b) * Math.cos(0.23 * y - c) + 0.15 * Math.sin(1.3 * (x - y) + b)));

before(async () => {
  mkdirSync(IMG, { recursive: true });
  for (const [name, h, w] of [['a.png', 150, 170], ['b.png', 140, 140]] as const) {
    const px = Buffer.alloc(h * w * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) px[(y * w + x) * 3 + c] = Math.round(255 * texture(h, c, y, x));
    await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(join(IMG, name));
  }
});
after(async () => {
  await releaseDataSessions();
  rmSync(TMP, { recursive: true, force: true });
});

const round8 = (t: T): T => f32(t.shape, t.data.map((v) => Math.round(Math.min(1, Math.max(0, v)) * 255) / 255));
const maxDiff = (a: T, b: T): number => a.data.reduce((m, v, i) => Math.max(m, Math.abs(v - b.data[i]!)), 0);
const gt = (): T => image(1, 3, 64, 64, (_, c, y, x) => texture(7, c, y, x));

test('clean: MATLAB bicubic ×1/4 rounded to 8 bits; sizes that are not multiples of the scale are refused', async () => {
  const g = gt();
  const want = round8(await imresize(g, 0.25));
  const got = await degradeBicubic(g, 4);
  assert.deepEqual(got.shape, [1, 3, 16, 16]);
  assert.ok(maxDiff(got, want) < 1e-7);
  await assert.rejects(degradeBicubic(image(1, 3, 62, 64, () => 0.5), 4), /not a multiple of the scale 4/);
});

test('mild (benchmark setting): Gaussian σ 0.8 blur, bicubic ×1/4, 8 bits, JPEG 80 — as composed by hand', async () => {
  const g = gt();
  // The 7×7 Gaussian of σ 0.8 (cut at 3σ), written out here from its formula.
  const k = new Float64Array(49);
  let sum = 0;
  for (let y = -3; y <= 3; y++) for (let x = -3; x <= 3; x++) sum += k[(y + 3) * 7 + x + 3] = Math.exp(-(x * x + y * y) / (2 * 0.8 * 0.8));
  for (let i = 0; i < 49; i++) k[i]! /= sum;
  const want = round8(await imresize(await filter2D(g, [{ size: 7, data: k }]), 0.25));
  await jpegCompress(want, [80]);
  const r = await degradeMild(g, new Rng(3), MILD_EVAL);
  assert.deepEqual(r.info, { blurSigma: 0.8, noise: null, jpeg: 80 } satisfies MildInfo);
  assert.ok(maxDiff(r.lq, want) <= 2 / 255 + 1e-6, `max diff ${maxDiff(r.lq, want)}`);
  // The input is left as it was, and the blur matters (without it the LQ differs).
  assert.ok(maxDiff(g, gt()) === 0);
  const noBlur = await degradeMild(g, new Rng(3), { ...MILD_EVAL, blurProb: 0 });
  assert.ok(maxDiff(noBlur.lq, r.lq) > 4 / 255);
});

test('mild (training ranges): draws within the ranges, reproducible per seed; bad ranges named', async () => {
  const g = gt();
  const seen = { blur: 0, noise: 0, jpeg: 0 };
  for (let s = 1; s <= 12; s++) {
    const a = await degradeMild(g, new Rng(s));
    const b = await degradeMild(g, new Rng(s));
    assert.deepEqual(a.info, b.info);
    assert.ok(maxDiff(a.lq, b.lq) === 0);
    if (a.info.blurSigma !== null) {
      seen.blur++;
      assert.ok(a.info.blurSigma >= MILD_OPTIONS.blurSigma[0] && a.info.blurSigma <= MILD_OPTIONS.blurSigma[1]);
    }
    if (a.info.noise !== null) {
      seen.noise++;
      assert.ok(a.info.noise >= MILD_OPTIONS.noiseRange[0] && a.info.noise <= MILD_OPTIONS.noiseRange[1]);
    }
    if (a.info.jpeg !== null) {
      seen.jpeg++;
      assert.ok(a.info.jpeg >= MILD_OPTIONS.jpegRange[0] && a.info.jpeg <= MILD_OPTIONS.jpegRange[1]);
    }
  }
  assert.ok(seen.blur > 0 && seen.noise > 0 && seen.jpeg > 0 && seen.noise < 12, JSON.stringify(seen));
  await assert.rejects(degradeMild(g, new Rng(1), { jpegRange: [90, 60] }), /jpegRange \[90, 60\] is not a \[low, high\] range/);
  await assert.rejects(degradeMild(g, new Rng(1), { blurProb: 2 }), /blurProb must be a probability/);
});

test('Real-ESRGAN dataset with a mix: each sample draws its kind; clean samples are exactly bicubic of their GT; shares follow the mix', async () => {
  const clean = await RealESRGANDataset.open({ root: IMG, cropPadSize: 128, degradation: { gtSize: 64 }, mix: { bicubic: 1 } });
  for (let i = 0; i < 3; i++) {
    const s = await clean.sample(i % 2, deriveRng(9, i));
    assert.deepEqual((s.info as { kind: string }).kind, 'bicubic');
    assert.ok(maxDiff(s.lq, await degradeBicubic(s.gt, 4)) < 1e-7);
  }
  const mixed = await RealESRGANDataset.open({ root: IMG, cropPadSize: 128, degradation: { gtSize: 64 }, mix: { bicubic: 5, mild: 2, realesrgan: 1 }, cacheBytes: 1 << 24 });
  const kinds: Record<string, number> = { bicubic: 0, mild: 0, realesrgan: 0 };
  const items = Array.from({ length: 40 }, (_, i) => ({ index: i % 2, rng: deriveRng(11, i) }));
  const b = await mixed.batch(items, deriveRng(12));
  assert.deepEqual(b.lq.shape, [40, 3, 16, 16]);
  assert.deepEqual(b.gt.shape, [40, 3, 64, 64]);
  for (const info of b.info as { kind: string }[]) kinds[info.kind]!++;
  // Binomial: expected 25 / 10 / 5 of 40 (sd ≤ 3.1).
  assert.ok(Math.abs(kinds.bicubic! - 25) <= 10 && Math.abs(kinds.mild! - 10) <= 9 && kinds.realesrgan! >= 1 && kinds.realesrgan! <= 15, JSON.stringify(kinds));
  const again = await mixed.batch(items.slice(0, 6).map((it, i) => ({ index: it.index, rng: deriveRng(11, i) })), deriveRng(12));
  const first6 = await mixed.batch(items.slice(0, 6).map((it, i) => ({ index: it.index, rng: deriveRng(11, i) })), deriveRng(12));
  assert.ok(maxDiff(again.lq, first6.lq) === 0, 'a batch is a function of its plan');
  await assert.rejects(RealESRGANDataset.open({ root: IMG, cropPadSize: 128, degradation: { gtSize: 64 }, mix: { bicubic: 0, mild: 0 } }), /every share is 0/);
  await assert.rejects(RealESRGANDataset.open({ root: IMG, cropPadSize: 128, degradation: { gtSize: 64 }, mix: { sharp: 1 } as never }), /unknown kind 'sharp'/);
});

test("option files: the default model's files set the mix and the mild ranges; bad values are named by key", () => {
  const plan = resolveOptions(readOptions(join(root, 'options/default/train_default_S1_x4.yml')), { cwd: TMP });
  const r = plan.train.realesrgan!;
  assert.ok(r.mix && r.mix.bicubic > 0 && r.mix.mild > 0 && r.mix.realesrgan > 0);
  assert.deepEqual(r.mild.jpegRange, [60, 95]);
  const text = (extra: string) => `name: x
model_type: DiffIRS1Model
scale: 4
datasets:
  train:
    type: RealESRGANDataset
    dataroot_gt: ${IMG}
    gt_size: 64
    crop_pad_size: 128
    batch_size_per_gpu: 2
${extra}
network_g: { type: DiffIRS1, dim: 8, num_blocks: [1, 1, 1, 1], num_refinement_blocks: 1, heads: [1, 1, 1, 1] }
train:
  optim_g: { type: Adam, lr: 1.0e-4 }
  scheduler: { type: MultiStepLR, milestones: [10], gamma: 0.5 }
  total_iter: 10
  pixel_opt: { type: L1Loss, loss_weight: 1 }
`;
  assert.throws(() => resolveOptions(parseOptions(text('    degradation_mix: { bicubic: 0, mild: 0, realesrgan: 0 }'))), /'datasets\.train\.degradation_mix' every share is 0/);
  assert.throws(() => resolveOptions(parseOptions(text('    degradation_mix: { bicubic: 1 }\n    mild_jpeg_range: [95, 60]'))), /'datasets\.train\.mild_jpeg_range' \[95, 60\] is not a \[low, high\] range/);
  const ok = resolveOptions(parseOptions(text('    mild_blur_prob: 0.5')));
  assert.ok(ok.notices.some((n) => /mild_\*: used only when degradation_mix/.test(n)));
});
