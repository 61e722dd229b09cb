/**
 * Inpainting masks: an image file where white marks the hole to fill and black the
 * pixels to keep, turned into a binary float tensor [1,1,H,W] (1 = hole, 0 = keep).
 */
import { f32 } from '../tensor.js';
import type { HostTensor } from '../tensor.js';
import { decodePixels } from './decode.js';
import type { DecodeOptions } from './decode.js';

/** Options of {@link loadMask}. */
export interface MaskOptions extends DecodeOptions {
  /** A pixel is a hole when its value (in [0,1]) is strictly above this (default 0.5). */
  threshold?: number;
}

/**
 * Loads a mask for an image of `width` × `height` as [1,1,H,W] float32, 1 = hole, 0 = keep.
 *
 * The value thresholded is the gray level (BT.601 luma for colour masks). With an alpha
 * channel: when every pixel has the same colour (e.g. white strokes on a transparent
 * layer), alpha alone is the mask; otherwise the mask is flattened onto black
 * (luma × alpha). EXIF orientation is applied, as for the image.
 * @throws {Error} one-line message naming the file: unreadable, or not the image's size (both sizes given)
 */
export async function loadMask(path: string, width: number, height: number, opts: MaskOptions = {}): Promise<HostTensor<'float32'>> {
  const threshold = opts.threshold ?? 0.5;
  const dec = await decodePixels(path, opts);
  if (dec.width !== width || dec.height !== height) {
    throw new Error(`${dec.name}: mask is ${dec.width}x${dec.height} but the image is ${width}x${height}; they must be the same size`);
  }
  const { data, channels: c, maxValue } = dec;
  const hw = width * height;
  let alphaOnly = false;
  if (c === 4) {
    alphaOnly = true;
    const r0 = data[0]!;
    const g0 = data[1]!;
    const b0 = data[2]!;
    for (let s = 0; s < data.length; s += 4) {
      if (data[s] !== r0 || data[s + 1] !== g0 || data[s + 2] !== b0) {
        alphaOnly = false;
        break;
      }
    }
  }
  const out = new Float32Array(hw);
  for (let p = 0, s = 0; p < hw; p++, s += c) {
    let v: number;
    if (alphaOnly) {
      v = data[s + 3]! / maxValue;
    } else {
      const r = data[s]!;
      const g = data[s + 1]!;
      const b = data[s + 2]!;
      v = (r === g && g === b ? r : 0.299 * r + 0.587 * g + 0.114 * b) / maxValue;
      if (c === 4) v *= data[s + 3]! / maxValue;
    }
    out[p] = v > threshold ? 1 : 0;
  }
  return f32([1, 1, height, width], out);
}
