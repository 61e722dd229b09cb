/**
 * Rematerialisation and the backward-ordered gradient vector: the training step's loss and
 * gradients are the same with and without rematerialisation (small DiffIR stage-1 and stage-2
 * joint objectives: both LayerNorm kinds, DMTA, the DGFN's GELU, the IPR modulation), while
 * the backward reads fewer forward activations and the graph's tensors peak lower.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { preset, type DiffIRConfig } from '../src/models/config.js';
import { buildObjective, type LossKind } from '../src/train/objective.js';
import { TrainStep } from '../src/train/step.js';
import { initParams } from '../src/nn/init.js';
import { grad } from '../src/graph/autodiff.js';
import { rematerialize } from '../src/graph/remat.js';
import { Graph, type Value } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { toOnnx } from '../src/graph/onnx.js';
import { Session } from '../src/runtime/session.js';
import type { HostTensor } from '../src/tensor.js';
import { randn } from './helpers/gradcheck.js';

const tiny = (name: 'deblur-gopro' | 'realsr-x4'): DiffIRConfig => ({ ...preset(name), dim: 8, numBlocks: [1, 1, 1, 2], numRefinementBlocks: 1, nEncoderRes: 1 });
const objective = (cfg: DiffIRConfig, kind: LossKind, side = 16) => buildObjective({ kind, config: cfg, batch: 1, height: side, width: side, ...(kind === 's1' ? {} : { teacher: cfg }) });

/** The gradients as separate graph outputs (plain `grad`, no flat vector, no rematerialisation). */
async function plainGrads(cfg: DiffIRConfig, kind: LossKind): Promise<Map<string, Float32Array>> {
  const obj = objective(cfg, kind);
  const g = obj.graph;
  const w = initParams(g, 7);
  const names = obj.trainable;
  for (const [i, d] of grad(obj.loss, names.map((k) => g.params.get(k)!.value)).entries()) g.output(d, `d_${i}`);
  const s = await Session.create(toOnnx(g, { params: 'initializers', weights: w }), { threads: 1 });
  const data: Record<string, HostTensor> = Object.fromEntries(g.inputs.map((v, i) => [v.name, randn(v.shape as number[], 100 + i, 0.5)]));
  const r = await s.run(data);
  await s.release();
  return new Map(names.map((k, i) => [k, r[`d_${i}`]!.data as Float32Array]));
}

async function stepOnce(cfg: DiffIRConfig, kind: LossKind, remat: boolean): Promise<{ loss: number; grads: Float32Array; slots: readonly { name: string; offset: number; size: number }[] }> {
  const obj = objective(cfg, kind);
  const w = initParams(obj.graph, 7);
  const frozen = new Map(obj.frozen.map((k) => [k, w.get(k)!]));
  const step = await TrainStep.create(obj.graph, obj.loss, { trainable: obj.trainable, frozen, logs: obj.logs, rematerialize: remat, session: { threads: 1 } });
  const data = Object.fromEntries(obj.graph.inputs.map((v, i) => [v.name, randn(v.shape as number[], 100 + i, 0.5)]));
  const grads = new Float32Array(step.layout.total);
  const r = await step.run(step.layout.views(step.layout.pack(w)), data, grads);
  await step.release();
  return { loss: r.loss, grads, slots: step.layout.slots };
}

const bytes = (v: Value) => (v.shape as number[]).reduce((a, d) => a * d, 4);

/** Bytes of forward values read by the backward, and the peak of live tensors in node order. */
function memory(g: Graph, from: number): { saved: number; peak: number } {
  const fwd = new Set(g.nodes.slice(0, from));
  const saved = new Set<Value>();
  for (const n of g.nodes.slice(from)) for (const v of n.inputs) if (v?.producer && fwd.has(v.producer)) saved.add(v);
  const last = new Map<Value, number>();
  g.nodes.forEach((n, i) => n.inputs.forEach((v) => v?.producer && last.set(v, i)));
  let live = 0;
  let peak = 0;
  g.nodes.forEach((n, i) => {
    for (const o of n.outputs) if (last.has(o)) live += bytes(o);
    peak = Math.max(peak, live);
    for (const v of new Set(n.inputs)) if (v?.producer && last.get(v) === i) live -= bytes(v);
  });
  return { saved: [...saved].reduce((a, v) => a + bytes(v), 0), peak };
}

for (const [name, kind] of [['deblur-gopro', 's1'], ['realsr-x4', 's2joint']] as const) {
  test(`${name} ${kind}: loss and gradients unchanged by rematerialisation`, async () => {
    const a = await stepOnce(tiny(name), kind, true);
    const b = await stepOnce(tiny(name), kind, false);
    assert.ok(Math.abs(a.loss - b.loss) <= 1e-6 * Math.abs(b.loss), `loss ${a.loss} vs ${b.loss}`);
    let scale = 0;
    for (const v of b.grads) scale = Math.max(scale, Math.abs(v));
    let worst = 0;
    for (let i = 0; i < b.grads.length; i++) worst = Math.max(worst, Math.abs(a.grads[i]! - b.grads[i]!));
    assert.ok(scale > 0 && worst <= 1e-5 * scale, `largest gradient difference ${worst} (largest gradient ${scale})`);
    // The flat vector (concatenated in backward order, then permuted) holds each parameter's own gradient.
    const plain = await plainGrads(tiny(name), kind);
    for (const slot of a.slots) {
      const want = plain.get(slot.name)!;
      for (let i = 0; i < slot.size; i++) {
        const d = Math.abs(a.grads[slot.offset + i]! - want[i]!);
        if (d > 1e-5 * scale) assert.fail(`${slot.name}[${i}]: ${a.grads[slot.offset + i]} in the flat vector, ${want[i]} from grad()`);
      }
    }
  });

  test(`${name} ${kind}: the backward keeps fewer forward activations`, () => {
    // At 48² activations, not the weights and their gradients, make the peak.
    const obj = objective(tiny(name), kind, 48);
    const g = obj.graph;
    const from = g.nodes.length;
    const wrt = obj.trainable.map((k) => g.params.get(k)!.value);
    for (const [i, d] of grad(obj.loss, wrt).entries()) g.output(d, `d${i}`);
    const before = memory(g, from);
    const r = rematerialize(g, from);
    const after = memory(g, from);
    assert.ok(r.values > 0 && r.nodes >= r.values, `rematerialised ${r.values} values with ${r.nodes} nodes`);
    // The recomputed values are no longer kept; the copies may read small (broadcast) tensors instead.
    const freed = before.saved - after.saved;
    assert.ok(freed <= r.bytes && freed >= 0.9 * r.bytes, `freed ${freed} of the reported ${r.bytes} bytes`);
    assert.ok(after.peak < 0.9 * before.peak, `peak ${after.peak} vs ${before.peak}`);
    // Every node still comes after the producers of its inputs.
    const seen = new Set<Value>([...g.inputs, ...[...g.params.values()].map((p) => p.value), ...g.constants.keys()]);
    for (const n of g.nodes) {
      for (const v of n.inputs) assert.ok(!v || seen.has(v), `${n.name} reads ${v?.name} before it is made`);
      for (const o of n.outputs) seen.add(o);
    }
  });
}

test('recomputed copies of a commutative op, a small subtraction and an Erf chain give the same gradients', async () => {
  const build = (remat: boolean) => {
    const g = new Graph('chain');
    const x = g.input('x', [1, 4, 6, 6]);
    const w = g.param('w', [4, 4, 1, 1]);
    const b = g.param('b', [1, 4, 1, 1]);
    const h = op.conv(x, w);
    const c = op.sub(h, b); // small subtrahend: recomputed as h + (−b)
    const e = op.gelu(c); // Div, Erf, Add, Mul chain
    const y = op.mul(e, h); // commutative, both operands full size
    const loss = op.reduceSum(op.mul(y, y), [0, 1, 2, 3], false);
    const from = g.nodes.length;
    const [dw, db] = grad(loss, [w, b]);
    g.output(loss, 'loss');
    g.output(dw!, 'dw');
    g.output(db!, 'db');
    const r = remat ? rematerialize(g, from) : null;
    return { g, r, from };
  };
  const a = build(true);
  const b = build(false);
  assert.ok(a.r!.values >= 2, `rematerialised ${a.r!.values} values`);
  const ops = a.g.nodes.slice(a.from).filter((n) => n.name.includes('remat')).map((n) => n.op);
  assert.ok(ops.includes('Neg') && ops.includes('Mul'), `copies: ${ops.join(' ')}`);
  const weights = new Map<string, HostTensor>([['w', randn([4, 4, 1, 1], 1)], ['b', randn([1, 4, 1, 1], 2)]]);
  const x = randn([1, 4, 6, 6], 3);
  const run = async (g: Graph) => {
    const s = await Session.create(toOnnx(g, { params: 'initializers', weights }), { threads: 1 });
    const r = await s.run({ x });
    await s.release();
    return r;
  };
  const ra = await run(a.g);
  const rb = await run(b.g);
  for (const k of ['loss', 'dw', 'db']) {
    const u = ra[k]!.data as Float32Array;
    const v = rb[k]!.data as Float32Array;
    for (let i = 0; i < v.length; i++) assert.ok(Math.abs(u[i]! - v[i]!) <= 1e-6 * (1 + Math.abs(v[i]!)), `${k}[${i}]: ${u[i]} vs ${v[i]}`);
  }
});
