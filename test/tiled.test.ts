/** Exact tiled DIRformer: equals the whole-image result for several tile sizes and every task head. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inputChannels, outputScale } from '../src/models/config.js';
import { compile } from '../src/runtime/compile.js';
import { Session } from '../src/runtime/session.js';
import { TiledDIRformer } from '../src/restore/tiled.js';
import { tileStarts } from '../src/restore/grid.js';
import { inPlaceBlock, mapScales, stepTiles, tileBytes, tiledHostBytes } from '../src/restore/memory.js';
import { tiledInputs, tiledProgram } from '../src/restore/program.js';
import { preset } from '../src/models/config.js';
import { randn } from './helpers/gradcheck.js';
import { tinyConfig, tinyDirformer } from './helpers/tiny-dirformer.js';

test('tile starts cover the axis, the last one shifted back', () => {
  assert.deepEqual(tileStarts(40, 16), [0, 16, 24]);
  assert.deepEqual(tileStarts(32, 16), [0, 16]);
  assert.deepEqual(tileStarts(8, 16), [0]);
});

for (const [task, scale, tiles] of [
  ['deblur', 1, [8, 16, 24]],
  ['sr', 4, [8, 16]],
  ['sr', 2, [16]],
  ['inpaint', 1, [16]],
] as const) {
  test(`tiled DIRformer equals the whole image: ${task} x${scale}`, async () => {
    const cfg = tinyConfig(task, scale);
    const u = task === 'sr' && scale === 2 ? 2 : 1;
    const [H, W] = [40 * u, 56 * u];
    const C = inputChannels(cfg);
    const { graph: g, weights } = tinyDirformer(cfg, H, W);
    const x = randn([1, C, H, W], 5, 0.5);
    const zv = randn([1, 256], 6);
    const whole = await compile(g, { params: 'initializers', weights }, { threads: 2 });
    const ref = (await whole.run({ input: x, z: zv })).out!.data as Float32Array;
    await whole.release();
    for (const tile of tiles) {
      const t = new TiledDIRformer(cfg, weights, { tile: tile * u, session: { threads: 2 } });
      let last = 0;
      const out = await t.run({ c: C, h: H, w: W, data: x.data }, zv.data, { onProgress: (p) => (last = p.done) });
      assert.equal(last, t.runCount(H, W));
      // With deblur's smallest tile the deepest blocks run in several tiles too, so the sums over
      // tiles are exercised there (SR's tail sets a larger memory bound: its deep levels fit one tile).
      if (task === 'deblur' && tile === tiles[0]) {
        const deep = tiledProgram(cfg).findIndex((st) => st.kind === 'block' && st.prefix.includes('latent'));
        const grid = t.grid(deep, H, W);
        assert.ok(grid.ys.length * grid.xs.length > 1, `latent ran in one tile at tile ${tile}`);
      }
      if (task === 'deblur' && tile === tiles[0]) {
        // Kept sessions: a second image of the same size creates none and gives the same output.
        const kept = new TiledDIRformer(cfg, weights, { tile, keepSessions: true, session: { threads: 2 } });
        await kept.run({ c: C, h: H, w: W, data: x.data }, zv.data);
        const create = Session.create;
        let created = 0;
        Session.create = (...a) => (created++, create.apply(Session, a));
        try {
          const again = await kept.run({ c: C, h: H, w: W, data: x.data }, zv.data);
          assert.equal(created, 0);
          assert.deepEqual(again.data, out.data);
        } finally {
          Session.create = create;
          await kept.release();
        }
      }
      const s = outputScale(cfg);
      assert.deepEqual([out.c, out.h, out.w], [3, H * s, W * s]);
      let maxErr = 0;
      for (let i = 0; i < ref.length; i++) maxErr = Math.max(maxErr, Math.abs(ref[i]! - out.data[i]!));
      assert.ok(maxErr < 1e-4, `tile ${tile}: max abs difference ${maxErr}`);
      console.log(`${task} x${scale} tile ${tile}: max abs difference ${maxErr.toExponential(2)}`);
      await t.release();
    }
  });
}

test('deep levels get larger tiles within the same memory bound', () => {
  const cfg = preset('deblur-gopro');
  const steps = tiledProgram(cfg);
  for (const tile of [64, 96, 160]) {
    const plan = stepTiles(cfg, tile);
    // The nominal tile's bound, from the independent per-step estimate of tileBytes at each step's side.
    const bound = tileBytes(cfg, tile);
    plan.forEach(({ side, align }, i) => assert.equal(side % align, 0, `step ${i} side ${side} not a multiple of ${align}`));
    const latent = steps.findIndex((s) => s.kind === 'block' && s.prefix.includes('latent'));
    assert.ok(plan[latent]!.side >= 2 * (tile / 8), `latent side ${plan[latent]!.side} at tile ${tile}`);
    // A block at any level: channels alive 2·hidden + 3·dim, footprint (side + 4)² — within the bound.
    steps.forEach((s, i) => {
      if (s.kind !== 'block') return;
      const c = 2 * Math.floor(s.opts.dim * s.opts.ffnExpansionFactor) + 3 * s.opts.dim;
      assert.ok(5.4 * 4 * c * (plan[i]!.side + 4) ** 2 <= bound * 1.0000001, `step ${s.prefix}: over the memory bound`);
    });
  }
});

test('the host-memory estimate counts the tile windows of the blocks', () => {
  const cfg = preset('deblur-gopro');
  const px = 192 * 192;
  // Without tiles the peak is at decoder level 1's first block: the input image, its input map
  // (cat1, 96 channels at full resolution) and its output map.
  assert.equal(tiledHostBytes(cfg, 192, 192), 4 * (3 + 96 + 96) * px);
  // With tiles that block writes into its input's windows, and the peak moves to the chain that
  // builds those windows: the input, encoder level 1's output (the skip, 48 channels), decoder
  // level 2's (96 channels at half resolution) and the 96-channel windows of decoder level 1's
  // grid, each tile with a 2-pixel halo: 4×4 windows of 52² for tiles of 48, 2×2 of 100² for 96.
  const maps = 4 * (3 * px + 48 * px + (96 * px) / 4);
  assert.equal(tiledHostBytes(cfg, 192, 192, 48), maps + 4 * 96 * 16 * 52 * 52);
  assert.equal(tiledHostBytes(cfg, 192, 192, 96), maps + 4 * 96 * 4 * 100 * 100);
});

test('a block whose output feeds the next block of its chain writes it into its input windows, unless a map is spilled', () => {
  const cfg = tinyConfig('deblur', 1);
  const steps = tiledProgram(cfg);
  const t = new TiledDIRformer(cfg, new Map(), { tile: 8 });
  const grids = steps.map((_, i) => t.grid(i, 40, 56));
  const scales = mapScales(cfg);
  const inPlace = (spilled: ReadonlySet<string>) => steps.flatMap((s, i) => (s.kind === 'block' && inPlaceBlock(steps, grids, i, (n) => spilled.has(n), (n) => scales.get(n)!) ? [s.prefix] : []));
  // numBlocks [1, 1, 1, 2] and one refinement block: latent.0 and decoder_level1.0 hand their
  // output to a block (latent.1, refinement.0), and refinement.0 to the head's conv, which reads
  // windows at its own resolution; every other block's output goes to an Upsample or Downsample
  // chain, which reads a map at another resolution. Their inputs come from a chain (as windows)
  // and die with them.
  assert.deepEqual(inPlace(new Set()), ['G.latent.0', 'G.decoder_level1.0', 'G.refinement.0']);
  const latent0 = steps.find((s) => s.kind === 'block' && s.prefix === 'G.latent.0')!;
  const latentIn = latent0.kind === 'block' ? latent0.input : '';
  assert.deepEqual(inPlace(new Set([latentIn])), ['G.decoder_level1.0', 'G.refinement.0']);
  assert.deepEqual(inPlace(new Set([latent0.output])), ['G.decoder_level1.0', 'G.refinement.0']);
  // The head spilled: refinement.0 writes a map (a spill file) for it, not windows.
  assert.deepEqual(inPlace(new Set(['refinement.0'])), ['G.latent.0', 'G.decoder_level1.0']);
});

test('the tiled program fuses each run of local steps whose inner maps nothing else reads', () => {
  const kinds = (cfg: ReturnType<typeof preset>) =>
    tiledProgram(cfg)
      .filter((s) => s.kind !== 'block')
      .map((s) => (s.kind === 'chain' ? s.steps.map((t) => t.kind).join('+') : s.kind));
  // Downsample (conv + unshuffle) ×3, Upsample + skip concat (+ 1×1 reduction at levels 3 and 2), head + residual.
  const down = Array(3).fill('conv+unshuffle');
  assert.deepEqual(kinds(preset('deblur-gopro')), ['conv', ...down, 'conv+shuffle+concat+conv', 'conv+shuffle+concat+conv', 'conv+shuffle+concat', 'conv+add']);
  // realsr ×2 unshuffles its input first: the patch-embedding conv reads that inner map with a halo, so it stays a step.
  assert.deepEqual(kinds(preset('realsr-x2')).slice(0, 2), ['unshuffle', 'conv']);
  for (const name of ['deblur-gopro', 'realsr-x4', 'realsr-x2', 'inpaint-celeba'] as const) {
    const steps = tiledProgram(preset(name));
    steps.forEach((s, i) => {
      if (s.kind !== 'chain') return;
      const inner = new Set(s.steps.map((t) => t.output));
      inner.delete(s.output);
      for (const t of steps.slice(i + 1)) for (const n of tiledInputs(t)) assert.ok(!inner.has(n), `${name}: inner map ${n} read after its chain`);
      for (const t of s.steps) if (t.kind === 'conv' && t.k > 1) assert.ok(!inner.has(t.input), `${name}: a ${t.k}×${t.k} conv reads inner map ${t.input}`);
    });
  }
});
