/**
 * `torch.nn.utils.spectral_norm` in training mode, split between the host and the graph:
 *
 * - {@link powerIteration} (host): one power iteration per forward, from the `weight_u` buffer,
 *   with W = `weight_orig` reshaped to (out, −1): v = normalize(Wᵀu), then u = normalize(W v)
 *   (normalize: x / max(‖x‖, 1e-12)). torch writes u and v back into the buffers on every
 *   forward of the module in training mode, so the caller keeps them between forwards.
 * - {@link spectralNormWeight} (graph): σ = u · (W v) and the weight W / σ, with u and v as
 *   inputs (constants for autodiff, as torch detaches them), so ∂/∂W_orig flows through σ.
 */
import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';

/** torch's `normalize` eps of spectral_norm. */
export const SPECTRAL_NORM_EPS = 1e-12;

/** The u and v buffers of one spectrally normalised weight. */
export interface SpectralVectors {
  readonly u: Float32Array;
  readonly v: Float32Array;
}

/**
 * One power iteration on W = `weight` viewed as (rows, cols), starting from `u` (float64
 * accumulation, results rounded to float32 as torch stores them). Returns the new buffers.
 */
export function powerIteration(weight: Float32Array, rows: number, u: Float32Array): SpectralVectors {
  const cols = weight.length / rows;
  if (!Number.isInteger(cols) || u.length !== rows) throw new Error(`spectral norm: weight of ${weight.length} values does not fit u of ${u.length}`);
  const vt = new Float64Array(cols);
  for (let i = 0; i < rows; i++) {
    const ui = u[i]!;
    const o = i * cols;
    for (let j = 0; j < cols; j++) vt[j]! += weight[o + j]! * ui;
  }
  const v = normalized(vt);
  const ut = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    const o = i * cols;
    for (let j = 0; j < cols; j++) s += weight[o + j]! * v[j]!;
    ut[i] = s;
  }
  return { u: normalized(ut), v };
}

function normalized(x: Float64Array): Float32Array {
  let ss = 0;
  for (const a of x) ss += a * a;
  const d = Math.max(Math.sqrt(ss), SPECTRAL_NORM_EPS);
  return Float32Array.from(x, (a) => a / d);
}

/** W / σ with σ = u · (W v), W = `weightOrig` (out, …) viewed as (out, −1); u (out), v (−1) graph inputs. */
export function spectralNormWeight(weightOrig: Value, u: Value, v: Value): Value {
  const rows = weightOrig.sdim(0);
  const w2 = op.reshape(weightOrig, [rows, -1]);
  const wv = op.matmul(w2, op.reshape(v, [-1, 1]));
  const sigma = op.matmul(op.reshape(u, [1, rows]), wv);
  return op.div(weightOrig, op.reshape(sigma, [1, 1, 1, 1]));
}
