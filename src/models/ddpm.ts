/**
 * The DDPM on the IPR (official `ldm/ddpm.py` with x0-parameterisation, no clipping, no noise
 * in the reverse process). The schedule is computed here in double precision from
 * `linear_start`, `linear_end` and `timesteps` ("linear" in √β space) and enters graphs as
 * float32 constants, like the official float32 buffers.
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { type TensorMap, f32 } from '../tensor.js';

/** The diffusion schedule: the 12 buffers of the official DDPM module (float64 here). */
export interface DDPMSchedule {
  readonly timesteps: number;
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;
  readonly alphasCumprodPrev: Float64Array;
  readonly sqrtAlphasCumprod: Float64Array;
  readonly sqrtOneMinusAlphasCumprod: Float64Array;
  readonly logOneMinusAlphasCumprod: Float64Array;
  readonly sqrtRecipAlphasCumprod: Float64Array;
  readonly sqrtRecipm1AlphasCumprod: Float64Array;
  readonly posteriorVariance: Float64Array;
  readonly posteriorLogVarianceClipped: Float64Array;
  readonly posteriorMeanCoef1: Float64Array;
  readonly posteriorMeanCoef2: Float64Array;
}

/** `torch.linspace(a, b, n)` in float64 (same symmetric evaluation order). */
function linspace(a: number, b: number, n: number): Float64Array {
  const out = new Float64Array(n);
  if (n === 1) {
    out[0] = a;
    return out;
  }
  const step = (b - a) / (n - 1);
  const half = Math.floor(n / 2);
  for (let i = 0; i < n; i++) out[i] = i < half ? a + step * i : b - step * (n - 1 - i);
  return out;
}

/** The "linear" schedule: β = linspace(√start, √end, T)², and every derived buffer. */
export function ddpmSchedule(timesteps: number, linearStart: number, linearEnd: number): DDPMSchedule {
  if (!Number.isInteger(timesteps) || timesteps < 1) throw new Error(`ddpm: timesteps must be a positive integer, got ${timesteps}`);
  const T = timesteps;
  const map = (f: (i: number) => number) => Float64Array.from({ length: T }, (_, i) => f(i));
  const roots = linspace(Math.sqrt(linearStart), Math.sqrt(linearEnd), T);
  const betas = map((i) => roots[i]! ** 2);
  const alphas = map((i) => 1 - betas[i]!);
  const alphasCumprod = new Float64Array(T);
  let acc = 1;
  for (let i = 0; i < T; i++) alphasCumprod[i] = acc *= alphas[i]!;
  const alphasCumprodPrev = map((i) => (i === 0 ? 1 : alphasCumprod[i - 1]!));
  const posteriorVariance = map((i) => (betas[i]! * (1 - alphasCumprodPrev[i]!)) / (1 - alphasCumprod[i]!));
  return {
    timesteps: T,
    betas,
    alphasCumprod,
    alphasCumprodPrev,
    sqrtAlphasCumprod: map((i) => Math.sqrt(alphasCumprod[i]!)),
    sqrtOneMinusAlphasCumprod: map((i) => Math.sqrt(1 - alphasCumprod[i]!)),
    logOneMinusAlphasCumprod: map((i) => Math.log(1 - alphasCumprod[i]!)),
    sqrtRecipAlphasCumprod: map((i) => Math.sqrt(1 / alphasCumprod[i]!)),
    sqrtRecipm1AlphasCumprod: map((i) => Math.sqrt(1 / alphasCumprod[i]! - 1)),
    posteriorVariance,
    posteriorLogVarianceClipped: map((i) => Math.log(Math.max(posteriorVariance[i]!, 1e-20))),
    posteriorMeanCoef1: map((i) => (betas[i]! * Math.sqrt(alphasCumprodPrev[i]!)) / (1 - alphasCumprod[i]!)),
    posteriorMeanCoef2: map((i) => ((1 - alphasCumprodPrev[i]!) * Math.sqrt(alphas[i]!)) / (1 - alphasCumprod[i]!)),
  };
}

/** Official buffer names (under `diffusion.`) and the schedule field holding each. */
export const DDPM_BUFFERS = {
  betas: 'betas',
  alphas_cumprod: 'alphasCumprod',
  alphas_cumprod_prev: 'alphasCumprodPrev',
  sqrt_alphas_cumprod: 'sqrtAlphasCumprod',
  sqrt_one_minus_alphas_cumprod: 'sqrtOneMinusAlphasCumprod',
  log_one_minus_alphas_cumprod: 'logOneMinusAlphasCumprod',
  sqrt_recip_alphas_cumprod: 'sqrtRecipAlphasCumprod',
  sqrt_recipm1_alphas_cumprod: 'sqrtRecipm1AlphasCumprod',
  posterior_variance: 'posteriorVariance',
  posterior_log_variance_clipped: 'posteriorLogVarianceClipped',
  posterior_mean_coef1: 'posteriorMeanCoef1',
  posterior_mean_coef2: 'posteriorMeanCoef2',
} as const satisfies Record<string, Exclude<keyof DDPMSchedule, 'timesteps'>>;

/** The schedule as the official float32 buffers keyed `<prefix>.<name>` (for writing S2 checkpoints). */
export function scheduleBuffers(s: DDPMSchedule, prefix = 'diffusion'): TensorMap {
  const out: TensorMap = new Map();
  for (const [name, field] of Object.entries(DDPM_BUFFERS)) out.set(`${prefix}.${name}`, f32([s.timesteps], Float32Array.from(s[field])));
  return out;
}

/** a·x + b·y with float32 scalar coefficients, skipping the ops that are exact no-ops (1·x, 0·y). */
function affine2(a: number, x: Value, b: number, y: Value): Value {
  const fa = Math.fround(a);
  const fb = Math.fround(b);
  const ax = fa === 1 ? x : op.mul(x, fa);
  if (fb === 0) return ax;
  return op.add(ax, op.mul(y, fb));
}

/** q_sample: x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε (training starts the reverse process from t = T−1). */
export function qSample(s: DDPMSchedule, x0: Value, eps: Value, t = s.timesteps - 1): Value {
  return affine2(s.sqrtAlphasCumprod[t]!, x0, s.sqrtOneMinusAlphasCumprod[t]!, eps);
}

/** One reverse step (posterior mean, no noise): x_{t−1} = coef1[t]·x̂₀ + coef2[t]·x_t. */
export function reverseStep(s: DDPMSchedule, t: number, x0Hat: Value, xt: Value): Value {
  return affine2(s.posteriorMeanCoef1[t]!, x0Hat, s.posteriorMeanCoef2[t]!, xt);
}

/** Predicts x̂₀ from the current x_t at step t (the denoiser, with the condition bound). */
export type X0Predictor = (xt: Value, t: number) => Value;

/**
 * The reverse process from `xStart` at t = T−1 down to t = 0. Returns the state after each
 * step, in order (after t = T−1, …, after t = 0); the last is the final IPR.
 */
export function reverseProcess(g: Graph, s: DDPMSchedule, xStart: Value, predictX0: X0Predictor): Value[] {
  const states: Value[] = [];
  let x = xStart;
  for (let t = s.timesteps - 1; t >= 0; t--) {
    x = g.scope(`diffusion.t${t}`, () => reverseStep(s, t, predictX0(x, t), x));
    states.push(x);
  }
  return states;
}
