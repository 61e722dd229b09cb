/** A tiny DIRformer with random weights for the tiled-executor tests: every head, several tiles per level. */
import { Graph } from '../../src/graph/ir.js';
import { dirformer } from '../../src/models/dirformer.js';
import { type DiffIRConfig, inputChannels } from '../../src/models/config.js';
import { initParams } from '../../src/nn/init.js';
import type { TensorMap } from '../../src/tensor.js';
import { DiffIRS2 } from '../../src/models/diffir.js';
import type { LoadedImage } from '../../src/image/io.js';
import { Rng } from '../../src/random.js';
import { Restorer } from '../../src/restore/restore.js';

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

/** A stage-2 restorer of the tiny deblurring configuration with random weights. */
export function tinyRestorer(): { cfg: DiffIRConfig; r: Restorer } {
  const cfg = tinyConfig('deblur', 1);
  const weights = initParams(DiffIRS2(cfg), 1);
  return { cfg, r: Restorer.load({ file: 'tiny', config: cfg, stage: 2, presets: [], weights, parameterCount: 0 }, { threads: 2 }) };
}

/** A W×H RGB image of clipped Gaussian noise around mid-gray. */
export function noiseImage(width: number, height: number, seed = 7): LoadedImage {
  const rng = new Rng(seed);
  const data = Float32Array.from({ length: 3 * width * height }, () => Math.min(1, Math.max(0, 0.5 + 0.2 * rng.normal())));
  return { rgb: { dtype: 'float32', shape: [1, 3, height, width], data }, alpha: null, gray: false, bitDepth: 8, format: 'png', width, height, orientationApplied: false };
}
