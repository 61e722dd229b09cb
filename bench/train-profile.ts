/**
 * Where a training step's time and memory go, for one compiled step (random weights and data):
 *
 * - memory: a per-tensor liveness profile of the training graph in its execution order. Every
 *   value is alive from the node that makes it to its last consumer; the peak and what is alive
 *   there are printed, grouped by forward activations kept for the backward (by the op that
 *   made them) and backward temporaries, with the largest tensors. It is a model of what any
 *   executor must hold (ORT may reorder and fuse a little), independent of allocator waste;
 * - RSS: the process's resident memory after creating the session and after each run, so the
 *   gap between the liveness peak and RSS shows what the allocator (ORT's arena) adds;
 * - time: ORT's per-node profile of the last run, by op type, forward and backward apart.
 *
 *   npm run build && node dist/bench/train-profile.js [--case deblur|realsr|realsr-s2] [--batch 1] [--size <LQ side>] [--runs 3]
 *        [--threads 2] [--no-arena] [--no-mem-pattern] [--no-time] [--no-remat]
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Graph, Value } from '../src/graph/ir.js';
import { preset, type DiffIRConfig } from '../src/models/config.js';
import { initParams } from '../src/nn/init.js';
import { Session } from '../src/runtime/session.js';
import { buildObjective, type LossKind } from '../src/train/objective.js';
import { buildTrainingGraph } from '../src/train/step.js';
import { f32, type HostTensor } from '../src/tensor.js';
import { Rng } from '../src/random.js';
import { flag, machine, median } from './util.js';

interface Case {
  readonly label: string;
  readonly kind: LossKind;
  readonly config: DiffIRConfig;
  /** LQ side. */
  readonly size: number;
}

/** The configurations of bench/train (released widths, stage 1 and the stage-2 joint phase). */
export const PROFILE_CASES: Record<string, Case> = {
  deblur: { label: 'deblur-gopro S1, 128²', kind: 's1', config: preset('deblur-gopro'), size: 128 },
  realsr: { label: 'realsr-x4 S1, LQ 64²', kind: 's1', config: preset('realsr-x4'), size: 64 },
  'realsr-s2': { label: 'realsr-x4 S2 joint, LQ 64²', kind: 's2joint', config: preset('realsr-x4'), size: 64 },
};

const BYTES: Record<string, number> = { float32: 4, float16: 2, int64: 8, int32: 4, uint8: 1, bool: 1 };
const bytesOf = (v: Value) => BYTES[v.dtype]! * v.shape.reduce<number>((a, d) => a * (typeof d === 'number' ? d : NaN), 1);
const GiB = (b: number) => (b / 2 ** 30).toFixed(2);
const MiB = (b: number) => (b / 2 ** 20).toFixed(1);
const isBackward = (name: string) => name.startsWith('backward');

/** Ops whose output shares its input's buffer in ORT (no copy). */
const ALIAS_OPS = new Set(['Reshape', 'Squeeze', 'Unsqueeze', 'Flatten', 'Identity']);

/**
 * Liveness of every buffer in node order: a node's output is alive from that node to the last
 * consumer of it or of any view of it (Reshape and friends share the buffer). Returns the peak
 * and the buffers alive there.
 */
export function livenessProfile(g: Graph): { peak: number; atPeak: { v: Value; bytes: number; backward: boolean; op: string }[]; params: number; inputs: number } {
  const root = new Map<Value, Value>();
  const rootOf = (v: Value): Value => root.get(v) ?? v;
  for (const n of g.nodes) if (ALIAS_OPS.has(n.op) && n.inputs[0]) root.set(n.outputs[0]!, rootOf(n.inputs[0]));
  const last = new Map<Value, number>();
  const use = (v: Value, i: number) => {
    const r = rootOf(v);
    if (r.kind === 'node') last.set(r, Math.max(last.get(r) ?? -1, i));
  };
  g.nodes.forEach((n, i) => n.inputs.forEach((v) => v && use(v, i)));
  for (const v of g.outputs) use(v, g.nodes.length);
  const born = new Map<Value, number>();
  g.nodes.forEach((n, i) => n.outputs.forEach((v) => !root.has(v) && last.has(v) && born.set(v, i)));
  const delta = new Float64Array(g.nodes.length + 2);
  for (const [v, b] of born) {
    delta[b] += bytesOf(v);
    delta[last.get(v)! + 1] -= bytesOf(v);
  }
  let live = 0;
  let peak = 0;
  let peakAt = 0;
  for (let i = 0; i < g.nodes.length; i++) {
    live += delta[i]!;
    if (live > peak) [peak, peakAt] = [live, i];
  }
  const atPeak: { v: Value; bytes: number; backward: boolean; op: string }[] = [];
  for (const [v, b] of born) {
    if (b <= peakAt && last.get(v)! >= peakAt) atPeak.push({ v, bytes: bytesOf(v), backward: isBackward(v.producer!.name), op: v.producer!.op });
  }
  let params = 0;
  for (const p of g.params.values()) params += bytesOf(p.value);
  const inputs = g.inputs.reduce((a, v) => a + bytesOf(v), 0);
  return { peak, atPeak, params, inputs };
}

function rss(): number {
  return process.memoryUsage().rss;
}

async function main(): Promise<void> {
  const key = flag('case', 'deblur');
  const c = PROFILE_CASES[key];
  if (!c) throw new Error(`unknown case '${key}' (have ${Object.keys(PROFILE_CASES).join(', ')})`);
  const batch = Number(flag('batch', '1'));
  const size = Number(flag('size', String(c.size)));
  const runs = Number(flag('runs', '3'));
  const threads = Number(flag('threads', '2'));
  const arena = !process.argv.includes('--no-arena');
  const memPattern = !process.argv.includes('--no-mem-pattern');
  const timeIt = !process.argv.includes('--no-time');
  console.log(`# training step profile: ${c.label.split(',')[0]}, LQ ${size}², batch ${batch}, ORT threads ${threads}, arena ${arena ? 'on' : 'off'}, memory pattern ${memPattern ? 'on' : 'off'}`);
  console.log(`# machine: ${machine()}`);
  const obj = buildObjective({ kind: c.kind, config: c.config, batch, height: size, width: size, ...(c.kind === 's1' ? {} : { teacher: c.config }) });
  const weights = initParams(obj.graph, 1);
  const frozen = new Map(obj.frozen.map((k) => [k, weights.get(k)!]));
  const t = buildTrainingGraph(obj.graph, obj.loss, { trainable: obj.trainable, frozen, logs: obj.logs, rematerialize: !process.argv.includes('--no-remat') });
  const g = obj.graph;
  console.log(`# rematerialised: ${t.remat.values} activations (${MiB(t.remat.bytes)} MiB) recomputed by ${t.remat.nodes} backward nodes`);

  const lv = livenessProfile(g);
  const fwdNodes = g.nodes.filter((n) => !isBackward(n.name)).length;
  console.log(`\n## memory (liveness of the graph's tensors, ${g.nodes.length} nodes: ${fwdNodes} forward, ${g.nodes.length - fwdNodes} backward)`);
  console.log(`weights ${MiB(lv.params)} MiB, data inputs ${MiB(lv.inputs)} MiB; peak of live intermediates ${GiB(lv.peak)} GiB`);
  const group = new Map<string, { bytes: number; n: number }>();
  for (const e of lv.atPeak) {
    const k = `${e.backward ? 'backward temp' : 'forward kept'} ${e.op}`;
    const x = group.get(k) ?? { bytes: 0, n: 0 };
    x.bytes += e.bytes;
    x.n++;
    group.set(k, x);
  }
  console.log('| alive at the peak | tensors | GiB | share |\n|---|---|---|---|');
  for (const [k, x] of [...group].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 16)) console.log(`| ${k} | ${x.n} | ${GiB(x.bytes)} | ${((100 * x.bytes) / lv.peak).toFixed(1)}% |`);
  console.log('largest tensors alive at the peak:');
  for (const e of [...lv.atPeak].sort((a, b) => b.bytes - a.bytes).slice(0, 8)) console.log(`  ${MiB(e.bytes).padStart(7)} MiB  ${e.v.producer!.name} [${e.v.shape.join(',')}]`);

  const dir = mkdtempSync(join(tmpdir(), 'diffir-train-prof-'));
  try {
    const r0 = rss();
    const s = await Session.create(t.model(), { threads, memoryArena: arena, memoryPattern: memPattern, ...(timeIt ? { profilePrefix: join(dir, 'p') } : {}) });
    const r1 = rss();
    const rng = new Rng(3);
    const feeds: Record<string, HostTensor> = {};
    for (const v of g.inputs) {
      const shape = v.shape as number[];
      feeds[v.name] = f32(shape, rng.normals(shape.reduce((a, d) => a * d, 1)));
    }
    for (const k of t.layout.slots) feeds[k.name] = weights.get(k.name)!;
    const times: number[] = [];
    const after: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await s.run(feeds);
      times.push((performance.now() - t0) / 1000);
      after.push(rss());
    }
    await s.release();
    console.log(`\n## RSS: ${GiB(r0)} GiB before the session, ${GiB(r1)} after creating it, after each run ${after.map(GiB).join(', ')} GiB; peak ${GiB(process.resourceUsage().maxRSS * 1024)} GiB`);
    console.log(`## run time: ${times.map((x) => x.toFixed(2)).join(', ')} s (median of the warm runs ${median(times.slice(1).length ? times.slice(1) : times).toFixed(2)} s; profiling on: ${timeIt})`);
    if (timeIt) {
      const file = readdirSync(dir).map((f) => join(dir, f))[0]!;
      const events = JSON.parse(readFileSync(file, 'utf8')) as { cat: string; name: string; dur: number; ts: number; args: { op_name?: string; input_type_shape?: Record<string, number[]>[] } }[];
      const lastRun = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').pop();
      const by = new Map<string, number>();
      let fwd = 0;
      let bwd = 0;
      for (const e of events) {
        if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || (lastRun && e.ts < lastRun.ts)) continue;
        const back = isBackward(e.name);
        const k = `${back ? 'bwd' : 'fwd'} ${e.args.op_name ?? '?'}`;
        by.set(k, (by.get(k) ?? 0) + e.dur / 1000);
        if (back) bwd += e.dur / 1000;
        else fwd += e.dur / 1000;
      }
      const total = fwd + bwd;
      console.log(`\n## ORT kernel time of the last run: ${total.toFixed(0)} ms (forward ${fwd.toFixed(0)}, backward ${bwd.toFixed(0)}; ${lastRun ? (lastRun.dur / 1000).toFixed(0) : '?'} ms wall in ORT)`);
      console.log('| op | ms | share |\n|---|---|---|');
      for (const [k, ms] of [...by].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`| ${k} | ${ms.toFixed(0)} | ${((100 * ms) / total).toFixed(1)}% |`);
      // The slowest op kinds by input shapes (e.g. which convolutions), summed over the blocks.
      const shapes = new Map<string, { ms: number; n: number }>();
      for (const e of events) {
        if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || (lastRun && e.ts < lastRun.ts)) continue;
        const sh = (e.args.input_type_shape ?? []).map((x) => `[${Object.values(x)[0]?.join(',')}]`).join(' ');
        const k = `${isBackward(e.name) ? 'bwd' : 'fwd'} ${e.args.op_name} ${sh}`;
        const x = shapes.get(k) ?? { ms: 0, n: 0 };
        x.ms += e.dur / 1000;
        x.n++;
        shapes.set(k, x);
      }
      console.log('\n| op and input shapes | nodes | ms | share |\n|---|---|---|---|');
      for (const [k, x] of [...shapes].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25)) console.log(`| ${k} | ${x.n} | ${x.ms.toFixed(0)} | ${((100 * x.ms) / total).toFixed(1)}% |`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
