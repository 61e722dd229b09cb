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
  /**
   * Pad the hidden width with zero channels to a multiple of this (default 1: none). ORT's
   * native CPU convolutions run in blocks of 8 channels (NCHWc); a hidden width off the
   * block (85 for C = 32 and factor 2.66) sends the depthwise and output convs to slower
   * plain kernels. The padded channels are exactly 0 (GELU(0)·0) and meet zero output weights.
   */
  readonly channelBlock?: number;
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
  const block = o.channelBlock ?? 1;
  if (hidden % block !== 0) return dgfnPadded(g, prefix, x, o, hidden, Math.ceil(hidden / block) * block, tile);
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

/** {@link dgfn} with the hidden width padded from `hidden` to `padded` zero channels (same official parameters). */
function dgfnPadded(g: Graph, prefix: string, x: Value, o: DGFNOptions, hidden: number, padded: number, tile?: TileContext): Value {
  if (x.rank !== 4 || x.dim(1) !== o.dim) throw new Error(`dgfn ${prefix}: expected input (B, ${o.dim}, H, W), got ${x}`);
  const bias = o.bias ?? false;
  const extra = padded - hidden;
  // (2h, …) → (2h', …): each half [x₁; x₂] followed by its zero rows.
  const padHalves = (w: Value): Value => {
    const zeros = new Array<number>(2 * w.rank).fill(0);
    zeros[w.rank] = extra;
    return op.concat(op.split(w, [hidden, hidden], 0).map((half) => op.pad(half, zeros)), 0);
  };
  const wIn = padHalves(g.param(`${prefix}.project_in.weight`, [2 * hidden, o.dim, 1, 1]));
  const bIn = bias ? padHalves(g.param(`${prefix}.project_in.bias`, [2 * hidden])) : null;
  const wDw = padHalves(g.param(`${prefix}.dwconv.weight`, [2 * hidden, 1, 3, 3]));
  const bDw = bias ? padHalves(g.param(`${prefix}.dwconv.bias`, [2 * hidden])) : null;
  const wOut = op.pad(g.param(`${prefix}.project_out.weight`, [o.dim, hidden, 1, 1]), [0, 0, 0, 0, 0, extra, 0, 0]);
  const bOut = bias ? g.param(`${prefix}.project_out.bias`, [o.dim]) : null;
  let h = op.conv(x, wIn, bIn);
  h = op.conv(maskOutside(h, tile), wDw, bDw, { pads: tile ? 0 : 1, group: 2 * padded });
  const [x1, x2] = op.split(h, [padded, padded], 1) as [Value, Value];
  return op.conv(op.mul(op.gelu(x1), x2), wOut, bOut);
}
