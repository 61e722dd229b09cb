/**
 * One transformer block in tile mode (pass A sums over tiles, pass B per tile) equals the block
 * on the whole map: with and without convolution biases (the in-image mask goes before a
 * bias-free 1×1 conv and after one with a bias), on grids whose tiles overlap (an ownership
 * mask) and on grids whose tiles do not (none).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../src/graph/ir.js';
import { cropBorder } from '../src/nn/tile.js';
import { blockApply, blockStats, transformerBlock, type TransformerBlockOptions } from '../src/nn/transformer.js';
import { initParams } from '../src/nn/init.js';
import { compile } from '../src/runtime/compile.js';
import { insideMask, readTile } from '../src/restore/tiled.js';
import { overlaps, tileStarts } from '../src/restore/grid.js';
import type { HostTensor, TensorMap } from '../src/tensor.js';
import { randn } from './helpers/gradcheck.js';

const [C, H, W] = [8, 20, 24];
const f32 = (shape: number[], data: Float32Array): HostTensor => ({ dtype: 'float32', shape, data });

async function tiledBlock(o: TransformerBlockOptions, weights: TensorMap, x: Float32Array, z: HostTensor, th: number, tw: number): Promise<Float32Array> {
  const ys = tileStarts(H, th);
  const xs = tileStarts(W, tw);
  const owned = overlaps({ th, tw, ys, xs });
  const ch = C / o.heads;
  const ga = new Graph('stats');
  const xa = ga.input('x', [1, C, th + 4, tw + 4]);
  const ma = ga.input('mask', [1, 1, th + 4, tw + 4]);
  const own = owned ? ga.input('own', [1, 1, th, tw]) : null;
  const r = blockStats(ga, 'b', cropBorder(xa, 1), ga.input('z', [1, 256]), o, { mask: cropBorder(ma, 1) }, own);
  ga.output(r.S, 'S');
  ga.output(r.nq, 'nq');
  ga.output(r.nk, 'nk');
  const gb = new Graph('apply');
  const xb = gb.input('x', [1, C, th + 4, tw + 4]);
  const mb = gb.input('mask', [1, 1, th + 4, tw + 4]);
  const sums = { S: gb.input('S', [1, o.heads, ch, ch]), nq: gb.input('nq', [1, o.heads, ch, 1]), nk: gb.input('nk', [1, o.heads, ch, 1]) };
  gb.output(blockApply(gb, 'b', xb, gb.input('z', [1, 256]), o, { mask: mb }, sums), 'y');
  const [sa, sb] = await Promise.all([ga, gb].map((g) => compile(g, { params: 'initializers', weights }, { threads: 1 })));
  const map = { c: C, h: H, w: W, data: x };
  const tiles = ys.flatMap((y0) => xs.map((x0) => ({ y0, x0 })));
  const feeds = (y0: number, x0: number) => ({ x: f32([1, C, th + 4, tw + 4], readTile(map, y0, x0, th, tw, 2)), mask: f32([1, 1, th + 4, tw + 4], insideMask(map, y0, x0, th, tw, 2)), z });
  const acc = { S: new Float32Array(o.heads * ch * ch), nq: new Float32Array(C), nk: new Float32Array(C) };
  // Each pixel counted by the first tile (in row-major order) that covers it.
  const counted = new Uint8Array(H * W);
  for (const { y0, x0 } of tiles) {
    const ownMask = new Float32Array(th * tw);
    for (let y = 0; y < th; y++) for (let xx = 0; xx < tw; xx++) if (!counted[(y0 + y) * W + x0 + xx]) ((ownMask[y * tw + xx] = 1), (counted[(y0 + y) * W + x0 + xx] = 1));
    if (!owned) assert.ok(ownMask.every((v) => v === 1));
    const res = await sa!.run({ ...feeds(y0, x0), ...(owned ? { own: f32([1, 1, th, tw], ownMask) } : {}) });
    for (const k of ['S', 'nq', 'nk'] as const) (res[k]!.data as Float32Array).forEach((v, i) => (acc[k][i]! += v));
  }
  const out = new Float32Array(C * H * W);
  for (const { y0, x0 } of tiles) {
    const y = (
      await sb!.run({ ...feeds(y0, x0), S: f32([1, o.heads, ch, ch], acc.S), nq: f32([1, o.heads, ch, 1], acc.nq), nk: f32([1, o.heads, ch, 1], acc.nk) })
    ).y!.data as Float32Array;
    for (let c = 0; c < C; c++) for (let r2 = 0; r2 < th; r2++) out.set(y.subarray((c * th + r2) * tw, (c * th + r2 + 1) * tw), c * H * W + (y0 + r2) * W + x0);
  }
  await Promise.all([sa!.release(), sb!.release()]);
  return out;
}

for (const bias of [false, true]) {
  test(`a transformer block in tiles equals the whole map (bias ${bias})`, async () => {
    const o: TransformerBlockOptions = { dim: C, heads: 2, ffnExpansionFactor: 2.2, layerNormType: 'WithBias', bias };
    const g = new Graph('whole');
    const x = g.input('x', [1, C, H, W]);
    g.output(transformerBlock(g, 'b', x, g.input('z', [1, 256]), o), 'y');
    const weights = initParams(g, 4);
    // Non-zero biases (init may leave them at 0) and sharp attention, so both matter.
    for (const [k, t] of weights) {
      if (k.endsWith('.bias')) (t.data as Float32Array).forEach((_, i, a) => (a[i] = 0.3 * Math.sin(i + 1)));
      if (k.endsWith('temperature')) (t.data as Float32Array).fill(1.7);
    }
    const xv = randn([1, C, H, W], 11, 0.7);
    const z = randn([1, 256], 12);
    const whole = await compile(g, { params: 'initializers', weights }, { threads: 1 });
    const ref = (await whole.run({ x: xv, z })).y!.data as Float32Array;
    await whole.release();
    for (const [th, tw, overlap] of [[12, 16, true], [10, 12, false]] as const) {
      assert.equal(overlaps({ th, tw, ys: tileStarts(H, th), xs: tileStarts(W, tw) }), overlap);
      const out = await tiledBlock(o, weights, xv.data as Float32Array, z, th, tw);
      let maxErr = 0;
      for (let i = 0; i < ref.length; i++) maxErr = Math.max(maxErr, Math.abs(ref[i]! - out[i]!));
      assert.ok(maxErr < 1e-4, `tiles ${th}×${tw}: max abs difference ${maxErr}`);
    }
  });
}
