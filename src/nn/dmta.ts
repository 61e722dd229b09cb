/**
 * DMTA — the dynamic multi-head transposed attention of DIRformer (Restormer's MDTA whose
 * input was IPR-modulated by the caller): qkv = DWConv3x3(Conv1x1(F')), C→3C→3C; per head,
 * q and k are L2-normalised along H·W (eps 1e-12) and attention is a (C/h × C/h) softmax of
 * q̂·k̂ᵀ·τ over channels; out = Conv1x1(A·v).
 *
 * Keys: `<prefix>.temperature` (heads, 1, 1), `<prefix>.qkv.weight`, `<prefix>.qkv_dwconv.weight`,
 * `<prefix>.project_out.weight` (bias-free, as every released model; `bias` adds the biases).
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { conv2d, pointwiseDepthwisePart } from './conv.js';
import { type TileContext, maskedPointwise } from './tile.js';

/** Epsilon of `F.normalize`. */
export const L2_NORM_EPS = 1e-12;

/** Shape of a DMTA layer. */
export interface DMTAOptions {
  readonly dim: number;
  readonly heads: number;
  /** Convolution biases (`bias` of the official config; false in all released models). */
  readonly bias?: boolean;
  /** Channel block of the runtime's convolutions (see `DGFNOptions.channelBlock`): above 1, q, k and v get convolutions of their own. */
  readonly channelBlock?: number;
}

/** q, k, v of DMTA as (B, heads, C/heads, H·W); the parts not asked for are null. */
export interface QKV {
  readonly q: Value | null;
  readonly k: Value | null;
  readonly v: Value | null;
}

/** Which of q, k, v {@link dmtaQKV} computes: all, q and k (tile pass A), or v (tile pass B). */
export type QKVParts = 'qkv' | 'qk' | 'v';

/**
 * qkv = DWConv3x3(Conv1x1(x)) split into heads. In tile mode the depthwise conv is valid
 * (the result loses one pixel on each side) with the out-of-image pixels zeroed first.
 * With `parts` 'qk' or 'v', only those output channels are computed and the others are null.
 */
export function dmtaQKV(g: Graph, prefix: string, x: Value, o: DMTAOptions, tile?: TileContext, parts: QKVParts = 'qkv'): QKV {
  const { dim, heads } = o;
  const bias = o.bias ?? false;
  if (dim % heads !== 0) throw new Error(`dmta ${prefix}: dim ${dim} is not divisible by ${heads} heads`);
  const ch = dim / heads;
  const heads4 = (t: Value) => op.reshape(t, [x.dim(0), heads, ch, -1]);
  if (!tile && (o.channelBlock ?? 1) === 1) {
    let qkv = conv2d(g, `${prefix}.qkv`, x, { inChannels: dim, outChannels: 3 * dim, kernelSize: 1, bias });
    qkv = conv2d(g, `${prefix}.qkv_dwconv`, qkv, { inChannels: 3 * dim, outChannels: 3 * dim, kernelSize: 3, groups: 3 * dim, bias, padding: 1 });
    const split = op.chunk(qkv, 3, 1).map(heads4);
    return { q: split[0]!, k: split[1]!, v: split[2]! };
  }
  // For ORT's blocked layout (NCHWc: `channelBlock`, and every tile graph), q ([0, C)), k
  // ([C, 2C)) and v ([2C, 3C)) each get their own convolutions (measured: whole deblur 384²
  // 3.40 → 3.2 s; pass A of a 96² tile −6%).
  const param = (name: string, shape: number[]) => g.param(`${prefix}.${name}`, shape);
  const w1 = param('qkv.weight', [3 * dim, dim, 1, 1]);
  const b1 = bias ? param('qkv.bias', [3 * dim]) : null;
  const wd = param('qkv_dwconv.weight', [3 * dim, 1, 3, 3]);
  const bd = bias ? param('qkv_dwconv.bias', [3 * dim]) : null;
  const pointwise = maskedPointwise(x, tile, bias);
  const part = (i: number) => heads4(pointwiseDepthwisePart(pointwise, w1, b1, wd, bd, i, dim, tile ? 0 : 1));
  if (parts === 'v') return { q: null, k: null, v: part(2) };
  return { q: part(0), k: part(1), v: parts === 'qk' ? null : part(2) };
}

/**
 * The sums over pixels that DMTA's attention needs: S = q·kᵀ (B, h, c, c), and the
 * squared row norms Σq², Σk² (B, h, c, 1).
 */
export function attentionSums(q: Value, k: Value): { S: Value; nq: Value; nk: Value } {
  return {
    S: op.matmul(q, op.transpose(k, [0, 1, 3, 2])),
    nq: op.reduceSum(op.mul(q, q), [-1], true),
    nk: op.reduceSum(op.mul(k, k), [-1], true),
  };
}

/**
 * {@link attentionSums} over the pixels a tile owns (inference only). `own` (1, 1, 1, H·W) is 1
 * where the tile counts a pixel and 0 where an earlier tile did (so (q·own)² = q²·own), or null
 * when the tile counts all its pixels. The norms are one ReduceSumSquare each rather than a Mul
 * and a ReduceSum.
 */
export function ownedAttentionSums(q: Value, k: Value, own: Value | null): { S: Value; nq: Value; nk: Value } {
  const qw = own ? op.mul(q, own) : q;
  const kw = own ? op.mul(k, own) : k;
  return { S: op.matmul(qw, op.transpose(k, [0, 1, 3, 2])), nq: op.reduceSumSquare(qw, [-1], true), nk: op.reduceSumSquare(kw, [-1], true) };
}

/**
 * softmax(q̂·k̂ᵀ·τ) from the sums: the row norms (clamped below at 1e-12 exactly as
 * `F.normalize` does) are applied to the small (C/h × C/h) score matrix, which equals
 * normalising q and k first.
 */
export function attentionFromSums(g: Graph, prefix: string, S: Value, nq: Value, nk: Value, heads: number): Value {
  const ch = S.sdim(-1);
  const temperature = g.param(`${prefix}.temperature`, [heads, 1, 1]);
  const rowNorm = (n: Value): Value => op.clip(op.sqrt(n), L2_NORM_EPS);
  const qScale = op.div(temperature, rowNorm(nq)); // (B, h, c, 1)
  const kScale = op.reshape(op.reciprocal(rowNorm(nk)), [-1, heads, 1, ch]); // (B, h, 1, c)
  return op.softmax(op.mul(op.mul(S, qScale), kScale), -1);
}

/** out = Conv1x1(A·v), back to (B, C, H, W). */
export function dmtaOutput(g: Graph, prefix: string, A: Value, v: Value, o: DMTAOptions, height: Value['shape'][number], width: Value['shape'][number]): Value {
  const merged = op.reshape(op.matmul(A, v), [v.dim(0), o.dim, height, width]);
  return conv2d(g, `${prefix}.project_out`, merged, { inChannels: o.dim, outChannels: o.dim, kernelSize: 1, bias: o.bias ?? false });
}

/** DMTA on already normalised and modulated features `x` (B, C, H, W). */
export function dmta(g: Graph, prefix: string, x: Value, o: DMTAOptions): Value {
  g.param(`${prefix}.temperature`, [o.heads, 1, 1]); // declared first, in the official key order
  const { q, k, v } = dmtaQKV(g, prefix, x, o);
  const { S, nq, nk } = attentionSums(q!, k!);
  return dmtaOutput(g, prefix, attentionFromSums(g, prefix, S, nq, nk, o.heads), v!, o, x.dim(2), x.dim(3));
}
