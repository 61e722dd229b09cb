/** Graph builder, ONNX writer and runtime: build-time errors, model round trips, shapes. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { sym } from '../src/graph/dim.js';
import { grad } from '../src/graph/autodiff.js';
import { toOnnx, readOnnxSummary, OPSET } from '../src/graph/onnx.js';
import { compile } from '../src/runtime/compile.js';
import { Session, checkDevice } from '../src/runtime/session.js';
import { f32, type HostTensor } from '../src/tensor.js';
import { randn } from './helpers/gradcheck.js';

function oneLine(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof Error);
    assert.ok(!e.message.includes('\n'), `multi-line message: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('build-time errors', () => {
  test('shape mismatches name the op and the shapes', () => {
    const g = new Graph();
    const a = g.input('a', [2, 3]);
    const b = g.input('b', [4]);
    oneLine(() => op.add(a, b), /Add: shapes \[2,3\] and \[4\] do not broadcast/);
    oneLine(() => op.matmul(a, g.input('c', [2, 5])), /MatMul: inner dims differ/);
    const x = g.input('x', [1, 3, 8, 8]);
    const w = g.param('w', [4, 5, 3, 3]);
    oneLine(() => g.scope('G.patch_embed', () => op.conv(x, w)), /Conv in G\.patch_embed: input \[1,3,8,8\] does not fit weight \[4,5,3,3\]/);
    oneLine(() => op.reshape(x, [5, -1]), /Reshape: cannot reshape/);
    oneLine(() => op.pixelUnshuffle(g.input('odd', [1, 1, 6, 5]), 2), /PixelUnshuffle width 5 is not divisible by 2/);
  });
  test('an unknown op is refused by the writer, naming the node', () => {
    const g = new Graph();
    const x = g.input('x', [2]);
    const [y] = g.node('FooBar', [x], {}, [{ dtype: 'float32', shape: [2] }]);
    g.output(y!, 'y');
    oneLine(() => toOnnx(g, { params: 'initializers' }), /node FooBar: unknown op 'FooBar'/);
  });
  test('a gradient through a non-differentiable op names the node', () => {
    const g = new Graph();
    const x = g.input('x', [3]);
    const loss = g.scope('net', () => op.reduceSum(op.floor(op.mul(x, 2)), [0], false));
    oneLine(() => grad(loss, [x]), /cannot differentiate through node net\/Floor \(Floor\)/);
    const g2 = new Graph();
    const x2 = g2.input('x', [3]);
    const [y2] = g2.node('FooBar', [x2], {}, [{ dtype: 'float32', shape: [3] }]);
    oneLine(() => grad(op.reduceSum(y2!, [0], false), [x2]), /node FooBar \(FooBar\): no gradient rule/);
  });
  test('missing weights and wrong weight shapes are named', () => {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    g.output(op.matmul(x, g.param('lin.weight', [3, 4])), 'y');
    oneLine(() => toOnnx(g, { params: 'initializers' }), /parameter 'lin.weight' has no value/);
    oneLine(
      () => toOnnx(g, { params: 'initializers', weights: new Map([['lin.weight', f32([4, 3])]]) }),
      /parameter 'lin.weight': weight has shape \[4,3\] but the model needs \[3,4\]/,
    );
  });
  test('unavailable devices give a clear error', () => {
    oneLine(() => checkDevice('tpu' as 'cpu'), /unknown device 'tpu'/);
  });
});

describe('ONNX writer and runtime', () => {
  test('static graph: weights as initializers, unused nodes dropped, metadata kept', async () => {
    const g = new Graph('lin');
    const x = g.input('x', [2, 3]);
    const w = g.param('lin.weight', [3, 4], randn([3, 4], 1));
    op.exp(x); // dead code
    g.output(op.relu(op.matmul(x, w)), 'y');
    const bytes = toOnnx(g, { params: 'initializers', metadata: { task: 'test' } });
    const m = readOnnxSummary(bytes);
    assert.equal(m.opset, OPSET);
    assert.deepEqual(m.inputs, [{ name: 'x', dims: [2, 3] }]);
    assert.deepEqual(m.initializers, ['lin.weight']);
    assert.deepEqual(m.ops, ['MatMul', 'Relu', 'Identity']);
    assert.equal(m.metadata.task, 'test');
    const s = await Session.create(bytes, { threads: 1 });
    const xv = randn([2, 3], 2);
    const y = (await s.run({ x: xv })).y!;
    const wv = randn([3, 4], 1).data;
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 4; j++) {
        let acc = 0;
        for (let k = 0; k < 3; k++) acc += xv.data[i * 3 + k]! * wv[k * 4 + j]!;
        assert.ok(Math.abs((y.data as Float32Array)[i * 4 + j]! - Math.max(0, acc)) < 1e-5);
      }
    }
    await s.release();
    await assert.rejects(s.run({ x: xv }), /session was released/);
  });

  test('weights as graph inputs (training form)', async () => {
    const g = new Graph();
    const x = g.input('x', [1, 2]);
    g.output(op.matmul(x, g.param('w', [2, 1])), 'y');
    const m = readOnnxSummary(toOnnx(g, { params: 'inputs' }));
    assert.deepEqual(m.inputs.map((i) => i.name), ['x', 'w']);
    assert.deepEqual(m.initializers, []);
    const s = await compile(g, { params: 'inputs' }, { threads: 1 });
    const y = (await s.run({ x: f32([1, 2], [1, 2]), w: f32([2, 1], [3, 4]) })).y!;
    assert.deepEqual(Array.from(y.data as Float32Array), [11]);
    await assert.rejects(s.run({ x: f32([1, 2], [1, 2]) }), /missing input 'w'/);
    await s.release();
  });

  test('dynamic shapes: one model runs at several sizes and reports symbolic dims', async () => {
    const g = new Graph();
    const H = sym('H');
    const W = sym('W');
    const x = g.input('x', [1, 2, H, W]);
    const w = g.param('w', [8, 2, 3, 3], randn([8, 2, 3, 3], 3));
    const down = op.pixelUnshuffle(op.conv(x, w, null, { pads: 1 }), 2);
    const attn = op.softmax(op.matmul(op.reshape(down, [1, 32, -1]), op.transpose(op.reshape(down, [1, 32, -1]), [0, 2, 1])), -1);
    const up = op.pixelShuffle(op.reshape(op.matmul(attn, op.reshape(down, [1, 32, -1])), down.shape), 2);
    g.output(op.add(up, op.resize(op.pixelUnshuffle(x, 2), { mode: 'nearest', scale: 2 })), 'y');
    const bytes = toOnnx(g, { params: 'initializers' });
    assert.deepEqual(readOnnxSummary(bytes).outputs[0]!.dims, [1, 8, 'H', 'W']);
    const s = await Session.create(bytes, { threads: 1 });
    for (const [h, wd] of [[4, 6], [8, 8], [6, 10]] as const) {
      const y = (await s.run({ x: randn([1, 2, h, wd], 4) })).y!;
      assert.deepEqual(y.shape, [1, 8, h, wd]);
    }
    await s.release();
  });
});

describe('composed network gradients', () => {
  test('conv + layer norm + channel attention + MLP matches finite differences', async () => {
    const { checkGrad } = await import('./helpers/gradcheck.js');
    const C = 4;
    const inputs: HostTensor<'float32'>[] = [
      randn([2, 3, 6, 6], 50),
      randn([C, 3, 3, 3], 51, 0.5),
      randn([C], 52),
      randn([3 * C, C, 1, 1], 53, 0.5),
      randn([3 * C, 1, 3, 3], 54, 0.5),
      randn([16, C], 55, 0.5),
      randn([C, 16], 56, 0.5),
    ];
    await checkGrad('composed', inputs, (_g, [x, w0, lnw, wqkv, wdw, w1, w2]) => {
      const h = op.conv(x!, w0!, null, { pads: 1 });
      const mu = op.reduceMean(h, [1]);
      const d = op.sub(h, mu);
      const sd = op.sqrt(op.add(op.reduceMean(op.mul(d, d), [1]), 1e-5));
      const n = op.mul(op.div(d, sd), op.reshape(lnw!, [1, C, 1, 1]));
      const qkv = op.conv(op.conv(n, wqkv!), wdw!, null, { pads: 1, group: 3 * C });
      const [q, k, v] = op.chunk(qkv, 3, 1).map((t) => op.reshape(t, [2, 2, C / 2, 36]));
      const l2 = (t: typeof q) => op.div(t!, op.sqrt(op.add(op.reduceSum(op.mul(t!, t!), [-1]), 1e-12)));
      const a = op.softmax(op.matmul(l2(q), op.transpose(l2(k), [0, 1, 3, 2])), -1);
      const att = op.add(h, op.reshape(op.matmul(a, v!), [2, C, 6, 6]));
      const t = op.transpose(op.reshape(att, [2, C, 36]), [0, 2, 1]);
      const mlp = op.matmul(op.gelu(op.matmul(t, op.transpose(w1!, [1, 0]))), op.transpose(w2!, [1, 0]));
      return op.tanh(op.add(t, mlp));
    });
  });
});
