/**
 * The inference graphs of `restore`, for one image size: pre-processing (inpainting
 * input, reflection padding to the model's multiple, as the official test code does),
 * the stage-2 model, and post-processing (crop back, inpainting composite), all in ORT.
 */
import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { type DiffIRConfig, cpenUnshuffle, inputChannels, outputScale, padMultiple } from '../models/config.js';
import { CPEN_S2_PREFIX, cpenFeatures, cpenHead, cpenLqPart } from '../models/cpen.js';
import { buildS2Forward, diffuseIPR } from '../models/diffir.js';
import { IPR_DIM } from '../nn/ipr.js';

/** Input and output names of the restore graphs. */
export const RESTORE_IO = { image: 'image', mask: 'mask', xT: 'x_T', ipr: 'ipr', netin: 'netin', net: 'net', out: 'out', window: 'window', sum: 'sum', pooled: 'pooled' } as const;

/** Padded network-input size for an image of H×W. */
export function paddedSize(cfg: DiffIRConfig, height: number, width: number): [number, number] {
  const m = padMultiple(cfg);
  return [Math.ceil(height / m) * m, Math.ceil(width / m) * m];
}

/** The smallest image side the reflection padding accepts (padding must be smaller than the side). */
export function checkImageSize(cfg: DiffIRConfig, height: number, width: number): void {
  const [ph, pw] = paddedSize(cfg, height, width);
  if (ph - height >= height || pw - width >= width) {
    throw new Error(`image is ${width}×${height}, too small for this model (padding to a multiple of ${padMultiple(cfg)} needs at least ${Math.ceil(padMultiple(cfg) / 2)} pixels per side)`);
  }
}

interface ImageInputs {
  image: Value;
  mask: Value | null;
  netin: Value;
}

/** Declares the image (and mask) inputs and builds the padded network input. */
function imageInputs(g: Graph, cfg: DiffIRConfig, height: number, width: number): ImageInputs {
  checkImageSize(cfg, height, width);
  const image = g.input(RESTORE_IO.image, [1, 3, height, width]);
  const mask = cfg.task === 'inpaint' ? g.input(RESTORE_IO.mask, [1, 1, height, width]) : null;
  // Inpainting sees cat(image·(1−M), M), M = 1 in the hole.
  const raw = mask ? op.concat([op.mul(image, op.sub(1, mask)), mask], 1) : image;
  const [ph, pw] = paddedSize(cfg, height, width);
  const netin = op.pad(raw, [0, 0, 0, 0, 0, 0, ph - height, pw - width], 'reflect');
  return { image, mask, netin };
}

/** Crops the padded output back to the image and, for inpainting, keeps the known pixels. */
function finish(cfg: DiffIRConfig, out: Value, io: ImageInputs, height: number, width: number): Value {
  const s = outputScale(cfg);
  const cropped = out.sdim(2) === height * s && out.sdim(3) === width * s ? out : op.slice(out, [0, 0], [height * s, width * s], [2, 3]);
  if (!io.mask) return cropped;
  return op.add(op.mul(io.mask, cropped), op.mul(op.sub(1, io.mask), io.image));
}

/**
 * The whole model for an H×W image: inputs `image` (1,3,H,W) [+ `mask` (1,1,H,W)] and
 * `x_T` (1,256); outputs `out` (1,3,H·s,W·s) and `ipr`. `channelBlock` arranges the graph
 * for the runtime's convolution kernels (`convChannelBlock`; results equal up to rounding).
 */
export function wholeImageGraph(cfg: DiffIRConfig, height: number, width: number, o: { readonly channelBlock?: number } = {}): Graph {
  const g = new Graph('DiffIR_restore');
  const io = imageInputs(g, cfg, height, width);
  const xT = g.input(RESTORE_IO.xT, [1, IPR_DIM]);
  const r = buildS2Forward(g, cfg, { input: io.netin, xT }, { mode: 'infer', ...(o.channelBlock ? { channelBlock: o.channelBlock } : {}) });
  g.output(finish(cfg, r.out, io, height, width), RESTORE_IO.out);
  g.output(r.ipr, RESTORE_IO.ipr);
  return g;
}

/** Pre-processing alone, for tiled restoration: inputs as {@link wholeImageGraph} without x_T; output the padded network input `netin`. */
export function netinGraph(cfg: DiffIRConfig, height: number, width: number): Graph {
  const g = new Graph('DiffIR_netin');
  g.output(imageInputs(g, cfg, height, width).netin, RESTORE_IO.netin);
  return g;
}

/**
 * A window of the tiled prior (see `restore/prior.ts`): input `window`, a region of the
 * padded network input (1, C, u·wh, u·ww) with u = `cpenUnshuffle(cfg)`, and `mask`
 * (1, 1, wh, ww), 1 where the window lies inside CPEN_S2's input map; output `sum` (1, 256),
 * CPEN_S2's features summed over the window's centre [cy, cy+ch) × [cx, cx+cw).
 */
export function priorTileGraph(cfg: DiffIRConfig, wh: number, ww: number, centre: { readonly cy: number; readonly cx: number; readonly ch: number; readonly cw: number }): Graph {
  const g = new Graph('DiffIR_prior_tile');
  const u = cpenUnshuffle(cfg);
  const window = g.input(RESTORE_IO.window, [1, inputChannels(cfg), u * wh, u * ww]);
  const mask = g.input(RESTORE_IO.mask, [1, 1, wh, ww]);
  const f = cpenFeatures(g, CPEN_S2_PREFIX, cpenLqPart(cfg, window), cfg.nEncoderRes, mask);
  const { cy, cx, ch, cw } = centre;
  const inner = cy === 0 && cx === 0 && ch === wh && cw === ww ? f : op.slice(f, [cy, cx], [cy + ch, cx + cw], [2, 3]);
  g.output(op.reduceSum(inner, [2, 3], false), RESTORE_IO.sum);
  return g;
}

/** The rest of the prior: `pooled` (1, 256), the mean of CPEN_S2's features, and `x_T` → `ipr`. */
export function priorHeadGraph(cfg: DiffIRConfig): Graph {
  const g = new Graph('DiffIR_prior_head');
  const pooled = g.input(RESTORE_IO.pooled, [1, IPR_DIM]);
  const xT = g.input(RESTORE_IO.xT, [1, IPR_DIM]);
  g.output(diffuseIPR(g, cfg, cpenHead(g, CPEN_S2_PREFIX, pooled), { xT }, { mode: 'infer' }).ipr, RESTORE_IO.ipr);
  return g;
}

/** Post-processing for tiled restoration: `net` (the padded DIRformer output) → `out`. */
export function finishGraph(cfg: DiffIRConfig, height: number, width: number): Graph {
  const g = new Graph('DiffIR_finish');
  const image = g.input(RESTORE_IO.image, [1, 3, height, width]);
  const mask = cfg.task === 'inpaint' ? g.input(RESTORE_IO.mask, [1, 1, height, width]) : null;
  const [ph, pw] = paddedSize(cfg, height, width);
  const s = outputScale(cfg);
  const net = g.input(RESTORE_IO.net, [1, 3, ph * s, pw * s]);
  g.output(finish(cfg, net, { image, mask, netin: image }, height, width), RESTORE_IO.out);
  return g;
}
