/**
 * Learning-rate schedules and the progressive patch / batch schedule, as closed-form functions
 * of the iteration, so that a resumed run needs no scheduler state.
 *
 * Iterations are BasicSR's `current_iter`, counted from 1. BasicSR steps its schedulers before
 * every iteration but the first, so the learning rate used at iteration `i` is the scheduler's
 * value at epoch `e = i − 1`; a linear warm-up (`warmup_iter`) then overrides it while
 * `i < warmup_iter`. The formulas follow basicsr/models/lr_scheduler.py and Restormer's
 * CosineAnnealingRestartCyclicLR (used by DiffIR's deblurring code).
 */

/** `MultiStepLR` / `MultiStepRestartLR`. */
export interface MultiStepSpec {
  readonly type: 'MultiStepLR' | 'MultiStepRestartLR';
  readonly milestones: readonly number[];
  readonly gamma: number;
  readonly restarts: readonly number[];
  readonly restartWeights: readonly number[];
}

/** `CosineAnnealingRestartLR`. */
export interface CosineRestartSpec {
  readonly type: 'CosineAnnealingRestartLR';
  readonly periods: readonly number[];
  readonly restartWeights: readonly number[];
  readonly etaMin: number;
}

/** `CosineAnnealingRestartCyclicLR` (a minimum per cycle). */
export interface CosineCyclicSpec {
  readonly type: 'CosineAnnealingRestartCyclicLR';
  readonly periods: readonly number[];
  readonly restartWeights: readonly number[];
  readonly etaMins: readonly number[];
}

/** A scheduler of the `train.scheduler` option. */
export type SchedulerSpec = MultiStepSpec | CosineRestartSpec | CosineCyclicSpec;

/** Scheduler types we implement. */
export const SCHEDULER_TYPES = ['MultiStepLR', 'MultiStepRestartLR', 'CosineAnnealingRestartLR', 'CosineAnnealingRestartCyclicLR'] as const;

function cumulative(periods: readonly number[]): number[] {
  const out: number[] = [];
  let s = 0;
  for (const p of periods) out.push((s += p));
  return out;
}

/** Index of the cycle holding epoch `e` (BasicSR's get_position_from_periods); −1 past the end. */
function position(e: number, cum: readonly number[]): number {
  for (let i = 0; i < cum.length; i++) if (e <= cum[i]!) return i;
  return -1;
}

/** The scheduler's learning rate at epoch `e` (≥ 0) for an optimizer whose initial lr is `base`. */
export function schedulerLr(spec: SchedulerSpec, base: number, e: number): number {
  switch (spec.type) {
    case 'MultiStepLR':
    case 'MultiStepRestartLR': {
      // Chained form: a restart resets to initial·weight; each milestone after it multiplies by γ.
      let r = -1;
      let weight = 1;
      spec.restarts.forEach((x, i) => {
        if (x <= e && x > r) [r, weight] = [x, spec.restartWeights[i]!];
      });
      if (r < 0) [r, weight] = [0, 1];
      let lr = base * weight;
      for (const m of spec.milestones) if (m > r && m <= e) lr *= spec.gamma;
      return lr;
    }
    case 'CosineAnnealingRestartLR':
    case 'CosineAnnealingRestartCyclicLR': {
      const cum = cumulative(spec.periods);
      const idx = position(e, cum);
      if (idx < 0) throw new Error(`iteration ${e + 1} is past the scheduler's periods (they sum to ${cum.at(-1)})`);
      const etaMin = spec.type === 'CosineAnnealingRestartLR' ? spec.etaMin : spec.etaMins[idx]!;
      const nearest = idx === 0 ? 0 : cum[idx - 1]!;
      const w = spec.restartWeights[idx]!;
      return etaMin + w * 0.5 * (base - etaMin) * (1 + Math.cos(Math.PI * ((e - nearest) / spec.periods[idx]!)));
    }
  }
}

/** Learning rate of a scheduled optimizer at iteration `iter` (from 1), warm-up included. */
export function scheduledLr(spec: SchedulerSpec, base: number, iter: number, warmupIter = -1): number {
  if (iter < warmupIter) return (base / warmupIter) * iter;
  return schedulerLr(spec, base, Math.max(0, iter - 1));
}

/** The official stage-2 models' manual rules (DiffIRS2Model.optimize_parameters). */
export interface ManualRule {
  /** `encoder_iter`: iterations `< encoder_iter` train only CPEN_S2 + denoiser (phase A). */
  readonly encoderIter: number;
  readonly lrEncoder: number;
  readonly gammaEncoder: number;
  readonly lrDecayEncoder: number;
  readonly lrSr: number;
  readonly gammaSr: number;
  readonly lrDecaySr: number;
}

/** Phase A lr: `lr_encoder · gamma_encoder^(iter // lr_decay_encoder)`. */
export function encoderLr(r: ManualRule, iter: number): number {
  return r.lrEncoder * r.gammaEncoder ** Math.floor(iter / r.lrDecayEncoder);
}

/** Phase B lr: `lr_sr · gamma_sr^((iter − encoder_iter) // lr_decay_sr)`. */
export function jointLr(r: ManualRule, iter: number): number {
  return r.lrSr * r.gammaSr ** Math.floor((iter - r.encoderIter) / r.lrDecaySr);
}

/** DiffIRGANS2Model's generator rule: lr_sr · gamma_sr^(iter // lr_decay_sr) (no phases). */
export function ganLr(r: ManualRule, iter: number): number {
  return r.lrSr * r.gammaSr ** Math.floor(iter / r.lrDecaySr);
}

/** The progressive patch / batch schedule of the deblurring recipe (per-GPU batch). */
export interface ProgressiveSpec {
  /** `iters`: iterations of each stage. */
  readonly iters: readonly number[];
  /** `mini_batch_sizes`. */
  readonly batchSizes: readonly number[];
  /** `gt_sizes`: GT patch size of each stage. */
  readonly gtSizes: readonly number[];
}

/** Batch size and GT patch size at iteration `iter`; the last stage continues past the schedule. */
export function progressiveStage(p: ProgressiveSpec, iter: number): { stage: number; batch: number; gtSize: number } {
  const cum = cumulative(p.iters);
  let j = cum.findIndex((c) => iter <= c);
  if (j < 0) j = cum.length - 1;
  return { stage: j, batch: p.batchSizes[j]!, gtSize: p.gtSizes[j]! };
}
