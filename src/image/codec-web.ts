/**
 * Image decoding for the restore pipeline in browsers (see `codec-node.ts`): the
 * browser's own decoders through `createImageBitmap`, with no colour conversion (the ICC
 * profile is not applied, as in Node) and EXIF orientation applied; 8 bits per sample.
 * Truncated JPEG / PNG / WebP files and sizes a file cannot hold are refused before decoding
 * (`structure.ts`), as libjpeg's warnings and the header check refuse them in Node.
 */
import { f32, type HostTensor } from '../tensor.js';
import type { LoadedImage } from './io.js';
import { implausibleSize, incompleteData } from './structure.js';

const SIGNATURES: readonly [string, string, readonly (number | null)[]][] = [
  ['png', 'image/png', [0x89, 0x50, 0x4e, 0x47]],
  ['jpeg', 'image/jpeg', [0xff, 0xd8, 0xff]],
  ['gif', 'image/gif', [0x47, 0x49, 0x46, 0x38]],
  ['webp', 'image/webp', [0x52, 0x49, 0x46, 0x46, null, null, null, null, 0x57, 0x45, 0x42, 0x50]],
  ['heif', 'image/avif', [null, null, null, null, 0x66, 0x74, 0x79, 0x70]],
  ['bmp', 'image/bmp', [0x42, 0x4d]],
];

/** The format of encoded image bytes, from their first bytes, or null when unknown. */
export function sniffImageFormat(bytes: Uint8Array): { format: string; mime: string } | null {
  for (const [format, mime, sig] of SIGNATURES) {
    if (bytes.length >= sig.length && sig.every((b, i) => b === null || bytes[i] === b)) return { format, mime };
  }
  return null;
}

/** Decodes encoded image bytes with the browser's decoders (paths are refused: there is no file system). */
export async function decodeImage(source: string | Uint8Array): Promise<LoadedImage> {
  if (typeof source === 'string') throw new Error(`${source}: reading files by path is not possible in a browser; pass the file's bytes`);
  const kind = sniffImageFormat(source);
  if (!kind) throw new Error('not an image this browser can read (PNG, JPEG, WebP, GIF, AVIF or BMP)');
  // The browser's decoders show what data there is (the rest grey or transparent) and allocate
  // the declared size first: refuse incomplete files and sizes the bytes cannot hold beforehand.
  const incomplete = incompleteData(source);
  if (incomplete !== null) throw new Error(`truncated image data (${incomplete}); the file is incomplete`);
  const implausible = await implausibleSize((n) => source.subarray(0, n), source.length);
  if (implausible !== null) throw new Error(implausible);
  let bmp: ImageBitmap;
  try {
    bmp = await createImageBitmap(new Blob([source as Uint8Array<ArrayBuffer>], { type: kind.mime }), {
      colorSpaceConversion: 'none',
      premultiplyAlpha: 'none',
      imageOrientation: 'from-image',
    });
  } catch {
    throw new Error(`this ${kind.format.toUpperCase()} file is damaged or uses a variant this browser cannot decode`);
  }
  const { width: w, height: h } = bmp;
  const ctx = new OffscreenCanvas(w, h).getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new Error('this browser gave no 2D canvas to read the image pixels');
  ctx.drawImage(bmp, 0, 0);
  bmp.close();
  const px = ctx.getImageData(0, 0, w, h).data;
  const hw = w * h;
  const rgb = new Float32Array(3 * hw);
  const alpha = new Float32Array(hw);
  let opaque = true;
  for (let p = 0, s = 0; p < hw; p++, s += 4) {
    rgb[p] = px[s]! / 255;
    rgb[hw + p] = px[s + 1]! / 255;
    rgb[2 * hw + p] = px[s + 2]! / 255;
    alpha[p] = px[s + 3]! / 255;
    if (px[s + 3] !== 255) opaque = false;
  }
  return {
    rgb: f32([1, 3, h, w], rgb),
    alpha: opaque ? null : f32([1, 1, h, w], alpha),
    gray: false,
    bitDepth: 8,
    format: kind.format,
    width: w,
    height: h,
    orientationApplied: false,
  };
}

/** Catmull-Rom weight (a = −0.5), the bicubic kernel libvips also uses when enlarging. */
function cubic(x: number): number {
  const t = Math.abs(x);
  if (t < 1) return 1.5 * t ** 3 - 2.5 * t ** 2 + 1;
  if (t < 2) return -0.5 * t ** 3 + 2.5 * t ** 2 - 4 * t + 2;
  return 0;
}

/** Per output coordinate: the 4 source taps (clamped) and their weights, half-pixel centres. */
function taps(n: number, m: number): { idx: Int32Array; w: Float32Array } {
  const idx = new Int32Array(4 * m);
  const w = new Float32Array(4 * m);
  for (let o = 0; o < m; o++) {
    const x = ((o + 0.5) * n) / m - 0.5;
    const x0 = Math.floor(x);
    for (let k = 0; k < 4; k++) {
      const s = x0 - 1 + k;
      idx[4 * o + k] = Math.min(n - 1, Math.max(0, s));
      w[4 * o + k] = cubic(x - s);
    }
  }
  return { idx, w };
}

/** Resizes an alpha channel [1,1,h,w] to the restored size (separable bicubic, clamped to [0,1]). */
export async function upscaleAlpha(alpha: HostTensor<'float32'>, width: number, height: number): Promise<HostTensor<'float32'>> {
  const [, , h, w] = alpha.shape as [number, number, number, number];
  const a = alpha.data;
  const tx = taps(w, width);
  const ty = taps(h, height);
  const rows = new Float32Array(h * width);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < width; x++) {
      let v = 0;
      for (let k = 0; k < 4; k++) v += tx.w[4 * x + k]! * a[y * w + tx.idx[4 * x + k]!]!;
      rows[y * width + x] = v;
    }
  }
  const out = new Float32Array(height * width);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let v = 0;
      for (let k = 0; k < 4; k++) v += ty.w[4 * y + k]! * rows[ty.idx[4 * y + k]! * width + x]!;
      out[y * width + x] = Math.min(1, Math.max(0, v));
    }
  }
  return f32([1, 1, height, width], out);
}
