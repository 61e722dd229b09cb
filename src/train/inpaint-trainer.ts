/**
 * `diffir train -opt <inpainting config>`: DiffIR's LaMa-based inpainting trainers
 * (`defaultS1` / `defaultS2`) run for many iterations — LaMa's training data (random crops of an
 * image folder with the config's mixed masks, prepared by the worker-thread prefetcher), the
 * iteration of `inpaint-step.ts`, periodic PSNR/SSIM validation of the inpainted result with
 * fixed masks, a JSONL log and an HTML report with sample inpaintings, checkpoints and resume.
 *
 * Experiment folder (default `experiments/<config name>`):
 *   config.yaml                        the composed config, as the official trainer saves it
 *   models/G_<iter>.pth                the generator, official flat layout (what S1forS2.py and the
 *                                      official predict scripts load: `G.*`, `E.*` | `condition.*`, `denoise.*`)
 *   models/net_g_<iter>.pth            the same as ours, `{'params': …}` (diffir inpaint/restore read it)
 *   training_states/<iter>.state       both Adams, the discriminator (running statistics included),
 *                                      the data stream position and the noise generator
 * `--auto_resume` continues from the latest state bit for bit; Ctrl-C finishes the iteration,
 * saves and stops.
 */
import { existsSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { stringify } from 'yaml';
import { Prefetcher } from '../data/prefetch.js';
import type { Batch } from '../data/prefetch.js';
import { InpaintingDataset } from '../data/datasets.js';
import { deriveRng } from '../data/rng.js';
import { DiffIRS1, DiffIRS2 } from '../models/diffir.js';
import { expectedParamShapes, selectWeights } from '../models/params.js';
import { initParams } from '../nn/init.js';
import { IPR_DIM } from '../nn/ipr.js';
import { compile } from '../runtime/compile.js';
import type { SessionOptions } from '../runtime/session.js';
import { measure } from '../metrics/psnr-ssim.js';
import { Rng } from '../random.js';
import { f32, type HostTensor, type TensorMap } from '../tensor.js';
import { writeFileAtomicSync } from '../fs/atomic.js';
import { writePth } from '../weights/pth.js';
import { loadStateDict } from '../weights/statedict.js';
import {
  experimentDirs,
  latestTrainingState,
  loadTrainingState,
  makeExperimentDirs,
  officialStateDict,
  saveNetwork,
  saveTrainingState,
  type ExperimentDirs,
} from './checkpoint.js';
import { gaussians } from './data.js';
import { findResnetPlWeights, inpaintSpec } from './inpaint-grad.js';
import { InpaintIteration, initDiscriminator } from './inpaint-step.js';
import { type LamaConfig, readLamaConfig } from './lama-config.js';
import { JsonlLog, writeReport } from './report.js';
import type { Sample } from './validate.js';

/** Options of {@link InpaintTrainer}. */
export interface InpaintTrainOptions {
  readonly config: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Experiment folder (default `experiments/<config file name>`). */
  readonly root?: string;
  /** Iterations to train (default `max_epochs` × `limit_train_batches`). */
  readonly iterations?: number;
  readonly autoResume?: boolean;
  /** Generator start weights (stage 1 default: fresh; stage 2 default: `generatorS2_path`). */
  readonly weights?: string;
  /** Stage 2 teacher (default `generatorS1_path`). */
  readonly teacher?: string;
  /** Discriminator start state (default: fresh). */
  readonly discriminator?: string;
  readonly seed?: number;
  readonly logEvery?: number;
  readonly checkpointEvery?: number;
  readonly valEvery?: number;
  /** Validation images used (default 8). */
  readonly valImages?: number;
  readonly workers?: number;
  readonly threads?: number;
  readonly signal?: AbortSignal;
  /** Progress lines (default console.log; null: quiet). */
  readonly log?: ((line: string) => void) | null;
}

/** What a run returns. */
export interface InpaintTrainResult {
  readonly iter: number;
  readonly interrupted: boolean;
  readonly root: string;
  readonly history: readonly { readonly iter: number; readonly losses: Readonly<Record<string, number>> }[];
  readonly validations: readonly { readonly iter: number; readonly psnr: number; readonly ssim: number }[];
}

/** A configuration error the CLI reports as one line. */
export class InpaintTrainError extends Error {}

function copy(t: HostTensor): HostTensor {
  return { ...t, data: t.data.slice() } as HostTensor;
}

/** An inpainting training run. */
export class InpaintTrainer {
  private it!: InpaintIteration;
  private prefetcher: Prefetcher | null = null;
  private noiseRng = new Rng(0);
  private iter = 0;
  private best: Record<string, { value: number; iter: number }> = {};
  private samples: { dataset: string; iter: number; samples: Sample[] }[] = [];
  private readonly dirs: ExperimentDirs;
  private readonly jsonl: JsonlLog;
  private readonly say: (l: string) => void;
  private readonly session: SessionOptions;
  readonly total: number;
  readonly seed: number;

  private constructor(
    readonly cfg: LamaConfig,
    readonly o: InpaintTrainOptions,
  ) {
    this.dirs = experimentDirs(o.root ?? join('experiments', basename(o.config).replace(/\.ya?ml$/, '')));
    this.jsonl = new JsonlLog(join(this.dirs.root, 'train_log.jsonl'));
    this.say = o.log === null ? () => {} : (o.log ?? ((l) => console.log(l)));
    this.session = o.threads ? { threads: o.threads } : {};
    this.total = o.iterations ?? cfg.maxEpochs * (cfg.limitTrainBatches ?? 1000);
    this.seed = o.seed ?? 0;
  }

  /** Reads the config and sets up weights (fresh, given or resumed) and data. */
  static async create(o: InpaintTrainOptions): Promise<InpaintTrainer> {
    const t = new InpaintTrainer(readLamaConfig(o.config, o.env), o);
    await t.setup();
    return t;
  }

  private async setup(): Promise<void> {
    const { cfg, o } = this;
    const statePath = o.autoResume ? latestTrainingState(this.dirs)?.path ?? null : null;
    if (!statePath && existsSync(this.dirs.root) && readdirSync(this.dirs.root).length > 0) {
      throw new InpaintTrainError(`${this.dirs.root} already holds an experiment; pass --auto_resume to continue it, or choose another folder`);
    }
    const encPath = findResnetPlWeights(cfg);
    const spec = inpaintSpec(cfg, cfg.data.batchSize, cfg.data.outSize, cfg.data.outSize);
    // Weights: generator, teacher, discriminator.
    const graph = cfg.stage === 1 ? DiffIRS1(cfg.generator) : DiffIRS2(cfg.generator);
    let gen: TensorMap = initParams(graph, this.seed);
    const gPath = o.weights ?? (cfg.stage === 2 ? cfg.generatorS2Path : null);
    if (gPath) {
      // As the official loader with strict=False: every parameter the file has replaces the fresh one.
      const sd = loadStateDict(gPath);
      const shapes = expectedParamShapes(cfg.generator, cfg.stage);
      let n = 0;
      gen = new Map([...gen].map(([k, v]) => {
        const t = sd.get(k);
        if (t && t.dtype === 'float32' && t.data.length === v.data.length && t.shape.length === shapes.get(k)!.length) {
          n++;
          return [k, t];
        }
        return [k, v];
      }));
      if (n === 0) throw new InpaintTrainError(`${gPath}: none of the generator's parameters are in this file`);
    }
    let teacher: TensorMap | undefined;
    if (cfg.stage === 2) {
      const tPath = o.teacher ?? cfg.generatorS1Path;
      if (!tPath) throw new InpaintTrainError(`${o.config}: stage 2 needs the stage-1 checkpoint (training_model.generatorS1_path or --teacher)`);
      teacher = new Map([...selectWeights(loadStateDict(tPath), cfg.teacher!, 1, tPath)].filter(([k]) => k.startsWith('E.')));
    }
    let disc: TensorMap = o.discriminator ? loadStateDict(o.discriminator) : initDiscriminator(cfg.discriminator, this.seed + 1);
    const state = statePath ? loadTrainingState(statePath) : null;
    if (state) {
      const tag = state.iter;
      gen = selectWeights(loadStateDict(join(this.dirs.models, `net_g_${tag}.pth`)), cfg.generator, cfg.stage, `net_g_${tag}.pth`);
      const d = state.networks?.discriminator;
      if (!d) throw new InpaintTrainError(`${statePath}: no discriminator in this training state`);
      disc = new Map(d);
    }
    this.it = await InpaintIteration.create(spec, { generator: gen, discriminator: disc, ...(teacher ? { teacher } : {}), ...(encPath ? { encoder: loadStateDict(encPath) } : {}) }, this.session);
    // Only now that everything loaded: a failed start leaves no half-made experiment behind.
    makeExperimentDirs(this.dirs);
    if (state) {
      const g = state.optimizers.g;
      const d = state.optimizers.d;
      if (!g || !d) throw new InpaintTrainError(`${statePath}: the optimizers' state is missing`);
      this.it.gAdam.setState(g);
      this.it.dAdam.setState(d);
      this.iter = state.iter;
      this.best = { ...state.best };
      this.noiseRng = new Rng(Uint32Array.from(state.noiseRng));
      this.jsonl.truncateAfter(this.iter);
      this.jsonl.write({ event: 'resume', iter: this.iter, time: new Date().toISOString(), name: basename(this.dirs.root), options: o.config, stage: cfg.stage, total_iter: this.total, params: this.it.gLayout.total });
      this.say(`resumed from ${statePath} at iteration ${this.iter}`);
    } else {
      this.noiseRng = deriveRng(this.seed, 7);
      writeFileAtomicSync(join(this.dirs.root, 'config.yaml'), [new TextEncoder().encode(stringify(cfg.composed))]);
      this.jsonl.write({ event: 'start', iter: 0, time: new Date().toISOString(), name: basename(this.dirs.root), options: o.config, stage: cfg.stage, total_iter: this.total, params: this.it.gLayout.total });
    }
    const distort = cfg.data.transformVariant !== 'no_augs';
    this.prefetcher = await Prefetcher.open({
      dataset: {
        kind: 'inpainting',
        options: { root: cfg.data.trainDir, size: cfg.data.outSize, masks: cfg.data.masks, hflip: distort, ...(distort ? { scaleRange: [0.7, 1.3] as const } : {}) },
      },
      seed: this.seed,
      batchSize: cfg.data.batchSize,
      workers: o.workers ?? 1,
      start: this.iter,
    });
  }

  private batchesPerEpoch(): number {
    const n = Math.ceil(this.prefetcher!.size / this.cfg.data.batchSize);
    return this.cfg.limitTrainBatches ? Math.min(n, this.cfg.limitTrainBatches) : n;
  }

  /** Trains until `total` iterations or the abort signal. */
  async run(): Promise<InpaintTrainResult> {
    const { cfg, o } = this;
    const history: { iter: number; losses: Record<string, number> }[] = [];
    const validations: { iter: number; psnr: number; ssim: number }[] = [];
    const logEvery = o.logEvery ?? 50;
    const ckEvery = o.checkpointEvery ?? 1000;
    const valEvery = o.valEvery ?? 1000;
    let window: Record<string, number> = {};
    let windowN = 0;
    let t0 = performance.now();
    let interrupted = false;
    while (this.iter < this.total) {
      if (o.signal?.aborted) {
        interrupted = true;
        break;
      }
      const batch: Batch = await this.prefetcher!.next();
      const iter = this.iter + 1;
      const batchIdx = (iter - 1) % this.batchesPerEpoch();
      const B = batch.gt.shape[0]!;
      const eps = () => f32([B, IPR_DIM], gaussians(this.noiseRng, B * IPR_DIM));
      const vis = cfg.storeDiscrOutputsForVis && batchIdx % cfg.visualizeEachIters === 0;
      const r = await this.it.run({ image: batch.gt, mask: batch.mask!, ...(cfg.stage === 2 ? { gEps: eps(), dEps: eps() } : {}) }, false, vis);
      this.iter = iter;
      history.push({ iter, losses: r.losses });
      for (const [k, v] of Object.entries(r.losses)) window[k] = (window[k] ?? 0) + v;
      windowN++;
      if (iter % logEvery === 0 || iter === this.total) {
        const sec = (performance.now() - t0) / 1000 / windowN;
        const losses = Object.fromEntries(Object.entries(window).map(([k, v]) => [k, v / windowN]));
        this.jsonl.write({ event: 'train', iter, epoch: Math.floor((iter - 1) / this.batchesPerEpoch()), phase: `stage ${cfg.stage}`, lr: cfg.lrG, losses, sec_per_iter: sec, eta_s: sec * (this.total - iter), grad_norm: r.gGradNorm });
        this.say(`[iter ${iter}/${this.total}] ${sec.toFixed(2)} s/iter  ${Object.entries(losses).map(([k, v]) => `${k} ${v.toPrecision(4)}`).join('  ')}`);
        window = {};
        windowN = 0;
        t0 = performance.now();
      }
      if (cfg.data.valDir && (iter % valEvery === 0 || iter === this.total)) validations.push({ iter, ...(await this.validate(iter)) });
      if (iter % ckEvery === 0 || iter === this.total) this.checkpoint(iter);
      if (o.signal?.aborted) {
        interrupted = true;
        break;
      }
    }
    if (interrupted) {
      this.checkpoint(this.iter);
      this.jsonl.write({ event: 'interrupted', iter: this.iter, time: new Date().toISOString() });
    } else this.jsonl.write({ event: 'end', iter: this.iter, time: new Date().toISOString() });
    await this.report(interrupted ? `stopped at iteration ${this.iter} of ${this.total}` : `finished (${this.iter} iterations)`);
    return { iter: this.iter, interrupted, root: this.dirs.root, history, validations };
  }

  /** PSNR/SSIM of the inpainted result (prediction in the hole, the image elsewhere) on the validation set. */
  private async validate(iter: number): Promise<{ psnr: number; ssim: number }> {
    const cfg = this.cfg;
    const ds = await InpaintingDataset.open({ root: cfg.data.valDir!, size: cfg.data.outSize, masks: 'thick256', hflip: false });
    const n = Math.min(ds.size, this.o.valImages ?? 8);
    const w = this.it.generatorWeights();
    const g = cfg.stage === 1 ? DiffIRS1(cfg.generator) : DiffIRS2(cfg.generator);
    const session = await compile(g, { params: 'initializers', weights: w }, this.session);
    let psnr = 0;
    let ssim = 0;
    const samples: Sample[] = [];
    try {
      for (let i = 0; i < n; i++) {
        // Fixed masks and crops per image, the same at every validation.
        const s = await ds.sample(i, deriveRng(1234, i));
        const x = f32([1, 4, s.gt.shape[2]!, s.gt.shape[3]!], new Float32Array([...s.lq.data, ...s.mask!.data]));
        const feeds: Record<string, HostTensor> = { input: x };
        if (cfg.stage === 1) feeds.gt = s.gt;
        else feeds.x_T = f32([1, IPR_DIM], gaussians(deriveRng(4321, i), IPR_DIM));
        const out = (await session.run(feeds)).out! as HostTensor<'float32'>;
        const hw = s.gt.data.length / 3;
        const inpainted = f32(s.gt.shape, Float32Array.from(s.gt.data, (v, j) => {
          const m = s.mask!.data[j % hw]!;
          return m * Math.min(1, Math.max(0, out.data[j]!)) + (1 - m) * v;
        }));
        psnr += measure(inpainted, s.gt, { type: 'psnr' }) / n;
        ssim += measure(inpainted, s.gt, { type: 'ssim' }) / n;
        const planar = (t: HostTensor<'float32'>) => ({ data: t.data, height: t.shape[2]!, width: t.shape[3]! });
        if (samples.length < 4) samples.push({ name: s.name, lq: planar(s.lq), out: planar(inpainted), gt: planar(s.gt) });
      }
    } finally {
      await session.release();
    }
    const metrics = { psnr, ssim };
    for (const [k, v] of Object.entries(metrics)) if (!this.best[`val/${k}`] || v > this.best[`val/${k}`]!.value) this.best[`val/${k}`] = { value: v, iter };
    this.jsonl.write({ event: 'val', iter, dataset: 'val', metrics, best: this.best });
    this.samples = [{ dataset: 'val', iter, samples }];
    this.say(`[val ${iter}] PSNR ${psnr.toFixed(2)} dB  SSIM ${ssim.toFixed(4)} (inpainted, ${n} images)`);
    return metrics;
  }

  private checkpoint(iter: number): void {
    const cfg = this.cfg;
    const w = this.it.generatorWeights();
    const files: string[] = [];
    const flat = join(this.dirs.models, `G_${iter}.pth`);
    writePth(flat, officialStateDict(w, cfg.generator, cfg.stage));
    files.push(flat, saveNetwork(this.dirs, iter, cfg.generator, cfg.stage, w, null));
    const copyState = (s: { step: number; m: Float32Array; v: Float32Array }) => ({ step: s.step, m: s.m.slice(), v: s.v.slice() });
    files.push(
      saveTrainingState(this.dirs, {
        iter,
        epoch: Math.floor(iter / this.batchesPerEpoch()),
        seed: this.seed,
        optimizers: { g: copyState(this.it.gAdam.getState()), d: copyState(this.it.dAdam.getState()) },
        loader: { epoch: 0, pos: iter, rng: [0, 0, 0, 0] },
        noiseRng: [...this.noiseRng.state()],
        best: this.best,
        networks: { discriminator: new Map([...this.it.discriminatorState()].map(([k, v]) => [k, copy(v)])) },
      }),
    );
    this.jsonl.write({ event: 'checkpoint', iter, files });
  }

  private async report(status: string): Promise<void> {
    await writeReport(join(this.dirs.root, 'report.html'), this.jsonl.read(), {
      name: basename(this.dirs.root),
      options: this.o.config,
      model: `inpainting stage ${this.cfg.stage}: DiffIR dim ${this.cfg.generator.dim}, NLayerDiscriminator ndf ${this.cfg.discriminator.ndf}`,
      status,
      samples: this.samples,
    });
  }

  /** Frees sessions and workers. */
  async release(): Promise<void> {
    await this.prefetcher?.close();
    await this.it?.release();
  }
}

