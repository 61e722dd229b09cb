/**
 * DIRformer's resolution changes, in PyTorch's pixel (un)shuffle channel order:
 * Downsample = Conv3x3(n→n/2, no bias) + PixelUnshuffle(2) (n→2n channels, H/2);
 * Upsample = Conv3x3(n→2n, no bias) + PixelShuffle(2) (n→n/2 channels, 2H).
 * Key: `<prefix>.body.0.weight`.
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { conv2d } from './conv.js';

/** Halves the resolution and doubles the channels of `x` (B, n, H, W). */
export function downsample(g: Graph, prefix: string, x: Value, channels: number): Value {
  const h = conv2d(g, `${prefix}.body.0`, x, { inChannels: channels, outChannels: channels / 2, kernelSize: 3, bias: false });
  return op.pixelUnshuffle(h, 2);
}

/** Doubles the resolution and halves the channels of `x` (B, n, H, W). */
export function upsample(g: Graph, prefix: string, x: Value, channels: number): Value {
  const h = conv2d(g, `${prefix}.body.0`, x, { inChannels: channels, outChannels: channels * 2, kernelSize: 3, bias: false });
  return op.pixelShuffle(h, 2);
}
