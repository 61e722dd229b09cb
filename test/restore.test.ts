/** The restore library on official-format checkpoints and a real photo. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { Restorer } from '../src/restore/restore.js';
import { baselineBytes, wholeImageBytes } from '../src/restore/memory.js';
import { convChannelBlock } from '../src/runtime/session.js';
import { loadImage, type LoadedImage } from '../src/image/io.js';
import type { HostTensor } from '../src/tensor.js';
import { maxAbs } from './helpers/tensors.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const fixtures = resolve(root, '../shared/fixtures');
const photos = resolve(root, '../shared/data/images');

async function photo(width: number, height: number, alpha = false): Promise<LoadedImage> {
  let s = sharp(join(photos, 'coffee.png')).resize(width, height, { fit: 'fill' }).removeAlpha();
  if (alpha) s = s.ensureAlpha(0.6);
  return loadImage(new Uint8Array(await s.png().toBuffer()));
}


test('tiled restoration equals the whole image, and the IPR does not change with the tile size', async () => {
  const r = Restorer.load(join(fixtures, 'deblur/s2.pth'), { threads: 2 });
  const img = await photo(52, 44);
  const whole = await r.restore(img, { tile: 0, seed: 3 });
  assert.equal(whole.tile, 0);
  assert.deepEqual(whole.rgb.shape, [1, 3, 44, 52]);
  const iprs: Float32Array[] = [];
  for (const tile of [8, 16, 24]) {
    const t = await r.restore(img, { tile, seed: 3 });
    assert.equal(t.tile, tile);
    assert.ok(maxAbs(t.rgb, whole.rgb) < 1e-5, `tile ${tile}: output differs by ${maxAbs(t.rgb, whole.rgb)}`);
    iprs.push(t.ipr);
  }
  for (const ipr of iprs) assert.deepEqual(ipr, iprs[0]);
  const d = whole.ipr.reduce((m, v, i) => Math.max(m, Math.abs(v - iprs[0]![i]!)), 0);
  assert.ok(d < 1e-6, `IPR whole vs tiled differs by ${d}`);
  // The seed changes the diffusion's noise, so the IPR.
  const other = await r.restore(img, { tile: 0, seed: 4 });
  assert.notDeepEqual(other.ipr, whole.ipr);
  await r.release();
});

test('automatic tiling under a small memory budget gives the same image', async () => {
  const r = Restorer.load(join(fixtures, 'realsr_x4/s2.pth'), { threads: 2 });
  const img = await photo(40, 32, true);
  const whole = await r.restore(img, { tile: 0 });
  // A budget just below what the whole image needs forces tiles.
  const base = baselineBytes(4 * r.checkpoint.parameterCount);
  const auto = await r.restore(img, { memoryBudget: wholeImageBytes(r.config, 32, 40, convChannelBlock()) + base - 1 });
  assert.ok(auto.tile > 0 && auto.tile < 40, `expected tiling, got tile ${auto.tile}`);
  assert.ok(maxAbs(auto.rgb, whole.rgb) < 1e-5);
  assert.deepEqual(whole.rgb.shape, [1, 3, 128, 160]);
  assert.deepEqual(whole.alpha!.shape, [1, 1, 128, 160], 'alpha is resized to the output');
  assert.ok(Math.abs((whole.alpha!.data as Float32Array)[500]! - 0.6) < 0.01);
  await r.release();
});

test('inpainting keeps the known pixels and fills the hole', async () => {
  const r = Restorer.load(join(fixtures, 'inpaint/s2.pth'), { threads: 2 });
  const img = await photo(40, 32);
  const mask = { dtype: 'float32' as const, shape: [1, 1, 32, 40], data: new Float32Array(32 * 40) };
  for (let y = 10; y < 20; y++) mask.data.fill(1, y * 40 + 12, y * 40 + 30);
  const out = await r.restore(img, { mask });
  const a = out.rgb.data as Float32Array;
  const b = img.rgb.data;
  let known = 0;
  let hole = 0;
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < 32 * 40; i++) {
      const d = Math.abs(a[c * 1280 + i]! - b[c * 1280 + i]!);
      if (mask.data[i]) hole = Math.max(hole, d);
      else known = Math.max(known, d);
    }
  }
  assert.equal(known, 0);
  assert.ok(hole > 0);
  await assert.rejects(r.restore(img), /inpainting model: give a mask/);
  await assert.rejects(r.restore(img, { mask: { ...mask, shape: [1, 1, 30, 40] } }), /mask is 40×30 but the image is 40×32/);
  await r.release();
});

test('bad inputs get one-line errors', async () => {
  assert.throws(() => Restorer.load(join(fixtures, 'deblur/s1.pth')), /stage-1 \(DiffIRS1\) checkpoint needs the ground truth/);
  const r = Restorer.load(join(fixtures, 'deblur/s2.pth'), { threads: 1 });
  const img = await photo(40, 32);
  const one = (p: Promise<unknown>, re: RegExp) =>
    assert.rejects(p, (e: Error) => {
      assert.ok(!e.message.includes('\n'));
      assert.match(e.message, re);
      return true;
    });
  await one(r.restore(img, { mask: { dtype: 'float32', shape: [1, 1, 32, 40], data: new Float32Array(1280) } }), /a mask is only for inpainting models/);
  await one(r.restore(img, { tile: 12 }), /tile size must be a positive multiple of 8/);
  await one(r.restore(img, { tile: 0, memoryBudget: 1000 }), /needs about .* without tiling, over the .* memory budget/);
  await one(r.restore(await photo(3, 3)), /too small for this model/);
  const ac = new AbortController();
  ac.abort(new Error('cancelled by the user'));
  await one(r.restore(img, { signal: ac.signal }), /cancelled by the user/);
  await r.release();
});
