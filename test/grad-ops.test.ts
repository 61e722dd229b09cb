/** Every op's gradient against central finite differences. */
import { describe, test } from 'node:test';
import * as op from '../src/graph/ops.js';
import { checkGrad, randn, randu, randAway } from './helpers/gradcheck.js';
import { f32 } from '../src/tensor.js';

describe('elementwise gradients', () => {
  test('add/sub/mul/div with broadcasting', async () => {
    const a = randn([2, 3, 4], 1);
    const b = randu([3, 1], 2, 0.5, 2);
    await checkGrad('add', [a, b], (_g, [x, y]) => op.add(x!, y!));
    await checkGrad('sub', [a, b], (_g, [x, y]) => op.sub(x!, y!));
    await checkGrad('mul', [a, b], (_g, [x, y]) => op.mul(x!, y!));
    await checkGrad('div', [a, b], (_g, [x, y]) => op.div(x!, y!));
    await checkGrad('scalar ops', [a], (_g, [x]) => op.div(op.sub(op.mul(x!, 3), 1), 2));
  });
  test('pow with constant and variable exponent', async () => {
    const a = randu([3, 4], 3, 0.5, 2);
    await checkGrad('pow const', [a], (_g, [x]) => op.pow(x!, 2.5));
    await checkGrad('pow var', [a, randu([4], 4, -1, 1)], (_g, [x, y]) => op.pow(x!, y!));
  });
  test('unary functions', async () => {
    const a = randn([2, 5], 5);
    const pos = randu([2, 5], 6, 0.3, 3);
    const away = randAway([2, 5], 7);
    for (const [name, f] of [
      ['exp', op.exp],
      ['erf', op.erf],
      ['tanh', op.tanh],
      ['sigmoid', op.sigmoid],
      ['softplus', op.softplus],
      ['neg', op.neg],
      ['gelu', op.gelu],
    ] as const) {
      await checkGrad(name, [a], (_g, [x]) => f(x!));
    }
    await checkGrad('sqrt', [pos], (_g, [x]) => op.sqrt(x!));
    await checkGrad('log', [pos], (_g, [x]) => op.log(x!));
    await checkGrad('reciprocal', [pos], (_g, [x]) => op.reciprocal(x!));
    await checkGrad('abs', [away], (_g, [x]) => op.abs(x!));
    await checkGrad('relu', [away], (_g, [x]) => op.relu(x!));
    await checkGrad('leakyRelu', [away], (_g, [x]) => op.leakyRelu(x!, 0.1));
    await checkGrad('clip', [away], (_g, [x]) => op.clip(x!, -0.5, 0.7));
  });
  test('where with comparisons', async () => {
    const a = randAway([3, 4], 8);
    const b = randn([4], 9);
    await checkGrad('where', [a, b], (_g, [x, y]) => op.whereOp(op.greater(x!, 0), op.mul(x!, y!), op.exp(y!)));
  });
  test('cast float to float', async () => {
    await checkGrad('cast', [randn([3], 10)], (_g, [x]) => op.mul(op.cast(x!, 'float32'), 2));
  });
});

describe('linear algebra gradients', () => {
  test('matmul 2-D and batched with broadcasting', async () => {
    await checkGrad('matmul2d', [randn([3, 4], 11), randn([4, 5], 12)], (_g, [a, b]) => op.matmul(a!, b!));
    await checkGrad('matmul batched', [randn([2, 3, 3, 4], 13), randn([3, 4, 2], 14)], (_g, [a, b]) => op.matmul(a!, b!));
  });
  test('gemm with transposes and C', async () => {
    for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const a = randn(tA ? [4, 3] : [3, 4], 15);
      const b = randn(tB ? [5, 4] : [4, 5], 16);
      await checkGrad(`gemm ${tA} ${tB}`, [a, b, randn([5], 17)], (_g, [x, y, c]) => op.gemm(x!, y!, c!, { transA: tA, transB: tB, alpha: 0.7, beta: 1.3 }));
    }
  });
});

describe('reduction gradients', () => {
  test('reduce sum/mean/max, softmax, log-softmax', async () => {
    const a = randn([2, 3, 4], 18);
    await checkGrad('reduceSum', [a], (_g, [x]) => op.reduceSum(x!, [1], true));
    await checkGrad('reduceSum nokeep', [a], (_g, [x]) => op.reduceSum(x!, [0, 2], false));
    await checkGrad('reduceMean', [a], (_g, [x]) => op.reduceMean(x!, [2], false));
    await checkGrad('reduceMax', [a], (_g, [x]) => op.reduceMax(x!, [1], true));
    await checkGrad('reduceMax nokeep', [a], (_g, [x]) => op.reduceMax(x!, [2], false));
    await checkGrad('softmax', [a], (_g, [x]) => op.softmax(x!, -1));
    await checkGrad('logSoftmax', [a], (_g, [x]) => op.logSoftmax(x!, 1));
  });
});

describe('shape op gradients', () => {
  const a = randn([2, 6, 4, 5], 19);
  test('concat, split, reshape, transpose, squeeze, expand', async () => {
    await checkGrad('concat', [a, randn([2, 2, 4, 5], 20)], (_g, [x, y]) => op.concat([op.exp(x!), y!, x!], 1));
    await checkGrad('split', [a], (_g, [x]) => {
      const [p, q, r] = op.split(x!, [1, 2, 3], 1);
      return op.add(op.mul(p!, 2), op.reduceSum(op.mul(q!, r!.graph && op.slice(r!, [0], [2], [1])), [1], true));
    });
    await checkGrad('split unused part', [a], (_g, [x]) => op.split(x!, [4, 2], 1)[1]!);
    await checkGrad('reshape+transpose', [a], (_g, [x]) => op.transpose(op.reshape(x!, [2, 3, 2, 20]), [2, 0, 3, 1]));
    await checkGrad('unsqueeze/squeeze', [a], (_g, [x]) => op.squeeze(op.unsqueeze(x!, [0]), [0]));
    await checkGrad('expand', [randn([3, 1], 21)], (_g, [x]) => op.expand(x!, [2, 3, 4]));
  });
  test('slice with steps and negative indices', async () => {
    await checkGrad('slice', [a], (_g, [x]) => op.slice(x!, [1, -4], [5, 4], [1, 3]));
    await checkGrad('slice step 2', [a], (_g, [x]) => op.slice(x!, [1, 0], [6, 5], [1, 3], [2, 3]));
    await checkGrad('slice step -1', [a], (_g, [x]) => op.flip(x!, [2, 3]));
    await checkGrad('slice step -2', [a], (_g, [x]) => op.slice(x!, [5], [0], [1], [-2]));
  });
  test('pad constant, reflect, edge', async () => {
    const p = [0, 0, 1, 2, 0, 0, 3, 1];
    await checkGrad('pad constant', [a], (_g, [x]) => op.pad(x!, p, 'constant', 0.5));
    await checkGrad('pad reflect', [a], (_g, [x]) => op.pad(x!, p, 'reflect'));
    await checkGrad('pad edge', [a], (_g, [x]) => op.pad(x!, p, 'edge'));
  });
  test('pixel shuffle and unshuffle', async () => {
    await checkGrad('pixelShuffle', [randn([1, 8, 3, 2], 22)], (_g, [x]) => op.pixelShuffle(x!, 2));
    await checkGrad('pixelUnshuffle', [randn([1, 2, 4, 6], 23)], (_g, [x]) => op.pixelUnshuffle(x!, 2));
  });
  test('resize nearest, bilinear, bicubic', async () => {
    const x = randn([1, 2, 5, 6], 24);
    await checkGrad('resize nearest x2', [x], (_g, [v]) => op.resize(v!, { mode: 'nearest', scale: 2 }));
    await checkGrad('resize nearest x4 sizes', [x], (_g, [v]) => op.resize(v!, { mode: 'nearest', size: [20, 24] }));
    await checkGrad('resize bilinear x2', [x], (_g, [v]) => op.resize(v!, { mode: 'linear', scale: 2 }));
    await checkGrad('resize bilinear down', [x], (_g, [v]) => op.resize(v!, { mode: 'linear', size: [3, 4] }));
    await checkGrad('resize bilinear align corners', [x], (_g, [v]) => op.resize(v!, { mode: 'linear', size: [7, 9], coordinateTransform: 'align_corners' }));
    await checkGrad('resize bicubic x2', [x], (_g, [v]) => op.resize(v!, { mode: 'cubic', scale: 2 }));
    await checkGrad('resize bicubic down', [x], (_g, [v]) => op.resize(v!, { mode: 'cubic', size: [3, 3] }));
  });
});

describe('convolution and pooling gradients', () => {
  test('dense 3x3 conv (batch 1 and 2) with bias', async () => {
    await checkGrad('conv3x3 b1', [randn([1, 3, 6, 5], 25), randn([4, 3, 3, 3], 26), randn([4], 27)], (_g, [x, w, b]) => op.conv(x!, w!, b!, { pads: 1 }));
    await checkGrad('conv3x3 b2', [randn([2, 3, 6, 5], 28), randn([4, 3, 3, 3], 29)], (_g, [x, w]) => op.conv(x!, w!, null, { pads: 1 }));
  });
  test('1x1, depthwise, grouped, strided, dilated convs', async () => {
    await checkGrad('conv1x1', [randn([2, 5, 4, 3], 30), randn([6, 5, 1, 1], 31)], (_g, [x, w]) => op.conv(x!, w!));
    await checkGrad('depthwise', [randn([2, 4, 5, 6], 32), randn([4, 1, 3, 3], 33)], (_g, [x, w]) => op.conv(x!, w!, null, { pads: 1, group: 4 }));
    await checkGrad('grouped', [randn([1, 4, 5, 5], 34), randn([6, 2, 3, 3], 35)], (_g, [x, w]) => op.conv(x!, w!, null, { pads: 1, group: 2 }));
    await checkGrad('strided', [randn([2, 3, 7, 6], 36), randn([4, 3, 3, 3], 37)], (_g, [x, w]) => op.conv(x!, w!, null, { pads: 1, stride: 2 }));
    await checkGrad('strided 4x4', [randn([1, 3, 8, 8], 38), randn([2, 3, 4, 4], 39)], (_g, [x, w]) => op.conv(x!, w!, null, { pads: [1, 1, 2, 2], stride: 2 }));
    await checkGrad('dilated', [randn([1, 2, 7, 7], 40), randn([3, 2, 3, 3], 41)], (_g, [x, w]) => op.conv(x!, w!, null, { pads: 2, dilation: 2 }));
    await checkGrad('no padding 5x5', [randn([1, 2, 7, 8], 42), randn([3, 2, 5, 5], 43)], (_g, [x, w]) => op.conv(x!, w!));
  });
  test('transposed conv', async () => {
    await checkGrad('convTranspose', [randn([2, 4, 3, 3], 44), randn([4, 3, 3, 3], 45), randn([3], 46)], (_g, [x, w, b]) =>
      op.convTranspose(x!, w!, b!, { stride: 2, pads: 1, outputPadding: 1 }),
    );
    await checkGrad('convTranspose grouped', [randn([1, 4, 3, 4], 47), randn([4, 2, 4, 4], 48)], (_g, [x, w]) =>
      op.convTranspose(x!, w!, null, { stride: 2, pads: 1, group: 2 }),
    );
  });
  test('average, global and max pooling', async () => {
    const x = randn([2, 3, 6, 6], 49);
    await checkGrad('avgpool 2x2', [x], (_g, [v]) => op.averagePool(v!, { kernel: 2 }));
    await checkGrad('avgpool 3x3 pad incl', [x], (_g, [v]) => op.averagePool(v!, { kernel: 3, stride: 1, pads: 1 }));
    await checkGrad('avgpool 3x3 pad excl', [x], (_g, [v]) => op.averagePool(v!, { kernel: 3, stride: 2, pads: 1, countIncludePad: false }));
    await checkGrad('global avgpool', [x], (_g, [v]) => op.globalAveragePool(v!));
    // Distinct, well-separated values so that no max changes under the perturbation.
    const perm = f32([2, 3, 6, 6], Float32Array.from({ length: 216 }, (_, i) => ((i * 97) % 216) * 0.05));
    await checkGrad('maxpool 2x2', [perm], (_g, [v]) => op.maxPool(v!, { kernel: 2 }));
    await checkGrad('maxpool 3x3 s2 p1', [perm], (_g, [v]) => op.maxPool(v!, { kernel: 3, stride: 2, pads: 1 }));
  });
});
