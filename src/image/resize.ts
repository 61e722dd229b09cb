/**
 * Resizing planar float tensors with sharp (libvips): alpha channels to re-attach to
 * super-resolved outputs, and RGB images for a bicubic baseline.
 *
 * sharp cannot resize float samples, so values go through 16-bit samples (clamped to
 * [0,1], step 1/65535 ≈ 1.5e-5). This is libvips resampling, not MATLAB `imresize`: use it
 * for previews and alpha, not for PSNR numbers meant to match published bicubic tables.
 */
import sharp from 'sharp';
import { f32 } from '../tensor.js';
import type { HostTensor } from '../tensor.js';

/** Resampling kernels (sharp's names). Upscaling with libvips uses bicubic interpolation for cubic, mitchell and lanczos alike. */
export type ResizeKernel = 'nearest' | 'linear' | 'cubic' | 'mitchell' | 'lanczos2' | 'lanczos3';

/** Options of the resize functions. */
export interface ResizeOptions {
  /** Resampling kernel (default 'cubic' for RGB, 'lanczos3' for alpha). */
  kernel?: ResizeKernel;
}

function checkTarget(fn: string, width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`${fn}: target size must be positive integers, got ${width}x${height}`);
  }
}

async function resizePlanar(t: HostTensor<'float32'>, channels: 1 | 3, width: number, height: number, kernel: ResizeKernel): Promise<HostTensor<'float32'>> {
  const [, , h, w] = t.shape as [number, number, number, number];
  const hw = h * w;
  const src = new Uint16Array(hw * channels);
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < hw; p++) {
      const v = t.data[c * hw + p]!;
      src[p * channels + c] = v > 0 ? (v >= 1 ? 65535 : Math.round(v * 65535)) : 0;
    }
  }
  const space = channels === 1 ? 'grey16' : 'rgb16';
  const out = await sharp(src, { raw: { width: w, height: h, channels }, limitInputPixels: false })
    .resize(width, height, { kernel, fit: 'fill' })
    .toColourspace(space)
    .raw({ depth: 'ushort' })
    .toBuffer({ resolveWithObject: true });
  if (out.info.width !== width || out.info.height !== height || out.info.channels !== channels) {
    throw new Error(`resize: sharp returned ${out.info.width}x${out.info.height}x${out.info.channels}, expected ${width}x${height}x${channels}`);
  }
  const bytes = out.data.byteOffset % 2 === 0 ? out.data : Buffer.from(out.data);
  const s = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  const ohw = width * height;
  const dst = new Float32Array(ohw * channels);
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < ohw; p++) dst[c * ohw + p] = s[p * channels + c]! / 65535;
  }
  return f32([1, channels, height, width], dst);
}

/**
 * Resizes an alpha channel [1,1,h,w] to [1,1,height,width] (default kernel lanczos3),
 * e.g. to re-attach the source alpha to a ×4 super-resolved output. Values stay in [0,1].
 */
export async function resizeAlpha(alpha: HostTensor<'float32'>, width: number, height: number, opts: ResizeOptions = {}): Promise<HostTensor<'float32'>> {
  const s = alpha.shape;
  if (s.length !== 4 || s[0] !== 1 || s[1] !== 1) throw new Error(`resizeAlpha: expected [1,1,H,W], got [${s.join(',')}]`);
  checkTarget('resizeAlpha', width, height);
  return resizePlanar(alpha, 1, width, height, opts.kernel ?? 'lanczos3');
}

/**
 * Resizes planar RGB [1,3,h,w] to [1,3,height,width] (default kernel cubic), e.g. for a
 * bicubic baseline beside a restored output. Values are clamped to [0,1].
 */
export async function resizeRgb(rgb: HostTensor<'float32'>, width: number, height: number, opts: ResizeOptions = {}): Promise<HostTensor<'float32'>> {
  const s = rgb.shape;
  if (s.length !== 4 || s[0] !== 1 || s[1] !== 3) throw new Error(`resizeRgb: expected [1,3,H,W], got [${s.join(',')}]`);
  checkTarget('resizeRgb', width, height);
  return resizePlanar(rgb, 3, width, height, opts.kernel ?? 'cubic');
}
