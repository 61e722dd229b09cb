/**
 * A small PNG encoder for hosts without sharp (browsers): 8- or 16-bit gray, gray+alpha,
 * RGB or RGBA from the samples of {@link pack}, filter 0 (none), zlib from `#host`.
 * Alpha stays unpremultiplied, exactly as computed (a canvas would premultiply it).
 */
import { deflate } from '#host';
import { pngChunk } from './metadata.js';
import { PNG_SIGNATURE } from './structure.js';
import type { Packed } from './pixels.js';

const COLOUR_TYPE = { 1: 0, 2: 4, 3: 2, 4: 6 } as const;

/** Encodes interleaved samples (`Uint16Array` = 16-bit) as a PNG file. */
export function encodePng(p: Packed, width: number, height: number): Uint8Array {
  const depth = p.data instanceof Uint16Array ? 16 : 8;
  const bpp = (p.channels * depth) / 8;
  const row = width * bpp;
  if (p.data.length !== width * height * p.channels) throw new Error(`encodePng: ${p.data.length} samples for ${width}×${height}×${p.channels}`);
  const raw = new Uint8Array(height * (row + 1));
  for (let y = 0; y < height; y++) {
    const o = y * (row + 1) + 1;
    if (depth === 8) raw.set(p.data.subarray(y * row, (y + 1) * row), o);
    else {
      const src = p.data.subarray(y * width * p.channels, (y + 1) * width * p.channels);
      for (let i = 0; i < src.length; i++) {
        raw[o + 2 * i] = src[i]! >> 8;
        raw[o + 2 * i + 1] = src[i]! & 0xff;
      }
    }
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr[8] = depth;
  ihdr[9] = COLOUR_TYPE[p.channels];
  const chunks = [Uint8Array.from(PNG_SIGNATURE), pngChunk('IHDR', ihdr), pngChunk('IDAT', deflate(raw)), pngChunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
