/**
 * The ResBlock of CPEN (EDSR-style, from the official `common.py`):
 * x + Conv3x3(LeakyReLU₀.₁(Conv3x3(x))), both convolutions with bias.
 * Keys: `<prefix>.body.0.{weight,bias}`, `<prefix>.body.2.{weight,bias}`.
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { conv2d } from './conv.js';

/** Negative slope of every LeakyReLU in CPEN and the denoiser. */
export const LRELU_SLOPE = 0.1;

/**
 * One ResBlock on `x` (B, C, H, W). `mask` (1, 1, H, W) multiplies the inner convolution's
 * input (see `cpenFeatures`: zero padding at the image border of a window).
 */
export function resBlock(g: Graph, prefix: string, x: Value, channels: number, mask?: Value): Value {
  return g.scope(prefix, () => {
    const c = { inChannels: channels, outChannels: channels, kernelSize: 3 };
    const a = op.leakyRelu(conv2d(g, `${prefix}.body.0`, x, c), LRELU_SLOPE);
    const h = mask ? op.mul(a, mask) : a;
    return op.add(conv2d(g, `${prefix}.body.2`, h, c), x);
  });
}
