/**
 * Second-order gradients (the VJP of a VJP graph) against finite differences of the
 * first-order gradient: every op that first-order VJP graphs emit on the discriminator path
 * (convolutions and their adjoints, LeakyReLU's Where, BatchNorm's reductions, softplus …),
 * then BatchNorm in training mode and the R1 penalty of a small discriminator as wholes.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as op from '../src/graph/ops.js';
import { Graph } from '../src/graph/ir.js';
import { grad, isDifferentiable } from '../src/graph/autodiff.js';
import { BatchNormState, batchNorm2d } from '../src/nn/batchnorm.js';
import { checkGrad, checkGrad2, randn, randu, randAway } from './helpers/gradcheck.js';

describe('second-order gradients of elementwise ops', () => {
  test('mul, div, pow, sqrt, reciprocal, exp, log with broadcasting', async () => {
    const a = randu([2, 3, 4], 101, 0.5, 2);
    const b = randu([3, 1], 102, 0.5, 2);
    await checkGrad2('mul²', [a, b], (_g, [x, y]) => op.mul(op.mul(x!, y!), x!));
    await checkGrad2('div²', [a, b], (_g, [x, y]) => op.div(x!, y!));
    await checkGrad2('div² (denominator)', [b, a], (_g, [x, y]) => op.div(y!, x!));
    await checkGrad2('sub/add²', [a, b], (_g, [x, y]) => op.mul(op.sub(x!, y!), op.add(x!, y!)));
    await checkGrad2('pow²', [a], (_g, [x]) => op.pow(x!, 2.5));
    await checkGrad2('sqrt²', [a], (_g, [x]) => op.sqrt(x!));
    await checkGrad2('reciprocal²', [a], (_g, [x]) => op.reciprocal(x!));
    await checkGrad2('exp²', [a], (_g, [x]) => op.exp(op.neg(x!)));
    await checkGrad2('log²', [a], (_g, [x]) => op.log(x!));
  });
  test('softplus, sigmoid, tanh, leakyRelu, where, abs', async () => {
    const a = randn([2, 5], 103);
    const away = randAway([2, 5], 104);
    await checkGrad2('softplus²', [a], (_g, [x]) => op.softplus(x!));
    await checkGrad2('sigmoid²', [a], (_g, [x]) => op.sigmoid(x!));
    await checkGrad2('tanh²', [a], (_g, [x]) => op.tanh(x!));
    // Piecewise linear: the second derivative in x is 0, but in a scale it is not.
    await checkGrad2('leakyRelu² (scaled)', [away, randu([5], 105, 0.5, 2)], (_g, [x, s]) => op.leakyRelu(op.mul(x!, s!), 0.2));
    await checkGrad2('where²', [away, randn([5], 106)], (_g, [x, y]) => op.whereOp(op.greater(x!, 0), op.mul(x!, op.mul(x!, y!)), op.exp(op.mul(x!, y!))));
    await checkGrad2('abs²', [away, randn([5], 107)], (_g, [x, y]) => op.mul(op.abs(x!), op.mul(x!, y!)));
  });
});

describe('second-order gradients of reductions, shapes and linear algebra', () => {
  const a = randn([2, 3, 4, 5], 110);
  test('reduceSum, reduceMean, expand, Sum of gradients', async () => {
    await checkGrad2('reduceMean²', [a], (_g, [x]) => op.mul(x!, op.reduceMean(op.mul(x!, x!), [0, 2, 3], true)));
    await checkGrad2('reduceSum²', [a], (_g, [x]) => op.mul(op.reduceSum(op.mul(x!, x!), [1], false), op.reduceSum(x!, [1], false)));
    await checkGrad2('expand²', [randn([3, 1], 111)], (_g, [x]) => op.mul(op.expand(x!, [2, 3, 4]), op.expand(x!, [2, 3, 4])));
    // x used three times: the first-order graph accumulates with a Sum node.
    await checkGrad2('Sum²', [a], (_g, [x]) => op.add(op.mul(x!, op.exp(x!)), op.tanh(x!)));
  });
  test('slice, flip, pad, concat, split, transpose, reshape', async () => {
    await checkGrad2('slice²', [a], (_g, [x]) => op.mul(op.slice(x!, [1, 0], [4, 5], [2, 3], [2, 2]), op.slice(x!, [0, 0], [3, 5], [2, 3], [2, 2])));
    await checkGrad2('flip²', [a], (_g, [x]) => op.mul(op.flip(x!, [2, 3]), x!));
    await checkGrad2('pad²', [a], (_g, [x]) => op.mul(op.pad(x!, [0, 0, 1, 2, 0, 0, 2, 1]), op.pad(op.exp(x!), [0, 0, 1, 2, 0, 0, 2, 1])));
    await checkGrad2('concat/split²', [a], (_g, [x]) => {
      const [p, q] = op.split(x!, [1, 2], 1);
      return op.concat([op.mul(p!, p!), op.mul(q!, op.sigmoid(q!))], 1);
    });
    await checkGrad2('transpose/reshape²', [a], (_g, [x]) => op.mul(op.reshape(op.transpose(x!, [0, 2, 1, 3]), [2, 4, 15]), op.reshape(x!, [2, 4, 15])));
  });
  test('gemm and matmul', async () => {
    await checkGrad2('gemm²', [randn([3, 4], 112), randn([5, 4], 113)], (_g, [x, y]) => op.mul(op.gemm(x!, y!, null, { transB: true }), op.gemm(x!, y!, null, { transB: true })));
    await checkGrad2('matmul²', [randn([2, 3, 4], 114), randn([4, 2], 115)], (_g, [x, y]) => op.tanh(op.matmul(x!, y!)));
  });
});

describe('second-order gradients of convolutions', () => {
  // LeakyReLU between the convolutions makes the first-order input gradient depend on both weights.
  const twoConvs = (s1: number, s2: number, p: number, k: number) => (_g: Graph, [x, w1, w2]: import('../src/graph/ir.js').Value[]) =>
    op.conv(op.softplus(op.conv(x!, w1!, null, { stride: s1, pads: p })), w2!, null, { stride: s2, pads: p });
  test('4×4 stride 2 pad 2 and stride 1 pad 2 (the NLayerDiscriminator convs)', async () => {
    await checkGrad2('conv k4 s2 p2 ²', [randn([2, 3, 9, 9], 120), randn([4, 3, 4, 4], 121, 0.3), randn([2, 4, 4, 4], 122, 0.3)], twoConvs(2, 2, 2, 4));
    await checkGrad2('conv k4 s1 p2 ²', [randn([2, 2, 6, 6], 123), randn([3, 2, 4, 4], 124, 0.3), randn([2, 3, 4, 4], 125, 0.3)], twoConvs(1, 1, 2, 4));
  });
  test('3×3 with bias, 1×1, depthwise, dilated, transposed', async () => {
    await checkGrad2('conv3x3 bias²', [randn([1, 2, 5, 5], 126), randn([3, 2, 3, 3], 127, 0.3), randn([3], 128)], (_g, [x, w, b]) => op.softplus(op.conv(x!, w!, b!, { pads: 1 })));
    await checkGrad2('conv1x1²', [randn([2, 3, 4, 4], 129), randn([2, 3, 1, 1], 130)], (_g, [x, w]) => op.sigmoid(op.conv(x!, w!)));
    await checkGrad2('depthwise²', [randn([1, 3, 5, 5], 131), randn([3, 1, 3, 3], 132, 0.3)], (_g, [x, w]) => op.softplus(op.conv(x!, w!, null, { pads: 1, group: 3 })));
    await checkGrad2('dilated²', [randn([1, 2, 7, 7], 133), randn([2, 2, 3, 3], 134, 0.3)], (_g, [x, w]) => op.softplus(op.conv(x!, w!, null, { pads: 2, dilation: 2 })));
    await checkGrad2('convTranspose²', [randn([1, 3, 3, 3], 135), randn([3, 2, 4, 4], 136, 0.3)], (_g, [x, w]) => op.softplus(op.convTranspose(x!, w!, null, { stride: 2, pads: 1 })));
  });
});

describe('BatchNorm in training mode', () => {
  const bn = (g: Graph, x: import('../src/graph/ir.js').Value) => batchNorm2d(g, 'bn', x, new BatchNormState(g, 'batch-only'), { affine: false });
  test('first order through the batch statistics', async () => {
    await checkGrad('batchnorm', [randn([2, 3, 4, 5], 140, 2)], (g, [x]) => bn(g, x!));
  });
  test('second order through the batch statistics', async () => {
    await checkGrad2('batchnorm²', [randn([2, 3, 4, 5], 141, 2), randu([1, 3, 1, 1], 142, 0.5, 2)], (g, [x, s]) => op.softplus(op.mul(bn(g, x!), s!)));
  });
  test('R1 penalty of conv → BN → LeakyReLU → conv, w.r.t. the weights and the image', async () => {
    const x = randn([2, 2, 8, 8], 143);
    const w1 = randn([3, 2, 4, 4], 144, 0.3);
    const w2 = randn([1, 3, 4, 4], 145, 0.3);
    const gamma = randu([1, 3, 1, 1], 146, 0.5, 1.5);
    await checkGrad(
      'r1 penalty',
      [x, w1, w2, gamma],
      (g, [img, a, b, s]) => {
        const h = op.leakyRelu(op.mul(bn(g, op.conv(img!, a!, null, { stride: 2, pads: 2 })), s!), 0.2);
        const d = op.conv(h, b!, null, { pads: 2 });
        const [gi] = grad(op.reduceSum(d, [0, 1, 2, 3], false), [img!]);
        return op.reduceSum(op.mul(gi!, gi!), [1, 2, 3], false);
      },
      { directions: 3 },
    );
  });
});

test('every op of a first-order discriminator gradient has a rule of its own', () => {
  const g = new Graph('ops');
  const x = g.input('x', [2, 3, 16, 16]);
  const w = g.param('w', [4, 3, 4, 4]);
  const w2 = g.param('w2', [1, 4, 4, 4]);
  const before = g.nodes.length;
  const h = op.leakyRelu(batchNorm2d(g, 'bn', op.conv(x, w, null, { stride: 2, pads: 2 }), new BatchNormState(g, 'train')), 0.2);
  const d = op.conv(h, w2, null, { pads: 2 });
  const loss = op.reduceMean(op.softplus(op.neg(d)), [0, 1, 2, 3], false);
  const mid = g.nodes.length;
  grad(op.add(loss, op.reduceSum(d, [0, 1, 2, 3], false)), [x, w, w2]);
  const ops = new Set(g.nodes.slice(mid).map((n) => n.op));
  assert.ok(mid > before && ops.size > 5);
  for (const o of ops) assert.ok(isDifferentiable(o), `no VJP rule for ${o}, which first-order gradients emit`);
});
