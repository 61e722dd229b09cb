/**
 * Time per image of the metrics as `diffir eval` runs them: LPIPS alex and vgg (one pair per
 * run, and a batch of 4 pairs), the FID Inception features (one image, batch of 8), NIQE, and
 * PSNR+SSIM, at 256² and 512² (override with --sizes), plus the Fréchet distance of two 2048-d
 * statistics (float64, in JS). Medians of --runs runs after one warm-up.
 *
 *   node dist/bench/metrics.js --weights-dir DIR [--runs 5 --threads 2 --sizes 256,512]
 *
 * DIR holds the weight files under their official names (real ones, or the metric fixture's,
 * written as its README shows: the values do not change the time).
 */
import type { Image8 } from '../src/metrics/color.js';
import { Lpips } from '../src/metrics/lpips.js';
import { FidInception, FID_DIM } from '../src/metrics/inception.js';
import { loadNiqeParams, niqe } from '../src/metrics/niqe.js';
import { psnr, ssim } from '../src/metrics/psnr-ssim.js';
import { fidStatistics, frechetDistance } from '../src/metrics/frechet.js';
import { findMetricFile } from '../src/metrics/weights.js';
import { Rng } from '../src/random.js';
import sharp from 'sharp';
import { flag, machine, median, timeIt } from './util.js';

const dir = flag('weights-dir', '');
if (!dir) {
  console.error('usage: node dist/bench/metrics.js --weights-dir DIR [--runs 5 --threads 2 --sizes 256,512]');
  process.exit(2);
}
const runs = Number(flag('runs', '5'));
const threads = Number(flag('threads', '2'));
const sizes = flag('sizes', '256,512').split(',').map(Number);
const photo = flag('image', new URL('../../samples/cat.jpg', import.meta.url).pathname);

/** A natural image of s×s (the sample photo resized), and a noisy copy of it. */
async function pair(s: number): Promise<[Image8, Image8]> {
  const { data } = await sharp(photo).resize(s, s, { fit: 'cover' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const planar = new Uint8Array(3 * s * s);
  for (let p = 0; p < s * s; p++) for (let c = 0; c < 3; c++) planar[c * s * s + p] = data[3 * p + c]!;
  const a: Image8 = { channels: 3, height: s, width: s, data: planar };
  const rng = new Rng(s);
  return [a, { ...a, data: planar.map((v) => Math.max(0, Math.min(255, v + Math.round((rng.uniform() - 0.5) * 20)))) }];
}

const fmt = (ms: number): string => `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;

console.log(`metrics benchmark: ${machine()}, ${threads} ORT threads, median of ${runs}`);
const alex = Lpips.load('alex', findMetricFile('alexnet', dir), findMetricFile('lpips-alex', dir), { threads });
const vgg = Lpips.load('vgg', findMetricFile('vgg16', dir), findMetricFile('lpips-vgg', dir), { threads });
const inception = await FidInception.load(findMetricFile('inception', dir), { threads });
const niqeParams = loadNiqeParams(findMetricFile('niqe', dir));
console.log('| metric | ' + sizes.map((s) => `${s}² per image`).join(' | ') + ' |');
console.log('|---|' + sizes.map(() => '---').join('|') + '|');
const rows = new Map<string, string[]>();
const add = (k: string, v: string): void => void rows.set(k, [...(rows.get(k) ?? []), v]);
for (const s of sizes) {
  const [a, b] = await pair(s);
  add('PSNR + SSIM (RGB)', fmt(median(await timeIt(async () => [psnr(a, b), ssim(a, b)], runs))));
  add('LPIPS alex, 1 pair', fmt(median(await timeIt(() => alex.distances([a], [b]), runs))));
  add('LPIPS alex, batch of 4', fmt(median(await timeIt(() => alex.distances([a, a, a, a], [b, b, b, b]), runs)) / 4));
  add('LPIPS vgg, 1 pair', fmt(median(await timeIt(() => vgg.distances([a], [b]), runs))));
  add('LPIPS vgg, batch of 4', fmt(median(await timeIt(() => vgg.distances([a, a, a, a], [b, b, b, b]), runs)) / 4));
  add('FID Inception features, 1 image', fmt(median(await timeIt(() => inception.features([b]), runs))));
  add('FID Inception features, batch of 8', fmt(median(await timeIt(() => inception.features(Array(8).fill(b)), runs)) / 8));
  add('NIQE', fmt(median(await timeIt(async () => niqe(b, niqeParams), runs))));
}
for (const [k, v] of rows) console.log(`| ${k} | ${v.join(' | ')} |`);
// The Fréchet distance itself (once per evaluation, 2048-d, float64): a full-rank case.
const rng = new Rng(1);
const n = 2100;
const f1 = Float64Array.from({ length: n * FID_DIM }, () => rng.uniform());
const f2 = Float64Array.from({ length: n * FID_DIM }, () => rng.uniform() + 0.1 * rng.uniform());
let t = performance.now();
const s1 = fidStatistics(f1, n, FID_DIM);
const s2 = fidStatistics(f2, n, FID_DIM);
const tStats = (performance.now() - t) / 2;
t = performance.now();
frechetDistance(s1, s2);
console.log(`FID statistics of ${n} feature rows: ${fmt(tStats)} per set; Fréchet distance (2048-d, full rank): ${fmt(performance.now() - t)}`);
await Promise.all([alex.release(), vgg.release(), inception.release()]);
