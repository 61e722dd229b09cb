/**
 * JPEG compression artefacts with a real encoder (libjpeg through sharp): baseline,
 * standard (Annex K) tables scaled by quality, 4:2:0 chroma subsampling — the settings
 * BasicSR's DiffJPEG simulates.
 */
import sharp from 'sharp';
import type { Rng } from '../../random.js';
import type { HostTensor } from '../../tensor.js';
import { uniform } from '../rng.js';
import { dims4 } from '../tensor-ops.js';

/** Encodes one planar image [C,H,W] (C = 3, values clamped to [0,1]) at `quality` and decodes it back. */
async function roundTrip(d: Float32Array, h: number, w: number, quality: number): Promise<Float32Array> {
  const hw = h * w;
  const px = Buffer.allocUnsafe(3 * hw);
  for (let p = 0; p < hw; p++) {
    for (let c = 0; c < 3; c++) {
      const v = d[c * hw + p]!;
      px[3 * p + c] = v > 0 ? (v < 1 ? Math.round(v * 255) : 255) : 0;
    }
  }
  const jpg = await sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .jpeg({ quality, chromaSubsampling: '4:2:0', optimiseCoding: false, trellisQuantisation: false, overshootDeringing: false, mozjpeg: false })
    .toBuffer();
  const dec = await sharp(jpg).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  if (dec.info.width !== w || dec.info.height !== h || dec.info.channels !== 3) {
    throw new Error(`JPEG round trip returned ${dec.info.width}x${dec.info.height}x${dec.info.channels}, expected ${w}x${h}x3`);
  }
  const out = new Float32Array(3 * hw);
  const b = dec.data;
  for (let p = 0; p < hw; p++) for (let c = 0; c < 3; c++) out[c * hw + p] = b[3 * p + c]! / 255;
  return out;
}

/** JPEG-compresses image i of the batch [N,3,H,W] at `qualities[i]` (rounded to an integer in 1–100). In place. */
export async function jpegCompress(x: HostTensor<'float32'>, qualities: readonly number[]): Promise<void> {
  const [n, c, h, w] = dims4(x, 'jpeg');
  if (c !== 3) throw new Error(`jpeg: expected 3 channels, got ${c}`);
  if (qualities.length !== n) throw new Error(`jpeg: ${qualities.length} qualities for a batch of ${n}`);
  const per = 3 * h * w;
  for (let i = 0; i < n; i++) {
    const q = Math.min(100, Math.max(1, Math.round(qualities[i]!)));
    const view = x.data.subarray(i * per, (i + 1) * per);
    view.set(await roundTrip(view, h, w, q));
  }
}

/** JPEG at a quality uniform in `range` for each image (Real-ESRGAN's `jpeg_range`); returns the qualities used. In place. */
export async function randomJpeg(x: HostTensor<'float32'>, rng: Rng, range: readonly [number, number]): Promise<number[]> {
  const n = dims4(x, 'jpeg')[0];
  const qs: number[] = [];
  for (let i = 0; i < n; i++) qs.push(Math.min(100, Math.max(1, Math.round(uniform(rng, range[0], range[1])))));
  await jpegCompress(x, qs);
  return qs;
}
