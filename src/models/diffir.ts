/**
 * The DiffIR wrappers as graphs. Stage 1 (`DiffIRS1`): IPR = CPEN_S1(input, GT), out =
 * DIRformer(input, IPR). Stage 2 (`DiffIRS2`): c = CPEN_S2(input) once, then the 4-step DDPM
 * on the IPR (x̂₀ = denoise(x, t, c), posterior-mean steps), out = DIRformer(input, IPR).
 * Inference starts from injected noise x_T; training from q_sample(IPR_S1, ε) at t = T−1.
 */
import { type Dim, dimMul, sym } from '../graph/dim.js';
import { Graph, type Value } from '../graph/ir.js';
import { IPR_DIM } from '../nn/ipr.js';
import { type DiffIRConfig, inputChannels, outputScale, validateConfig } from './config.js';
import { cpenS1, cpenS2 } from './cpen.js';
import { ddpmSchedule, qSample, reverseProcess } from './ddpm.js';
import { denoiser } from './denoiser.js';
import { dirformer } from './dirformer.js';

/** Inputs of the stage-1 forward. */
export interface S1Inputs {
  /** The network input (B, 3 or 4, H, W); for inpainting cat(image·(1−M), M). */
  readonly input: Value;
  /** Ground truth (B, 3, H·scale, W·scale). */
  readonly gt: Value;
}

/** Results of the stage-1 forward. */
export interface S1Outputs {
  /** IPR_S1 = CPEN_S1(input, gt), (B, 256). */
  readonly ipr: Value;
  /** DIRformer output (B, 3, H·scale, W·scale). */
  readonly out: Value;
}

/** Builds DiffIRS1's forward in `g` (keys `G.*`, `E.*`). */
export function buildS1Forward(g: Graph, cfg: DiffIRConfig, inputs: S1Inputs): S1Outputs {
  validateConfig(cfg);
  const ipr = cpenS1(g, cfg, inputs.input, inputs.gt);
  return { ipr, out: dirformer(g, cfg, inputs.input, ipr) };
}

/** Whether the DDPM starts from noise (inference) or from the noised teacher IPR (training). */
export type S2Mode = 'infer' | 'train';

/** Inputs of the stage-2 forward. */
export interface S2Inputs {
  /** The network input (B, 3 or 4, H, W). */
  readonly input: Value;
  /** Inference: the initial noise x_T ~ N(0, I), (B, 256). */
  readonly xT?: Value;
  /** Training: the teacher's IPR_S1 = CPEN_S1(input, gt) (B, 256). */
  readonly teacher?: Value;
  /** Training: the q_sample noise ε (B, 256). */
  readonly eps?: Value;
}

/** Options of {@link buildS2Forward}. */
export interface S2ForwardOptions {
  readonly mode: S2Mode;
  /** Channel block of the runtime's convolutions, for inference graphs (see `DIRformerOptions.channelBlock`). */
  readonly channelBlock?: number;
}

/** Results of the stage-2 forward. */
export interface S2Outputs {
  /** The condition c = CPEN_S2(input), (B, 256). */
  readonly cond: Value;
  /** The state the reverse process starts from: x_T (infer) or q_sample(teacher, ε) (train). */
  readonly xStart: Value;
  /** The IPR after each reverse step, t = T−1 … 0. */
  readonly iprSteps: readonly Value[];
  /** The final IPR_S2 (= the last of `iprSteps`). */
  readonly ipr: Value;
  /** DIRformer output (B, 3, H·scale, W·scale). */
  readonly out: Value;
}

/** Builds DiffIRS2's forward in `g` (keys `G.*`, `condition.*`, `denoise.*`). */
export function buildS2Forward(g: Graph, cfg: DiffIRConfig, inputs: S2Inputs, o: S2ForwardOptions): S2Outputs {
  const prior = buildS2Prior(g, cfg, inputs, o);
  return { ...prior, out: dirformer(g, cfg, inputs.input, prior.ipr, o.channelBlock ? { channelBlock: o.channelBlock } : {}) };
}

/**
 * The stage-2 prior alone: c = CPEN_S2(input), then the reverse diffusion from x_T
 * (infer) or from q_sample(teacher, ε) (train) to the IPR. Restoring large images runs this
 * once on the whole image and shares the IPR across DIRformer tiles.
 */
export function buildS2Prior(g: Graph, cfg: DiffIRConfig, inputs: S2Inputs, o: S2ForwardOptions): Omit<S2Outputs, 'out'> {
  validateConfig(cfg);
  return diffuseIPR(g, cfg, cpenS2(g, cfg, inputs.input), inputs, o);
}

/**
 * The reverse diffusion alone, from a given condition c (B, 256): the part of
 * {@link buildS2Prior} after CPEN_S2 (tiled restoration computes c from tiles).
 */
export function diffuseIPR(g: Graph, cfg: DiffIRConfig, cond: Value, inputs: Omit<S2Inputs, 'input'>, o: S2ForwardOptions): Omit<S2Outputs, 'out'> {
  const s = ddpmSchedule(cfg.timesteps, cfg.linearStart, cfg.linearEnd);
  let xStart: Value;
  if (o.mode === 'infer') {
    if (!inputs.xT) throw new Error('buildS2Forward: inference needs the initial noise xT');
    xStart = inputs.xT;
  } else {
    if (!inputs.teacher || !inputs.eps) throw new Error('buildS2Forward: training needs the teacher IPR and the noise eps');
    xStart = qSample(s, inputs.teacher, inputs.eps);
  }
  const iprSteps = reverseProcess(g, s, xStart, (x, t) => denoiser(g, cfg, x, t, cond));
  return { cond, xStart, iprSteps, ipr: iprSteps[iprSteps.length - 1]! };
}

/** Batch and spatial size of a graph's network input; symbolic dims give dynamic-size models. */
export interface GraphShape {
  /** Batch size (default 1). */
  readonly batch?: Dim;
  /** Input height (default symbolic `H`); must be a multiple of `padMultiple(cfg)`. */
  readonly height?: Dim;
  /** Input width (default symbolic `W`). */
  readonly width?: Dim;
}

/** Graph input and output names. */
export const IO_NAMES = {
  /** Network input (B, 3|4, H, W). */
  input: 'input',
  /** Ground truth (stage 1). */
  gt: 'gt',
  /** Initial noise (stage 2, inference). */
  xT: 'x_T',
  /** Teacher IPR (stage 2, training). */
  teacher: 'teacher_ipr',
  /** q_sample noise (stage 2, training). */
  eps: 'eps',
  /** Restored image. */
  out: 'out',
  /** Final IPR. */
  ipr: 'ipr',
  /** Diffusion condition (stage 2 with intermediates). */
  cond: 'cond',
  /** Prefix of the per-step IPRs `ipr_t<t>` (stage 2 with intermediates). */
  iprStep: 'ipr_t',
} as const;

function networkInput(g: Graph, cfg: DiffIRConfig, shape: GraphShape): { input: Value; batch: Dim; height: Dim; width: Dim } {
  const batch = shape.batch ?? 1;
  const height = shape.height ?? sym('H');
  const width = shape.width ?? sym('W');
  return { input: g.input(IO_NAMES.input, [batch, inputChannels(cfg), height, width]), batch, height, width };
}

/**
 * The stage-1 model as a graph: inputs `input`, `gt`; outputs `out`, `ipr`.
 */
export function DiffIRS1(cfg: DiffIRConfig, shape: GraphShape = {}): Graph {
  const g = new Graph('DiffIRS1');
  const { input, batch, height, width } = networkInput(g, cfg, shape);
  const s = outputScale(cfg);
  const gt = g.input(IO_NAMES.gt, [batch, 3, dimMul(height, s), dimMul(width, s)]);
  const r = buildS1Forward(g, cfg, { input, gt });
  g.output(r.out, IO_NAMES.out);
  g.output(r.ipr, IO_NAMES.ipr);
  return g;
}

/** Options of {@link DiffIRS2}. */
export interface DiffIRS2Options {
  /** 'infer' (default): input `x_T`; 'train': inputs `teacher_ipr` and `eps`. */
  readonly mode?: S2Mode;
  /** Also output `cond` and the per-step IPRs `ipr_t<T−1>` … `ipr_t0`. */
  readonly intermediates?: boolean;
}

/**
 * The stage-2 model as a graph: inputs `input` and `x_T` (infer) or `teacher_ipr`, `eps`
 * (train); outputs `out`, `ipr` (and `cond`, `ipr_t*` with intermediates).
 */
export function DiffIRS2(cfg: DiffIRConfig, shape: GraphShape = {}, o: DiffIRS2Options = {}): Graph {
  const mode = o.mode ?? 'infer';
  const g = new Graph('DiffIRS2');
  const { input, batch } = networkInput(g, cfg, shape);
  const inputs: S2Inputs =
    mode === 'infer'
      ? { input, xT: g.input(IO_NAMES.xT, [batch, IPR_DIM]) }
      : { input, teacher: g.input(IO_NAMES.teacher, [batch, IPR_DIM]), eps: g.input(IO_NAMES.eps, [batch, IPR_DIM]) };
  const r = buildS2Forward(g, cfg, inputs, { mode });
  g.output(r.out, IO_NAMES.out);
  g.output(r.ipr, IO_NAMES.ipr);
  if (o.intermediates) {
    g.output(r.cond, IO_NAMES.cond);
    const T = r.iprSteps.length;
    r.iprSteps.forEach((v, i) => g.output(v, `${IO_NAMES.iprStep}${T - 1 - i}`));
  }
  return g;
}
