/**
 * `nn.Linear` on (B, in) rows: one Gemm with the weight stored (out, in) exactly as
 * PyTorch keeps it (`transB`), so official weights are used without copies.
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';

/** Shape of a Linear layer. */
export interface LinearOptions {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Whether the layer has `<prefix>.bias` (default true, as in PyTorch). */
  readonly bias?: boolean;
}

/**
 * y = x·Wᵀ + b for `x` of shape (B, inFeatures). Declares `<prefix>.weight` (out, in) and,
 * with bias, `<prefix>.bias` (out).
 */
export function linear(g: Graph, prefix: string, x: Value, o: LinearOptions): Value {
  if (x.rank !== 2 || x.dim(1) !== o.inFeatures) {
    throw new Error(`linear ${prefix}: expected input (B, ${o.inFeatures}), got ${x}`);
  }
  const w = g.param(`${prefix}.weight`, [o.outFeatures, o.inFeatures]);
  const b = o.bias === false ? null : g.param(`${prefix}.bias`, [o.outFeatures]);
  return op.gemm(x, w, b, { transB: true });
}
