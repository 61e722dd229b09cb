/** A tiny DIRformer with random weights for the tiled-executor tests: every head, several tiles per level. */
import { Graph } from '../../src/graph/ir.js';
import { dirformer } from '../../src/models/dirformer.js';
import { type DiffIRConfig, inputChannels } from '../../src/models/config.js';
import { initParams } from '../../src/nn/init.js';
import type { TensorMap } from '../../src/tensor.js';

/** A DiffIR configuration of width 8 for `task` at `scale`. */
export const tinyConfig = (task: DiffIRConfig['task'], scale: DiffIRConfig['scale']): DiffIRConfig => ({
  task,
  scale,
  dim: 8,
  numBlocks: [1, 1, 1, 2],
  numRefinementBlocks: 1,
  heads: [1, 2, 4, 8],
  ffnExpansionFactor: 2.2,
  layerNormType: task === 'sr' ? 'BiasFree' : 'WithBias',
  nEncoderRes: 1,
  nDenoiseRes: 1,
  timesteps: 4,
  linearStart: 0.1,
  linearEnd: 0.99,
});

/** The whole-image DIRformer graph of `cfg` on H×W (inputs `input`, `z`; output `out`) and random weights. */
export function tinyDirformer(cfg: DiffIRConfig, height: number, width: number): { graph: Graph; weights: TensorMap } {
  const g = new Graph();
  const inp = g.input('input', [1, inputChannels(cfg), height, width]);
  const z = g.input('z', [1, 256]);
  g.output(dirformer(g, cfg, inp, z), 'out');
  const weights = initParams(g, 3);
  // Larger temperatures and non-trivial norms make the attention depend strongly on the sums.
  for (const [k, t] of weights) if (k.endsWith('temperature') || k.includes('norm')) (t.data as Float32Array).forEach((_, i, a) => (a[i] = 1.5 + 0.1 * (i % 3)));
  return { graph: g, weights };
}
