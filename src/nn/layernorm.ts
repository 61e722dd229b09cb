/**
 * Restormer's channel LayerNorm, computed directly over axis 1 of NCHW (no transposes):
 * per pixel, μ and σ² = mean((x−μ)²) over channels (divisor N), eps 1e-5 inside the root.
 * - WithBias: (x−μ)/√(σ²+ε)·w + b (keys `<prefix>.body.weight`, `<prefix>.body.bias`)
 * - BiasFree: x/√(σ²+ε)·w (x is not centred; σ² still is) (key `<prefix>.body.weight`)
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';

/** The two LayerNorm variants of the official code (`LayerNorm_type`). */
export type LayerNormType = 'WithBias' | 'BiasFree';

/** The epsilon added to the variance. */
export const LAYER_NORM_EPS = 1e-5;

/**
 * A per-sample affine map applied after the norm: y·γ + β with γ, β of shape (B, C, 1, 1)
 * (the IPR modulation of DMTA / DGFN).
 */
export interface Modulation {
  readonly gamma: Value;
  readonly beta: Value;
}

/**
 * Mean over the channels of NCHW `x` as (B, 1, H, W): a MatMul of a constant 1/C row with x
 * viewed as (B, C, H·W). ONNX Runtime runs this GEMV several times faster than ReduceMean
 * over axis 1 of NCHW.
 */
export function channelMean(x: Value): Value {
  const c = x.sdim(1);
  const row = op.constF32(x.graph, [1, c], new Float32Array(c).fill(1 / c), 'mean_row');
  const m = op.matmul(row, op.reshape(x, [x.dim(0), c, -1]));
  return op.reshape(m, [x.dim(0), 1, x.dim(2), x.dim(3)]);
}

/**
 * LayerNorm over the channels of NCHW `x`. With `mod`, returns LN(x)·γ + β; the norm's own
 * affine (w, b) and γ, β are combined on the small (B, C, 1, 1) tensors first
 * (LN(x)·γ+β = x̂·(w·γ) + (b·γ+β)), which saves two full-size passes.
 */
export function layerNorm(g: Graph, prefix: string, x: Value, type: LayerNormType, mod?: Modulation): Value {
  const c = x.sdim(1);
  const w = op.reshape(g.param(`${prefix}.body.weight`, [c]), [1, c, 1, 1]);
  const b = type === 'WithBias' ? op.reshape(g.param(`${prefix}.body.bias`, [c]), [1, c, 1, 1]) : null;
  const centred = op.sub(x, channelMean(x));
  const variance = channelMean(op.mul(centred, centred));
  const invStd = op.reciprocal(op.sqrt(op.add(variance, LAYER_NORM_EPS)));
  const normed = op.mul(type === 'WithBias' ? centred : x, invStd);
  const scale = mod ? op.mul(w, mod.gamma) : w;
  const shift = mod ? (b ? op.add(op.mul(b, mod.gamma), mod.beta) : mod.beta) : b;
  const y = op.mul(normed, scale);
  return shift ? op.add(y, shift) : y;
}
