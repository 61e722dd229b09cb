/**
 * Graphs arranged for the runtime's channel block (`channelBlock`, ORT's NCHWc CPU kernels)
 * compute what the plain graphs compute: the convolution moved before a PixelShuffle, the
 * DGFN with a zero-padded hidden width and its halves on their own convolutions, DMTA's q, k
 * and v on their own convolutions, and the whole restore graph, against the plain
 * formulation in the same ORT (independent of the layout the rewrite targets).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { conv2d, conv2dAfterShuffle } from '../src/nn/conv.js';
import { dgfn } from '../src/nn/dgfn.js';
import { dmta } from '../src/nn/dmta.js';
import { initParams } from '../src/nn/init.js';
import { compile } from '../src/runtime/compile.js';
import { preset } from '../src/models/config.js';
import { DiffIRS2 } from '../src/models/diffir.js';
import { wholeImageGraph } from '../src/restore/graphs.js';
import { type HostTensor, type TensorMap, f32 } from '../src/tensor.js';
import { Rng } from '../src/random.js';
import { maxAbs } from './helpers/tensors.js';

/** Uniform [−1, 1) test tensor. */
function rand(shape: readonly number[], seed: number): HostTensor<'float32'> {
  const r = new Rng(seed);
  return f32(shape, Float32Array.from({ length: shape.reduce((p, d) => p * d, 1) }, () => 2 * r.uniform() - 1));
}

/** Builds a one-input graph on `x`. */
type Build = (g: Graph, x: ReturnType<Graph['input']>) => ReturnType<Graph['input']>;

/** Runs the one-input graph built by `build` with `weights` (default: its own random init). */
async function run(build: Build, x: HostTensor, weights?: TensorMap): Promise<{ out: HostTensor; weights: TensorMap }> {
  const g = new Graph('t');
  g.output(build(g, g.input('x', x.shape as number[])), 'y');
  const w = weights ?? initParams(g, 3);
  const s = await compile(g, { params: 'initializers', weights: w });
  try {
    return { out: (await s.run({ x }))['y']!, weights: w };
  } finally {
    await s.release();
  }
}

/** Largest difference between the graph arranged for the channel block and the plain one, with the plain one's weights. */
async function arrangedDiff(plain: Build, arranged: Build, x: HostTensor): Promise<number> {
  const a = await run(plain, x);
  const b = await run(arranged, x, a.weights);
  assert.deepEqual(b.out.shape, a.out.shape);
  return maxAbs(b.out, a.out);
}

test('conv2dAfterShuffle equals conv2d after pixelShuffle (r = 2, 3; k = 1, 3, 5; with and without bias)', async () => {
  for (const [r, k, bias, cout] of [
    [2, 3, true, 3],
    [3, 3, false, 2],
    [2, 5, true, 1],
    [2, 1, true, 4],
  ] as const) {
    const cin = 4;
    const x = rand([1, cin * r * r, 5, 6], 11);
    const o = { inChannels: cin, outChannels: cout, kernelSize: k, bias };
    const d = await arrangedDiff((g, v) => conv2d(g, 'c', op.pixelShuffle(v, r), o), (g, v) => conv2dAfterShuffle(g, 'c', v, o, r), x);
    assert.ok(d < 1e-5, `r ${r} k ${k}: differs by ${d}`);
  }
});

test('DGFN arranged for the channel block (hidden width padded, halves on their own) equals the plain DGFN', async () => {
  // dim 32 · 2.66 → hidden 85, padded to 88; with biases too.
  for (const bias of [false, true]) {
    const o = { dim: 32, ffnExpansionFactor: 2.66, bias };
    const d = await arrangedDiff((g, v) => dgfn(g, 'f', v, o), (g, v) => dgfn(g, 'f', v, { ...o, channelBlock: 8 }), rand([1, 32, 6, 7], 5));
    assert.ok(d < 1e-5, `bias ${bias}: differs by ${d}`);
  }
});

test('DMTA with q, k and v on their own convolutions (channel block 8) equals the plain DMTA', async () => {
  for (const bias of [false, true]) {
    const o = { dim: 16, heads: 2, bias };
    const d = await arrangedDiff((g, v) => dmta(g, 'a', v, o), (g, v) => dmta(g, 'a', v, { ...o, channelBlock: 8 }), rand([1, 16, 6, 7], 6));
    assert.ok(d < 1e-5, `bias ${bias}: differs by ${d}`);
  }
});

test('the restore graph for ORT CPU (channel block 8) equals the plain one', async () => {
  // realsr ×4 with an off-block DGFN width (2.66) and the 3-channel tail conv.
  const cfg = { ...preset('realsr-x4'), dim: 8, numBlocks: [1, 1, 1, 1] as const, numRefinementBlocks: 1, nEncoderRes: 1 };
  const weights = initParams(DiffIRS2(cfg), 2);
  const image = rand([1, 3, 16, 16], 9);
  const feeds = { image: { ...image, data: image.data.map((v) => 0.5 + 0.4 * v) }, x_T: rand([1, 256], 4) };
  const outs: HostTensor[] = [];
  for (const channelBlock of [1, 8]) {
    const s = await compile(wholeImageGraph(cfg, 16, 16, { channelBlock }), { params: 'initializers', weights });
    outs.push((await s.run(feeds))['out']!);
    await s.release();
  }
  const d = maxAbs(outs[1]!, outs[0]!);
  assert.ok(d < 1e-5, `differs by ${d}`);
});
