/**
 * Gradients of a training objective at given weights and data, through the same compiled
 * training step the trainer runs (`diffir grad`, and the checks against the official
 * `grads.safetensors`). Data tensors use the fixture names: `input`, `gt`, `s2_train_eps`
 * (the q_sample noise) and `s2_train_teacher` (IPR_S1, unless a teacher checkpoint is given).
 */
import { detectArchitecture } from '../models/detect.js';
import { selectWeights } from '../models/params.js';
import type { DiffIRConfig } from '../models/config.js';
import type { SessionOptions } from '../runtime/session.js';
import type { HostTensor, TensorMap } from '../tensor.js';
import { IO_NAMES } from '../models/diffir.js';
import { buildObjective, type LossKind } from './objective.js';
import { TrainStep } from './step.js';
import { requireF32 } from '../weights/safetensors.js';

/** Inputs of {@link computeGradients}. */
export interface GradientRequest {
  readonly kind: LossKind;
  /** Model weights (a state dict: stage 1 for 's1', stage 2 otherwise). */
  readonly weights: ReadonlyMap<string, HostTensor>;
  /** Stage-1 state dict of the teacher (stage 2); without it `data` must hold `s2_train_teacher`. */
  readonly teacher?: ReadonlyMap<string, HostTensor>;
  /** `input`, `gt`, and for stage 2 `s2_train_eps` (and `s2_train_teacher`). */
  readonly data: ReadonlyMap<string, HostTensor>;
  readonly session?: SessionOptions;
  /** Names for error messages. */
  readonly names?: { readonly weights?: string; readonly teacher?: string; readonly data?: string };
}

/** Loss, logged terms and ∂loss/∂θ by official parameter name. */
export interface GradientResult {
  readonly loss: number;
  readonly logs: Record<string, number>;
  readonly gradNorm: number;
  readonly grads: TensorMap;
  readonly config: DiffIRConfig;
}

/** Computes the loss and all gradients of `kind` in one run of the compiled training step. */
export async function computeGradients(r: GradientRequest): Promise<GradientResult> {
  const wName = r.names?.weights ?? 'weights';
  const dName = r.names?.data ?? 'data';
  const det = detectArchitecture(r.weights, wName);
  const wantStage = r.kind === 's1' ? 1 : 2;
  if (det.stage !== wantStage) throw new Error(`${wName}: a stage-${det.stage} checkpoint, but loss '${r.kind}' needs a stage-${wantStage} model`);
  const weights = selectWeights(r.weights, det.config, det.stage, wName);
  const input = requireF32(r.data, 'input', dName);
  const [batch, , height, width] = input.shape as [number, number, number, number];
  let teacherCfg: DiffIRConfig | undefined;
  let frozen: TensorMap = new Map();
  if (wantStage === 2 && r.teacher) {
    const tName = r.names?.teacher ?? 'teacher';
    const t = detectArchitecture(r.teacher, tName);
    if (t.stage !== 1) throw new Error(`${tName}: the teacher must be a stage-1 checkpoint, got stage ${t.stage}`);
    if (t.config.task !== det.config.task || t.config.scale !== det.config.scale) {
      throw new Error(`${tName}: a ${t.config.task} x${t.config.scale} teacher for a ${det.config.task} x${det.config.scale} model`);
    }
    teacherCfg = t.config;
    const tw = selectWeights(r.teacher, t.config, 1, tName);
    frozen = new Map([...tw].filter(([k]) => k.startsWith('E.')));
  }
  const obj = buildObjective({ kind: r.kind, config: det.config, batch, height, width, ...(teacherCfg ? { teacher: teacherCfg } : {}) });
  const step = await TrainStep.create(obj.graph, obj.loss, { trainable: obj.trainable, frozen, logs: obj.logs, ...(r.session ? { session: r.session } : {}) });
  try {
    const feeds: Record<string, HostTensor> = { [IO_NAMES.input]: input, [IO_NAMES.gt]: requireF32(r.data, 'gt', dName) };
    if (wantStage === 2) {
      feeds[IO_NAMES.eps] = requireF32(r.data, 's2_train_eps', dName);
      if (!teacherCfg) feeds[IO_NAMES.teacher] = requireF32(r.data, 's2_train_teacher', dName);
    }
    const flat = step.layout.pack(weights);
    const grads = new Float32Array(step.layout.total);
    const res = await step.run(step.layout.views(flat), feeds, grads);
    const out: TensorMap = new Map();
    for (const [k, v] of step.layout.views(grads)) out.set(k, v);
    return { loss: res.loss, logs: res.logs, gradNorm: res.gradNorm, grads: out, config: det.config };
  } finally {
    await step.release();
  }
}
