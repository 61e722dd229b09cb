/**
 * DIRformer — DiffIR's Restormer-style U-Net conditioned on the IPR z at every block
 * (keys under `G.`). Four levels (dim, 2dim, 4dim, 8dim channels) with Downsample /
 * Upsample, skip concatenations, 1×1 channel reductions at levels 3 and 2, decoder level 1
 * at 2dim, then the refinement stage and a per-task head:
 * - SR: the U-Net runs at GT/4 (x2 input PixelUnshuffle2, x1 PixelUnshuffle4); tail ×4
 *   (`tail.0.0`, `tail.0.2`: Conv3x3(2dim→8dim, bias)+PixelShuffle2; `tail.1`:
 *   Conv3x3(2dim→3, bias)) plus nearest-upsampled input.
 * - deblur: `output` Conv3x3(2dim→3, no bias) plus the input.
 * - inpaint: 4-channel input, no refinement stage, `output` Conv3x3 with no residual.
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { conv2d } from '../nn/conv.js';
import { downsample, upsample } from '../nn/resample.js';
import { type TransformerBlockOptions, transformerStage } from '../nn/transformer.js';
import { type DiffIRConfig, inputChannels, refinementBlocks, unetUnshuffle } from './config.js';

/** Options of {@link dirformer}. */
export interface DIRformerOptions {
  /** Key prefix (default `G`). */
  readonly prefix?: string;
}

/**
 * DIRformer on the network input `inp` (B, 3 or 4, H, W) with IPR `z` (B, 256). Returns the
 * restored image (B, 3, H·scale, W·scale).
 */
export function dirformer(g: Graph, cfg: DiffIRConfig, inp: Value, z: Value, o: DIRformerOptions = {}): Value {
  const p = o.prefix ?? 'G';
  const d = cfg.dim;
  if (inp.dim(1) !== inputChannels(cfg)) throw new Error(`DIRformer (${cfg.task}): expected ${inputChannels(cfg)} input channels, got ${inp}`);
  const block = (level: number): TransformerBlockOptions => ({
    dim: d * 2 ** level,
    heads: cfg.heads[level]!,
    ffnExpansionFactor: cfg.ffnExpansionFactor,
    layerNormType: cfg.layerNormType,
  });
  const [n1, n2, n3, n4] = cfg.numBlocks;
  const u = unetUnshuffle(cfg);
  const x = u === 1 ? inp : op.pixelUnshuffle(inp, u);

  const emb = conv2d(g, `${p}.patch_embed.proj`, x, { inChannels: x.sdim(1), outChannels: d, kernelSize: 3, bias: false });
  const enc1 = transformerStage(g, `${p}.encoder_level1`, emb, z, n1, block(0));
  const enc2 = transformerStage(g, `${p}.encoder_level2`, downsample(g, `${p}.down1_2`, enc1, d), z, n2, block(1));
  const enc3 = transformerStage(g, `${p}.encoder_level3`, downsample(g, `${p}.down2_3`, enc2, 2 * d), z, n3, block(2));
  const lat = transformerStage(g, `${p}.latent`, downsample(g, `${p}.down3_4`, enc3, 4 * d), z, n4, block(3));

  let h = op.concat([upsample(g, `${p}.up4_3`, lat, 8 * d), enc3], 1);
  h = conv2d(g, `${p}.reduce_chan_level3`, h, { inChannels: 8 * d, outChannels: 4 * d, kernelSize: 1, bias: false });
  const dec3 = transformerStage(g, `${p}.decoder_level3`, h, z, n3, block(2));
  h = op.concat([upsample(g, `${p}.up3_2`, dec3, 4 * d), enc2], 1);
  h = conv2d(g, `${p}.reduce_chan_level2`, h, { inChannels: 4 * d, outChannels: 2 * d, kernelSize: 1, bias: false });
  const dec2 = transformerStage(g, `${p}.decoder_level2`, h, z, n2, block(1));
  h = op.concat([upsample(g, `${p}.up2_1`, dec2, 2 * d), enc1], 1);
  const dec1 = transformerStage(g, `${p}.decoder_level1`, h, z, n1, { ...block(0), dim: 2 * d });
  const feat = transformerStage(g, `${p}.refinement`, dec1, z, refinementBlocks(cfg), { ...block(0), dim: 2 * d });

  return g.scope(`${p}.head`, () => {
    const outC = 3;
    if (cfg.task === 'sr') {
      let t = feat;
      for (const i of [0, 2]) {
        t = conv2d(g, `${p}.tail.0.${i}`, t, { inChannels: 2 * d, outChannels: 8 * d, kernelSize: 3 });
        t = op.pixelShuffle(t, 2);
      }
      t = conv2d(g, `${p}.tail.1`, t, { inChannels: 2 * d, outChannels: outC, kernelSize: 3 });
      const base = cfg.scale === 1 ? inp : op.resize(inp, { mode: 'nearest', scale: cfg.scale });
      return op.add(t, base);
    }
    const out = conv2d(g, `${p}.output`, feat, { inChannels: 2 * d, outChannels: outC, kernelSize: 3, bias: false });
    return cfg.task === 'deblur' ? op.add(out, inp) : out;
  });
}
