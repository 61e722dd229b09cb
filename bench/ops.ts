/**
 * Forward and backward time of the main ops of DiffIR on ONNX Runtime (CPU), with
 * the shapes of a deblur-size DIRformer level (dim 48 at 128×128, batch 1).
 * Prints medians, the backward/forward ratio and the achieved GFLOP/s. Outputs are
 * summed inside the graph, so the figures are compute time without output copies.
 *
 *   npm run bench:ops [-- --runs 10 --threads 2 --size 128]
 */
import { Graph, type Value } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { grad } from '../src/graph/autodiff.js';
import { compile } from '../src/runtime/compile.js';
import type { HostTensor } from '../src/tensor.js';
import { flag, machine, median, rand, timeIt } from './util.js';

interface Case {
  name: string;
  inputs: Record<string, readonly number[]>;
  f: (xs: Record<string, Value>) => Value;
  /** Multiply-adds of the forward pass. */
  macs: number;
}

const runs = Number(flag('runs', '10'));
const threads = Number(flag('threads', '2'));
const S = Number(flag('size', '128'));
const C = 48;
const P = S * S;

const cases: Case[] = [
  { name: `conv3x3 dense ${C}→${C}`, inputs: { x: [1, C, S, S], w: [C, C, 3, 3] }, f: (v) => op.conv(v.x!, v.w!, null, { pads: 1 }), macs: C * C * 9 * P },
  {
    name: `conv3x3 depthwise ${3 * C}`,
    inputs: { x: [1, 3 * C, S, S], w: [3 * C, 1, 3, 3] },
    f: (v) => op.conv(v.x!, v.w!, null, { pads: 1, group: 3 * C }),
    macs: 3 * C * 9 * P,
  },
  { name: `conv1x1 ${C}→${3 * C}`, inputs: { x: [1, C, S, S], w: [3 * C, C, 1, 1] }, f: (v) => op.conv(v.x!, v.w!), macs: 3 * C * C * P },
  {
    name: `matmul q·kᵀ (${C}×${P})·(${P}×${C})`,
    inputs: { q: [1, 1, C, P], k: [1, 1, C, P] },
    f: (v) => op.matmul(v.q!, op.transpose(v.k!, [0, 1, 3, 2])),
    macs: C * C * P,
  },
];

async function measure(c: Case, backward: boolean): Promise<number> {
  const g = new Graph(c.name);
  const xs: Record<string, Value> = {};
  for (const [k, s] of Object.entries(c.inputs)) xs[k] = g.input(k, s);
  const y = c.f(xs);
  if (backward) {
    const r = rand(y.shape as number[], 7);
    const loss = op.reduceSum(op.mul(y, op.constF32(g, r.shape, r.data)), y.shape.map((_, i) => i), false);
    // Each gradient is reduced in-graph so that the timing measures compute, not copying outputs to JS.
    grad(loss, Object.values(xs)).forEach((gv, i) => g.output(op.reduceSum(gv, gv.shape.map((_, j) => j), false), `g${i}`));
    g.output(loss, 'loss');
  } else g.output(op.reduceSum(y, y.shape.map((_, j) => j), false), 'y');
  const s = await compile(g, { params: 'initializers' }, { threads });
  const feeds: Record<string, HostTensor> = {};
  let seed = 1;
  for (const [k, sh] of Object.entries(c.inputs)) feeds[k] = rand(sh, seed++);
  const t = median(await timeIt(() => s.run(feeds), runs, 2));
  await s.release();
  return t;
}

console.log(`# op benchmark: ONNX Runtime CPU, ${threads} threads, median of ${runs} runs`);
console.log(`# machine: ${machine()}`);
console.log('| op | forward ms | fwd+bwd ms | (fwd+bwd)/fwd | fwd GFLOP/s | fwd+bwd GFLOP/s |');
console.log('|---|---|---|---|---|---|');
for (const c of cases) {
  const f = await measure(c, false);
  const fb = await measure(c, true);
  const gf = (2 * c.macs) / (f * 1e6);
  const gfb = (3 * 2 * c.macs) / (fb * 1e6);
  console.log(`| ${c.name} @${S}² | ${f.toFixed(2)} | ${fb.toFixed(2)} | ${(fb / f).toFixed(2)} | ${gf.toFixed(1)} | ${gfb.toFixed(1)} |`);
}
