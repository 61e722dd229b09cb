/**
 * DIRformer's TransformerBlock: x = x + DMTA(LN₁(x), z); x = x + DGFN(LN₂(x), z), where each
 * of DMTA and DGFN modulates its normalised input with its own IPR kernel.
 *
 * Keys under `<prefix>`: `norm1.body.*`, `attn.{temperature,kernel.0,qkv,qkv_dwconv,project_out}`,
 * `norm2.body.*`, `ffn.{project_in,dwconv,project_out,kernel.0}`.
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { dgfn } from './dgfn.js';
import { dmta } from './dmta.js';
import { iprModulation } from './ipr.js';
import { layerNorm, type LayerNormType } from './layernorm.js';

/** Shape of a TransformerBlock. */
export interface TransformerBlockOptions {
  readonly dim: number;
  readonly heads: number;
  readonly ffnExpansionFactor: number;
  readonly layerNormType: LayerNormType;
  /** Convolution biases (false in all released models). */
  readonly bias?: boolean;
}

/** One TransformerBlock on `x` (B, C, H, W) conditioned on the IPR `z` (B, 256). */
export function transformerBlock(g: Graph, prefix: string, x: Value, z: Value, o: TransformerBlockOptions): Value {
  return g.scope(prefix, () => {
    const attnMod = iprModulation(g, `${prefix}.attn.kernel`, z, o.dim);
    const a = dmta(g, `${prefix}.attn`, layerNorm(g, `${prefix}.norm1`, x, o.layerNormType, attnMod), o);
    const y = op.add(x, a);
    const ffnMod = iprModulation(g, `${prefix}.ffn.kernel`, z, o.dim);
    const f = dgfn(g, `${prefix}.ffn`, layerNorm(g, `${prefix}.norm2`, y, o.layerNormType, ffnMod), o);
    return op.add(y, f);
  });
}

/** `n` TransformerBlocks `<prefix>.0` … `<prefix>.(n−1)` in sequence (an `nn.Sequential`). */
export function transformerStage(g: Graph, prefix: string, x: Value, z: Value, n: number, o: TransformerBlockOptions): Value {
  let y = x;
  for (let i = 0; i < n; i++) y = transformerBlock(g, `${prefix}.${i}`, y, z, o);
  return y;
}
