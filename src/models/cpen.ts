/**
 * CPEN — the compact IR prior extraction network (64 features, hard-coded as in the official
 * code). `E`: Conv3x3(in→64)+LReLU, n_encoder_res ResBlocks, Conv(64→128)+LReLU,
 * Conv(128→128)+LReLU, Conv(128→256)+LReLU, global average pool; `mlp`: two
 * Linear(256,256)+LReLU. LeakyReLU slope 0.1 throughout; the IPR ends in an activation.
 *
 * CPEN_S1 (key prefix `E`) sees cat(LQ part, PixelUnshuffle4(GT)); CPEN_S2 (key prefix
 * `condition`) sees the LQ part only. The LQ part depends on the task (spec table):
 * SR x4 LQ, x2 PixelUnshuffle2(LQ), x1 / deblur / inpaint PixelUnshuffle4(input).
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { conv2d } from '../nn/conv.js';
import { IPR_DIM } from '../nn/ipr.js';
import { linear } from '../nn/linear.js';
import { LRELU_SLOPE, resBlock } from '../nn/resblock.js';
import { type DiffIRConfig, cpenInputChannels, cpenUnshuffle } from './config.js';

/** CPEN's feature width (`n_feats`). */
export const CPEN_FEATS = 64;

/** Index of the first layer after the ResBlocks in `E` (`E.0` conv, `E.1` act, `E.2…` ResBlocks). */
function tailIndex(nEncoderRes: number): number {
  return 2 + nEncoderRes;
}

/** Number of 3×3 convolutions in `E`: how far (in pixels) one output pixel of its feature map sees. */
export function cpenRadius(nEncoderRes: number): number {
  return 1 + 2 * nEncoderRes + 3;
}

/**
 * `E` without the pooling: the 256-channel feature map of a prepared input (B, in, h, w).
 * `mask` (1, 1, h, w), 1 inside the image and 0 outside, zeroes every convolution's input
 * outside the image: on a window that reaches past the image border, this is the zero
 * padding the whole-image network sees there, so a window's pixels at least
 * {@link cpenRadius} from its own edges equal the whole image's.
 */
export function cpenFeatures(g: Graph, prefix: string, x: Value, nEncoderRes: number, mask?: Value): Value {
  const n = CPEN_FEATS;
  const act = (v: Value) => op.leakyRelu(v, LRELU_SLOPE);
  const m = (v: Value) => (mask ? op.mul(v, mask) : v);
  let h = act(conv2d(g, `${prefix}.E.0`, m(x), { inChannels: x.sdim(1), outChannels: n, kernelSize: 3 }));
  for (let i = 0; i < nEncoderRes; i++) h = resBlock(g, `${prefix}.E.${2 + i}`, m(h), n, mask);
  const t = tailIndex(nEncoderRes);
  h = act(conv2d(g, `${prefix}.E.${t}`, m(h), { inChannels: n, outChannels: 2 * n, kernelSize: 3 }));
  h = act(conv2d(g, `${prefix}.E.${t + 2}`, m(h), { inChannels: 2 * n, outChannels: 2 * n, kernelSize: 3 }));
  return m(act(conv2d(g, `${prefix}.E.${t + 4}`, m(h), { inChannels: 2 * n, outChannels: 4 * n, kernelSize: 3 })));
}

/** `mlp` on the pooled features (B, 256) → IPR (B, 256). */
export function cpenHead(g: Graph, prefix: string, pooled: Value): Value {
  const act = (v: Value) => op.leakyRelu(v, LRELU_SLOPE);
  const f = act(linear(g, `${prefix}.mlp.0`, pooled, { inFeatures: IPR_DIM, outFeatures: IPR_DIM }));
  return act(linear(g, `${prefix}.mlp.2`, f, { inFeatures: IPR_DIM, outFeatures: IPR_DIM }));
}

/** The CPEN body on a prepared input (B, in, h, w) → IPR (B, 256). Keys under `<prefix>.E.*`, `<prefix>.mlp.*`. */
export function cpen(g: Graph, prefix: string, x: Value, nEncoderRes: number): Value {
  return cpenHead(g, prefix, op.reshape(op.globalAveragePool(cpenFeatures(g, prefix, x, nEncoderRes)), [-1, IPR_DIM]));
}

/** CPEN's LQ part of the network input, per task. */
export function cpenLqPart(cfg: DiffIRConfig, input: Value): Value {
  const u = cpenUnshuffle(cfg);
  return u === 1 ? input : op.pixelUnshuffle(input, u);
}

/** CPEN_S1: IPR from the network input and the ground truth (keys `<prefix>.E.*`, default prefix `E`). */
export function cpenS1(g: Graph, cfg: DiffIRConfig, input: Value, gt: Value, prefix = 'E'): Value {
  const x = op.concat([cpenLqPart(cfg, input), op.pixelUnshuffle(gt, 4)], 1);
  if (x.dim(1) !== cpenInputChannels(cfg, 1)) throw new Error(`CPEN_S1: expected ${cpenInputChannels(cfg, 1)} input channels, got ${x}`);
  return cpen(g, prefix, x, cfg.nEncoderRes);
}

/** Key prefix of CPEN_S2 in stage-2 checkpoints. */
export const CPEN_S2_PREFIX = 'condition';

/** CPEN_S2: the diffusion condition from the network input alone (keys `<prefix>.*`, default `condition`). */
export function cpenS2(g: Graph, cfg: DiffIRConfig, input: Value, prefix = CPEN_S2_PREFIX): Value {
  return cpen(g, prefix, cpenLqPart(cfg, input), cfg.nEncoderRes);
}
