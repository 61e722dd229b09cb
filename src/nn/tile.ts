/**
 * Tile mode of the convolutional layers. When DIRformer runs on a tile of a larger
 * feature map, the tile carries a halo of real neighbouring pixels; convolutions then
 * run without padding ("valid"), and `mask` (1 inside the image, 0 outside) zeroes
 * what lies beyond the image border exactly where the full-image model would see its
 * zero padding. The result on the tile's core equals the full-image result.
 */
import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';

/** Tile context: the in-image mask (1, 1, h, w) aligned with the current tensor. */
export interface TileContext {
  readonly mask: Value;
}

/** Crops `n` pixels from every side of an NCHW tensor (static shapes). */
export function cropBorder(x: Value, n: number): Value {
  if (n === 0) return x;
  return op.slice(x, [n, n], [x.sdim(2) - n, x.sdim(3) - n], [2, 3]);
}

/** Zeroes the pixels outside the image before a convolution with spatial extent. */
export function maskOutside(x: Value, tile: TileContext | undefined): Value {
  return tile ? op.mul(x, tile.mask) : x;
}

/**
 * 1×1 convolutions of one input `x`, each followed by {@link maskOutside}: returns what applies
 * one of them. Without a bias the mask multiplies `x` once, before all of them, with the same
 * result (a bias-free 1×1 conv maps zero pixels to zero): there it multiplies fewer channels, and
 * each 1×1 conv and the depthwise conv after it stay adjacent, so ORT runs both in its blocked
 * layout (NCHWc) without reordering between them (measured: reorders were 28% of a 96² block
 * tile's pass B). With a bias the mask follows each conv.
 */
export function maskedPointwise(x: Value, tile: TileContext | undefined, bias: boolean): (pointwise: (x: Value) => Value) => Value {
  if (!tile) return (pointwise) => pointwise(x);
  if (bias) return (pointwise) => maskOutside(pointwise(x), tile);
  const masked = maskOutside(x, tile);
  return (pointwise) => pointwise(masked);
}

/** The same tile context after a valid k×k convolution (the mask shrinks with the tensor). */
export function shrink(tile: TileContext | undefined, n: number): TileContext | undefined {
  return tile && n ? { mask: cropBorder(tile.mask, n) } : tile;
}
