/**
 * Image decoding for the restore pipeline in Node (sharp). `restore.ts` imports it
 * through `#codec` (package.json `imports`): this file in Node, `codec-web.ts` in browsers.
 */
import type { HostTensor } from '../tensor.js';
import { type LoadedImage, loadImage } from './io.js';
import { resizeAlpha } from './resize.js';

/** Decodes an image file (path) or encoded bytes: see {@link loadImage}. */
export function decodeImage(source: string | Uint8Array): Promise<LoadedImage> {
  return loadImage(source);
}

/** Resizes an alpha channel [1,1,h,w] to the restored size (libvips, lanczos3 kernel). */
export function upscaleAlpha(alpha: HostTensor<'float32'>, width: number, height: number): Promise<HostTensor<'float32'>> {
  return resizeAlpha(alpha, width, height);
}
