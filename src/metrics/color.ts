/**
 * Image conversions of the metrics, exactly as BasicSR computes them: float images become
 * uint8 like `tensor2img` (clamp to [0,1], ×255 in float32, round half to even), and the Y
 * channel is BT.601 luma computed like `to_y_channel` (float32 input, float64 dot product,
 * back to float32), on the [0,255] scale.
 */
import { decodePixels } from '../image/decode.js';
import { quantize } from '../image/io.js';
import type { HostTensor } from '../tensor.js';

/** A planar 8-bit image: `data[c·H·W + y·W + x]`. */
export interface Image8 {
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly data: Uint8Array;
}

/** A planar float image (metrics work on float64 for the arithmetic, like numpy). */
export interface ImageF {
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly data: Float32Array | Float64Array;
}

function chw(t: HostTensor, index: number): { c: number; h: number; w: number; offset: number } {
  const s = t.shape;
  if (s.length === 3) {
    if (index !== 0) throw new Error(`image index ${index} out of range for a [C,H,W] tensor`);
    return { c: s[0]!, h: s[1]!, w: s[2]!, offset: 0 };
  }
  if (s.length === 4) {
    if (!(index >= 0 && index < s[0]!)) throw new Error(`image index ${index} out of range for a batch of ${s[0]}`);
    const n = s[1]! * s[2]! * s[3]!;
    return { c: s[1]!, h: s[2]!, w: s[3]!, offset: index * n };
  }
  throw new Error(`expected an image tensor [C,H,W] or [B,C,H,W], got [${s.join(',')}]`);
}

/**
 * BasicSR's `tensor2img` for one image of a float tensor in [0,1] (values outside are clamped):
 * `round(clamp(x,0,1)·255)` with the product in float32 and rounding half to even.
 */
export function toUint8(t: HostTensor<'float32'>, index = 0): Image8 {
  const { c, h, w, offset } = chw(t, index);
  const n = c * h * w;
  const src = t.data;
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = quantize(src[offset + i]!, 255);
  return { channels: c, height: h, width: w, data };
}

/** RGB weights of BasicSR's Y channel (`bgr2ycbcr(..., y_only=True)`, BT.601 on [0,1] input). */
const Y_R = 65.481;
const Y_G = 128.553;
const Y_B = 24.966;

/**
 * The Y channel as BasicSR's `to_y_channel` computes it from an 8-bit RGB image: samples
 * become float32 `v/255`, luma `R·65.481 + G·128.553 + B·24.966 + 16` in float64, divided by
 * 255 and stored as float32, then multiplied by 255 in float32. Result on the [0,255] scale.
 */
export function yChannel(img: Image8): ImageF {
  if (img.channels !== 3) throw new Error(`the Y channel needs an RGB image, got ${img.channels} channel(s)`);
  const hw = img.height * img.width;
  const f = new Float32Array(256);
  for (let v = 0; v < 256; v++) f[v] = v / 255; // correctly rounded float32 v/255, as numpy
  const out = new Float32Array(hw);
  const d = img.data;
  for (let p = 0; p < hw; p++) {
    // numpy: np.dot(img_bgr, [24.966, 128.553, 65.481]) sums B, G, R in that order.
    const y = f[d[2 * hw + p]!]! * Y_B + f[d[hw + p]!]! * Y_G + f[d[p]!]! * Y_R + 16.0;
    out[p] = Math.fround(Math.fround(y / 255) * 255);
  }
  return { channels: 1, height: img.height, width: img.width, data: out };
}

/** The image itself on the [0,255] scale as float64 (the RGB path of the metrics). */
export function asFloat(img: Image8): ImageF {
  return { channels: img.channels, height: img.height, width: img.width, data: Float64Array.from(img.data) };
}

/** Removes `border` pixels from each edge (BasicSR's `crop_border`). */
export function cropBorder(img: ImageF, border: number): ImageF {
  if (!Number.isInteger(border) || border < 0) throw new Error(`crop border must be a non-negative integer, got ${border}`);
  if (border === 0) return img;
  const h = img.height - 2 * border;
  const w = img.width - 2 * border;
  if (h <= 0 || w <= 0) throw new Error(`crop border ${border} leaves nothing of a ${img.width}×${img.height} image`);
  const out = new Float64Array(img.channels * h * w);
  for (let c = 0; c < img.channels; c++) {
    for (let y = 0; y < h; y++) {
      const src = (c * img.height + y + border) * img.width + border;
      for (let x = 0; x < w; x++) out[(c * h + y) * w + x] = img.data[src + x]!;
    }
  }
  return { channels: img.channels, height: h, width: w, data: out };
}

/**
 * Reads an image file as the reference scripts see it through `cv2.imread(path)` /
 * `PIL.Image.open(path).convert('RGB')`: 8-bit RGB, alpha dropped, gray replicated, 16-bit
 * samples reduced to their high byte (OpenCV's conversion), EXIF orientation applied.
 */
export async function readImage8(path: string): Promise<Image8> {
  const dec = await decodePixels(path);
  const { width: w, height: h, channels: c, data } = dec;
  const hw = w * h;
  const out = new Uint8Array(3 * hw);
  const shift = dec.maxValue === 65535 ? 8 : 0;
  for (let p = 0, s = 0; p < hw; p++, s += c) {
    out[p] = data[s]! >> shift;
    out[hw + p] = data[s + 1]! >> shift;
    out[2 * hw + p] = data[s + 2]! >> shift;
  }
  return { channels: 3, height: h, width: w, data: out };
}
