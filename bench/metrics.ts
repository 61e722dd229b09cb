/**
 * Time per image of the metrics as `diffir eval` runs them: LPIPS alex and vgg (one pair per
 * run, and a batch of 4 pairs), the FID Inception features (one image, batch of 8), NIQE, and
 * PSNR+SSIM, at 256² and 512² (override with --sizes), plus the Fréchet distance of two 2048-d
 * statistics (float64, in JS). Medians of --runs runs after one warm-up, as wall time and as
 * process CPU time (user + system: with --threads 1 this is the single-core compute, and it
 * stays meaningful on a machine shared with other jobs, where wall time does not).
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
import { flag, machine, median } from './util.js';

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

/** Median wall ms and median CPU ms of `fn`, divided by `per` (images per call). */
async function measure(fn: () => Promise<unknown>, per = 1): Promise<string> {
  await fn();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await fn();
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  return `${fmt(median(wall) / per)} (CPU ${fmt(median(cpu) / per)})`;
}

console.log(`metrics benchmark: ${machine()}, ${threads} ORT thread(s), median of ${runs}; wall time (CPU time) per image`);
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
  add('PSNR + SSIM (RGB)', await measure(async () => [psnr(a, b), ssim(a, b)]));
  add('LPIPS alex, 1 pair', await measure(() => alex.distances([a], [b])));
  add('LPIPS alex, batch of 4', await measure(() => alex.distances([a, a, a, a], [b, b, b, b]), 4));
  add('LPIPS vgg, 1 pair', await measure(() => vgg.distances([a], [b])));
  add('LPIPS vgg, batch of 4', await measure(() => vgg.distances([a, a, a, a], [b, b, b, b]), 4));
  add('FID Inception features, 1 image', await measure(() => inception.features([b])));
  add('FID Inception features, batch of 8', await measure(() => inception.features(Array(8).fill(b)), 8));
  add('NIQE', await measure(async () => niqe(b, niqeParams)));
}
for (const [k, v] of rows) console.log(`| ${k} | ${v.join(' | ')} |`);
// The Fréchet distance itself (once per evaluation, 2048-d, float64): a full-rank case.
const rng = new Rng(1);
const n = 2100;
const f1 = Float64Array.from({ length: n * FID_DIM }, () => rng.uniform());
const f2 = Float64Array.from({ length: n * FID_DIM }, () => rng.uniform() + 0.1 * rng.uniform());
let c = process.cpuUsage();
const s1 = fidStatistics(f1, n, FID_DIM);
const s2 = fidStatistics(f2, n, FID_DIM);
const cStats = process.cpuUsage(c);
c = process.cpuUsage();
frechetDistance(s1, s2);
const cFd = process.cpuUsage(c);
const ms = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;
console.log(`FID statistics of ${n} feature rows: CPU ${fmt(ms(cStats) / 2)} per set; Fréchet distance (2048-d, full rank): CPU ${fmt(ms(cFd))}`);
await Promise.all([alex.release(), vgg.release(), inception.release()]);
