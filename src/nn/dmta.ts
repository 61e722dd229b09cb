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
import { conv2d } from './conv.js';

/** Epsilon of `F.normalize`. */
export const L2_NORM_EPS = 1e-12;

/** Shape of a DMTA layer. */
export interface DMTAOptions {
  readonly dim: number;
  readonly heads: number;
  /** Convolution biases (`bias` of the official config; false in all released models). */
  readonly bias?: boolean;
}

/**
 * DMTA on already normalised and modulated features `x` (B, C, H, W).
 *
 * Instead of normalising q and k (two full-size divisions) the row norms are applied to the
 * small (C/h × C/h) score matrix: q̂·k̂ᵀ·τ = (q·kᵀ) ⊙ (τ/‖q‖) ⊙ (1/‖k‖)ᵀ, which is the same
 * quantity (norms clamped below at 1e-12 exactly as `F.normalize` does).
 */
export function dmta(g: Graph, prefix: string, x: Value, o: DMTAOptions): Value {
  const { dim, heads } = o;
  const bias = o.bias ?? false;
  if (dim % heads !== 0) throw new Error(`dmta ${prefix}: dim ${dim} is not divisible by ${heads} heads`);
  const ch = dim / heads;
  const temperature = g.param(`${prefix}.temperature`, [heads, 1, 1]);
  let qkv = conv2d(g, `${prefix}.qkv`, x, { inChannels: dim, outChannels: 3 * dim, kernelSize: 1, bias });
  qkv = conv2d(g, `${prefix}.qkv_dwconv`, qkv, { inChannels: 3 * dim, outChannels: 3 * dim, kernelSize: 3, groups: 3 * dim, bias });
  const [q, k, v] = op.chunk(qkv, 3, 1).map((t) => op.reshape(t, [x.dim(0), heads, ch, -1])) as [Value, Value, Value];
  const rowNorm = (t: Value): Value => op.clip(op.sqrt(op.reduceSum(op.mul(t, t), [-1], true)), L2_NORM_EPS);
  const qScale = op.div(temperature, rowNorm(q)); // (B, h, c, 1)
  const kScale = op.reshape(op.reciprocal(rowNorm(k)), [-1, heads, 1, ch]); // (B, h, 1, c)
  const scores = op.mul(op.mul(op.matmul(q, op.transpose(k, [0, 1, 3, 2])), qScale), kScale);
  const out = op.matmul(op.softmax(scores, -1), v);
  const merged = op.reshape(out, [x.dim(0), dim, x.dim(2), x.dim(3)]);
  return conv2d(g, `${prefix}.project_out`, merged, { inChannels: dim, outChannels: dim, kernelSize: 1, bias });
}
