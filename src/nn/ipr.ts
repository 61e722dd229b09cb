/**
 * IPR modulation: each DMTA and DGFN turns the 256-wide IR prior representation z into a
 * per-channel scale γ and shift β with its own bias-free Linear (`<prefix>.0.weight`, shape
 * (2C, 256), official key `*.kernel.0.weight`); the first C outputs are γ. Features are
 * modulated as F' = γ⊙F + β (no "1+γ").
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import type { Modulation } from './layernorm.js';
import { linear } from './linear.js';

/** Width of the IR prior representation (IPR). */
export const IPR_DIM = 256;

/**
 * γ and β of shape (B, C, 1, 1) from z (B, 256); `prefix` is the kernel's prefix,
 * e.g. `G.latent.0.attn.kernel`.
 */
export function iprModulation(g: Graph, prefix: string, z: Value, channels: number): Modulation {
  const k = linear(g, `${prefix}.0`, z, { inFeatures: IPR_DIM, outFeatures: 2 * channels, bias: false });
  const [gamma, beta] = op.split(op.reshape(k, [-1, 2 * channels, 1, 1]), [channels, channels], 1) as [Value, Value];
  return { gamma, beta };
}

/** F' = γ⊙F + β (use `layerNorm(…, mod)` to fuse it with a preceding LayerNorm). */
export function modulate(x: Value, m: Modulation): Value {
  return op.add(op.mul(x, m.gamma), m.beta);
}
