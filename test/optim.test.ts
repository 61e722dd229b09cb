/** Adam and EMA over flat buffers against a float64 reference of PyTorch's update rule. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Adam } from '../src/train/adam.js';
import { Ema } from '../src/train/ema.js';
import { FLAT_CHUNK, FlatKernel } from '../src/train/flat-kernel.js';
import * as op from '../src/graph/ops.js';
import { ParamLayout } from '../src/train/params.js';
import { randn } from './helpers/gradcheck.js';

function refAdam(p: Float64Array, grads: Float64Array[], lr: number, b1: number, b2: number, eps: number, wd: number, decoupled: boolean): Float64Array {
  const m = new Float64Array(p.length);
  const v = new Float64Array(p.length);
  grads.forEach((g0, s) => {
    const t = s + 1;
    for (let i = 0; i < p.length; i++) {
      let g = g0[i]!;
      if (wd && !decoupled) g += wd * p[i]!;
      if (wd && decoupled) p[i]! *= 1 - lr * wd;
      m[i] = b1 * m[i]! + (1 - b1) * g;
      v[i] = b2 * v[i]! + (1 - b2) * g * g;
      const denom = Math.sqrt(v[i]!) / Math.sqrt(1 - b2 ** t) + eps;
      p[i] = p[i]! - (lr / (1 - b1 ** t)) * (m[i]! / denom);
    }
  });
  return p;
}

test('Adam matches PyTorch semantics (L2 and decoupled weight decay)', async () => {
  const n = 1000;
  for (const [wd, decoupled] of [[0, false], [0.01, false], [0.05, true]] as const) {
    const p0 = randn([n], 1).data;
    const grads = [0, 1, 2, 3, 4].map((s) => randn([n], 10 + s).data);
    const adam = await Adam.create(n, { lr: 2e-3, betas: [0.9, 0.99], eps: 1e-8, weightDecay: wd, decoupled }, { threads: 1 });
    let p: Float32Array = Float32Array.from(p0);
    for (const g of grads) p = await adam.update(p, g);
    const ref = refAdam(Float64Array.from(p0), grads.map((g) => Float64Array.from(g)), 2e-3, 0.9, 0.99, 1e-8, wd, decoupled);
    let maxErr = 0;
    for (let i = 0; i < n; i++) maxErr = Math.max(maxErr, Math.abs(p[i]! - ref[i]!));
    assert.ok(maxErr < 1e-6, `wd=${wd} decoupled=${decoupled}: max error ${maxErr}`);
    assert.equal(adam.step, 5);
    await adam.release();
  }
});

test('Adam updates in place over several chunks, the last one partial', async () => {
  const n = FLAT_CHUNK + 1234;
  const p0 = randn([n + 10], 6).data;
  const grads = [0, 1, 2].map((s) => randn([n], 20 + s).data);
  const adam = await Adam.create(n, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 }, { threads: 1 });
  const buf = Float32Array.from(p0);
  const p = buf.subarray(5, 5 + n);
  for (const g of grads) assert.equal(await adam.update(p, g), p, 'update returns the buffer it was given');
  const ref = refAdam(Float64Array.from(p0.subarray(5, 5 + n)), grads.map((g) => Float64Array.from(g)), 1e-3, 0.9, 0.999, 1e-8, 0.01, false);
  let maxErr = 0;
  for (let i = 0; i < n; i++) maxErr = Math.max(maxErr, Math.abs(p[i]! - ref[i]!));
  assert.ok(maxErr < 1e-6, `max error ${maxErr}`);
  for (const i of [0, 1, 2, 3, 4, n + 5, n + 9]) assert.equal(buf[i], p0[i], `value ${i} outside the view is untouched`);
  await adam.release();
});

test('a flat kernel whose outputs alias its inputs gives the out-of-place result, chunk by chunk', async () => {
  const n = 30;
  const x0 = randn([n], 7).data;
  const y0 = randn([n], 8).data;
  // Both outputs read x; x_out overwrites x and y_out overwrites y, 7 elements at a time.
  const k = await FlatKernel.create(n, ['x', 'y'], ['s'], (_g, f, s) => ({ x_out: op.add(op.mul(f.x!, s.s!), f.y!), y_out: op.sub(f.y!, f.x!) }), { threads: 1 }, 7);
  const x = Float32Array.from(x0);
  const y = Float32Array.from(y0);
  await k.run({ x, y }, { s: 3 }, { x_out: x, y_out: y });
  for (let i = 0; i < n; i++) {
    assert.ok(Math.abs(x[i]! - (3 * x0[i]! + y0[i]!)) < 1e-6, `x_out[${i}]`);
    assert.ok(Math.abs(y[i]! - (y0[i]! - x0[i]!)) < 1e-6, `y_out[${i}]`);
  }
  await assert.rejects(k.run({ x: new Float32Array(3), y }, { s: 1 }, { x_out: x, y_out: y }), /kernel input 'x' has 3 values, expected 30/);
  await k.release();
});

test('Adam minimises a quadratic', async () => {
  const n = 64;
  const target = randn([n], 3).data;
  const adam = await Adam.create(n, { lr: 0.05 }, { threads: 1 });
  let p: Float32Array = new Float32Array(n);
  for (let s = 0; s < 300; s++) p = await adam.update(p, Float32Array.from(p, (x, i) => 2 * (x - target[i]!)));
  for (let i = 0; i < n; i++) assert.ok(Math.abs(p[i]! - target[i]!) < 1e-2);
  await adam.release();
});

test('EMA follows ema = d·ema + (1−d)·p', async () => {
  const p0 = randn([100], 4).data;
  const ema = await Ema.create(p0, 0.9, { threads: 1 });
  const p1 = randn([100], 5).data;
  await ema.update(p1);
  await ema.update(p1);
  for (let i = 0; i < 100; i++) {
    const once = 0.9 * p0[i]! + 0.1 * p1[i]!;
    assert.ok(Math.abs(ema.weights[i]! - (0.9 * once + 0.1 * p1[i]!)) < 1e-6);
  }
  await ema.release();
  await assert.rejects(Ema.create(p0, 1.5), /EMA decay must be in \[0, 1\]/);
});

test('parameter layout packs and views without copies', () => {
  const layout = new ParamLayout([['a.weight', [2, 3]], ['a.bias', [3]]]);
  assert.equal(layout.total, 9);
  const flat = layout.pack(new Map([['a.weight', randn([2, 3], 6)], ['a.bias', randn([3], 7)]]));
  const views = layout.views(flat);
  (views.get('a.bias')!.data as Float32Array)[0] = 42;
  assert.equal(flat[6], 42);
  assert.throws(() => layout.pack(new Map([['a.weight', randn([2, 3], 6)]])), /missing parameter 'a.bias'/);
});
