/**
 * Shared decoding on sharp: one call that turns a file or an encoded buffer into
 * upright, interleaved RGB(A) samples at 8 or 16 bits, with one-line errors that name
 * the file. `loadImage` and `loadMask` are built on it.
 */
import { open, stat } from 'node:fs/promises';
import sharp from 'sharp';
import type { Metadata, OutputInfo } from 'sharp';
import { stripExifHeader } from './metadata.js';
import { implausibleSize } from './structure.js';
import { errCode, firstLine, sanitize } from '../errors.js';

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

/**
 * Checks that `path` names a readable, non-empty regular file; throws a one-line error
 * otherwise. Only `stat` is used, so a FIFO or a device is refused without being opened (opening
 * or reading one can block forever).
 */
export async function checkImageFile(path: string): Promise<number> {
  const shown = sanitize(path, 1024);
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    const code = errCode(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new Error(`${shown}: file not found`, { cause: e });
    if (code === 'EACCES' || code === 'EPERM') throw new Error(`${shown}: permission denied`, { cause: e });
    if (code === 'ELOOP') throw new Error(`${shown}: symbolic link loop`, { cause: e });
    throw new Error(`${shown}: cannot read file (${code ?? sanitize(firstLine(e))})`, { cause: e });
  }
  if (st.isDirectory()) throw new Error(`${shown}: is a directory, not an image file`);
  if (!st.isFile()) throw new Error(`${shown}: not a regular file (a FIFO, socket or device); give an image file`);
  if (st.size === 0) throw new Error(`${shown}: empty file, not an image`);
  return st.size;
}

/** Rephrases a sharp failure as a one-line error naming the source. */
function unreadable(name: string, e: unknown): Error {
  if (errCode(e) === 'EACCES') return new Error(`${name}: permission denied`, { cause: e });
  let detail = firstLine(e).replace(/^Input (file|buffer) /i, '');
  if (/unsupported image format|^is missing|^is empty/i.test(detail)) detail = '';
  detail = sanitize(detail.replace(/^has corrupt header/i, 'corrupt header').replace(/:\s*$/, ''), 160);
  return new Error(`${name}: not a readable image (corrupt or unsupported format${detail ? `; ${detail}` : ''})`, { cause: e });
}

// What libjpeg, libpng and libtiff say (as warnings only) when the data stops before the pixels do.
const TRUNCATED = /premature end|truncat|not enough data|unexpected end|short read|read error/i;

/** Header facts of an image, read without decoding its pixels. */
export interface ImageHeader {
  /** Decoder name, e.g. png, jpeg, webp, tiff, gif, heif. */
  format: string;
  /** Width after EXIF orientation. */
  width: number;
  /** Height after EXIF orientation. */
  height: number;
  /** Whether the samples are 16-bit (or wider) rather than 8-bit. */
  wide: boolean;
  /** Whether the image has an alpha channel. */
  hasAlpha: boolean;
}

/**
 * Reads an image's header only (no pixel is decoded) and checks its size against the pixel
 * limit: what the batch pre-flight of `diffir restore` needs to refuse a file before any work.
 * @throws {Error} one-line message naming the source: missing, not a regular file, empty, unreadable, too large
 */
export async function probeImage(source: string | Uint8Array, opts: DecodeOptions = {}): Promise<ImageHeader> {
  return (await readHeader(source, opts)).header;
}

async function readHeader(source: string | Uint8Array, opts: DecodeOptions): Promise<{ header: ImageHeader; meta: Metadata; input: string | Buffer; name: string }> {
  const name = sanitize(sourceName(source, opts.name), 1024);
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  let input: string | Buffer;
  let fileBytes: number;
  if (typeof source === 'string') {
    fileBytes = await checkImageFile(source);
    input = source;
  } else {
    fileBytes = source.length;
    if (source.length === 0) throw new Error(`${name}: empty buffer, not an image`);
    input = Buffer.from(source.buffer, source.byteOffset, source.byteLength);
  }
  let meta: Metadata;
  try {
    meta = await sharp(input, { failOn: opts.failOn ?? 'error', limitInputPixels: false }).metadata();
  } catch (e) {
    throw unreadable(name, e);
  }
  const pixels = meta.width * meta.height;
  if (!(pixels > 0)) throw new Error(`${name}: not a readable image (its header gives no size)`);
  if (maxPixels > 0 && Number.isFinite(maxPixels) && pixels > maxPixels) {
    throw new Error(
      `${name}: image too large (${meta.width}x${meta.height} = ${pixels} pixels; the limit is ${maxPixels}, raise the pixel limit to load it)`,
    );
  }
  // A file too short for the pixels it declares is truncated or crafted: refuse it before the
  // decoder allocates them (a lenient caller, failOn 'none', reads what is there).
  if ((opts.failOn ?? 'error') !== 'none') {
    const why = await implausibleSize((n) => readPrefix(source, n), fileBytes);
    if (why !== null) throw new Error(`${name}: ${why}`);
  }
  const turned = (meta.orientation ?? 1) >= 5;
  const header: ImageHeader = {
    format: String(meta.format),
    width: turned ? meta.height : meta.width,
    height: turned ? meta.width : meta.height,
    wide: meta.depth !== 'uchar' && meta.depth !== 'char',
    hasAlpha: meta.hasAlpha,
  };
  return { header, meta, input, name };
}

/** The first `n` bytes of a file or buffer (fewer at its end). */
async function readPrefix(source: string | Uint8Array, n: number): Promise<Uint8Array> {
  if (typeof source !== 'string') return source.subarray(0, n);
  const fh = await open(source, 'r');
  try {
    const buf = new Uint8Array(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
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
  const failOn = opts.failOn ?? 'error';
  const { meta, input, name, header } = await readHeader(source, opts);
  const is16 = header.wide;
  let out: { data: Buffer; info: OutputInfo };
  const warnings: string[] = [];
  try {
    const pipe = sharp(input, { failOn, autoOrient: true, ignoreIcc: true, limitInputPixels: false });
    pipe.on('warning', (w: unknown) => warnings.push(String(w)));
    out = await pipe
      .toColourspace(is16 ? 'rgb16' : 'srgb')
      .raw(is16 ? { depth: 'ushort' } : {})
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw unreadable(name, e);
  }
  // libjpeg only warns when the data ends before the rows its header promises (the missing rows
  // come back grey): refuse such files unless the caller asked for leniency.
  const truncated = warnings.find((w) => TRUNCATED.test(w));
  if (truncated !== undefined && (failOn === 'error' || failOn === 'warning')) {
    throw new Error(`${name}: truncated or damaged image data (${sanitize(firstLine(truncated), 160)}); the file is incomplete`);
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
