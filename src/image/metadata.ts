/**
 * Byte-level metadata helpers that sharp does not offer: writing an ICC profile and an
 * EXIF block given as bytes into a PNG (sharp only attaches profiles by file name, and
 * transforms the pixels when it does), resetting the EXIF orientation tag, and reading
 * the colour space an ICC profile describes.
 */
import { deflate } from '#host';

import { crc32 } from '../fs/crc32.js';
import { PNG_SIGNATURE, isPng } from './structure.js';

export { crc32 };

/** Builds one PNG chunk (length, type, data, CRC). */
export function pngChunk(type: string, data: Uint8Array): Uint8Array {
  if (!/^[A-Za-z]{4}$/.test(type)) throw new Error(`pngChunk: bad chunk type '${type}'`);
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** A PNG chunk as found in a file. */
export interface PngChunkView {
  /** Four-letter chunk type, e.g. IHDR, iCCP, IDAT. */
  type: string;
  /** The whole chunk: length, type, data and CRC. */
  bytes: Uint8Array;
  /** The chunk data only. */
  data: Uint8Array;
}

/** Splits a PNG into its chunks; throws if it is not a well-formed PNG. */
export function readPngChunks(png: Uint8Array): PngChunkView[] {
  if (!isPng(png)) throw new Error('not a PNG (bad signature)');
  const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const chunks: PngChunkView[] = [];
  let p = 8;
  while (p + 12 <= png.length) {
    const len = dv.getUint32(p);
    if (p + 12 + len > png.length) throw new Error('not a PNG (truncated chunk)');
    const type = String.fromCharCode(png[p + 4]!, png[p + 5]!, png[p + 6]!, png[p + 7]!);
    chunks.push({ type, bytes: png.subarray(p, p + 12 + len), data: png.subarray(p + 8, p + 8 + len) });
    p += 12 + len;
    if (type === 'IEND') break;
  }
  if (chunks[0]?.type !== 'IHDR') throw new Error('not a PNG (IHDR is not the first chunk)');
  return chunks;
}

/** Data of an iCCP chunk carrying `icc` (profile name, compression method 0, zlib stream). */
export function iccpChunkData(icc: Uint8Array): Uint8Array {
  const name = 'ICC profile';
  const z = deflate(icc);
  const out = new Uint8Array(name.length + 2 + z.length);
  for (let i = 0; i < name.length; i++) out[i] = name.charCodeAt(i);
  // out[name.length] = 0 (separator), out[name.length + 1] = 0 (deflate)
  out.set(z, name.length + 2);
  return out;
}

/**
 * Rewrites a PNG so that it carries exactly the given ICC profile and EXIF block (either may
 * be absent): existing iCCP / sRGB / eXIf chunks are removed, new ones go right after IHDR.
 * Pixel data is untouched.
 */
export function setPngMetadata(png: Uint8Array, icc?: Uint8Array, exif?: Uint8Array): Uint8Array {
  const chunks = readPngChunks(png);
  const extra: Uint8Array[] = [];
  if (icc) extra.push(pngChunk('iCCP', iccpChunkData(icc)));
  if (exif) extra.push(pngChunk('eXIf', stripExifHeader(exif)));
  const drop = new Set<string>();
  if (icc) drop.add('iCCP').add('sRGB');
  if (exif) drop.add('eXIf');
  const parts: Uint8Array[] = [Uint8Array.from(PNG_SIGNATURE)];
  for (const c of chunks) {
    if (drop.has(c.type)) continue;
    parts.push(c.bytes);
    if (c.type === 'IHDR') parts.push(...extra);
  }
  const total = parts.reduce((s, b) => s + b.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const b of parts) {
    out.set(b, o);
    o += b.length;
  }
  return out;
}

/** Removes a leading `Exif\0\0` marker, leaving the TIFF-structured EXIF block. */
export function stripExifHeader(exif: Uint8Array): Uint8Array {
  const prefix = [0x45, 0x78, 0x69, 0x66, 0, 0];
  return exif.length >= 6 && prefix.every((b, i) => exif[i] === b) ? exif.subarray(6) : exif;
}

/** Locates the Orientation (0x0112) value in IFD0: its byte offset and byte order, or null. */
function orientationOffset(exif: Uint8Array): { base: number; at: number; little: boolean } | null {
  const base = exif.length >= 6 && exif[0] === 0x45 && exif[1] === 0x78 && exif[2] === 0x69 && exif[3] === 0x66 ? 6 : 0;
  if (exif.length < base + 8) return null;
  const dv = new DataView(exif.buffer, exif.byteOffset, exif.byteLength);
  const bo = String.fromCharCode(exif[base]!, exif[base + 1]!);
  if (bo !== 'II' && bo !== 'MM') return null;
  const little = bo === 'II';
  if (dv.getUint16(base + 2, little) !== 42) return null;
  const ifd0 = base + dv.getUint32(base + 4, little);
  if (ifd0 + 2 > exif.length) return null;
  const n = dv.getUint16(ifd0, little);
  for (let i = 0; i < n; i++) {
    const e = ifd0 + 2 + 12 * i;
    if (e + 12 > exif.length) return null;
    if (dv.getUint16(e, little) === 0x0112) {
      if (dv.getUint16(e + 2, little) !== 3) return null; // must be SHORT
      return { base, at: e + 8, little };
    }
  }
  return null;
}

/** The EXIF orientation (1 to 8) stored in `exif`, or undefined when there is none. */
export function exifOrientation(exif: Uint8Array): number | undefined {
  const o = orientationOffset(exif);
  if (!o) return undefined;
  return new DataView(exif.buffer, exif.byteOffset, exif.byteLength).getUint16(o.at, o.little);
}

/**
 * A copy of `exif` with the Orientation tag set to 1 (pixels already upright). A block
 * without the tag, or one that cannot be parsed, is returned as an unmodified copy.
 */
export function resetExifOrientation(exif: Uint8Array): Uint8Array {
  const out = exif.slice();
  const o = orientationOffset(out);
  if (o) new DataView(out.buffer, out.byteOffset, out.byteLength).setUint16(o.at, 1, o.little);
  return out;
}

/**
 * The colour space an ICC profile describes, from its header (bytes 16-19), trimmed:
 * 'RGB', 'GRAY', 'CMYK', 'Lab', ...; undefined when the profile is too short.
 */
export function iccColourSpace(icc: Uint8Array): string | undefined {
  if (icc.length < 128) return undefined;
  return String.fromCharCode(icc[16]!, icc[17]!, icc[18]!, icc[19]!).trim();
}
