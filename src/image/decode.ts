/**
 * Shared decoding on sharp: one call that turns a file or an encoded buffer into
 * upright, interleaved RGB(A) samples at 8 or 16 bits, with one-line errors that name
 * the file. `loadImage` and `loadMask` are built on it.
 */
import { stat } from 'node:fs/promises';
import sharp from 'sharp';
import type { Metadata, OutputInfo } from 'sharp';
import { stripExifHeader } from './metadata.js';
import { errCode, firstLine } from '../errors.js';

/** How strict the decoder is about damaged pixel data (sharp's `failOn`, least to most sensitive). */
export type FailOn = 'none' | 'truncated' | 'error' | 'warning';

/**
 * Default pixel limit (width × height) for decoded images: 100 megapixels, i.e. 1.2 GB as a
 * float32 RGB tensor. Pass `maxPixels` to raise or lower it (0 or Infinity: no limit).
 */
export const DEFAULT_MAX_PIXELS = 100_000_000;

/** Options shared by every decoding entry point. */
export interface DecodeOptions {
  /** Largest width × height accepted (default {@link DEFAULT_MAX_PIXELS}; 0 or Infinity: no limit). */
  maxPixels?: number;
  /** Name used in error messages when the source is a buffer (default `<buffer>`). */
  name?: string;
  /** Decoder strictness (default `'error'`: corrupt and truncated data are refused). */
  failOn?: FailOn;
}

/** Metadata of the encoded source that the callers need. */
export interface SourceInfo {
  /** Decoder name, e.g. png, jpeg, webp, tiff, gif, heif. */
  format: string;
  /** Colour space of the encoded data as libvips names it (srgb, b-w, grey16, rgb16, cmyk, ...). */
  space: string;
  /** Number of channels in the encoded data (1 to 4, alpha included). */
  channels: number;
  /** Sample format of the encoded data (uchar, ushort, float, ...). */
  depth: string;
  /** EXIF orientation tag (1 to 8), 1 when absent. */
  orientation: number;
  /** Whether the encoded data has an alpha channel (palette transparency included). */
  hasAlpha: boolean;
  /** Embedded ICC profile, if any. */
  icc?: Uint8Array;
  /** Embedded EXIF block, normalised to start at the TIFF header (no `Exif\0\0` prefix). */
  exif?: Uint8Array;
}

/** Upright, interleaved pixels as decoded: RGB or RGBA, 8 or 16 bits per sample. */
export interface DecodedPixels {
  /** Interleaved samples, `channels` per pixel, rows top to bottom. */
  data: Uint8Array | Uint16Array;
  /** 3 (RGB) or 4 (RGBA). Grayscale sources are replicated to RGB. */
  channels: 3 | 4;
  /** Width after EXIF orientation. */
  width: number;
  /** Height after EXIF orientation. */
  height: number;
  /** 255 for 8-bit samples, 65535 for 16-bit samples. */
  maxValue: 255 | 65535;
  /** Facts about the encoded source. */
  source: SourceInfo;
  /** The name used in messages (the path, or the `name` option for buffers). */
  name: string;
}

/** The name an image source goes by in error messages. */
export function sourceName(source: string | Uint8Array, name?: string): string {
  return typeof source === 'string' ? source : (name ?? '<buffer>');
}

/** Checks that `path` names a readable, non-empty regular file; throws a one-line error otherwise. */
async function checkFile(path: string): Promise<void> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    const code = errCode(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new Error(`${path}: file not found`, { cause: e });
    if (code === 'EACCES' || code === 'EPERM') throw new Error(`${path}: permission denied`, { cause: e });
    throw new Error(`${path}: cannot read file (${code ?? firstLine(e)})`, { cause: e });
  }
  if (st.isDirectory()) throw new Error(`${path}: is a directory, not an image file`);
  if (!st.isFile()) throw new Error(`${path}: not a regular file`);
  if (st.size === 0) throw new Error(`${path}: empty file, not an image`);
}

/** Rephrases a sharp failure as a one-line error naming the source. */
function unreadable(name: string, e: unknown): Error {
  if (errCode(e) === 'EACCES') return new Error(`${name}: permission denied`, { cause: e });
  let detail = firstLine(e).replace(/^Input (file|buffer) /i, '');
  if (/unsupported image format|^is missing|^is empty/i.test(detail)) detail = '';
  detail = detail.replace(/^has corrupt header/i, 'corrupt header').replace(/:\s*$/, '').slice(0, 160);
  return new Error(`${name}: not a readable image (corrupt or unsupported format${detail ? `; ${detail}` : ''})`, { cause: e });
}

/**
 * Decodes an image file or encoded buffer to upright, interleaved RGB(A) samples.
 *
 * EXIF orientation is applied. Embedded ICC profiles are not applied (the samples are the
 * encoded values, as OpenCV and the official code read them); the profile is returned in
 * `source.icc` so that it can be written back. 16-bit sources stay 16-bit. Grayscale sources
 * are replicated to RGB (exactly: R = G = B = gray), palette sources are expanded.
 * @throws {Error} one-line message naming the source: missing, empty, unreadable, too large
 */
export async function decodePixels(source: string | Uint8Array, opts: DecodeOptions = {}): Promise<DecodedPixels> {
  const name = sourceName(source, opts.name);
  const failOn = opts.failOn ?? 'error';
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  let input: string | Buffer;
  if (typeof source === 'string') {
    await checkFile(source);
    input = source;
  } else {
    if (source.length === 0) throw new Error(`${name}: empty buffer, not an image`);
    input = Buffer.from(source.buffer, source.byteOffset, source.byteLength);
  }

  let meta: Metadata;
  try {
    meta = await sharp(input, { failOn, limitInputPixels: false }).metadata();
  } catch (e) {
    throw unreadable(name, e);
  }
  const pixels = meta.width * meta.height;
  if (maxPixels > 0 && Number.isFinite(maxPixels) && pixels > maxPixels) {
    throw new Error(
      `${name}: image too large (${meta.width}x${meta.height} = ${pixels} pixels; the limit is ${maxPixels}, raise the pixel limit to load it)`,
    );
  }

  const is16 = meta.depth !== 'uchar' && meta.depth !== 'char';
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await sharp(input, { failOn, autoOrient: true, ignoreIcc: true, limitInputPixels: false })
      .toColourspace(is16 ? 'rgb16' : 'srgb')
      .raw(is16 ? { depth: 'ushort' } : {})
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw unreadable(name, e);
  }
  const { info } = out;
  if (info.channels !== 3 && info.channels !== 4) {
    throw new Error(`${name}: unsupported channel layout (${info.channels} channels after decoding)`);
  }
  let data: Uint8Array | Uint16Array;
  if (is16) {
    const n = out.data.byteLength / 2;
    data = out.data.byteOffset % 2 === 0
      ? new Uint16Array(out.data.buffer, out.data.byteOffset, n)
      : new Uint16Array(out.data.buffer.slice(out.data.byteOffset, out.data.byteOffset + out.data.byteLength));
  } else {
    data = new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength);
  }
  const expected = info.width * info.height * info.channels;
  if (data.length !== expected) throw new Error(`${name}: decoder returned ${data.length} samples, expected ${expected}`);

  const src: SourceInfo = {
    format: String(meta.format),
    space: String(meta.space),
    channels: meta.channels,
    depth: String(meta.depth),
    orientation: meta.orientation ?? 1,
    hasAlpha: meta.hasAlpha,
  };
  if (meta.icc && meta.icc.length > 0) src.icc = new Uint8Array(meta.icc);
  if (meta.exif && meta.exif.length > 0) src.exif = stripExifHeader(new Uint8Array(meta.exif)).slice();
  return {
    data,
    channels: info.channels,
    width: info.width,
    height: info.height,
    maxValue: is16 ? 65535 : 255,
    source: src,
    name,
  };
}
