/**
 * Image files ⇄ host tensors, on sharp.
 *
 * Loading gives a planar float32 RGB tensor [1,3,H,W] in [0,1] (the layout the DiffIR
 * models take), the alpha channel apart, and what is needed to write the result back
 * faithfully: gray or colour, 8 or 16 bits, the ICC profile and the EXIF block.
 * Saving quantises the way the official code does (`round(clamp(x,0,1)*255)` in float32,
 * rounding half to even), re-attaches alpha and metadata, and writes atomically.
 */
import { mkdir, stat } from 'node:fs/promises';
import { constants as bufferConstants } from 'node:buffer';
import { dirname, extname } from 'node:path';
import { existsError, folderError, pathExists, writeFileAtomic } from '../fs/atomic.js';
import sharp from 'sharp';
import type { Sharp } from 'sharp';
import { f32 } from '../tensor.js';
import type { HostTensor } from '../tensor.js';
import { decodePixels } from './decode.js';
import { firstLine } from '../errors.js';
import type { DecodeOptions } from './decode.js';
import { iccColourSpace, resetExifOrientation, setPngMetadata, stripExifHeader } from './metadata.js';
import { pack } from './pixels.js';

export { quantize } from './pixels.js';

export { DEFAULT_MAX_PIXELS } from './decode.js';
export type { DecodeOptions, FailOn } from './decode.js';

/** An image decoded for the models, with what is needed to save the restored result alike. */
export interface LoadedImage {
  /** Planar RGB, shape [1,3,H,W], values in [0,1]. Gray sources are replicated to 3 channels. */
  rgb: HostTensor<'float32'>;
  /** Alpha, shape [1,1,H,W], values in [0,1]; null when the source has none. */
  alpha: HostTensor<'float32'> | null;
  /** The source had one colour channel (gray or gray + alpha); save it as gray. */
  gray: boolean;
  /** Bits per sample of the source: 16 for 16-bit PNG / TIFF, otherwise 8. */
  bitDepth: 8 | 16;
  /** Source format as the decoder names it: png, jpeg, webp, tiff, gif, heif, ... */
  format: string;
  /** Width in pixels, after EXIF orientation. */
  width: number;
  /** Height in pixels, after EXIF orientation. */
  height: number;
  /** Embedded ICC profile (not applied to the pixels; written back on save). Dropped for CMYK sources. */
  icc?: Uint8Array;
  /** Embedded EXIF block, starting at the TIFF header (no `Exif\0\0` prefix), orientation tag as found. */
  exif?: Uint8Array;
  /** True when an EXIF orientation other than 1 was applied to make the pixels upright. */
  orientationApplied: boolean;
}

/** Options of {@link loadImage}. */
export type LoadOptions = DecodeOptions;

/**
 * Loads an image file (or encoded bytes) as a float32 tensor for the models.
 *
 * EXIF orientation is applied; 16-bit sources keep 16-bit precision (samples / 65535);
 * gray sources are replicated to RGB and flagged `gray`; palette images are expanded to
 * RGB(A). The ICC profile is not applied to the samples (like OpenCV in the official
 * code) but is returned for {@link saveImage} to embed again.
 * @throws {Error} one-line message naming the file: not found, empty, not a readable image, too large
 */
export async function loadImage(source: string | Uint8Array, opts: LoadOptions = {}): Promise<LoadedImage> {
  const dec = await decodePixels(source, opts);
  const { width: w, height: h, channels: c, data } = dec;
  const hw = w * h;
  const inv = dec.maxValue;
  const rgb = new Float32Array(3 * hw);
  const alpha = c === 4 ? new Float32Array(hw) : null;
  for (let p = 0, s = 0; p < hw; p++, s += c) {
    rgb[p] = data[s]! / inv;
    rgb[hw + p] = data[s + 1]! / inv;
    rgb[2 * hw + p] = data[s + 2]! / inv;
    if (alpha) alpha[p] = data[s + 3]! / inv;
  }
  const src = dec.source;
  const img: LoadedImage = {
    rgb: f32([1, 3, h, w], rgb),
    alpha: alpha ? f32([1, 1, h, w], alpha) : null,
    gray: src.space === 'b-w' || src.space === 'grey16',
    bitDepth: dec.maxValue === 65535 ? 16 : 8,
    format: src.format,
    width: w,
    height: h,
    orientationApplied: src.orientation !== 1,
  };
  if (src.icc && src.space !== 'cmyk') img.icc = src.icc;
  if (src.exif) img.exif = src.exif;
  return img;
}

/** Output formats {@link saveImage} writes. */
export type ImageFormat = 'png' | 'jpg' | 'jpeg' | 'webp' | 'tiff';

/** What {@link saveImage} needs: pixels plus, optionally, what {@link loadImage} returned about the source. */
export interface SaveableImage {
  /** Planar RGB [1,3,H,W] (or gray [1,1,H,W]), float32; values outside [0,1] are clamped. */
  rgb: HostTensor<'float32'>;
  /** Alpha [1,1,H,W] in [0,1], re-attached where the format allows. */
  alpha?: HostTensor<'float32'> | null;
  /** Save one colour channel (BT.601 luma of RGB; exactly R when R = G = B). Default: rgb has one channel. */
  gray?: boolean;
  /** 16 writes 16-bit PNG / TIFF (×65535); JPEG and WebP are always 8-bit. Default 8. */
  bitDepth?: 8 | 16;
  /** ICC profile to embed as is (the pixels are not transformed). */
  icc?: Uint8Array;
  /** EXIF block to embed; its orientation tag is reset to 1 since the pixels are upright. */
  exif?: Uint8Array;
}

/** Options of {@link saveImage}. */
export interface SaveOptions {
  /** Output format; default from the file extension (.png, .jpg/.jpeg, .webp, .tif/.tiff). */
  format?: ImageFormat;
  /**
   * 1-100. JPEG: default 95 (OpenCV's default), 4:4:4 chroma. WebP: lossy at this quality;
   * lossless when omitted. Ignored for PNG and TIFF (lossless).
   */
  quality?: number;
  /** Replace an existing file (default false: refuse). */
  overwrite?: boolean;
  /** Create the output folder (and parents) when missing (default false: error). */
  createFolder?: boolean;
}

/** What {@link saveImage} did. */
export interface SaveResult {
  /** The path written. */
  path: string;
  /** The format written (jpg normalised to jpeg). */
  format: 'png' | 'jpeg' | 'webp' | 'tiff';
  /** Size of the file in bytes. */
  bytes: number;
  /** Things that could not be kept, one line each (e.g. alpha dropped for JPEG). */
  warnings: string[];
}

function normaliseFormat(f: string): SaveResult['format'] | undefined {
  switch (f.toLowerCase()) {
    case 'png':
      return 'png';
    case 'jpg':
    case 'jpeg':
      return 'jpeg';
    case 'webp':
      return 'webp';
    case 'tif':
    case 'tiff':
      return 'tiff';
    default:
      return undefined;
  }
}

function resolveFormat(path: string, format: string | undefined): SaveResult['format'] {
  if (format !== undefined) {
    const f = normaliseFormat(format);
    if (!f) throw new Error(`${path}: unsupported output format '${format}' (use png, jpg, webp or tiff)`);
    return f;
  }
  const ext = extname(path).slice(1);
  const f = normaliseFormat(ext);
  if (!f) {
    throw new Error(
      `${path}: cannot tell the output format from the extension${ext ? ` '.${ext}'` : ' (there is none)'}; use .png, .jpg, .webp or .tiff`,
    );
  }
  return f;
}

/**
 * Largest width and height each output format holds: libjpeg 65535, libwebp 16383; PNG and
 * TIFF are limited by libvips' coordinate limit (10,000,000).
 */
export const MAX_OUTPUT_SIDE: Readonly<Record<SaveResult['format'], number>> = { png: 10_000_000, jpeg: 65535, webp: 16383, tiff: 10_000_000 };

/**
 * Checks, before any work, that an image of `width`×`height` can be written as `format`
 * (`jpg` or `jpeg`, `png`, `webp`, `tiff`): the format's side limit, and the encoder's input
 * buffer (RGBA, 16-bit at most) within what one buffer can hold. Throws a one-line error naming `path`.
 */
export function checkOutputSize(path: string, format: string, width: number, height: number): void {
  const f = normaliseFormat(format);
  if (!f) throw new Error(`${path}: unsupported output format '${format}' (use png, jpg, webp or tiff)`);
  const max = MAX_OUTPUT_SIDE[f];
  if (width > max || height > max) {
    const fit = (Object.keys(MAX_OUTPUT_SIDE) as SaveResult['format'][]).filter((g) => width <= MAX_OUTPUT_SIDE[g] && height <= MAX_OUTPUT_SIDE[g]);
    throw new Error(
      `${path}: a ${width}×${height} result cannot be saved as ${f.toUpperCase()} (at most ${max} pixels a side)${fit.length ? `; choose ${fit.join(' or ')} with --format` : ''}`,
    );
  }
  if (width * height * 4 * 2 > bufferConstants.MAX_LENGTH) {
    throw new Error(`${path}: a ${width}×${height} result is too large to encode in one buffer (${bufferConstants.MAX_LENGTH} bytes at most)`);
  }
}

function checkQuality(path: string, q: number | undefined): void {
  if (q === undefined) return;
  if (!Number.isInteger(q) || q < 1 || q > 100) throw new Error(`${path}: quality must be an integer from 1 to 100, got ${q}`);
}

/**
 * Saves a float32 image tensor to a file, atomically.
 *
 * Samples are `round(clamp(x,0,1) * 255)` (or ×65535 for 16-bit PNG / TIFF), rounding half
 * to even as numpy and PyTorch do. Alpha is re-attached (JPEG: dropped, with a warning).
 * The ICC profile is embedded as is, and EXIF (orientation reset to 1) where the format
 * allows: PNG, JPEG and WebP take both, TIFF takes the ICC profile only. An existing file
 * is replaced only with `overwrite: true`.
 * @returns the path, format, size and warnings about anything not kept
 * @throws {Error} one-line message naming the file or folder
 */
export async function saveImage(path: string, img: SaveableImage, opts: SaveOptions = {}): Promise<SaveResult> {
  const format = resolveFormat(path, opts.format);
  checkQuality(path, opts.quality);
  const shape = img.rgb.shape;
  if (shape.length !== 4 || shape[0] !== 1 || (shape[1] !== 3 && shape[1] !== 1)) {
    throw new Error(`${path}: image tensor must be [1,3,H,W] (or [1,1,H,W]), got [${shape.join(',')}]`);
  }
  const rgbChannels = shape[1] as 1 | 3;
  const height = shape[2]!;
  const width = shape[3]!;
  if (!(width > 0 && height > 0)) throw new Error(`${path}: image tensor is empty ([${shape.join(',')}])`);
  checkOutputSize(path, format, width, height);
  const warnings: string[] = [];
  let alpha = img.alpha ?? null;
  if (alpha) {
    const a = alpha.shape;
    if (a.length !== 4 || a[0] !== 1 || a[1] !== 1 || a[2] !== height || a[3] !== width) {
      throw new Error(`${path}: alpha tensor must be [1,1,${height},${width}] to match the image, got [${a.join(',')}]`);
    }
  }

  // Folder and existing-file checks come first: no point encoding what cannot be written.
  const dir = dirname(path);
  if (opts.createFolder) {
    try {
      await mkdir(dir, { recursive: true });
    } catch (e) {
      throw folderError(dir, e);
    }
  }
  try {
    const st = await stat(dir);
    if (!st.isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
  } catch (e) {
    throw folderError(dir, e);
  }
  if (await pathExists(path)) {
    if (!opts.overwrite) throw existsError(path);
    if ((await stat(path).catch(() => null))?.isDirectory()) throw new Error(`${path}: is a directory, cannot replace it with an image`);
  }

  let bitDepth = img.bitDepth ?? 8;
  if (bitDepth !== 8 && bitDepth !== 16) throw new Error(`${path}: bitDepth must be 8 or 16, got ${String(bitDepth)}`);
  if (bitDepth === 16 && (format === 'jpeg' || format === 'webp')) {
    warnings.push(`${format.toUpperCase()} is 8-bit only: 16-bit precision not kept (save as PNG or TIFF to keep it)`);
    bitDepth = 8;
  }
  if (alpha && format === 'jpeg') {
    warnings.push('JPEG has no alpha channel: alpha dropped (save as PNG, WebP or TIFF to keep it)');
    alpha = null;
  }
  // WebP has no gray mode: gray output is written as RGB there.
  const gray = (img.gray ?? rgbChannels === 1) && format !== 'webp';
  let icc = img.icc && img.icc.length > 0 ? img.icc : undefined;
  if (icc) {
    const space = iccColourSpace(icc);
    const want = gray ? 'GRAY' : 'RGB';
    if (space !== want) {
      warnings.push(`ICC profile not embedded: it describes ${space ?? 'an unknown colour space'} but the output is ${gray ? 'gray' : 'RGB'}`);
      icc = undefined;
    }
  }
  let exif = img.exif && img.exif.length > 0 ? resetExifOrientation(stripExifHeader(img.exif)) : undefined;
  if (exif && format === 'tiff') {
    warnings.push('EXIF not written: the TIFF encoder does not support it (save as PNG, JPEG or WebP to keep it)');
    exif = undefined;
  }

  const maxValue = bitDepth === 16 ? 65535 : 255;
  const packed = pack(img.rgb.data, rgbChannels, alpha ? alpha.data : null, width * height, gray, maxValue);
  const space = gray ? (maxValue === 65535 ? 'grey16' : 'b-w') : maxValue === 65535 ? 'rgb16' : 'srgb';
  const raw = (): Sharp => sharp(packed.data, { raw: { width, height, channels: packed.channels } }).toColourspace(space);

  let encoded: Uint8Array;
  try {
    if (format === 'png') {
      encoded = await raw().png({ compressionLevel: 6 }).toBuffer();
      if (icc || exif) encoded = setPngMetadata(encoded, icc, exif);
    } else {
      let pipe: Sharp;
      if (icc || exif) {
        // sharp attaches profiles only by file name, and transforms the pixels when it does.
        // Route through a PNG carrying the exact bytes, which sharp then keeps untransformed.
        const carrier = setPngMetadata(await raw().png({ compressionLevel: 0 }).toBuffer(), icc, exif);
        pipe = sharp(Buffer.from(carrier.buffer, carrier.byteOffset, carrier.byteLength), { limitInputPixels: false }).toColourspace(space);
        if (icc) pipe = pipe.keepIccProfile();
        if (exif) pipe = pipe.keepExif();
      } else {
        pipe = raw();
      }
      if (format === 'jpeg') {
        pipe = pipe.jpeg({ quality: opts.quality ?? 95, chromaSubsampling: '4:4:4' });
      } else if (format === 'webp') {
        pipe = opts.quality === undefined
          ? pipe.webp({ lossless: true, exact: true })
          : pipe.webp({ quality: opts.quality, alphaQuality: 100, exact: true });
      } else {
        pipe = pipe.tiff({ compression: 'deflate', predictor: 'horizontal' });
      }
      encoded = await pipe.toBuffer();
    }
  } catch (e) {
    throw new Error(`${path}: could not encode ${format.toUpperCase()} (${firstLine(e)})`, { cause: e });
  }
  await writeFileAtomic(path, encoded, opts.overwrite ?? false);
  return { path, format, bytes: encoded.byteLength, warnings };
}
