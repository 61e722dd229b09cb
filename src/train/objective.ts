/**
 * The training objectives of DiffIR as graphs, shared by the trainer and `diffir grad`:
 *
 * - `s1`: stage 1, CPEN_S1 + DIRformer on pixel(out, GT).
 * - `s2joint`: stage 2 phase B, everything on pixel(out, GT) + w·L1(IPR_S2, IPR_S1).
 * - `s2enc`: stage 2 phase A (`iter < encoder_iter`), CPEN_S2 + denoiser on w·L1(IPR_S2, IPR_S1);
 *   DIRformer is not part of this graph.
 *
 * IPR_S1 comes from the frozen stage-1 CPEN computed in the same graph (weights embedded,
 * keys `E.*`) or from an input `teacher_ipr`. The KD loss's KL term (temperature 0.15,
 * `batchmean`) is logged, never optimised, as in the official KDLoss. The pixel loss is
 * BasicSR's L1Loss (or MSELoss / CharbonnierLoss) with its weight and reduction.
 */
import type { Dim } from '../graph/dim.js';
import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { cpenS1, cpenS2 } from '../models/cpen.js';
import { ddpmSchedule, qSample, reverseProcess } from '../models/ddpm.js';
import { denoiser } from '../models/denoiser.js';
import { type DiffIRConfig, inputChannels, outputScale } from '../models/config.js';
import { buildS1Forward, buildS2Forward, IO_NAMES } from '../models/diffir.js';
import { IPR_DIM } from '../nn/ipr.js';

/** Which loss: stage 1, stage 2 joint (phase B), stage 2 encoder (phase A). */
export type LossKind = 's1' | 's2joint' | 's2enc';

/** BasicSR's pixel loss. */
export interface PixelLoss {
  readonly type: 'L1Loss' | 'MSELoss' | 'CharbonnierLoss';
  readonly weight: number;
  readonly reduction: 'mean' | 'sum';
  /** CharbonnierLoss only. */
  readonly eps: number;
}

/** The official KDLoss settings. */
export interface KdLoss {
  readonly weight: number;
  readonly temperature: number;
}

/** What to build. */
export interface ObjectiveSpec {
  readonly kind: LossKind;
  /** The model trained: stage 1 for 's1', stage 2 otherwise. */
  readonly config: DiffIRConfig;
  readonly batch: number;
  /** LQ (network input) height and width. */
  readonly height: Dim;
  readonly width: Dim;
  readonly pixel?: PixelLoss;
  readonly kd?: KdLoss;
  /**
   * Stage 2: the teacher's config when IPR_S1 is computed in the graph from frozen `E.*`
   * weights (which must then be given as frozen weights); omitted, IPR_S1 is the input
   * `teacher_ipr`.
   */
  readonly teacher?: DiffIRConfig;
}

/** A built objective: the graph, its loss, logged values and the parameter roles. */
export interface Objective {
  readonly graph: Graph;
  readonly loss: Value;
  /** Scalars to log, BasicSR names: `l_pix`, `l_kd_<T−1>` (KL), `l_abs_<T−1>` (L1). */
  readonly logs: Record<string, Value>;
  /** Parameters trained, in the model's official order. */
  readonly trainable: readonly string[];
  /** Parameters that are inputs of the graph but frozen (the teacher's `E.*`). */
  readonly frozen: readonly string[];
  /** Data inputs: `input`, `gt`, and for stage 2 `eps` (and `teacher_ipr` without an in-graph teacher). */
  readonly inputs: readonly string[];
}

export const DEFAULT_PIXEL: PixelLoss = { type: 'L1Loss', weight: 1, reduction: 'mean', eps: 1e-12 };
export const DEFAULT_KD: KdLoss = { weight: 1, temperature: 0.15 };

function all(v: Value): number[] {
  return [...v.shape.keys()];
}

/** BasicSR's pixel losses: L1 / MSE / Charbonnier, mean or sum, times the weight. */
export function pixelLoss(out: Value, gt: Value, p: PixelLoss): Value {
  const d = op.sub(out, gt);
  const e = p.type === 'L1Loss' ? op.abs(d) : p.type === 'MSELoss' ? op.mul(d, d) : op.sqrt(op.add(op.mul(d, d), p.eps));
  const r = p.reduction === 'mean' ? op.reduceMean(e, all(e), false) : op.reduceSum(e, all(e), false);
  return p.weight === 1 ? r : op.mul(r, p.weight);
}

/** The official KDLoss on the final IPR: `w·L1(S2, S1)` (optimised) and `w·KL(S1‖S2)` at temperature T (logged). */
export function kdLoss(s2: Value, s1: Value, k: KdLoss): { abs: Value; kl: Value } {
  const d = op.abs(op.sub(s2, s1));
  let abs = op.reduceMean(d, all(d), false);
  // F.kl_div(log_softmax(S2/T), softmax(S1/T), reduction='batchmean') = Σ p1·(log p1 − log q2) / B
  const logQ = op.logSoftmax(op.div(s2, k.temperature), 1);
  const logP = op.logSoftmax(op.div(s1, k.temperature), 1);
  const t = op.mul(op.exp(logP), op.sub(logP, logQ));
  let kl = op.div(op.reduceSum(t, all(t), false), s1.sdim(0));
  if (k.weight !== 1) {
    abs = op.mul(abs, k.weight);
    kl = op.mul(kl, k.weight);
  }
  return { abs, kl };
}

/** Official group order of the parameters in a state dict: G, then E / condition, then denoise. */
export function officialOrder(names: Iterable<string>): string[] {
  const group = (k: string) => {
    const i = ['G.', 'E.', 'condition.', 'denoise.'].findIndex((p) => k.startsWith(p));
    return i < 0 ? 4 : i;
  };
  return [...names].map((n, i) => [n, i] as const).sort((a, b) => group(a[0]) - group(b[0]) || a[1] - b[1]).map(([n]) => n);
}

/** Builds the objective graph. */
export function buildObjective(spec: ObjectiveSpec): Objective {
  const cfg = spec.config;
  const pixel = spec.pixel ?? DEFAULT_PIXEL;
  const kd = spec.kd ?? DEFAULT_KD;
  const g = new Graph(`DiffIR_${spec.kind}`);
  const s = outputScale(cfg);
  const mul = (d: Dim) => (typeof d === 'number' ? d * s : d);
  const input = g.input(IO_NAMES.input, [spec.batch, inputChannels(cfg), spec.height, spec.width]);
  const gt = g.input(IO_NAMES.gt, [spec.batch, 3, mul(spec.height), mul(spec.width)]);
  const logs: Record<string, Value> = {};
  const inputs: string[] = [IO_NAMES.input, IO_NAMES.gt];
  let loss: Value;
  let frozen: string[] = [];
  if (spec.kind === 's1') {
    const r = buildS1Forward(g, cfg, { input, gt });
    loss = pixelLoss(r.out, gt, pixel);
    logs.l_pix = loss;
  } else {
    let teacher: Value;
    const before = new Set(g.params.keys());
    if (spec.teacher) {
      teacher = g.scope('teacher', () => cpenS1(g, spec.teacher!, input, gt, 'E'));
      frozen = [...g.params.keys()].filter((k) => !before.has(k));
    } else {
      teacher = g.input(IO_NAMES.teacher, [spec.batch, IPR_DIM]);
      inputs.push(IO_NAMES.teacher);
    }
    const eps = g.input(IO_NAMES.eps, [spec.batch, IPR_DIM]);
    inputs.push(IO_NAMES.eps);
    const tag = cfg.timesteps - 1;
    if (spec.kind === 's2joint') {
      const r = buildS2Forward(g, cfg, { input, teacher, eps }, { mode: 'train' });
      const lp = pixelLoss(r.out, gt, pixel);
      const k = kdLoss(r.ipr, teacher, kd);
      loss = op.add(lp, k.abs);
      logs.l_pix = lp;
      logs[`l_kd_${tag}`] = k.kl;
      logs[`l_abs_${tag}`] = k.abs;
    } else {
      const ipr = s2Prior(g, cfg, input, teacher, eps);
      const k = kdLoss(ipr, teacher, kd);
      loss = k.abs;
      logs[`l_kd_${tag}`] = k.kl;
      logs[`l_abs_${tag}`] = k.abs;
    }
  }
  const frozenSet = new Set(frozen);
  const trainable = officialOrder([...g.params.keys()].filter((k) => !frozenSet.has(k)));
  return { graph: g, loss, logs, trainable, frozen, inputs };
}

/**
 * Phase A's forward: the diffusion alone — CPEN_S2 condition, q_sample of the teacher IPR with
 * ε, the reverse steps — without DIRformer, as `net_g.module.diffusion(lq, IPR_S1)` computes it.
 */
function s2Prior(g: Graph, cfg: DiffIRConfig, input: Value, teacher: Value, eps: Value): Value {
  const sched = ddpmSchedule(cfg.timesteps, cfg.linearStart, cfg.linearEnd);
  const cond = cpenS2(g, cfg, input);
  const steps = reverseProcess(g, sched, qSample(sched, teacher, eps), (x, t) => denoiser(g, cfg, x, t, cond));
  return steps[steps.length - 1]!;
}
