/** The built-in default model beats bicubic upscaling on held-out photos degraded like its training data. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { Restorer } from '../src/restore/restore.js';
import { DEFAULT_MODEL_PATH } from '../src/models/default-model.js';
import { degradeRealESRGAN } from '../src/data/degrade/realesrgan.js';
import { imresize } from '../src/data/degrade/resize.js';
import { measure } from '../src/metrics/psnr-ssim.js';
import { loadImage } from '../src/image/io.js';
import { Rng } from '../src/random.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const photos = resolve(root, '../shared/data/images');

test('default model: a stage-2 ×4 SR model that beats MATLAB bicubic on held-out photos', async () => {
  const r = Restorer.load(DEFAULT_MODEL_PATH, { threads: 2 });
  assert.equal(r.config.task, 'sr');
  assert.equal(r.config.scale, 4);
  const sum = { model: { psnr: 0, ssim: 0 }, bicubic: { psnr: 0, ssim: 0 } };
  const names = ['astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg'];
  const seeds = [100, 200, 300];
  const n = names.length * seeds.length;
  for (const [i, name] of names.entries()) for (const seed of seeds) {
    // A 256² GT crop from the middle of the photo, degraded with DiffIR's RealSR pipeline.
    const meta = await sharp(join(photos, name)).metadata();
    const left = Math.floor((meta.width! - 256) / 2);
    const top = Math.floor((meta.height! - 256) / 2);
    const gtImg = await loadImage(new Uint8Array(await sharp(join(photos, name)).extract({ left, top, width: 256, height: 256 }).png().toBuffer()));
    const pair = await degradeRealESRGAN(gtImg.rgb, new Rng(seed + i), { gtSize: 256 });
    const gt = pair.gt as typeof gtImg.rgb;
    const lq = { ...gtImg, rgb: pair.lq as typeof gtImg.rgb, width: 64, height: 64 };
    const out = (await r.restore(lq)).rgb;
    const bic = await imresize(lq.rgb, 4);
    for (const type of ['psnr', 'ssim'] as const) {
      const spec = { type, cropBorder: 4, testYChannel: true };
      sum.model[type] += measure(out, gt, spec) / n;
      sum.bicubic[type] += measure(bic, gt, spec) / n;
    }
  }
  await r.release();
  console.log(`default model ${sum.model.psnr.toFixed(2)} dB / ${sum.model.ssim.toFixed(4)} vs bicubic ${sum.bicubic.psnr.toFixed(2)} dB / ${sum.bicubic.ssim.toFixed(4)} (Y, crop 4, ${n} crops)`);
  assert.ok(sum.model.psnr > sum.bicubic.psnr, 'PSNR does not beat bicubic');
  assert.ok(sum.model.ssim > sum.bicubic.ssim, 'SSIM does not beat bicubic');
});
