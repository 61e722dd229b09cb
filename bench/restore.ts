/**
 * Restoration benchmark: wall time and peak memory of DiffIR stage-2 presets with random
 * weights, as `diffir restore` runs them (pre/post-processing included).
 *   deblur-gopro 256×256, realsr-x4 64×64 → 256×256 (whole image), deblur-gopro
 *   2048×2048 (exact tiles under a 4 GB budget), deblur-gopro 4000×3000 (a 12 MP photo under
 *   a 4 GB budget: tiles with the largest maps in a temporary file).
 * Each case runs in a child process so that its peak RSS is its own. With --profile the
 * ORT per-op-type time breakdown of one warm run is printed. The `*vs` cases run the same
 * image whole and in exact tiles alternately in one process and print the time ratio
 * (tiled / whole, per pixel) and the largest difference of the outputs; `deblur384spill`
 * runs it in the same tiles twice instead, with its maps in host memory and spilled to a
 * temporary file (the budget of each just fits), and prints spilled / in memory.
 *
 *   npm run bench:restore [-- --runs 3 --threads 2 --profile --cases deblur256,realsr64,deblur2048,deblur384vs,deblur384spill,deblur2mp,deblur12mp]
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, mkdtempSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Graph } from '../src/graph/ir.js';
import { preset, type PresetName } from '../src/models/config.js';
import { DiffIRS2 } from '../src/models/diffir.js';
import { initParams } from '../src/nn/init.js';
import { Restorer, type RestoreOptions, type RestoreProgress } from '../src/restore/restore.js';
import { wholeImageGraph } from '../src/restore/graphs.js';
import { spillPlan, tileBytes, tiledBaseBytes, tiledHostBytes } from '../src/restore/memory.js';
import { toOnnx } from '../src/graph/onnx.js';
import { Session } from '../src/runtime/session.js';
import type { LoadedImage } from '../src/image/io.js';
import { Rng } from '../src/random.js';
import { flag, machine, median } from './util.js';

interface Case {
  name: string;
  preset: PresetName;
  size: number;
  /** Image height when not square. */
  height?: number;
  budget?: number;
  runs: number;
  pytorch?: number;
  /** Compare tiles of this side with the whole image. */
  versus?: number;
  /** Compare tiles of this side spilled to disk with the same tiles in host memory. */
  spill?: number;
  /** Tiles of this side (with `budget`: the plan spills what the budget needs). */
  tile?: number;
}

/** The memory plan of a tiled case with a budget. */
interface Plan {
  maps: number;
  hostGiB: number;
  diskGiB: number;
  totalGiB: number;
}

const CASES: Record<string, Case> = {
  deblur256: { name: 'deblur-gopro 256×256', preset: 'deblur-gopro', size: 256, runs: 3, pytorch: 10.0 },
  realsr64: { name: 'realsr-x4 64×64 → 256×256', preset: 'realsr-x4', size: 64, runs: 3, pytorch: 2.36 },
  deblur2048: { name: 'deblur-gopro 2048×2048, tiled (4 GB budget)', preset: 'deblur-gopro', size: 2048, budget: 4 * 2 ** 30, runs: 1 },
  deblur384vs: { name: 'deblur-gopro 384×384, tiles of 96 vs whole', preset: 'deblur-gopro', size: 384, runs: 3, versus: 96 },
  realsr128vs: { name: 'realsr-x4 128×128 → 512×512, tiles of 32 vs whole', preset: 'realsr-x4', size: 128, runs: 3, versus: 32 },
  deblur384spill: { name: 'deblur-gopro 384×384, tiles of 96, maps spilled vs in memory', preset: 'deblur-gopro', size: 384, runs: 3, spill: 96 },
  deblur2mp: { name: 'deblur-gopro 1728×1152, tiles of 288, 2.7 GB budget', preset: 'deblur-gopro', size: 1728, height: 1152, budget: 2.7 * 2 ** 30, tile: 288, runs: 1 },
  deblur12mp: { name: 'deblur-gopro 4000×3000 (12 MP), 4 GB budget', preset: 'deblur-gopro', size: 4000, height: 3000, budget: 4 * 2 ** 30, runs: 1 },
};

/** Budgets for tiles of `tile` on a `size`² image that just fit: all maps in host memory, and as many spilled as help. */
function spillBudgets(r: Restorer, size: number, tile: number): { ram: number; spill: number; maps: number } {
  const cfg = r.config;
  const rest = tiledBaseBytes(cfg, 4 * r.checkpoint.parameterCount, size, size) + tileBytes(cfg, tile);
  const plan = spillPlan(cfg, size, size, tile, 0);
  return { ram: rest + tiledHostBytes(cfg, size, size, tile), spill: rest + plan.hostBytes, maps: plan.maps.size };
}

/**
 * Alternates restorations of one image with options `a` and `b`; the first of each is a
 * warm-up. Medians of the times, of the ratios b / a, and the largest output difference.
 */
async function alternate(r: Restorer, img: LoadedImage, runs: number, a: RestoreOptions, b: RestoreOptions): Promise<{ a: number; b: number; ratio: number; maxDiff: number }> {
  const ta: number[] = [];
  const tb: number[] = [];
  const ratios: number[] = [];
  let maxDiff = 0;
  for (let i = 0; i < runs; i++) {
    let t = performance.now();
    const x = await r.restore(img, a);
    const sa = (performance.now() - t) / 1000;
    t = performance.now();
    const y = await r.restore(img, b);
    const sb = (performance.now() - t) / 1000;
    for (let k = 0; k < x.rgb.data.length; k++) maxDiff = Math.max(maxDiff, Math.abs(x.rgb.data[k]! - y.rgb.data[k]!));
    if (i === 0 && runs > 1) continue;
    ta.push(sa);
    tb.push(sb);
    ratios.push(sb / sa);
  }
  return { a: median(ta), b: median(tb), ratio: median(ratios), maxDiff };
}

/** Whole image vs tiles of `c.versus`. */
async function versus(c: Case, r: Restorer, img: LoadedImage, runs: number): Promise<{ whole: number; tiled: number; ratio: number; maxDiff: number }> {
  const v = await alternate(r, img, runs, { tile: 0, memoryBudget: 64 * 2 ** 30 }, { tile: c.versus! });
  return { whole: v.a, tiled: v.b, ratio: v.ratio, maxDiff: v.maxDiff };
}

/** Tiles of `c.spill` with the maps in host memory vs spilled. */
async function spilled(c: Case, r: Restorer, img: LoadedImage, runs: number): Promise<{ ram: number; spill: number; ratio: number; maxDiff: number; maps: number }> {
  const budget = spillBudgets(r, c.size, c.spill!);
  const v = await alternate(r, img, runs, { tile: c.spill!, memoryBudget: budget.ram }, { tile: c.spill!, memoryBudget: budget.spill });
  return { ram: v.a, spill: v.b, ratio: v.ratio, maxDiff: v.maxDiff, maps: budget.maps };
}

function image(width: number, height = width): LoadedImage {
  const r = new Rng(7);
  const data = new Float32Array(3 * width * height);
  for (let i = 0; i < data.length; i++) data[i] = Math.min(1, Math.max(0, 0.5 + 0.2 * r.normal()));
  return { rgb: { dtype: 'float32', shape: [1, 3, height, width], data }, alpha: null, gray: false, bitDepth: 8, format: 'png', width, height, orientationApplied: false };
}

async function child(key: string): Promise<void> {
  const c = CASES[key]!;
  const threads = Number(flag('threads', '2'));
  const runs = Number(flag('runs', String(c.runs)));
  const cfg = preset(c.preset);
  const weights = initParams(DiffIRS2(cfg), 1);
  const ck = { file: c.preset, config: cfg, stage: 2 as const, presets: [c.preset], weights, parameterCount: [...weights.values()].reduce((n, t) => n + t.data.length, 0) };
  const img = image(c.size, c.height);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const load0 = loadavg()[0]!;
  const r = Restorer.load(ck, { threads });
  if (c.versus) {
    const v = await versus(c, r, img, runs);
    await r.release();
    console.log(JSON.stringify({ key, versus: v, peakGiB: process.resourceUsage().maxRSS / 2 ** 20 }));
    return;
  }
  if (c.spill) {
    const v = await spilled(c, r, img, runs);
    await r.release();
    console.log(JSON.stringify({ key, spill: v, peakGiB: process.resourceUsage().maxRSS / 2 ** 20 }));
    return;
  }
  let tile = 0;
  // Long cases report their tile runs on stderr every 5 % (elapsed, RSS, CPU), so a run cut short still tells how far it got.
  let shown = 0;
  const onProgress = (p: RestoreProgress) => {
    if (p.phase !== 'tiles' || p.done < shown + p.total / 20) return;
    shown = p.done;
    const cpu = process.cpuUsage(cpu0);
    console.error(`${p.done}/${p.total} tile runs, ${((performance.now() - t0) / 1000).toFixed(0)} s, RSS ${(process.memoryUsage.rss() / 2 ** 30).toFixed(2)} GiB (max ${(process.resourceUsage().maxRSS / 2 ** 20).toFixed(2)}), CPU ${((cpu.user + cpu.system) / 1e6).toFixed(0)} s, load ${loadavg()[0]!.toFixed(1)}`);
  };
  const opts: RestoreOptions = { ...(c.budget ? { memoryBudget: c.budget } : {}), ...(c.tile ? { tile: c.tile } : {}) };
  const first = await r.restore(img, { ...opts, onProgress });
  tile = first.tile;
  const cold = (performance.now() - t0) / 1000;
  const warm: number[] = [];
  for (let i = 0; i < runs - 1; i++) {
    const t = performance.now();
    await r.restore(img, opts);
    warm.push((performance.now() - t) / 1000);
  }
  await r.release();
  const peak = process.resourceUsage().maxRSS / 2 ** 20; // KiB → GiB
  const cpu = process.cpuUsage(cpu0);
  let profile: Record<string, number> | null = null;
  if (process.argv.includes('--profile') && !c.budget) profile = await opProfile(c, weights, img, threads);
  // What the plan put where: spilled maps, host bytes of the maps at the peak, disk bytes at the
  // most, and the whole planned peak (to hold against the measured one).
  let plan: Plan | null = null;
  if (c.budget && tile) {
    const p = r.memoryPlan(c.size, c.height ?? c.size, opts);
    plan = { maps: p.spilledMaps, hostGiB: p.hostBytes / 2 ** 30, diskGiB: p.diskBytes / 2 ** 30, totalGiB: p.peakBytes / 2 ** 30 };
  }
  const load = `${load0.toFixed(1)}→${loadavg()[0]!.toFixed(1)}`;
  console.log(JSON.stringify({ key, cold, warm: warm.length ? median(warm) : null, peakGiB: peak, tile, profile, cpuS: (cpu.user + cpu.system) / 1e6, load, plan }));
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
  console.log('| case | cold s (load + first image) | warm s (median) | peak RSS GiB | tile | PyTorch 2.13 s | warm / PyTorch | CPU s | load (1 min) |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  const profiles: [string, Record<string, number>][] = [];
  const vs: string[] = [];
  const sp: string[] = [];
  const plans: string[] = [];
  for (const k of keys) {
    const c = CASES[k];
    if (!c) throw new Error(`unknown case '${k}' (have ${Object.keys(CASES).join(', ')})`);
    const args = [fileURLToPath(import.meta.url), '--child', k, ...process.argv.slice(2).filter((a, i, all) => a !== '--cases' && all[i - 1] !== '--cases')];
    // The child's stderr (progress of long cases) goes straight to ours.
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) throw new Error(`case ${k} failed (${r.signal ?? `exit ${r.status}`}); its messages are above`);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      cold: number;
      warm: number | null;
      peakGiB: number;
      tile: number;
      profile: Record<string, number> | null;
      cpuS: number;
      load: string;
      plan: Plan | null;
      versus?: { whole: number; tiled: number; ratio: number; maxDiff: number };
      spill?: { ram: number; spill: number; ratio: number; maxDiff: number; maps: number };
    };
    if (res.versus) {
      const v = res.versus;
      vs.push(`| ${c.name} | ${v.whole.toFixed(2)} | ${v.tiled.toFixed(2)} | ${v.ratio.toFixed(2)} | ${v.maxDiff.toExponential(1)} | ${res.peakGiB.toFixed(2)} |`);
      continue;
    }
    if (res.spill) {
      const v = res.spill;
      sp.push(`| ${c.name} | ${v.maps} | ${v.ram.toFixed(2)} | ${v.spill.toFixed(2)} | ${v.ratio.toFixed(2)} | ${v.maxDiff.toExponential(1)} | ${res.peakGiB.toFixed(2)} |`);
      continue;
    }
    const best = res.warm ?? res.cold;
    const ratio = c.pytorch ? (best / c.pytorch).toFixed(2) : '–';
    console.log(`| ${c.name} | ${res.cold.toFixed(2)} | ${res.warm?.toFixed(2) ?? '–'} | ${res.peakGiB.toFixed(2)} | ${res.tile || 'whole'} | ${c.pytorch ?? '–'} | ${ratio} | ${res.cpuS.toFixed(0)} | ${res.load} |`);
    if (res.plan) plans.push(`# ${c.name}: planned peak ${res.plan.totalGiB.toFixed(2)} GiB (measured ${res.peakGiB.toFixed(2)}): ${res.plan.maps} maps spilled to a temporary file; host maps ${res.plan.hostGiB.toFixed(2)} GiB, disk ${res.plan.diskGiB.toFixed(2)} GiB at the most`);
    if (res.profile) profiles.push([c.name, res.profile]);
  }
  if (vs.length) {
    console.log('\n| tiled vs whole (same image, same process) | whole s (median) | tiled s (median) | tiled / whole (median of pairs) | max abs difference | peak RSS GiB |');
    console.log('|---|---|---|---|---|---|');
    for (const l of vs) console.log(l);
  }
  for (const l of plans) console.log(l);
  if (sp.length) {
    console.log('\n| spilled vs in host memory (same image and tiles, same process) | maps spilled | in memory s (median) | spilled s (median) | spilled / in memory (median of pairs) | max abs difference | peak RSS GiB |');
    console.log('|---|---|---|---|---|---|---|');
    for (const l of sp) console.log(l);
  }
  for (const [name, p] of profiles) {
    const total = Object.values(p).reduce((a, b) => a + b, 0);
    console.log(`\n# ORT kernel time by op type, ${name} (warm run, ${total.toFixed(0)} ms of kernels)`);
    for (const [op, ms] of Object.entries(p).sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`  ${op.padEnd(20)} ${ms.toFixed(1).padStart(8)} ms  ${((100 * ms) / total).toFixed(1)}%`);
  }
}

await main();
