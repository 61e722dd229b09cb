/**
 * The denoiser of the IPR diffusion (official class `denoise`; an MLP, no residual despite the
 * names): input cat([c, t/(10·timesteps), x]) (513 wide), Linear(513→256)+LReLU(0.1), then
 * n_denoise_res × [Linear(256→256)+LReLU(0.1)]. It predicts x̂₀.
 * Keys: `<prefix>.resmlp.0.*`, `<prefix>.resmlp.<2+i>.resmlp.0.*`.
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { IPR_DIM } from '../nn/ipr.js';
import { linear } from '../nn/linear.js';
import { LRELU_SLOPE } from '../nn/resblock.js';
import type { DiffIRConfig } from './config.js';

/** x̂₀ = denoise(x, t, c) for x and c of shape (B, 256) and an integer step t. */
export function denoiser(g: Graph, cfg: DiffIRConfig, x: Value, t: number, c: Value, prefix = 'denoise'): Value {
  const tCol = op.expand(op.constF32(g, [1, 1], [t / (10 * cfg.timesteps)], 'time'), [x.dim(0), 1]);
  const inp = op.concat([c, tCol, x], 1);
  let h = op.leakyRelu(linear(g, `${prefix}.resmlp.0`, inp, { inFeatures: 2 * IPR_DIM + 1, outFeatures: IPR_DIM }), LRELU_SLOPE);
  for (let i = 0; i < cfg.nDenoiseRes; i++) {
    h = op.leakyRelu(linear(g, `${prefix}.resmlp.${2 + i}.resmlp.0`, h, { inFeatures: IPR_DIM, outFeatures: IPR_DIM }), LRELU_SLOPE);
  }
  return h;
}
