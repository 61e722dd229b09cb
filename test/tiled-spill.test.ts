/** Tiled restore with its feature maps in temporary files: same output, the files closed and nameless, clear errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readlinkSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inputChannels } from '../src/models/config.js';
import { compile } from '../src/runtime/compile.js';
import { TiledDIRformer } from '../src/restore/tiled.js';
import { spillPlan, tileBytes, tiledBaseBytes, tiledHostBytes } from '../src/restore/memory.js';
import { SpillStore } from '../src/restore/spill.js';
import { randn } from './helpers/gradcheck.js';
import { noiseImage, tinyConfig, tinyDirformer, tinyRestorer } from './helpers/tiny-dirformer.js';

/** Files under `dir`, at any depth. */
const files = (dir: string) => readdirSync(dir, { recursive: true }).map(String);

/**
 * Files this process holds open in `dir`: spill files are unlinked once opened, so they show
 * only here (Linux), with no name left in the folder.
 */
const open = (dir: string) =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${dir}/`);
    } catch {
      return false;
    }
  }).length;

/** Sizes in bytes of the files this process holds open in `dir`. */
const openSizes = (dir: string) =>
  readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${dir}/`) ? [statSync(`/proc/self/fd/${fd}`).size] : [];
    } catch {
      return [];
    }
  });

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

test('the spill file of a dropped map serves the next map, cut to its size; one too small is closed', () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'diffir-spill-reuse-')));
  const store = SpillStore.open(0, dir);
  try {
    const a = store.map(2, 4, 8);
    a.writeRows(0, 4, Float32Array.from({ length: 64 }, (_, i) => i));
    store.drop(a);
    assert.deepEqual(openSizes(dir), [256], 'the dropped file stays open for the next map');
    const b = store.map(1, 4, 8);
    assert.deepEqual(openSizes(dir), [128], 'the same file, cut to the smaller map');
    const band = Float32Array.from({ length: 32 }, (_, i) => -i - 1);
    b.writeRows(0, 4, band);
    const back = new Float32Array(32);
    b.readRows(0, 4, back);
    assert.deepEqual(back, band);
    assert.throws(() => a.readRows(0, 1, new Float32Array(16)), /already deleted/);
    store.drop(b);
    const c = store.map(4, 4, 8);
    assert.deepEqual(openSizes(dir), [0], 'a file too small is closed and a new one opened');
    assert.throws(() => c.readRows(0, 1, new Float32Array(32)), /never written/);
  } finally {
    store.close();
  }
  assert.equal(open(dir), 0);
  assert.deepEqual(files(dir), []);
  rmSync(dir, { recursive: true, force: true });
});

test('spilled tiled DIRformer equals the whole image and frees its files, also on cancel', async () => {
  const cfg = tinyConfig('deblur', 1);
  const [H, W, tile] = [40, 56, 8];
  const C = inputChannels(cfg);
  const { graph, weights } = tinyDirformer(cfg, H, W);
  const x = randn([1, C, H, W], 5, 0.5);
  const z = randn([1, 256], 6);
  const whole = await compile(graph, { params: 'initializers', weights }, { threads: 2 });
  const ref = (await whole.run({ input: x, z })).out!.data as Float32Array;
  await whole.release();
  const t = new TiledDIRformer(cfg, weights, { tile, session: { threads: 2 } });
  const input = { c: C, h: H, w: W, data: x.data };
  const inRam = await t.run(input, z.data);
  const all = tiledHostBytes(cfg, H, W, tile);
  // Everything that can go to disk, and a budget that spills only some maps.
  for (const limit of [0, all / 2]) {
    const plan = spillPlan(cfg, H, W, tile, limit);
    assert.ok(plan.maps.size > 0 && plan.hostBytes < all, `limit ${limit}: ${plan.maps.size} maps spilled, host ${plan.hostBytes} of ${all}`);
    if (limit > 0) assert.ok(plan.hostBytes <= limit);
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'diffir-test-spill-')));
    try {
      let most = 0;
      const out = await t.run(input, z.data, { spill: { ...plan, dir }, onProgress: () => (most = Math.max(most, open(dir) + 100 * files(dir).length)) });
      assert.ok(most > 1 && most < 100, `spill files open under the given folder, without a name: ${most}`);
      assert.equal(open(dir), 0, 'spill files left open');
      assert.deepEqual(files(dir), []);
      const d = maxDiff(out.data, ref);
      assert.ok(d < 1e-4, `limit ${limit}: max abs difference to the whole image ${d}`);
      assert.ok(maxDiff(out.data, inRam.data) < 1e-6, `limit ${limit}: differs from the in-memory tiled run`);
      console.log(`spill of ${plan.maps.size} maps (host ${plan.hostBytes} of ${all} bytes): max abs difference ${d.toExponential(2)}`);

      // Cancelled half-way: the run rejects with the reason and leaves nothing behind.
      const ac = new AbortController();
      const stop = new Error('stop here');
      let seen = 0;
      await assert.rejects(
        t.run(input, z.data, {
          spill: { ...plan, dir },
          signal: ac.signal,
          onProgress: (p) => {
            seen = Math.max(seen, open(dir));
            if (p.done === Math.floor(p.total / 2)) ac.abort(stop);
          },
        }),
        (e) => e === stop,
      );
      assert.ok(seen > 0, 'spill files were open when the run was cancelled');
      assert.equal(open(dir), 0, 'spill files left open after a cancel');
      assert.deepEqual(files(dir), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  // Not enough free disk: one line naming the fix, before any work.
  let runs = 0;
  await assert.rejects(t.run(input, z.data, { spill: { ...spillPlan(cfg, H, W, tile, 0), diskBytes: 2 ** 60 }, onProgress: () => runs++ }), (e: Error) => {
    assert.match(e.message, /^tiled restore needs .* of temporary disk space in .* but only .* is free; free some space, set TMPDIR/);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
  assert.equal(runs, 0);
  await t.release();
});

test('the restorer spills when the budget needs it, and refuses a budget that even spilling cannot meet', async () => {
  const { cfg, r } = tinyRestorer();
  // Tiles of 16: with 8, this tiny DIRformer's tile needs less than CPEN's smallest prior window.
  const [H, W, tile] = [40, 56, 16];
  const img = noiseImage(W, H);
  const whole = await r.restore(img, { tile: 0 });
  // Room for the baseline, one tile and the least host memory of a spilled run, not for the maps.
  const rest = tiledBaseBytes(cfg, 0, H, W) + tileBytes(cfg, tile);
  const least = rest + spillPlan(cfg, H, W, tile, 0).hostBytes;
  assert.ok(least < rest + tiledHostBytes(cfg, H, W, tile));
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'diffir-test-spill-')));
  try {
    let most = 0;
    const onProgress = () => (most = Math.max(most, open(dir)));
    const spilled = await r.restore(img, { tile, memoryBudget: least, spillDir: dir, onProgress });
    assert.ok(most > 1, 'the restorer spilled');
    assert.equal(open(dir), 0);
    // The plan it reports is the one it ran: no more files open at once than maps spilled, within the budget.
    const plan = r.memoryPlan(W, H, { tile, memoryBudget: least });
    assert.ok(plan.tile === tile && plan.spilledMaps >= most && plan.diskBytes > 0 && plan.peakBytes <= least, JSON.stringify(plan));
    const roomy = r.memoryPlan(W, H, { tile, memoryBudget: 2 ** 40 });
    assert.deepEqual([roomy.spilledMaps, roomy.diskBytes, roomy.hostBytes, roomy.keepSessions], [0, 0, tiledHostBytes(cfg, H, W, tile), true]);
    assert.ok(maxDiff(spilled.rgb.data as Float32Array, whole.rgb.data as Float32Array) < 1e-5);
    // The automatic choice spills too rather than refusing: with room for a tile of 16 and the
    // maps, not for the maps' tile windows, it keeps that tile and spills.
    most = 0;
    const mapsOnly = tiledBaseBytes(cfg, 0, H, W) + tileBytes(cfg, tile) + tiledHostBytes(cfg, H, W, 0);
    assert.ok(tiledHostBytes(cfg, H, W, tile) > tiledHostBytes(cfg, H, W, 0));
    const auto = await r.restore(img, { memoryBudget: mapsOnly, spillDir: dir, onProgress });
    assert.ok(auto.tile > 0 && most > 1, `auto: tile ${auto.tile}, ${most} spill files`);
    assert.ok(maxDiff(auto.rgb.data as Float32Array, whole.rgb.data as Float32Array) < 1e-5);
    assert.equal(open(dir), 0);
    assert.deepEqual(files(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await assert.rejects(r.restore(img, { tile, memoryBudget: least - 1 }), /^Error: 56×40 in tiles of 16 needs about .* even with its feature maps in a temporary file, over the .* memory budget; use a smaller tile/);
  await assert.rejects(r.restore(img, { memoryBudget: tiledBaseBytes(cfg, 0, H, W) + tileBytes(cfg, 8) }), /^Error: 56×40 needs about .* even in tiles with its feature maps in a temporary file, over the .* memory budget; raise --memory-budget/);
  await r.release();
});
