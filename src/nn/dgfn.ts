/**
 * DGFN — the dynamic gated feed-forward network of DIRformer (Restormer's GDFN whose input
 * was IPR-modulated by the caller): X = DWConv3x3(Conv1x1(F'')), C→2h→2h with
 * h = floor(C·ffn_expansion_factor); Y = GELU(X₁)⊙X₂ (exact erf GELU); out = Conv1x1(h→C).
 *
 * Keys: `<prefix>.project_in.weight`, `<prefix>.dwconv.weight`, `<prefix>.project_out.weight`.
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { pointwiseDepthwisePart } from './conv.js';
import { type TileContext, maskedPointwise } from './tile.js';

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
   * Above 1 the two halves also get convolutions of their own (see {@link dgfn}).
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
  if (x.rank !== 4 || x.dim(1) !== o.dim) throw new Error(`dgfn ${prefix}: expected input (B, ${o.dim}, H, W), got ${x}`);
  const hidden = dgfnHidden(o.dim, o.ffnExpansionFactor);
  const block = o.channelBlock ?? 1;
  // The hidden width in the graph: `hidden`, or padded with zero channels to the block.
  const width = Math.ceil(hidden / block) * block;
  const extra = width - hidden;
  // (2h, …) → (2h', …): each half [x₁; x₂] followed by its zero rows.
  const padHalves = (w: Value): Value => {
    if (extra === 0) return w;
    const zeros = new Array<number>(2 * w.rank).fill(0);
    zeros[w.rank] = extra;
    return op.concat(op.split(w, [hidden, hidden], 0).map((half) => op.pad(half, zeros)), 0);
  };
  const param = (name: string, shape: number[]): Value => g.param(`${prefix}.${name}`, shape);
  const bias = o.bias ?? false;
  const wIn = padHalves(param('project_in.weight', [2 * hidden, o.dim, 1, 1]));
  const bIn = bias ? padHalves(param('project_in.bias', [2 * hidden])) : null;
  const wDw = padHalves(param('dwconv.weight', [2 * hidden, 1, 3, 3]));
  const bDw = bias ? padHalves(param('dwconv.bias', [2 * hidden])) : null;
  const wOut0 = param('project_out.weight', [o.dim, hidden, 1, 1]);
  const wOut = extra === 0 ? wOut0 : op.pad(wOut0, [0, 0, 0, 0, 0, extra, 0, 0]);
  const bOut = bias ? param('project_out.bias', [o.dim]) : null;
  let x1: Value;
  let x2: Value;
  if (!tile && block === 1) {
    const h = op.conv(op.conv(x, wIn, bIn), wDw, bDw, { pads: 1, group: 2 * width });
    [x1, x2] = op.split(h, [width, width], 1) as [Value, Value];
  } else {
    // For ORT's blocked layout (NCHWc: `channelBlock`, and every tile graph) each half gets its
    // own convolutions: their outputs stay in that layout through GELU and the gate into
    // project_out (measured: whole deblur 384² 3.95 → 3.45 s; a 96² tile's pass B −8%). In tile
    // mode the depthwise conv is valid (no padding) after zeroing out-of-image pixels.
    const pointwise = maskedPointwise(x, tile, bias);
    const half = (i: number) => pointwiseDepthwisePart(pointwise, wIn, bIn, wDw, bDw, i, width, tile ? 0 : 1);
    [x1, x2] = [half(0), half(1)];
  }
  return op.conv(op.mul(op.gelu(x1), x2), wOut, bOut);
}
