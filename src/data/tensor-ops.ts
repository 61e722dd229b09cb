/**
 * Cheap planar-image operations on host tensors [N,C,H,W]: crops, border padding, flips
 * and transposes, stacking into batches. These only move memory; anything that
 * computes (filtering, resizing) runs in ONNX Runtime (see `degrade/`).
 */
import { f32 } from '../tensor.js';
import type { HostTensor } from '../tensor.js';
import type { Rng } from '../random.js';

/** A float32 image batch [N,C,H,W]. */
export type Image = HostTensor<'float32'>;

/** [N, C, H, W] of a 4-D tensor, or a one-line error naming `what`. */
export function dims4(t: HostTensor, what = 'image'): [number, number, number, number] {
  if (t.shape.length !== 4) throw new Error(`${what}: expected a [N,C,H,W] tensor, got [${t.shape.join(',')}]`);
  return t.shape as [number, number, number, number];
}

/** The region [top, top+h) × [left, left+w) of every image (must lie inside). */
export function crop(t: Image, top: number, left: number, h: number, w: number): Image {
  const [n, c, H, W] = dims4(t, 'crop');
  if (top < 0 || left < 0 || top + h > H || left + w > W || h < 1 || w < 1) {
    throw new Error(`crop: region ${h}x${w} at (${top},${left}) is outside the ${H}x${W} image`);
  }
  if (top === 0 && left === 0 && h === H && w === W) return t;
  const out = new Float32Array(n * c * h * w);
  const src = t.data;
  let o = 0;
  for (let p = 0; p < n * c; p++) {
    const base = p * H * W;
    for (let y = 0; y < h; y++) {
      const s = base + (top + y) * W + left;
      out.set(src.subarray(s, s + w), o);
      o += w;
    }
  }
  return f32([n, c, h, w], out);
}

/** Index of `i` in [0, n) after mirroring without repeating the edge (OpenCV BORDER_REFLECT_101, ONNX 'reflect'). */
export function reflect101(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  let j = ((i % period) + period) % period;
  if (j >= n) j = period - j;
  return j;
}

/** Pads the bottom and right by mirroring (BORDER_REFLECT_101), as BasicSR does for too-small GT images. */
export function padBottomRight(t: Image, padH: number, padW: number): Image {
  if (padH <= 0 && padW <= 0) return t;
  const [n, c, H, W] = dims4(t, 'pad');
  const h = H + Math.max(0, padH);
  const w = W + Math.max(0, padW);
  const out = new Float32Array(n * c * h * w);
  const src = t.data;
  const col = new Int32Array(w);
  for (let x = 0; x < w; x++) col[x] = reflect101(x, W);
  let o = 0;
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < h; y++) {
      const row = p * H * W + reflect101(y, H) * W;
      if (padW <= 0) {
        out.set(src.subarray(row, row + W), o);
        o += W;
      } else for (let x = 0; x < w; x++) out[o++] = src[row + col[x]!]!;
    }
  }
  return f32([n, c, h, w], out);
}

/** Geometric augmentation as BasicSR's `augment`: horizontal flip, vertical flip, then transpose (rot90 with a flip). */
export interface Augment {
  hflip: boolean;
  vflip: boolean;
  transpose: boolean;
}

/** Draws an augmentation: hflip with probability ½ when `hflip`; vflip and transpose each with ½ when `rot`. */
export function drawAugment(rng: Rng, o: { hflip?: boolean; rot?: boolean }): Augment {
  return {
    hflip: (o.hflip ?? true) && rng.uniform() < 0.5,
    vflip: (o.rot ?? false) && rng.uniform() < 0.5,
    transpose: (o.rot ?? false) && rng.uniform() < 0.5,
  };
}

/** Applies an augmentation to every image of the batch. */
export function applyAugment(t: Image, a: Augment): Image {
  if (!a.hflip && !a.vflip && !a.transpose) return t;
  const [n, c, H, W] = dims4(t, 'augment');
  const [h, w] = a.transpose ? [W, H] : [H, W];
  const out = new Float32Array(n * c * H * W);
  const src = t.data;
  for (let p = 0; p < n * c; p++) {
    const base = p * H * W;
    let o = base;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        // Output (y, x) reads the flipped source at (sy, sx); transposing swaps the roles.
        let sy = a.transpose ? x : y;
        let sx = a.transpose ? y : x;
        if (a.vflip) sy = H - 1 - sy;
        if (a.hflip) sx = W - 1 - sx;
        out[o++] = src[base + sy * W + sx]!;
      }
    }
  }
  return f32([n, c, h, w], out);
}

/** Concatenates [1,C,H,W] (or [n,C,H,W]) tensors of equal C, H, W along the batch axis. */
export function stack(ts: readonly Image[], what = 'batch'): Image {
  if (ts.length === 0) throw new Error(`${what}: nothing to stack`);
  const [, c, h, w] = dims4(ts[0]!, what);
  let n = 0;
  for (const t of ts) {
    const [tn, tc, th, tw] = dims4(t, what);
    if (tc !== c || th !== h || tw !== w) {
      throw new Error(`${what}: samples differ in size ([${ts[0]!.shape.join(',')}] and [${t.shape.join(',')}]); give a crop size so that every sample has the same shape`);
    }
    n += tn;
  }
  if (ts.length === 1) return ts[0]!;
  const out = new Float32Array(n * c * h * w);
  let o = 0;
  for (const t of ts) {
    out.set(t.data, o);
    o += t.data.length;
  }
  return f32([n, c, h, w], out);
}

/** Image `i` of a batch as [1,C,H,W] (a view, no copy). */
export function item(t: Image, i: number): Image {
  const [n, c, h, w] = dims4(t, 'item');
  if (i < 0 || i >= n) throw new Error(`item: index ${i} out of range for a batch of ${n}`);
  const size = c * h * w;
  return { dtype: 'float32', shape: [1, c, h, w], data: t.data.subarray(i * size, (i + 1) * size) };
}

/** Clamps in place to [0, 1]. */
export function clamp01(t: Image): Image {
  const d = t.data;
  for (let i = 0; i < d.length; i++) {
    const v = d[i]!;
    d[i] = v > 0 ? (v < 1 ? v : 1) : 0;
  }
  return t;
}

/** `clamp(round(x·255), 0, 255) / 255` in place (round half to even, like torch.round). */
export function quantize8(t: Image): Image {
  const d = t.data;
  for (let i = 0; i < d.length; i++) {
    const v = Math.fround(d[i]! * 255);
    let r = Math.round(v);
    if (r - v === 0.5 && r % 2 !== 0) r -= 1;
    d[i] = (r < 0 ? 0 : r > 255 ? 255 : r) / 255;
  }
  return t;
}

/**
 * BasicSR's `paired_random_crop`: a random `lqSize`² patch of the LQ batch and the
 * matching (`lqSize`·scale)² patch of each GT-sized tensor. The same window for the whole batch.
 */
export function pairedRandomCrop(lq: Image, gts: readonly Image[], gtSize: number, scale: number, rng: Rng): { lq: Image; gts: Image[] } {
  const [, , h, w] = dims4(lq, 'paired crop');
  if (gtSize % scale !== 0) throw new Error(`paired crop: GT size ${gtSize} is not a multiple of the scale ${scale}`);
  const lqSize = gtSize / scale;
  for (const g of gts) {
    const [, , gh, gw] = dims4(g, 'paired crop');
    if (gh !== h * scale || gw !== w * scale) throw new Error(`paired crop: GT is ${gh}x${gw} but LQ ${h}x${w} times ${scale} is ${h * scale}x${w * scale}`);
  }
  if (h < lqSize || w < lqSize) throw new Error(`paired crop: LQ ${h}x${w} is smaller than the patch ${lqSize}x${lqSize}`);
  const top = rng.int(h - lqSize + 1);
  const left = rng.int(w - lqSize + 1);
  return { lq: crop(lq, top, left, lqSize, lqSize), gts: gts.map((g) => crop(g, top * scale, left * scale, gtSize, gtSize)) };
}
