/** The compiled training step with Adam: gradients land in the flat buffer and a small net learns. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { TrainStep } from '../src/train/step.js';
import { Adam } from '../src/train/adam.js';
import { randn } from './helpers/gradcheck.js';

function tinyNet(): { g: Graph; loss: ReturnType<typeof op.add> } {
  const g = new Graph('tiny');
  const x = g.input('x', [2, 3, 8, 8]);
  const y = g.input('y', [2, 3, 8, 8]);
  const h = op.leakyRelu(op.conv(x, g.param('a.weight', [8, 3, 3, 3]), g.param('a.bias', [8]), { pads: 1 }), 0.1);
  const out = op.add(op.conv(h, g.param('b.weight', [3, 8, 3, 3]), null, { pads: 1 }), op.mul(x, g.param('skip', [1])));
  const loss = op.reduceMean(op.abs(op.sub(out, y)), [0, 1, 2, 3], false);
  return { g, loss };
}

test('training step: frozen weights embedded, gradient norm, loss falls with Adam', async () => {
  const { g, loss } = tinyNet();
  const frozen = new Map([['skip', randn([1], 5)]]);
  const step = await TrainStep.create(g, loss, { frozen, session: { threads: 1 } });
  assert.deepEqual(step.layout.slots.map((s) => s.name), ['a.weight', 'a.bias', 'b.weight']);
  assert.deepEqual(step.dataInputs, ['x', 'y']);
  let flat: Float32Array = step.layout.pack(
    new Map([['a.weight', randn([8, 3, 3, 3], 1, 0.3)], ['a.bias', randn([8], 2, 0.1)], ['b.weight', randn([3, 8, 3, 3], 3, 0.3)]]),
  );
  const grads = new Float32Array(step.layout.total);
  const x = randn([2, 3, 8, 8], 10);
  // The target is a fixed function of x, so the net can fit it.
  const y = { ...x, data: Float32Array.from(x.data, (v, i) => Math.tanh(v) * 0.5 + (i % 7) * 0.01) };
  const adam = await Adam.create(step.layout.total, { lr: 1e-2 }, { threads: 1 });
  const losses: number[] = [];
  for (let i = 0; i < 40; i++) {
    const r = await step.run(step.layout.views(flat), { x, y }, grads);
    if (i === 0) {
      let ss = 0;
      for (const v of grads) ss += v * v;
      assert.ok(Math.abs(Math.sqrt(ss) - r.gradNorm) < 1e-4 * (1 + r.gradNorm), 'gradient norm matches the buffer');
      assert.ok(grads.some((v) => v !== 0));
    }
    losses.push(r.loss);
    flat = await adam.update(flat, grads);
  }
  assert.ok(losses.at(-1)! < 0.6 * losses[0]!, `loss fell from ${losses[0]} to ${losses.at(-1)}`);
  await assert.rejects(step.run(new Map(), { x, y }, grads), /missing weight 'a.weight'/);
  await step.release();
  await adam.release();
});

test('training step refuses parameters that are neither trainable nor frozen', async () => {
  const { g, loss } = tinyNet();
  await assert.rejects(TrainStep.create(g, loss, { trainable: ['a.weight'] }), /parameter 'a.bias' is neither trainable nor given as frozen/);
});

test('Adam with a compiled gradient scale, and in-place updates of a slice of a larger buffer', async () => {
  const n = 50;
  const p0 = randn([n], 21).data as Float32Array;
  const g = randn([n], 22).data as Float32Array;
  const plain = await Adam.create(n, { lr: 1e-2, eps: 1 }, { threads: 1 });
  const scaled = await Adam.create(n, { lr: 1e-2, eps: 1, gradScale: true }, { threads: 1 });
  const a = await plain.update(Float32Array.from(p0), Float32Array.from(g, (v) => v * 0.25));
  const b = await scaled.update(Float32Array.from(p0), g, 0.25);
  for (let i = 0; i < n; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-7);
  await assert.rejects(plain.update(a, g, 0.5), /a gradient scale needs the gradScale option/);
  // In place, on a view: the surrounding buffer is untouched and repeated updates never alias.
  const big = new Float32Array(n + 10).fill(7);
  big.set(p0, 5);
  const inPlace = await Adam.create(n, { lr: 1e-2 }, { threads: 1 });
  const ref = await Adam.create(n, { lr: 1e-2 }, { threads: 1 });
  let r: Float32Array = Float32Array.from(p0);
  for (let s = 0; s < 3; s++) {
    await inPlace.updateInPlace(big.subarray(5, 5 + n), g);
    r = await ref.update(r, g);
  }
  assert.deepEqual([...big.subarray(5, 5 + n)], [...r]);
  assert.deepEqual([...big.subarray(0, 5), ...big.subarray(5 + n)], new Array(10).fill(7));
  for (const o of [plain, scaled, inPlace, ref]) await o.release();
});
