/**
 * DGFN — the dynamic gated feed-forward network of DIRformer (Restormer's GDFN whose input
 * was IPR-modulated by the caller): X = DWConv3x3(Conv1x1(F'')), C→2h→2h with
 * h = floor(C·ffn_expansion_factor); Y = GELU(X₁)⊙X₂ (exact erf GELU); out = Conv1x1(h→C).
 *
 * Keys: `<prefix>.project_in.weight`, `<prefix>.dwconv.weight`, `<prefix>.project_out.weight`.
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { conv2d } from './conv.js';
import { type TileContext, maskOutside } from './tile.js';

/** Shape of a DGFN layer. */
export interface DGFNOptions {
  readonly dim: number;
  readonly ffnExpansionFactor: number;
  /** Convolution biases (false in all released models). */
  readonly bias?: boolean;
}

/** Hidden width of DGFN: `int(dim * ffn_expansion_factor)` as Python computes it. */
export function dgfnHidden(dim: number, ffnExpansionFactor: number): number {
  return Math.floor(dim * ffnExpansionFactor);
}

/**
 * DGFN on already normalised and modulated features `x` (B, C, H, W). In tile mode the
 * depthwise conv is valid (one pixel lost on each side) after zeroing out-of-image pixels.
 */
export function dgfn(g: Graph, prefix: string, x: Value, o: DGFNOptions, tile?: TileContext): Value {
  const hidden = dgfnHidden(o.dim, o.ffnExpansionFactor);
  const bias = o.bias ?? false;
  let h = conv2d(g, `${prefix}.project_in`, x, { inChannels: o.dim, outChannels: 2 * hidden, kernelSize: 1, bias });
  h = conv2d(g, `${prefix}.dwconv`, maskOutside(h, tile), {
    inChannels: 2 * hidden,
    outChannels: 2 * hidden,
    kernelSize: 3,
    groups: 2 * hidden,
    bias,
    ...(tile ? { padding: 0 } : {}),
  });
  const [x1, x2] = op.split(h, [hidden, hidden], 1) as [Value, Value];
  return conv2d(g, `${prefix}.project_out`, op.mul(op.gelu(x1), x2), { inChannels: hidden, outChannels: o.dim, kernelSize: 1, bias });
}
