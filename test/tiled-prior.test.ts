/** The prior of tiled restoration, computed in windows, equals the whole-image prior. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../src/graph/ir.js';
import { compile } from '../src/runtime/compile.js';
import { type DiffIRConfig, cpenUnshuffle, inputChannels } from '../src/models/config.js';
import { cpenRadius } from '../src/models/cpen.js';
import { buildS2Prior } from '../src/models/diffir.js';
import { spillPlan, tileBytes, tiledBaseBytes, tiledHostBytes } from '../src/restore/memory.js';
import { initParams } from '../src/nn/init.js';
import { priorGrid, priorGridFor, priorTileBytes, tiledPrior } from '../src/restore/prior.js';
import { randn } from './helpers/gradcheck.js';
import { noiseImage, tinyConfig, tinyRestorer } from './helpers/tiny-dirformer.js';

/** The whole-image prior of `cfg` on a network input of H×W: inputs `input`, `x_T`; output `ipr`. */
function wholePrior(cfg: DiffIRConfig, height: number, width: number): Graph {
  const g = new Graph();
  const input = g.input('input', [1, inputChannels(cfg), height, width]);
  const xT = g.input('x_T', [1, 256]);
  g.output(buildS2Prior(g, cfg, { input, xT }, { mode: 'infer' }).ipr, 'ipr');
  return g;
}

for (const [task, scale, H, W, sides] of [
  ['deblur', 1, 72, 88, [8, 10]],
  ['sr', 4, 24, 40, [16, 7]],
  ['sr', 2, 48, 32, [7]],
  ['inpaint', 1, 40, 64, [6]],
] as const) {
  test(`prior in windows equals the whole image: ${task} x${scale}`, async () => {
    const cfg = tinyConfig(task, scale);
    const g = wholePrior(cfg, H, W);
    const weights = initParams(g, 11);
    const x = randn([1, inputChannels(cfg), H, W], 12, 0.5);
    const xT = randn([1, 256], 13);
    const whole = await compile(g, { params: 'initializers', weights }, { threads: 2 });
    const ref = (await whole.run({ input: x, x_T: xT })).ipr!.data as Float32Array;
    await whole.release();
    const map = { c: inputChannels(cfg), h: H, w: W, data: x.data };
    const u = cpenUnshuffle(cfg);
    for (const side of [...sides, Math.max(H, W) / u]) {
      const grid = priorGrid(cfg, H, W, side);
      if (side < Math.max(H, W) / u) {
        assert.ok(grid.ny * grid.nx > 1 && grid.halo === cpenRadius(cfg.nEncoderRes), `side ${side} should give several windows with a halo`);
        // The last window reaches past the map on some axis, so the mask matters.
        assert.ok(grid.ny * grid.th > H / u || grid.nx * grid.tw > W / u, `side ${side}: no window past the map`);
      } else assert.deepEqual([grid.ny, grid.nx, grid.halo], [1, 1, 0]);
      let done = 0;
      const ipr = await tiledPrior(cfg, weights, map, xT.data, grid, { session: { threads: 2 }, onProgress: (p) => (done = p.done) });
      assert.equal(done, grid.ny * grid.nx);
      let worst = 0;
      let scale = 0;
      for (let k = 0; k < 256; k++) {
        worst = Math.max(worst, Math.abs(ipr[k]! - ref[k]!));
        scale = Math.max(scale, Math.abs(ref[k]!));
      }
      assert.ok(scale > 1e-3, 'the IPR is not trivially zero');
      assert.ok(worst <= 5e-7 * scale, `side ${side}: IPR differs by ${worst} (scale ${scale})`);
    }
  });
}

test('prior windows shrink to fit the budget', () => {
  const cfg = tinyConfig('deblur', 1);
  const [H, W] = [4000, 3000];
  const whole = priorGrid(cfg, H, W, H / 4);
  assert.deepEqual(priorGridFor(cfg, H, W, priorTileBytes(cfg, whole)), whole);
  const budget = priorTileBytes(cfg, whole) / 10;
  const grid = priorGridFor(cfg, H, W, budget)!;
  assert.ok(grid.ny * grid.nx > 1);
  assert.ok(priorTileBytes(cfg, grid) <= budget);
  // The next larger side would not fit.
  const larger = priorGrid(cfg, H, W, Math.max(grid.th, grid.tw) + 8);
  assert.ok(priorTileBytes(cfg, larger) > budget || larger.ny * larger.nx === grid.ny * grid.nx);
  assert.equal(priorGridFor(cfg, H, W, priorTileBytes(cfg, priorGrid(cfg, H, W, 8)) - 1), null);
});

test('the restorer runs the prior in windows when the budget needs it, and refuses a budget the prior cannot meet', async () => {
  const { cfg, r } = tinyRestorer();
  const [H, W, tile] = [160, 160, 16];
  const img = noiseImage(W, H);
  const whole = await r.restore(img, { tile: 0 });
  // Room for the tiles with their maps in memory, less than the prior of the whole image needs.
  const base = tiledBaseBytes(cfg, 0, H, W);
  const budget = base + tiledHostBytes(cfg, H, W, tile) + tileBytes(cfg, tile);
  assert.ok(budget < base + priorTileBytes(cfg, priorGrid(cfg, H, W, H)));
  let windows = 0;
  const tiled = await r.restore(img, { tile, memoryBudget: budget, onProgress: (p) => p.phase === 'prior' && (windows = p.total) });
  assert.ok(windows > 1, `the prior ran in ${windows} window(s)`);
  let worst = 0;
  for (let k = 0; k < 256; k++) worst = Math.max(worst, Math.abs(tiled.ipr[k]! - whole.ipr[k]!));
  assert.ok(worst < 1e-7, `IPR differs by ${worst}`);
  const a = whole.rgb.data as Float32Array;
  const b = tiled.rgb.data as Float32Array;
  let diff = 0;
  for (let k = 0; k < a.length; k++) diff = Math.max(diff, Math.abs(a[k]! - b[k]!));
  assert.ok(diff < 1e-5, `image differs by ${diff}`);
  // A small image whose tiles, with their maps spilled, need less than CPEN's smallest prior window.
  const [h, w] = [40, 56];
  const small = noiseImage(w, h);
  const room = tiledBaseBytes(cfg, 0, h, w) + tileBytes(cfg, 8) + spillPlan(cfg, h, w, 8, 0).hostBytes;
  assert.ok(room < tiledBaseBytes(cfg, 0, h, w) + priorTileBytes(cfg, priorGrid(cfg, h, w, w)));
  await assert.rejects(r.restore(small, { tile: 8, memoryBudget: room }), /^Error: 56×40 needs about .* for its prior \(CPEN in windows\), over the .* memory budget; raise --memory-budget$/);
  await r.release();
});
