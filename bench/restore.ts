/**
 * Restoration benchmark: wall time and peak memory of DiffIR stage-2 presets with random
 * weights, as `diffir restore` runs them (pre/post-processing included).
 *   deblur-gopro 256×256, realsr-x4 64×64 → 256×256 (whole image), deblur-gopro
 *   2048×2048 (exact tiles under a 4 GB budget).
 * Each case runs in a child process so that its peak RSS is its own. With --profile the
 * ORT per-op-type time breakdown of one warm run is printed. The `*vs` cases run the same
 * image whole and in exact tiles alternately in one process and print the time ratio
 * (tiled / whole, per pixel) and the largest difference of the outputs.
 *
 *   npm run bench:restore [-- --runs 3 --threads 2 --profile --cases deblur256,realsr64,deblur2048,deblur384vs]
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Graph } from '../src/graph/ir.js';
import { preset, type PresetName } from '../src/models/config.js';
import { DiffIRS2 } from '../src/models/diffir.js';
import { initParams } from '../src/nn/init.js';
import { Restorer } from '../src/restore/restore.js';
import { wholeImageGraph } from '../src/restore/graphs.js';
import { toOnnx } from '../src/graph/onnx.js';
import { Session } from '../src/runtime/session.js';
import type { LoadedImage } from '../src/image/io.js';
import { Rng } from '../src/random.js';
import { flag, machine, median } from './util.js';

interface Case {
  name: string;
  preset: PresetName;
  size: number;
  budget?: number;
  runs: number;
  pytorch?: number;
  /** Compare tiles of this side with the whole image. */
  versus?: number;
}

const CASES: Record<string, Case> = {
  deblur256: { name: 'deblur-gopro 256×256', preset: 'deblur-gopro', size: 256, runs: 3, pytorch: 10.0 },
  realsr64: { name: 'realsr-x4 64×64 → 256×256', preset: 'realsr-x4', size: 64, runs: 3, pytorch: 2.36 },
  deblur2048: { name: 'deblur-gopro 2048×2048, tiled (4 GB budget)', preset: 'deblur-gopro', size: 2048, budget: 4 * 2 ** 30, runs: 1 },
  deblur384vs: { name: 'deblur-gopro 384×384, tiles of 96 vs whole', preset: 'deblur-gopro', size: 384, runs: 3, versus: 96 },
  realsr128vs: { name: 'realsr-x4 128×128 → 512×512, tiles of 32 vs whole', preset: 'realsr-x4', size: 128, runs: 3, versus: 32 },
};

/** Alternates whole-image and tiled restorations of one image; the first of each is a warm-up. */
async function versus(c: Case, r: Restorer, img: LoadedImage, runs: number): Promise<{ whole: number; tiled: number; ratio: number; maxDiff: number }> {
  const whole: number[] = [];
  const tiled: number[] = [];
  const ratios: number[] = [];
  let maxDiff = 0;
  for (let i = 0; i < runs; i++) {
    let t = performance.now();
    const a = await r.restore(img, { tile: 0, memoryBudget: 64 * 2 ** 30 });
    const tw = (performance.now() - t) / 1000;
    t = performance.now();
    const b = await r.restore(img, { tile: c.versus! });
    const tt = (performance.now() - t) / 1000;
    for (let k = 0; k < a.rgb.data.length; k++) maxDiff = Math.max(maxDiff, Math.abs(a.rgb.data[k]! - b.rgb.data[k]!));
    if (i === 0 && runs > 1) continue;
    whole.push(tw);
    tiled.push(tt);
    ratios.push(tt / tw);
  }
  return { whole: median(whole), tiled: median(tiled), ratio: median(ratios), maxDiff };
}

function image(size: number): LoadedImage {
  const r = new Rng(7);
  const data = new Float32Array(3 * size * size);
  for (let i = 0; i < data.length; i++) data[i] = Math.min(1, Math.max(0, 0.5 + 0.2 * r.normal()));
  return { rgb: { dtype: 'float32', shape: [1, 3, size, size], data }, alpha: null, gray: false, bitDepth: 8, format: 'png', width: size, height: size, orientationApplied: false };
}

async function child(key: string): Promise<void> {
  const c = CASES[key]!;
  const threads = Number(flag('threads', '2'));
  const runs = Number(flag('runs', String(c.runs)));
  const cfg = preset(c.preset);
  const weights = initParams(DiffIRS2(cfg), 1);
  const ck = { file: c.preset, config: cfg, stage: 2 as const, presets: [c.preset], weights, parameterCount: 0 };
  const img = image(c.size);
  const t0 = performance.now();
  const r = Restorer.load(ck, { threads });
  if (c.versus) {
    const v = await versus(c, r, img, runs);
    await r.release();
    console.log(JSON.stringify({ key, versus: v, peakGiB: process.resourceUsage().maxRSS / 2 ** 20 }));
    return;
  }
  let tile = 0;
  const first = await r.restore(img, { ...(c.budget ? { memoryBudget: c.budget } : {}) });
  tile = first.tile;
  const cold = (performance.now() - t0) / 1000;
  const warm: number[] = [];
  for (let i = 0; i < runs - 1; i++) {
    const t = performance.now();
    await r.restore(img, { ...(c.budget ? { memoryBudget: c.budget } : {}) });
    warm.push((performance.now() - t) / 1000);
  }
  await r.release();
  const peak = process.resourceUsage().maxRSS / 2 ** 20; // KiB → GiB
  let profile: Record<string, number> | null = null;
  if (process.argv.includes('--profile') && !c.budget) profile = await opProfile(c, weights, img, threads);
  console.log(JSON.stringify({ key, cold, warm: warm.length ? median(warm) : null, peakGiB: peak, tile, profile }));
}

/** Milliseconds per ORT op type over one warm run of the whole-image graph. */
async function opProfile(c: Case, weights: Map<string, never> | ReturnType<typeof initParams>, img: LoadedImage, threads: number): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'diffir-prof-'));
  const cfg = preset(c.preset);
  const g: Graph = wholeImageGraph(cfg, c.size, c.size);
  const s = await Session.create(toOnnx(g, { params: 'initializers', weights }), { threads, profilePrefix: join(dir, 'p') });
  const feeds = { image: img.rgb, x_T: { dtype: 'float32' as const, shape: [1, 256], data: new Rng(0).normals(256) } };
  await s.run(feeds);
  await s.run(feeds);
  await s.release();
  const file = readdirSync(dir).map((f) => join(dir, f))[0]!;
  const events = JSON.parse(readFileSync(file, 'utf8')) as { cat: string; name: string; dur: number; args: { op_name?: string } }[];
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
  const lastStart = runs.length ? (runs[runs.length - 1] as unknown as { ts: number }).ts : 0;
  const byOp: Record<string, number> = {};
  for (const e of events as unknown as { cat: string; name: string; dur: number; ts: number; args: { op_name?: string } }[]) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < lastStart) continue;
    const k = e.args.op_name ?? '?';
    byOp[k] = (byOp[k] ?? 0) + e.dur / 1000;
  }
  rmSync(dir, { recursive: true, force: true });
  return byOp;
}

async function main(): Promise<void> {
  const key = flag('child', '');
  if (key) return child(key);
  const keys = flag('cases', Object.keys(CASES).join(',')).split(',');
  console.log(`# restore benchmark: random weights, ONNX Runtime CPU, ${flag('threads', '2')} threads`);
  console.log(`# machine: ${machine()}`);
  console.log('| case | cold s (load + first image) | warm s (median) | peak RSS GiB | tile | PyTorch 2.13 s | warm / PyTorch |');
  console.log('|---|---|---|---|---|---|---|');
  const profiles: [string, Record<string, number>][] = [];
  const vs: string[] = [];
  for (const k of keys) {
    const c = CASES[k];
    if (!c) throw new Error(`unknown case '${k}' (have ${Object.keys(CASES).join(', ')})`);
    const args = [fileURLToPath(import.meta.url), '--child', k, ...process.argv.slice(2).filter((a, i, all) => a !== '--cases' && all[i - 1] !== '--cases')];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (r.status !== 0) throw new Error(`case ${k} failed (${r.signal ?? `exit ${r.status}`}): ${r.stderr.split('\n').slice(-3).join(' ')}`);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { cold: number; warm: number | null; peakGiB: number; tile: number; profile: Record<string, number> | null; versus?: { whole: number; tiled: number; ratio: number; maxDiff: number } };
    if (res.versus) {
      const v = res.versus;
      vs.push(`| ${c.name} | ${v.whole.toFixed(2)} | ${v.tiled.toFixed(2)} | ${v.ratio.toFixed(2)} | ${v.maxDiff.toExponential(1)} | ${res.peakGiB.toFixed(2)} |`);
      continue;
    }
    const best = res.warm ?? res.cold;
    const ratio = c.pytorch ? (best / c.pytorch).toFixed(2) : '–';
    console.log(`| ${c.name} | ${res.cold.toFixed(2)} | ${res.warm?.toFixed(2) ?? '–'} | ${res.peakGiB.toFixed(2)} | ${res.tile || 'whole'} | ${c.pytorch ?? '–'} | ${ratio} |`);
    if (res.profile) profiles.push([c.name, res.profile]);
  }
  if (vs.length) {
    console.log('\n| tiled vs whole (same image, same process) | whole s (median) | tiled s (median) | tiled / whole (median of pairs) | max abs difference | peak RSS GiB |');
    console.log('|---|---|---|---|---|---|');
    for (const l of vs) console.log(l);
  }
  for (const [name, p] of profiles) {
    const total = Object.values(p).reduce((a, b) => a + b, 0);
    console.log(`\n# ORT kernel time by op type, ${name} (warm run, ${total.toFixed(0)} ms of kernels)`);
    for (const [op, ms] of Object.entries(p).sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`  ${op.padEnd(20)} ${ms.toFixed(1).padStart(8)} ms  ${((100 * ms) / total).toFixed(1)}%`);
  }
}

await main();
