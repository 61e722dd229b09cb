/**
 * LaMa's inpainting evaluation (`diffir inpaint <folder>` + `diffir eval --masks`) on a tiny
 * LaMa-style folder cut from ../shared/data/images (40×40 images, masks of known pixel counts,
 * one of them gray): the area bins and their float32 edges, per-bin aggregation checked against
 * the per-image metric functions applied by hand here, LaMa's SSIM against a direct
 * implementation of its definition, the table layout, the predictions written as predict.py
 * writes them, and the one-line errors. LPIPS / Inception weights: the metric fixture's
 * synthetic ones.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { metricWeightsDir } from './helpers/metric-weights.js';
import { assertOneLineError, ROOT, runDiffir, type CliRun } from './helpers/cli.js';
import { readImage8, type Image8 } from '../src/metrics/color.js';
import { lamaSsim, ssim } from '../src/metrics/psnr-ssim.js';
import { Lpips } from '../src/metrics/lpips.js';
import { FidInception, FID_DIM } from '../src/metrics/inception.js';
import { fidStatistics, frechetDistance } from '../src/metrics/frechet.js';
import { binNames, binOf, lamaReport, lamaTable } from '../src/metrics/lama.js';
import { listLamaSamples } from '../src/data/lama-eval.js';
import { Restorer } from '../src/restore/restore.js';

const shared = resolve(ROOT, '../shared');
const INPAINT = join(shared, 'fixtures/inpaint/s2.pth');
const tmp = mkdtempSync(join(tmpdir(), 'diffir-lama-eval-'));
const S = 40;

function diffir(...args: string[]): CliRun {
  return runDiffir(args, { env: { TORCH_HOME: join(tmp, 'no-torch-home') } });
}

const oneLineError = assertOneLineError;

/**
 * The masks: pixels set (from the top-left, row by row) and their value; the bin LaMa gives
 * each, written out by hand. 480/1600 = 0.3 is in 30-40% because LaMa's area is float32
 * (0.30000001 > the edge 0.30000000000000004); the gray mask counts 800·128/255.
 */
const MASKS: { file: string; pixels: number; value: number; bin: string }[] = [
  { file: 'astronaut_mask000.png', pixels: 160, value: 255, bin: '10-20%' },
  { file: 'astronaut_mask001.png', pixels: 480, value: 255, bin: '30-40%' },
  { file: 'chelsea_mask000.png', pixels: 480, value: 255, bin: '30-40%' },
  { file: 'chelsea_mask001.png', pixels: 1600, value: 255, bin: '90-100%' },
  { file: 'coffee_mask000.png', pixels: 80, value: 255, bin: '0-10%' },
  { file: 'coffee_mask001.png', pixels: 560, value: 255, bin: '30-40%' },
  { file: 'sub/rocket_mask000.png', pixels: 192, value: 255, bin: '10-20%' },
  { file: 'sub/rocket_mask001.png', pixels: 800, value: 128, bin: '20-30%' },
];

/** data/: 40×40 images with their masks (rocket in a sub-folder); pred/: the images with the holes filled by a flat gray (the "model"). */
async function lamaSet(): Promise<{ data: string; pred: string }> {
  const data = join(tmp, 'data');
  const pred = join(tmp, 'pred');
  for (const d of [data, pred]) mkdirSync(join(d, 'sub'), { recursive: true });
  for (const [n, src, sub] of [['astronaut', 'astronaut.png', ''], ['chelsea', 'chelsea.png', ''], ['coffee', 'coffee.png', ''], ['rocket', 'rocket.jpg', 'sub']] as const) {
    await sharp(join(shared, 'data/images', src)).removeAlpha().resize(S, S, { fit: 'cover' }).png().toFile(join(data, sub, `${n}.png`));
  }
  for (const m of MASKS) {
    const gray = new Uint8Array(S * S);
    gray.fill(m.value, 0, m.pixels);
    await sharp(Buffer.from(gray), { raw: { width: S, height: S, channels: 1 } }).png().toFile(join(data, m.file));
    const img = await readImage8(join(data, m.file.replace(/_mask\d+\.png$/, '.png')));
    const rgb = Buffer.alloc(S * S * 3);
    for (let p = 0; p < S * S; p++) for (let c = 0; c < 3; c++) rgb[p * 3 + c] = p < m.pixels ? 120 + 30 * c : img.data[c * S * S + p]!;
    await sharp(rgb, { raw: { width: S, height: S, channels: 3 } }).png().toFile(join(pred, m.file));
  }
  return { data, pred };
}

const setPromise = lamaSet();

/** LaMa's SSIM written straight from its definition: float32 Gaussian window, zero outside the image, map mean. */
function ssimByDefinition(a: Image8, b: Image8): number {
  const g = Array.from({ length: 11 }, (_, i) => Math.fround(Math.exp(-((i - 5) ** 2) / 4.5)));
  const gs = g.reduce((x, y) => Math.fround(x + y), 0);
  const win = (i: number, j: number): number => Math.fround(Math.fround(g[i]! / gs) * Math.fround(g[j]! / gs));
  const { height: h, width: w } = a;
  let total = 0;
  for (let c = 0; c < 3; c++) {
    const px = (im: Image8, y: number, x: number): number => (y < 0 || x < 0 || y >= h || x >= w ? 0 : Math.fround(im.data[(c * h + y) * w + x]! / 255));
    let sum = 0;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let m1 = 0, m2 = 0, s11 = 0, s22 = 0, s12 = 0;
        for (let i = 0; i < 11; i++) {
          for (let j = 0; j < 11; j++) {
            const k = win(i, j);
            const p = px(a, y + i - 5, x + j - 5);
            const q = px(b, y + i - 5, x + j - 5);
            m1 += k * p;
            m2 += k * q;
            s11 += k * p * p;
            s22 += k * q * q;
            s12 += k * p * q;
          }
        }
        const C1 = 1e-4;
        const C2 = 9e-4;
        sum += ((2 * m1 * m2 + C1) * (2 * (s12 - m1 * m2) + C2)) / ((m1 * m1 + m2 * m2 + C1) * (s11 - m1 * m1 + s22 - m2 * m2 + C2));
      }
    }
    total += sum / (h * w);
  }
  return total / 3;
}

test('LaMa bins: names, edges (side right, 1.0 in the last bin), Python rounding of the names', () => {
  assert.deepEqual(binNames(10), ['0-10%', '10-20%', '20-30%', '30-40%', '40-50%', '50-60%', '60-70%', '70-80%', '80-90%', '90-100%']);
  // 8 bins: 12.5 rounds half to even (Python round) -> '12', and 37.5 -> '38'.
  assert.deepEqual(binNames(8).slice(0, 3), ['0-12%', '12-25%', '25-38%']);
  assert.deepEqual(binNames(20).slice(0, 2), ['0.0-5.0%', '5.0-10.0%']);
  assert.equal(binOf(0, 10), 0);
  assert.equal(binOf(0.1, 10), 1);
  assert.equal(binOf(0.3, 10), 2); // float64 0.3 is below numpy's edge 0.30000000000000004
  assert.equal(binOf(Math.fround(0.3), 10), 3);
  assert.equal(binOf(0.999, 10), 9);
  assert.equal(binOf(1, 10), 9);
});

test('LaMa SSIM equals its definition and differs from BasicSR SSIM (zero padding, [0,1] scale)', async () => {
  const { data, pred } = await setPromise;
  const a = await readImage8(join(pred, 'astronaut_mask001.png'));
  const b = await readImage8(join(data, 'astronaut.png'));
  const v = lamaSsim(a, b);
  assert.ok(Math.abs(v - ssimByDefinition(a, b)) < 1e-12, `${v} vs ${ssimByDefinition(a, b)}`);
  assert.ok(Math.abs(lamaSsim(b, b) - 1) < 1e-12);
  assert.ok(Math.abs(v - ssim(a, b)) > 1e-3, 'a different convention than BasicSR');
});

test('diffir eval --masks: per-bin SSIM / LPIPS / FID and LaMa table equal the per-image functions grouped by hand', async () => {
  const { data, pred } = await setPromise;
  const w = metricWeightsDir('legacy');
  const r = diffir('eval', pred, data, '--masks', '--json', '--weights-dir', w, '--threads', '2');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { images: Record<string, number | string>[]; groups: Record<string, Record<string, { mean: number | null; std?: number }> & { count: number }> };
  assert.deepEqual(out.images.map((i) => i.name), MASKS.map((m) => m.file).sort());

  // Per image, by hand: the metric functions on the files.
  const lp = Lpips.load('vgg', join(w, 'vgg16-397923af.pth'), join(w, 'v0.1/vgg.pth'), { threads: 2 });
  const inc = await FidInception.load(join(w, 'pt_inception-2015-12-05-6726825d.pth'), { threads: 2 });
  const byName = new Map(MASKS.map((m) => [m.file, m]));
  const hand: { bin: string; ssim: number; lpips: number; fp: Float32Array; fi: Float32Array }[] = [];
  for (const img of out.images) {
    const m = byName.get(img.name as string)!;
    const p = await readImage8(join(pred, m.file));
    const g = await readImage8(join(data, m.file.replace(/_mask\d+\.png$/, '.png')));
    assert.equal(img.bin, m.bin, m.file);
    assert.equal(img.area, Math.fround((m.pixels * Math.fround(m.value / 255)) / (S * S)));
    const h = { bin: m.bin, ssim: lamaSsim(p, g), lpips: (await lp.distances([p], [g]))[0]!.value, fp: await inc.features([p]), fi: await inc.features([g]) };
    assert.ok(Math.abs((img.ssim as number) - h.ssim) < 1e-12);
    assert.ok(Math.abs((img.lpips as number) - h.lpips) < 1e-6);
    hand.push(h);
  }
  await Promise.all([lp.release(), inc.release()]);

  const fid = (hs: typeof hand): number => {
    const cat = (k: 'fp' | 'fi') => Float32Array.from(hs.flatMap((x) => Array.from(x[k])));
    return frechetDistance(fidStatistics(cat('fp'), hs.length, FID_DIM), fidStatistics(cat('fi'), hs.length, FID_DIM)).value;
  };
  const groups = new Map<string, typeof hand>([['total', hand]]);
  for (const h of hand) groups.set(h.bin, [...(groups.get(h.bin) ?? []), h]);
  assert.deepEqual(Object.keys(out.groups), ['0-10%', '10-20%', '20-30%', '30-40%', '90-100%', 'total']);
  for (const [name, hs] of groups) {
    const g = out.groups[name]!;
    assert.equal(g.count, hs.length, name);
    for (const k of ['ssim', 'lpips'] as const) {
      const mean = hs.reduce((a, x) => a + x[k], 0) / hs.length;
      const std = Math.sqrt(hs.reduce((a, x) => a + (x[k] - mean) ** 2, 0) / hs.length);
      assert.ok(Math.abs(g[k]!.mean! - mean) < 1e-6, `${name} ${k} mean`);
      assert.ok(Math.abs(g[k]!.std! - std) < 1e-6, `${name} ${k} std`);
    }
    if (hs.length === 1) assert.equal(g.fid!.mean, null, `${name}: one image, no FID`);
    else assert.ok(Math.abs(g.fid!.mean! - fid(hs)) <= 1e-9 * Math.max(1, fid(hs)), `${name} fid`);
  }
  const t = out.groups.total!;
  const nl = 1 - t.lpips!.mean!;
  const fr = Math.max(0, 100 - t.fid!.mean!) / 100;
  assert.ok(Math.abs(t.lpips_fid100_f1!.mean! - (2 * nl * fr) / (nl + fr + 1e-3)) < 1e-12);

});

test('lamaReport / lamaTable: drops all-NaN columns, sorts groups as strings', () => {
  const rows = [0.05, 0.55, 0.15].map((area, i) => ({ name: `m${i}`, area, ssim: i / 4 }));
  const g = lamaReport(rows, ['ssim'], 20);
  assert.deepEqual(g.map((x) => x.name), ['10.0-15.0%', '5.0-10.0%', '55.0-60.0%', 'total']);
  assert.equal(lamaTable(g).split('\n')[2], '10.0-15.0%\t0.5000\t0.0000');
});

test('diffir inpaint <folder>: one prediction per mask, named like it, known pixels kept, holes as predict.py truncates', async () => {
  const { data } = await setPromise;
  const out = join(tmp, 'inpainted');
  const r = diffir('inpaint', data, '-o', out, '--weights', INPAINT, '--seed', '3', '-q');
  assert.equal(r.code, 0, r.stderr);
  const samples = await listLamaSamples(data);
  assert.deepEqual(samples.map((s) => s.prediction), MASKS.map((m) => m.file).sort());
  const restorer = Restorer.load(INPAINT);
  try {
    for (const s of samples.filter((x) => x.mask.startsWith('sub/') || x.mask === 'coffee_mask000.png')) {
      const m = MASKS.find((x) => x.file === s.mask)!;
      const got = await readImage8(join(out, s.prediction));
      const img = await readImage8(join(data, s.image));
      const hole = new Float32Array(S * S).fill(0);
      hole.fill(1, 0, m.pixels); // mask > 0 (the gray mask is a hole too)
      const r0 = await restorer.restore(join(data, s.image), { mask: { dtype: 'float32', shape: [1, 1, S, S], data: hole }, seed: 3 });
      for (let c = 0; c < 3; c++) {
        for (let p = 0; p < S * S; p++) {
          const i = c * S * S + p;
          const want = p < m.pixels ? Math.floor(Math.min(255, Math.max(0, Math.fround(r0.rgb.data[i]! * 255)))) : img.data[i]!;
          assert.equal(got.data[i], want, `${s.prediction} c${c} p${p}`);
        }
      }
    }
  } finally {
    await restorer.release();
  }
  // A second run skips what exists; eval then scores the predictions.
  const again = diffir('inpaint', data, '-o', out, '--weights', INPAINT);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /8 skipped/);
});

test('diffir test -opt test_DiffIRS2_inpainting.yml: predictions as diffir inpaint <folder> writes them, scored as diffir eval --masks scores them', async () => {
  const { data } = await setPromise;
  const w = metricWeightsDir('legacy');
  const cwd = join(tmp, 'testcmd');
  mkdirSync(cwd, { recursive: true });
  let text = readFileSync(join(ROOT, 'options/DiffIR-inpainting/test_DiffIRS2_inpainting.yml'), 'utf8');
  text = text.replace(/dataroot_gt: .*/, `dataroot_gt: ${data}`).replace(/pretrain_network_g: .*/, `pretrain_network_g: ${INPAINT}`).replace('manual_seed: 0', 'manual_seed: 3');
  text = text.replace(/    lpips:\n      type: LPIPSScore\n/, '');
  const opt = join(cwd, 'test_inpainting.yml');
  writeFileSync(opt, text);
  const r = runDiffir(['test', '-opt', opt, '--weights-dir', w, '--threads', '2', '-q'], { cwd });
  assert.equal(r.code, 0, r.stderr);
  const res = join(cwd, 'results/test_DiffIRS2_inpainting');
  const vis = join(res, 'visualization/random_thick_512');
  // The same pixels as diffir inpaint <folder> with the same seed (written by the test above).
  for (const m of MASKS) assert.deepEqual((await readImage8(join(vis, m.file))).data, (await readImage8(join(tmp, 'inpainted', m.file))).data, m.file);
  const json = JSON.parse(readFileSync(join(res, 'metrics.json'), 'utf8'));
  const set = json.datasets[0];
  const e = diffir('eval', vis, data, '--masks', '--metrics', 'ssim,fid', '--json', '--weights-dir', w, '--threads', '2');
  assert.equal(e.code, 0, e.stderr);
  const ev = JSON.parse(e.stdout);
  assert.deepEqual(set.groups, ev.groups);
  assert.deepEqual(set.images.map((i: Record<string, unknown>) => [i.name, i.bin, i.ssim]), ev.images.map((i: Record<string, unknown>) => [i.name, i.bin, i.ssim]));
  // The table, as evaluate_predicts.py writes it: two header rows, groups sorted, %.4f, empty for NaN.
  const lines = readFileSync(join(res, 'random_thick_512_metrics.csv'), 'utf8').trimEnd().split('\n');
  assert.equal(lines[0], '\tfid\tssim\tssim');
  assert.equal(lines[1], '\tmean\tmean\tstd');
  assert.deepEqual(lines.slice(2).map((l) => l.split('\t')[0]), ['0-10%', '10-20%', '20-30%', '30-40%', '90-100%', 'total']);
  const f4 = (v: number | null): string => (v === null ? '' : v.toFixed(4));
  for (const l of lines.slice(2)) {
    const [g, fid, mean, std] = l.split('\t');
    assert.deepEqual([fid, mean, std], [f4(ev.groups[g!].fid.mean), f4(ev.groups[g!].ssim.mean), f4(ev.groups[g!].ssim.std)], g);
  }
  assert.equal(lines[2]!.split('\t')[1], '', 'one image in 0-10%: no FID');
  // A non-inpainting model, or an inpainting model on a paired set, is one line.
  writeFileSync(opt, text.replace(INPAINT, join(shared, 'fixtures/deblur/s2.pth')));
  assertOneLineError(runDiffir(['test', '-opt', opt], { cwd }), /InpaintingDataset needs an inpainting model, but s2\.pth is not one/);
  writeFileSync(opt, text.replace('type: InpaintingDataset', 'type: PairedImageDataset'));
  assertOneLineError(runDiffir(['test', '-opt', opt], { cwd }), /SSIMScore.*evaluate InpaintingDataset sets, not PairedImageDataset|InpaintingDataset sets, not PairedImageDataset/);
});

test('inpainting evaluation errors are one line', async () => {
  const { data, pred } = await setPromise;
  const w = metricWeightsDir('legacy', true);
  const part = join(tmp, 'part');
  mkdirSync(part, { recursive: true });
  oneLineError(diffir('eval', part, data, '--masks', '--metrics', 'ssim'), /8 of 8 predictions missing \(astronaut_mask000\.png.*diffir inpaint/);
  oneLineError(diffir('eval', pred, data, '--masks', '--metrics', 'psnr'), /'psnr' is not a score of LaMa's evaluator/);
  oneLineError(diffir('eval', pred, data, '--masks', '--weights-dir', w), /vgg16-397923af\.pth not found/);
  oneLineError(diffir('eval', pred, data, '--bins', '5'), /--bins is for the inpainting evaluation; add --masks/);
  oneLineError(diffir('eval', pred, pred, '--masks', '--metrics', 'ssim'), /its image astronaut\.png is not in/);
  const lone = join(tmp, 'lone');
  mkdirSync(lone, { recursive: true });
  writeFileSync(join(lone, 'x.txt'), 'no images');
  oneLineError(diffir('inpaint', lone, '-o', join(tmp, 'o2'), '--weights', INPAINT), /no images found/);
  oneLineError(diffir('inpaint', data, '--mask', join(data, 'coffee_mask000.png'), '-o', join(tmp, 'o3'), '--weights', INPAINT), /is a folder: its masks are the <name>_mask\*\.png files/);
  rmSync(part, { recursive: true });
});
