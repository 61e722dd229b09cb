/**
 * One official inpainting training iteration at given weights and tensors, writing what the
 * fixture `inpaint_train` stores, under its names (`diffir grad -opt <config>`): the losses,
 * the predictions, the gradients of G and D before clipping, and D's state after the step.
 */
import { existsSync } from 'node:fs';
import { selectWeights } from '../models/params.js';
import type { SessionOptions } from '../runtime/session.js';
import { f32, type HostTensor, type TensorMap } from '../tensor.js';
import { requireF32 } from '../weights/safetensors.js';
import { loadStateDict } from '../weights/statedict.js';
import { InpaintIteration, type InpaintSpec } from './inpaint-step.js';
import { type LamaConfig, readLamaConfig, resnetPlWeightsFile } from './lama-config.js';

/** Inputs of {@link inpaintIterationTensors}. */
export interface InpaintGradRequest {
  /** The config file (composed or `defaults:` form). */
  readonly config: string;
  /** Generator checkpoint (official flat layout, or ours with `params`); stage 2 default: `generatorS2_path`. */
  readonly weights?: string;
  /** Stage 2: the stage-1 checkpoint whose CPEN is the teacher; default: `generatorS1_path`. */
  readonly teacher?: string;
  /** Discriminator state dict. */
  readonly discriminator: string;
  /** `image`, `mask`, and for stage 2 `s2_g_eps`, `s2_d_eps`. */
  readonly data: ReadonlyMap<string, HostTensor>;
  readonly dataName?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly session?: SessionOptions;
}

/** The encoder file of ResNetPL, or a one-line error naming where it was looked for. */
export function findResnetPlWeights(cfg: LamaConfig): string | null {
  if (!cfg.resnetPlWeightsPath) return null;
  const file = resnetPlWeightsFile(cfg.resnetPlWeightsPath);
  if (!existsSync(file)) {
    throw new Error(
      `ResNetPL needs ${file} (losses.resnet_pl.weights_path = ${cfg.resnetPlWeightsPath}): the ADE20k ResNet50-dilated encoder from http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet50dilated-ppm_deepsup/ — download it there yourself, or set losses.resnet_pl.weight to 0`,
    );
  }
  return file;
}

/** The iteration spec of a config at a batch size and image size. */
export function inpaintSpec(cfg: LamaConfig, batch: number, height: number, width: number): InpaintSpec {
  return {
    stage: cfg.stage,
    generator: cfg.generator,
    ...(cfg.teacher ? { teacher: cfg.teacher } : {}),
    discriminator: cfg.discriminator,
    losses: cfg.losses,
    batch,
    height,
    width,
    lrG: cfg.lrG,
    lrD: cfg.lrD,
    gradientClipVal: cfg.gradientClipVal,
  };
}

/** Runs one iteration and returns the fixture's tensors (`sN_*`). */
export async function inpaintIterationTensors(r: InpaintGradRequest): Promise<TensorMap> {
  const cfg = readLamaConfig(r.config, r.env);
  const dName = r.dataName ?? 'data';
  const image = requireF32(r.data, 'image', dName);
  const mask = requireF32(r.data, 'mask', dName);
  const [batch, , height, width] = image.shape as [number, number, number, number];
  const wPath = r.weights ?? cfg.generatorS2Path;
  if (!wPath) throw new Error(`${r.config}: give the generator weights (--weights)`);
  const gen = selectWeights(loadStateDict(wPath), cfg.generator, cfg.stage, wPath);
  let teacher: TensorMap | undefined;
  if (cfg.stage === 2) {
    const tPath = r.teacher ?? cfg.generatorS1Path;
    if (!tPath) throw new Error(`${r.config}: stage 2 needs the stage-1 teacher (--teacher or training_model.generatorS1_path)`);
    teacher = new Map([...selectWeights(loadStateDict(tPath), cfg.teacher!, 1, tPath)].filter(([k]) => k.startsWith('E.')));
  }
  const encPath = findResnetPlWeights(cfg);
  const it = await InpaintIteration.create(
    inpaintSpec(cfg, batch, height, width),
    {
      generator: gen,
      discriminator: loadStateDict(r.discriminator),
      ...(teacher ? { teacher } : {}),
      ...(encPath ? { encoder: loadStateDict(encPath) } : {}),
    },
    r.session,
  );
  try {
    const res = await it.run(
      {
        image,
        mask,
        ...(cfg.stage === 2 ? { gEps: requireF32(r.data, 's2_g_eps', dName), dEps: requireF32(r.data, 's2_d_eps', dName) } : {}),
      },
      true,
    );
    const p = `s${cfg.stage}_`;
    const out: TensorMap = new Map();
    const scalar = (v: number) => f32([1], [v]);
    for (const [k, v] of Object.entries(res.losses)) {
      const name = k === 'loss_kd_l1' ? 's2_loss_kd_l1' : k === 'loss_kd_kl' ? 's2_loss_kd_kl' : `${p}${k}`;
      out.set(name, scalar(v));
    }
    out.set(`${p}g_grad_norm`, scalar(res.gGradNorm));
    out.set(`${p}d_grad_norm`, scalar(res.dGradNorm));
    for (const [k, v] of Object.entries(res.tensors!)) {
      out.set(k === 'teacher_ipr' ? 's2_teacher_ipr' : `${p}${k}`, { ...v, data: (v.data as Float32Array).slice() } as HostTensor);
    }
    for (const [k, v] of res.gGrads!) out.set(`${p}g.${k}`, { ...v, data: (v.data as Float32Array).slice() } as HostTensor);
    for (const [k, v] of res.dGrads!) out.set(`${p}d.${k}`, { ...v, data: (v.data as Float32Array).slice() } as HostTensor);
    // Scalars (num_batches_tracked) as shape (1), like every scalar of the fixture.
    for (const [k, v] of it.discriminatorState()) out.set(`${p}d_after.${k}`, { ...v, shape: v.shape.length ? v.shape : [1], data: v.data.slice() } as HostTensor);
    return out;
  } finally {
    await it.release();
  }
}
