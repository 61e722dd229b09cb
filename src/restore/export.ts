/**
 * ONNX export of a stage-2 checkpoint as a self-contained image-to-image model:
 * input `image` (1, 3, H, W) float32 in [0, 1] (+ `mask` (1, 1, H, W), 1 = hole, for
 * inpainting), output `output` (1, 3, s·H, s·W), any H and W. Reflection padding to the
 * model's multiple, cropping and the inpainting composite are inside the model; the
 * diffusion's initial noise is a constant drawn from `seed`, so the model is
 * deterministic and runs unchanged in any ONNX Runtime (Python, C++, web).
 */
import { Graph } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { sym } from '../graph/dim.js';
import { toOnnx } from '../graph/onnx.js';
import type { DiffIRCheckpoint } from '../models/checkpoint.js';
import { type DiffIRConfig, describeConfig, outputScale, padMultiple } from '../models/config.js';
import { buildS2Forward } from '../models/diffir.js';
import { IPR_DIM } from '../nn/ipr.js';
import { Rng } from '../random.js';

/** Names of the exported model's inputs and output. */
export const EXPORT_IO = { image: 'image', mask: 'mask', output: 'output' } as const;

/** The export graph for `cfg` with dynamic height and width. */
export function exportGraph(cfg: DiffIRConfig, seed = 0): Graph {
  const g = new Graph('DiffIR');
  const image = g.input(EXPORT_IO.image, [1, 3, sym('height'), sym('width')]);
  const mask = cfg.task === 'inpaint' ? g.input(EXPORT_IO.mask, [1, 1, sym('height'), sym('width')]) : null;
  const raw = mask ? op.concat([op.mul(image, op.sub(1, mask)), mask], 1) : image;
  const netin = op.padToMultiple(raw, padMultiple(cfg), 'reflect');
  const xT = op.constF32(g, [1, IPR_DIM], new Rng(seed).normals(IPR_DIM), 'x_T');
  const { out } = buildS2Forward(g, cfg, { input: netin, xT }, { mode: 'infer' });
  let y = op.cropToScaled(out, image, outputScale(cfg));
  if (mask) y = op.add(op.mul(mask, y), op.mul(op.sub(1, mask), image));
  g.output(y, EXPORT_IO.output);
  return g;
}

/** Serialises a stage-2 checkpoint to ONNX bytes (see the module comment). */
export function exportOnnx(ck: DiffIRCheckpoint, seed = 0): Uint8Array {
  if (ck.stage !== 2) throw new Error(`${ck.file}: only stage-2 (DiffIRS2) checkpoints can be exported; stage 1 needs the ground truth`);
  const cfg = ck.config;
  return toOnnx(exportGraph(cfg, seed), {
    params: 'initializers',
    weights: ck.weights,
    docString: `DiffIR ${describeConfig(cfg)}; input image (1,3,H,W) in [0,1]${cfg.task === 'inpaint' ? ' and mask (1,1,H,W), 1 = hole' : ''}; output (1,3,${outputScale(cfg)}H,${outputScale(cfg)}W)`,
    metadata: { task: cfg.task, scale: String(outputScale(cfg)), pad_multiple: String(padMultiple(cfg)), seed: String(seed) },
  });
}
