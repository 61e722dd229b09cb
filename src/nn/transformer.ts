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
import { attentionFromSums, dmta, dmtaOutput, dmtaQKV, ownedAttentionSums } from './dmta.js';
import { type TileContext, cropBorder, shrink } from './tile.js';
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
  /** Channel multiple of the DGFN's hidden width (see `DGFNOptions.channelBlock`). */
  readonly channelBlock?: number;
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

/** The attention sums of one block over a tile (see {@link blockStats}). */
export interface AttentionSums {
  readonly S: Value;
  readonly nq: Value;
  readonly nk: Value;
}

/**
 * Tile pass A of a block: the attention sums S = q·kᵀ, Σq², Σk² over the pixels the tile
 * owns. `x` is the tile with a 1-pixel halo, `tile.mask` its in-image mask and `own`
 * (1, 1, h, w) marks the core pixels this tile counts (so overlapping tiles count each
 * pixel once; null: all of them, on a grid whose tiles do not overlap). Summed over tiles,
 * these equal the full-image sums.
 */
export function blockStats(g: Graph, prefix: string, x: Value, z: Value, o: TransformerBlockOptions, tile: TileContext, own: Value | null): AttentionSums {
  return g.scope(prefix, () => {
    g.param(`${prefix}.attn.temperature`, [o.heads, 1, 1]);
    const attnMod = iprModulation(g, `${prefix}.attn.kernel`, z, o.dim);
    const { q, k } = dmtaQKV(g, `${prefix}.attn`, layerNorm(g, `${prefix}.norm1`, x, o.layerNormType, attnMod), o, tile, 'qk');
    return ownedAttentionSums(q!, k!, own ? op.reshape(own, [1, 1, 1, -1]) : null);
  });
}

/**
 * Tile pass B of a block: with the attention sums of the whole image, the block's output
 * on the tile's core. `x` is the tile with a 2-pixel halo and `tile.mask` its in-image mask.
 */
export function blockApply(g: Graph, prefix: string, x: Value, z: Value, o: TransformerBlockOptions, tile: TileContext, sums: AttentionSums): Value {
  return g.scope(prefix, () => {
    const attnMod = iprModulation(g, `${prefix}.attn.kernel`, z, o.dim);
    // Only v: q and k entered the sums in pass A.
    const { v } = dmtaQKV(g, `${prefix}.attn`, layerNorm(g, `${prefix}.norm1`, x, o.layerNormType, attnMod), o, tile, 'v');
    const A = attentionFromSums(g, `${prefix}.attn`, sums.S, sums.nq, sums.nk, o.heads);
    const y = op.add(cropBorder(x, 1), dmtaOutput(g, `${prefix}.attn`, A, v!, o, x.sdim(2) - 2, x.sdim(3) - 2));
    const ffnMod = iprModulation(g, `${prefix}.ffn.kernel`, z, o.dim);
    const f = dgfn(g, `${prefix}.ffn`, layerNorm(g, `${prefix}.norm2`, y, o.layerNormType, ffnMod), o, shrink(tile, 1));
    return op.add(cropBorder(y, 1), f);
  });
}
