/**
 * Evaluates the built-in default model (or any ×4 SR stage-2 checkpoint) on held-out pairs
 * made by scripts/default-model/prepare.sh: PSNR/SSIM exactly as BasicSR computes them
 * (8-bit, Y channel, crop border 4) against MATLAB-bicubic upscaling of the same LQ, and a
 * side-by-side picture (LQ ×4 nearest | bicubic | DiffIR | ground truth).
 *
 *   node dist/bench/default-model.js --pairs <work>/heldout [--weights W] [--picture out.png]
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadImage } from '../src/image/io.js';
import { imresize } from '../src/data/degrade/resize.js';
import { measure } from '../src/metrics/psnr-ssim.js';
import { Restorer } from '../src/restore/restore.js';
import { DEFAULT_MODEL_PATH } from '../src/models/default-model.js';
import type { HostTensor } from '../src/tensor.js';
import { flag, machine } from './util.js';

async function png(t: HostTensor<'float32'>, scaleNearest = 1): Promise<Buffer> {
  const [, , h, w] = t.shape as number[];
  const d = t.data;
  const px = Buffer.alloc(h! * w! * 3);
  for (let y = 0; y < h!; y++) for (let x = 0; x < w!; x++) for (let c = 0; c < 3; c++) px[(y * w! + x) * 3 + c] = Math.round(Math.min(1, Math.max(0, d[(c * h! + y) * w! + x]!)) * 255);
  return sharp(px, { raw: { width: w!, height: h!, channels: 3 } }).resize(w! * scaleNearest, h! * scaleNearest, { kernel: 'nearest' }).png().toBuffer();
}

const pairs = flag('pairs', '');
if (!pairs) throw new Error('give --pairs <folder with gt/ and lq/>');
const weights = flag('weights', DEFAULT_MODEL_PATH);
const picture = flag('picture', '');
const r = Restorer.load(weights, { threads: 2 });
const names = readdirSync(join(pairs, 'gt')).filter((f) => f.endsWith('.png')).sort();
const spec = (type: 'psnr' | 'ssim') => ({ type, cropBorder: 4, testYChannel: true });
const sums = { model: { psnr: 0, ssim: 0 }, bicubic: { psnr: 0, ssim: 0 } };
const tiles: Buffer[][] = [];
for (const n of names) {
  const gt = (await loadImage(join(pairs, 'gt', n))).rgb;
  const lq = await loadImage(join(pairs, 'lq', n));
  const out = (await r.restore(lq, { seed: 0 })).rgb;
  const bic = await imresize(lq.rgb, 4);
  for (const k of ['psnr', 'ssim'] as const) {
    sums.model[k] += measure(out, gt, spec(k));
    sums.bicubic[k] += measure(bic, gt, spec(k));
  }
  if (picture && tiles.length < 4 && n.endsWith('_0.png')) tiles.push([await png(lq.rgb, 4), await png(bic), await png(out), await png(gt)]);
}
await r.release();
const n = names.length;
console.log(`# default model evaluation: ${n} held-out pairs from ${pairs}; weights ${weights}`);
console.log(`# machine: ${machine()}`);
console.log('| method | PSNR (Y, crop 4) | SSIM (Y, crop 4) |');
console.log('|---|---|---|');
console.log(`| bicubic (MATLAB imresize) | ${(sums.bicubic.psnr / n).toFixed(2)} | ${(sums.bicubic.ssim / n).toFixed(4)} |`);
console.log(`| DiffIR default model | ${(sums.model.psnr / n).toFixed(2)} | ${(sums.model.ssim / n).toFixed(4)} |`);
console.log(`| margin | ${((sums.model.psnr - sums.bicubic.psnr) / n).toFixed(2)} dB | ${((sums.model.ssim - sums.bicubic.ssim) / n).toFixed(4)} |`);
if (picture) {
  const size = 256;
  const composite = tiles.flatMap((row, i) => row.map((input, j) => ({ input, left: j * (size + 4), top: i * (size + 4) })));
  await sharp({ create: { width: 4 * (size + 4) - 4, height: tiles.length * (size + 4) - 4, channels: 3, background: '#fff' } }).composite(composite).png().toFile(picture);
  console.log(`wrote ${picture} (columns: LQ ×4 nearest, bicubic, DiffIR, ground truth)`);
}
