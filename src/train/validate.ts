/**
 * Periodic validation as BasicSR's SRModel does it: each validation image runs through the EMA
 * model (or the trained one without EMA), reflect-padded to the model's multiple (and
 * `val.window_size`) and cropped back; the metrics are computed on 8-bit images exactly as
 * BasicSR does and averaged over the images of each dataset. Stage-1 models see the GT too
 * (CPEN_S1 needs it, padded alike); stage-2 models start the reverse diffusion from seeded
 * noise so that validations are reproducible. One ORT session with the weights as inputs
 * serves every validation.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { crop, padBottomRight } from '../data/tensor-ops.js';
import { saveImage } from '../image/io.js';
import { measure } from '../metrics/psnr-ssim.js';
import { type DiffIRConfig, outputScale, padMultiple, type Stage } from '../models/config.js';
import { DiffIRS1, DiffIRS2, IO_NAMES } from '../models/diffir.js';
import { IPR_DIM } from '../nn/ipr.js';
import { Rng } from '../random.js';
import { compile } from '../runtime/compile.js';
import type { Session, SessionOptions } from '../runtime/session.js';
import { f32, type HostTensor, type TensorMap } from '../tensor.js';
import { gaussians, openValDataset, type Planar, type ValDataset } from './data.js';
import type { DatasetPlan, MetricPlan } from './options.js';

/** A restored validation image kept for the report. */
export interface Sample {
  readonly name: string;
  readonly lq: Planar;
  readonly out: Planar;
  readonly gt: Planar;
}

/** Results on one validation dataset. */
export interface ValResult {
  readonly dataset: string;
  /** Metric name → mean over the images. */
  readonly metrics: Record<string, number>;
  readonly images: number;
  readonly samples: readonly Sample[];
}

const tensor = (p: Planar): HostTensor<'float32'> => f32([1, 3, p.height, p.width], p.data);

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** Runs the validation datasets of a plan. */
export class Validator {
  private session: Session | null = null;
  private datasets: { plan: DatasetPlan; ds: ValDataset }[];

  constructor(
    readonly config: DiffIRConfig,
    readonly stage: Stage,
    plans: readonly DatasetPlan[],
    readonly metrics: readonly MetricPlan[],
    readonly o: { readonly windowSize: number; readonly session?: SessionOptions; readonly samples?: number; readonly saveImg?: string | null },
  ) {
    this.datasets = plans.map((plan) => ({ plan, ds: openValDataset(plan) }));
  }

  /** Number of validation datasets. */
  get count(): number {
    return this.datasets.length;
  }

  private async getSession(): Promise<Session> {
    if (!this.session) {
      const g = this.stage === 1 ? DiffIRS1(this.config, { batch: 1 }) : DiffIRS2(this.config, { batch: 1 });
      this.session = await compile(g, { params: 'inputs' }, this.o.session ?? {});
    }
    return this.session;
  }

  /** Restores one image with `weights` (LQ and, for stage 1, GT at full size). */
  async restore(weights: TensorMap, lq: Planar, gt: Planar, rng: Rng): Promise<Planar> {
    const s = outputScale(this.config);
    const pm = padMultiple(this.config);
    const ws = this.o.windowSize > 0 ? this.o.windowSize : 1;
    const m = (pm * ws) / gcd(pm, ws);
    const h = Math.ceil(lq.height / m) * m;
    const w = Math.ceil(lq.width / m) * m;
    // BasicSR's pad_test: reflect-pad LQ (and the GT that CPEN_S1 sees) at the bottom and right.
    const feeds: Record<string, HostTensor> = { [IO_NAMES.input]: padBottomRight(tensor(lq), h - lq.height, w - lq.width) };
    if (this.stage === 1) feeds[IO_NAMES.gt] = padBottomRight(tensor(gt), (h - lq.height) * s, (w - lq.width) * s);
    else feeds[IO_NAMES.xT] = f32([1, IPR_DIM], gaussians(rng, IPR_DIM));
    for (const [k, t] of weights) feeds[k] = t;
    const session = await this.getSession();
    const r = await session.run(feeds, [IO_NAMES.out]);
    const out = crop(r[IO_NAMES.out] as HostTensor<'float32'>, 0, 0, lq.height * s, lq.width * s);
    return { data: out.data, height: out.shape[2]!, width: out.shape[3]! };
  }

  /** Validates every dataset; `seed` fixes the stage-2 noise, `iter` names saved images. */
  async run(weights: TensorMap, iter: number, seed: number): Promise<ValResult[]> {
    const results: ValResult[] = [];
    for (const { plan, ds } of this.datasets) {
      const rng = new Rng((seed * 0x9e3779b1 + iter) >>> 0);
      const sums: Record<string, number> = Object.fromEntries(this.metrics.map((m) => [m.name, 0]));
      const samples: Sample[] = [];
      for (let i = 0; i < ds.size; i++) {
        const pair = await ds.load(i);
        const out = await this.restore(weights, pair.lq, pair.gt, rng);
        for (const m of this.metrics) sums[m.name]! += measure(tensor(out), tensor(pair.gt), { type: m.type, cropBorder: m.cropBorder, testYChannel: m.testYChannel });
        if (samples.length < (this.o.samples ?? 3)) samples.push({ name: pair.name, lq: pair.lq, out, gt: pair.gt });
        if (this.o.saveImg) {
          const dir = join(this.o.saveImg, plan.name);
          mkdirSync(dir, { recursive: true });
          await saveImage(join(dir, `${pair.name}_${iter}.png`), { rgb: tensor(out) }, { overwrite: true });
        }
      }
      const metrics: Record<string, number> = {};
      for (const m of this.metrics) metrics[m.name] = sums[m.name]! / ds.size;
      results.push({ dataset: plan.name, metrics, images: ds.size, samples });
    }
    return results;
  }

  /** Frees the session. */
  async release(): Promise<void> {
    const s = this.session;
    this.session = null;
    if (s) await s.release();
  }
}
