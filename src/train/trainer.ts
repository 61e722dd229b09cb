/**
 * The training loop of both DiffIR stages, following BasicSR's train pipeline and the official
 * DiffIRS1Model / DiffIRS2Model:
 *
 * - Stage 1: CPEN_S1 + DIRformer on the pixel loss, one Adam over everything.
 * - Stage 2: DIRformer from the stage-1 checkpoint (`G.*`), CPEN_S2 and the denoiser fresh,
 *   the stage-1 CPEN frozen as teacher (computed inside the training graph). Iterations
 *   `< encoder_iter` (phase A) train CPEN_S2 + denoiser alone on the KD L1 loss with their own
 *   Adam (`optimizer_e`); later ones (phase B) train everything on pixel + KD with a fresh Adam
 *   (`optimizer_g`). Learning rates follow the official manual per-phase rules (or the
 *   scheduler with `train.lr_rule: scheduler`, as DiffIR-SRGAN does).
 * - `num_gpu: N` runs N micro-batches per iteration and averages their gradients, as
 *   DistributedDataParallel does — in both phases (the official phase A bypasses DDP and so
 *   never averages; here gradients are always reduced).
 * - EMA of all weights after every step; checkpoints `net_g_<iter>.pth` (params, params_ema)
 *   and `<iter>.state`; validation with best-result tracking; JSONL log and report.html.
 *
 * - GAN stage (DiffIRGANS2Model): net_g from the stage-2 checkpoint, UNetDiscriminatorSN (fresh or
 *   `pretrain_network_d`), each iteration the generator step (when `iter % net_d_iters == 0 and
 *   iter > net_d_init_iters`) then the D step, one Adam each (`optim_g` at the official G rule
 *   lr_sr·gamma_sr^(iter // lr_decay_sr), `optim_d` on `train.scheduler`), EMA of net_g;
 *   checkpoints add `net_d_<iter>.pth` (params with the spectral-norm buffers).
 *
 * A run is reproducible from its seed and resumable bit for bit: the weights come back from the
 * `.pth`, everything else (Adam moments, iteration, loader position and RNG, noise RNG) from the
 * `.state`. With a training-pair pool (RealESRGANDataset's `queue_size`), the `.state` holds the
 * plans of the batches whose pairs are in the pool, and the resumed run degrades those batches
 * again — the same pairs, bit for bit. An AbortSignal stops the run after the current step with
 * a checkpoint.
 */
import { existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { type DiffIRConfig, describeConfig, type Stage } from '../models/config.js';
import { DiffIRS1, DiffIRS2 } from '../models/diffir.js';
import { expectedParamShapes, isIgnoredCheckpointKey, selectWeights } from '../models/params.js';
import { initParams } from '../nn/init.js';
import { IPR_DIM } from '../nn/ipr.js';
import { Rng } from '../random.js';
import type { SessionOptions } from '../runtime/session.js';
import { f32, type HostTensor, type TensorMap } from '../tensor.js';
import { writeFileAtomicSync as writeFileAtomic } from '../fs/atomic.js';
import { Adam } from './adam.js';
import {
  type ExperimentDirs,
  experimentDirs,
  latestTrainingState,
  loadNetworkStateDict,
  loadPretrainedInto,
  loadTrainingState,
  makeExperimentDirs,
  type OptimizerState,
  saveDiscriminator,
  saveNetwork,
  saveTrainingState,
  type TrainingState,
} from './checkpoint.js';
import { type Batch, type BatchPlan, gaussians, openTrainDataset, TrainLoader } from './data.js';
import './realesrgan-data.js'; // registers datasets.train.type: RealESRGANDataset
import { Ema } from './ema.js';
import { buildObjective, type LossKind, officialOrder } from './objective.js';
import type { TrainPlan } from './options.js';
import { ParamLayout } from './params.js';
import { JsonlLog, writeReport, type LogRecord } from './report.js';
import { encoderLr, ganLr, jointLr, progressiveStage, scheduledLr } from './schedule.js';
import { GanIteration, type SpectralBuffers } from './gan.js';
import { discriminatorStateDict, ganSpec, initDiscriminator, loadDiscriminator, loadPerceptualVgg } from './gan-setup.js';
import { discriminatorParamShapes } from '../models/discriminator.js';
import { usmSharp } from '../data/degrade/runtime.js';
import { TrainStep } from './step.js';
import { type ValResult, Validator } from './validate.js';

/** Options of a training run besides the plan. */
export interface TrainerOptions {
  /** Continue from the latest `training_states/<iter>.state` of the experiment (BasicSR --auto_resume). */
  readonly autoResume?: boolean;
  /** ONNX Runtime threads (default: all cores). */
  readonly threads?: number;
  /** Stops the run after the current step (state saved). */
  readonly signal?: AbortSignal;
  /** Progress lines (default: console.log); null for silence. */
  readonly log?: ((line: string) => void) | null;
  /** Stop after this iteration as if interrupted (for tests and benchmarks). */
  readonly stopAfter?: number;
  /** Write report.html (default true). */
  readonly report?: boolean;
  /** Keep every iteration's losses in the result (default false: long runs would hoard them). */
  readonly history?: boolean;
  /**
   * Run ONNX Runtime without its memory arena: well under the default peak memory at full
   * size, for a slower step (default false).
   */
  readonly lowMemory?: boolean;
}

/** What a run did. */
export interface TrainResult {
  /** Last iteration completed. */
  readonly iter: number;
  readonly interrupted: boolean;
  readonly experimentsRoot: string;
  /** With the `history` option: the losses of each iteration run in this process (mean over micro-batches). */
  readonly history: readonly { readonly iter: number; readonly losses: Readonly<Record<string, number>> }[];
  /** Final weights (params) and EMA weights by official name (views of the trainer's buffers; no longer updated once `run` returns). */
  readonly params: TensorMap;
  readonly ema: TensorMap | null;
  readonly validations: readonly (ValResult & { iter: number })[];
}

function graphFor(cfg: DiffIRConfig, stage: Stage) {
  return stage === 1 ? DiffIRS1(cfg) : DiffIRS2(cfg);
}

function secondsToText(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  const hms = `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
  return d > 0 ? `${d}d ${hms}` : hms;
}

/** A training run set up from a plan. */
export class Trainer {
  private params!: Float32Array;
  private ema: Ema | null = null;
  private optimizers: Partial<Record<'g' | 'e' | 'd', Adam>> = {};
  /** The GAN stage's discriminator (flat weights, spectral-norm buffers) and compiled iteration. */
  private gan: { layout: ParamLayout; weights: Float32Array; sn: SpectralBuffers; frozen: TensorMap; it: GanIteration | null; key: string; gGrads: Float32Array | null; dGrads: Float32Array | null } | null = null;
  private steps = new Map<string, TrainStep>();
  private teacher: TensorMap = new Map();
  private noiseRng!: Rng;
  private loader!: TrainLoader;
  private validator: Validator | null = null;
  private iter = 0;
  private best: Record<string, { value: number; iter: number }> = {};
  private grads: Float32Array | null = null;
  private acc: Float32Array | null = null;
  private readonly jsonl: JsonlLog;
  private readonly dirs: ExperimentDirs;
  private readonly layout: ParamLayout;
  private readonly session: SessionOptions;
  private readonly say: (line: string) => void;
  private lastSamples: { dataset: string; iter: number; samples: ValResult['samples'] }[] = [];
  private validations: (ValResult & { iter: number })[] = [];

  private constructor(
    readonly plan: TrainPlan,
    readonly o: TrainerOptions,
  ) {
    this.dirs = experimentDirs(plan.experimentsRoot);
    this.jsonl = new JsonlLog(join(this.dirs.root, 'train_log.jsonl'));
    const shapes = expectedParamShapes(plan.config, plan.stage);
    this.layout = new ParamLayout(officialOrder(shapes.keys()).map((k) => [k, shapes.get(k)!]));
    this.session = { ...(o.threads ? { threads: o.threads } : {}), ...(o.lowMemory ? { memoryArena: false } : {}) };
    this.say = o.log === null ? () => {} : (o.log ?? ((l) => console.log(l)));
  }

  /** Sets up a run: folders, weights (fresh, pretrained or resumed), teacher, data. */
  static async create(plan: TrainPlan, o: TrainerOptions = {}): Promise<Trainer> {
    const t = new Trainer(plan, o);
    await t.setup();
    return t;
  }

  private async setup(): Promise<void> {
    const p = this.plan;
    let state: TrainingState | null = null;
    let statePath: string | null = null;
    if (this.o.autoResume) statePath = latestTrainingState(this.dirs)?.path ?? null;
    else if (p.resumeState) statePath = p.resumeState;
    if (statePath) state = loadTrainingState(statePath);
    else if (existsSync(this.dirs.root) && readdirSync(this.dirs.root).length > 0) {
      // BasicSR's mkdir_and_rename: keep the previous run aside instead of mixing the two.
      const archived = `${this.dirs.root}_archived_${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 15)}`;
      renameSync(this.dirs.root, archived);
      this.say(`experiment folder exists; moved it to ${archived}`);
    }
    makeExperimentDirs(this.dirs);
    const optCopy = join(this.dirs.root, basename(p.file));
    if (existsSync(p.file) && resolve(p.file) !== optCopy) writeFileAtomic(optCopy, [readFileSync(p.file)]);

    const cfg = p.config;
    const seed = state?.seed ?? p.seed;
    const shapes = expectedParamShapes(cfg, p.stage);

    if (state) {
      const file = join(this.dirs.models, `net_g_${state.iter}.pth`);
      if (!existsSync(file)) throw new Error(`${file}: missing; it holds the weights of training state ${statePath}`);
      this.params = this.layout.pack(selectWeights(loadNetworkStateDict(file, 'params'), cfg, p.stage, file));
      if (p.emaDecay > 0) this.ema = await Ema.create(this.layout.pack(selectWeights(loadNetworkStateDict(file, 'params_ema'), cfg, p.stage, file)), p.emaDecay, this.session);
    } else {
      const init = initParams(graphFor(cfg, p.stage), seed);
      if (p.pretrainG) this.loadPretrained(init, p.pretrainG, p.paramKeyG, p.strictLoadG, shapes, 'path.pretrain_network_g');
      this.params = this.layout.pack(init);
      if (p.emaDecay > 0) {
        let emaInit = this.params;
        if (p.pretrainG) {
          // BasicSR builds net_g_ema afresh and loads pretrain_network_g's params_ema into it.
          const e = initParams(graphFor(cfg, p.stage), seed + 1);
          this.loadPretrained(e, p.pretrainG, 'params_ema', p.strictLoadG, shapes, 'path.pretrain_network_g');
          emaInit = this.layout.pack(e);
        }
        this.ema = await Ema.create(emaInit, p.emaDecay, this.session);
      }
    }
    if (p.stage === 2) {
      const tcfg = p.teacherConfig!;
      const sd = loadNetworkStateDict(p.pretrainS1!, p.paramKeyG);
      const w = selectWeights(sd, tcfg, 1, p.pretrainS1!);
      this.teacher = new Map([...w].filter(([k]) => k.startsWith('E.')));
    }
    if (p.gan) {
      const layout = new ParamLayout(discriminatorParamShapes(p.gan.disc));
      let d;
      if (state) {
        const file = join(this.dirs.models, `net_d_${state.iter}.pth`);
        if (!existsSync(file)) throw new Error(`${file}: missing; it holds the discriminator of training state ${statePath}`);
        d = loadDiscriminator(p, file, undefined, true);
      } else {
        d = initDiscriminator(p.gan.disc, seed + 2);
        if (p.gan.pretrainD) d = loadDiscriminator(p, p.gan.pretrainD, discriminatorStateDict(p.gan.disc, d.weights, d.sn));
      }
      const frozen = new Map([...this.teacher, ...loadPerceptualVgg(p, p.gan.cwd)]);
      this.gan = { layout, weights: layout.pack(d.weights), sn: d.sn, frozen, it: null, key: '', gGrads: null, dGrads: null };
    }

    this.noiseRng = state ? new Rng(Uint32Array.from(state.noiseRng)) : new Rng((seed ^ 0x2545f491) >>> 0);
    this.loader = new TrainLoader(openTrainDataset(p.train), p.train, { seed, worldSize: p.worldSize, mixup: p.mixup });
    if (state) {
      this.loader.setState({ ...state.loader, rng: [...state.loader.rng] });
      if (this.loader.pooled) {
        if (!state.pool) throw new Error(`${statePath}: training state has no training-pair pool, which ${p.train.key}.type ${p.train.type} needs to resume`);
        const t0 = performance.now();
        await this.loader.restorePools(state.pool);
        this.say(`training-pair pool rebuilt from ${state.pool.batches.length} batch plan(s) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      }
      for (const [k, s] of Object.entries(state.optimizers)) await this.restoreOptimizer(k as 'g' | 'e' | 'd', s);
      this.best = { ...state.best };
      this.iter = state.iter;
    }
    if (p.val.length && p.valFreq !== null && p.metrics.length) {
      this.validator = new Validator(cfg, p.stage, p.val, p.metrics, { windowSize: p.windowSize, session: this.session, saveImg: p.saveImg ? this.dirs.visualization : null });
    }
    if (state) this.jsonl.truncateAfter(state.iter);
    this.record({
      event: state ? 'resume' : 'start',
      iter: this.iter,
      time: new Date().toISOString(),
      name: p.name,
      options: resolve(p.file),
      stage: p.stage,
      total_iter: p.totalIter,
      params: this.layout.total,
    });
    this.say(`${state ? `resuming ${p.name} from iteration ${state.iter}` : `training ${p.name}`}: ${p.modelType}, ${describeConfig(cfg)}, ${this.layout.total.toLocaleString('en')} parameters, ${p.totalIter} iterations`);
    for (const n of p.notices) this.say(`note: ${n}`);
  }

  /** Copies a pretrained checkpoint's weights into `into` (strict, or the matching keys). */
  private loadPretrained(into: TensorMap, file: string, key: string, strict: boolean, shapes: ReadonlyMap<string, readonly number[]>, optKey: string): void {
    const r = loadPretrainedInto(into, file, key, shapes, { strict, optKey, strictKey: 'strict_load_g', ignore: isIgnoredCheckpointKey });
    if (!strict && r.mismatched) this.say(`note: ${r.mismatched} key(s) of ${basename(file)} have other shapes and were not loaded`);
  }

  private async optimizer(which: 'g' | 'e' | 'd', length: number): Promise<Adam> {
    let a = this.optimizers[which];
    if (!a) {
      const o = which === 'd' ? this.plan.gan!.optimD : this.plan.optim;
      a = await Adam.create(
        length,
        { lr: o.lr, betas: o.betas, eps: o.eps, weightDecay: o.weightDecay, decoupled: o.type === 'AdamW', gradScale: this.plan.worldSize > 1 || this.plan.gradClip !== null },
        this.session,
      );
      this.optimizers[which] = a;
    }
    return a;
  }

  private async restoreOptimizer(which: 'g' | 'e' | 'd', s: OptimizerState): Promise<void> {
    const a = await this.optimizer(which, s.m.length);
    a.setState({ step: s.step, m: s.m, v: s.v });
  }

  private record(r: LogRecord): void {
    this.jsonl.write(r);
  }

  /** The loss of iteration `iter`. */
  private phaseOf(iter: number): LossKind {
    if (this.plan.stage === 1) return 's1';
    if (this.plan.gan) return 's2joint';
    return iter < this.plan.manual!.encoderIter ? 's2enc' : 's2joint';
  }

  /** Learning rate of iteration `iter` for its phase. */
  lrAt(iter: number): number {
    const p = this.plan;
    const phase = this.phaseOf(iter);
    if (p.gan && p.lrRule === 'manual') return ganLr(p.manual!, iter);
    if (p.stage === 2 && p.lrRule === 'manual') return phase === 's2enc' ? encoderLr(p.manual!, iter) : jointLr(p.manual!, iter);
    return scheduledLr(p.scheduler, p.optim.lr, iter, p.warmupIter);
  }

  private async stepFor(kind: LossKind, batch: Batch): Promise<TrainStep> {
    const [b, , h, w] = batch.lq.shape as [number, number, number, number];
    const key = `${kind}:${b}x${h}x${w}`;
    let step = this.steps.get(key);
    if (!step) {
      for (const s of this.steps.values()) await s.release();
      this.steps.clear();
      const p = this.plan;
      const obj = buildObjective({
        kind,
        config: p.config,
        batch: b,
        height: h,
        width: w,
        pixel: p.pixel,
        ...(p.kd ? { kd: p.kd } : {}),
        ...(p.stage === 2 ? { teacher: p.teacherConfig! } : {}),
      });
      step = await TrainStep.create(obj.graph, obj.loss, { trainable: obj.trainable, frozen: this.teacher, logs: obj.logs, session: this.session });
      // The step's trainable parameters must be one contiguous run of the model layout.
      const first = this.layout.slot(step.layout.slots[0]!.name).offset;
      for (const s of step.layout.slots) {
        if (this.layout.slot(s.name).offset !== first + s.offset) throw new Error(`internal: parameters of the ${kind} step are not contiguous in the model layout`);
      }
      this.steps.set(key, step);
    }
    return step;
  }

  /** Runs until `total_iter` (or an interrupt). */
  async run(): Promise<TrainResult> {
    const p = this.plan;
    const history: { iter: number; losses: Record<string, number> }[] = [];
    let window: { n: number; sums: Record<string, number>; counts: Record<string, number>; time: number; gradNorm: number } = { n: 0, sums: {}, counts: {}, time: 0, gradNorm: 0 };
    let pending: { plan: BatchPlan; data: Promise<Batch[]> } | null = null;
    const prefetch = (iter: number) => {
      const plan = this.loader.plan(iter);
      const data = this.loader.load(plan);
      data.catch(() => undefined);
      return { plan, data };
    };
    let interrupted = false;
    let lastPhase = this.iter > 0 ? this.phaseOf(this.iter) : null;
    let lastStage = p.train.progressive ? progressiveStage(p.train.progressive, this.iter + 1).stage : 0;
    const startIter = this.iter;
    const tStart = performance.now();
    try {
      while (this.iter < p.totalIter) {
        const iter = this.iter + 1;
        const kind = this.phaseOf(iter);
        if (kind !== lastPhase) {
          if (!p.gan && (lastPhase !== null || kind !== 's1')) {
            const detail = kind === 's2enc' ? `phase A: CPEN_S2 + denoiser on the KD loss until iteration ${p.manual!.encoderIter - 1}` : kind === 's2joint' ? 'phase B: all weights on pixel + KD loss' : 'stage 1';
            this.record({ event: 'phase', iter, phase: kind, detail });
            this.say(detail);
          }
          lastPhase = kind;
        }
        if (p.train.progressive) {
          const st = progressiveStage(p.train.progressive, iter);
          if (st.stage !== lastStage || iter === startIter + 1) {
            this.say(`patch size ${st.gtSize}, batch size ${st.batch * p.worldSize} from iteration ${iter}`);
            lastStage = st.stage;
          }
        }
        const t0 = performance.now();
        const cur = pending ?? prefetch(iter);
        const batches = this.loader.take(cur.plan, await cur.data);
        pending = iter < p.totalIter ? prefetch(iter + 1) : null;
        const res = p.gan ? await this.ganStep(iter, batches[0]!) : await this.trainStep(iter, kind, batches);
        const dt = (performance.now() - t0) / 1000;
        this.iter = iter;
        if (this.o.history) history.push({ iter, losses: res.logs });
        window.n++;
        window.time += dt;
        window.gradNorm += res.gradNorm;
        for (const [k, v] of Object.entries(res.logs)) {
          window.sums[k] = (window.sums[k] ?? 0) + v;
          window.counts[k] = (window.counts[k] ?? 0) + 1;
        }

        if (iter % p.printFreq === 0 || iter === startIter + 1) {
          const losses = Object.fromEntries(Object.entries(window.sums).map(([k, v]) => [k, v / window.counts[k]!]));
          const spi = window.time / window.n;
          const eta = spi * (p.totalIter - iter);
          this.record({ event: 'train', iter, epoch: this.loader.epoch, phase: kind, lr: res.lr, losses, sec_per_iter: spi, eta_s: eta, grad_norm: window.gradNorm / window.n });
          this.say(
            `[${p.name}][epoch ${this.loader.epoch}, iter ${iter}/${p.totalIter}, lr ${res.lr.toExponential(3)}] [${spi.toFixed(3)} s/it, ${(1 / spi).toFixed(2)} it/s, eta ${secondsToText(eta)}] ` +
              Object.entries(losses).map(([k, v]) => `${k}: ${v.toExponential(4)}`).join(' '),
          );
          window = { n: 0, sums: {}, counts: {}, time: 0, gradNorm: 0 };
        }
        const stop = this.o.signal?.aborted === true || (this.o.stopAfter !== undefined && iter >= this.o.stopAfter);
        if (this.validator && p.valFreq !== null && iter % p.valFreq === 0) await this.validate(iter);
        if (iter % p.checkpointFreq === 0 || stop) this.checkpoint(iter, pending?.plan.before ?? this.loader.state());
        if (stop) {
          interrupted = iter < p.totalIter;
          if (interrupted) {
            this.record({ event: 'interrupted', iter, time: new Date().toISOString() });
            this.say(`stopped after iteration ${iter}; continue with --auto_resume`);
          }
          break;
        }
      }
      if (!interrupted) {
        const files = [saveNetwork(this.dirs, 'latest', p.config, p.stage, this.weights(), this.emaWeights())];
        if (this.gan) files.push(saveDiscriminator(this.dirs, 'latest', this.discriminatorStateDict()));
        this.record({ event: 'checkpoint', iter: this.iter, files });
        if (this.validator && p.valFreq !== null && this.validations.at(-1)?.iter !== this.iter) await this.validate(this.iter);
        this.record({ event: 'end', iter: this.iter, time: new Date().toISOString() });
        const ran = this.iter - startIter;
        if (ran > 0) this.say(`done: ${ran} iterations in ${secondsToText((performance.now() - tStart) / 1000)}; weights in ${this.dirs.models}`);
      }
      if (this.o.report !== false) await this.writeReport(interrupted ? `stopped at iteration ${this.iter} of ${p.totalIter}` : `finished (${this.iter} iterations)`);
    } finally {
      if (pending) await pending.data.catch(() => undefined);
    }
    return {
      iter: this.iter,
      interrupted,
      experimentsRoot: this.dirs.root,
      history,
      params: this.weights(),
      ema: this.emaWeights(),
      validations: this.validations,
    };
  }

  /** One iteration: forward/backward over the micro-batches, gradient reduction and clipping, Adam, EMA. */
  private async trainStep(iter: number, kind: LossKind, batches: Batch[]): Promise<{ logs: Record<string, number>; gradNorm: number; lr: number }> {
    const p = this.plan;
    const step = await this.stepFor(kind, batches[0]!);
    const n = step.layout.total;
    const off = this.layout.slot(step.layout.slots[0]!.name).offset;
    if (!this.grads || this.grads.length !== n) {
      this.grads = new Float32Array(n);
      this.acc = p.worldSize > 1 ? new Float32Array(n) : null;
    }
    const grads = this.grads;
    const logs: Record<string, number> = {};
    const views = step.layout.views(this.params.subarray(off, off + n));
    let gradNorm = 0;
    for (const [r, b] of batches.entries()) {
      const feeds: Record<string, HostTensor> = { input: b.lq, gt: b.gt };
      if (p.stage === 2) feeds.eps = f32([b.lq.shape[0]!, IPR_DIM], gaussians(this.noiseRng, b.lq.shape[0]! * IPR_DIM));
      const res = await step.run(views, feeds, grads);
      for (const [k, v] of Object.entries(res.logs)) logs[k] = (logs[k] ?? 0) + v / batches.length;
      if (this.acc) {
        const acc = this.acc;
        if (r === 0) acc.set(grads);
        else for (let i = 0; i < n; i++) acc[i]! += grads[i]!;
      } else gradNorm = res.gradNorm;
    }
    const g = this.acc ?? grads;
    let scale = 1;
    if (this.acc) {
      scale = 1 / batches.length;
      let ss = 0;
      for (let i = 0; i < n; i++) ss += g[i]! * g[i]!;
      gradNorm = Math.sqrt(ss) * scale;
    }
    if (p.gradClip !== null) {
      // torch.nn.utils.clip_grad_norm_: g ← g · min(1, max_norm / (‖g‖ + 1e-6))
      scale *= Math.min(1, p.gradClip / (gradNorm + 1e-6));
    }
    const lr = this.lrAt(iter);
    // Adam updates in place, so the trained slice is updated inside the whole buffer. The
    // encoder phase's slice has its own optimizer, unless it is the whole buffer.
    const whole = off === 0 && n === this.layout.total;
    const adam = await this.optimizer(kind === 's2enc' && !whole ? 'e' : 'g', n);
    adam.lr = lr;
    await adam.update(this.params.subarray(off, off + n), g, scale);
    if (this.ema) await this.ema.update(this.params);
    return { logs, gradNorm, lr };
  }

  /**
   * One GAN-stage iteration: the generator step (when `iter % net_d_iters == 0 and iter >
   * net_d_init_iters`), the D step, Adam on each, EMA of net_g (every iteration, as the official code).
   */
  private async ganStep(iter: number, b: Batch): Promise<{ logs: Record<string, number>; gradNorm: number; lr: number }> {
    const p = this.plan;
    const gan = p.gan!;
    const s = this.gan!;
    const [bs, , h, w] = b.lq.shape as [number, number, number, number];
    const key = `${bs}x${h}x${w}`;
    if (!s.it || s.key !== key) {
      if (s.it) await s.it.release();
      s.it = null;
      s.it = await GanIteration.create(ganSpec(p), bs, h, w, s.frozen, this.session);
      s.key = key;
      const gl = s.it.generatorLayout;
      if (gl.total !== this.layout.total || gl.slots.some((x, i) => x.name !== this.layout.slots[i]!.name)) throw new Error('internal: the GAN generator step does not train net_g in its official order');
      s.gGrads = new Float32Array(gl.total);
      s.dGrads = new Float32Array(s.layout.total);
    }
    const eps = f32([bs, IPR_DIM], gaussians(this.noiseRng, bs * IPR_DIM));
    const usm = gan.usm;
    const gtUsm = usm.l1 || usm.percep || usm.gan ? await usmSharp(b.gt) : b.gt;
    const runG = iter % gan.netDIters === 0 && iter > gan.netDInitIters;
    const r = await s.it.run(this.weights(), s.layout.views(s.weights), s.sn, { lq: b.lq, gt: b.gt, gtUsm, eps }, s.gGrads!, s.dGrads!, { usm, generatorStep: runG });
    const lr = this.lrAt(iter);
    if (runG) {
      const a = await this.optimizer('g', this.layout.total);
      a.lr = lr;
      this.params = await a.update(this.params, s.gGrads!, 1);
    }
    const ad = await this.optimizer('d', s.layout.total);
    ad.lr = scheduledLr(p.scheduler, gan.optimD.lr, iter, p.warmupIter);
    s.weights = await ad.update(s.weights, s.dGrads!, 1);
    if (this.ema) await this.ema.update(this.params);
    return { logs: r.logs, gradNorm: r.gGradNorm, lr };
  }

  /** The discriminator's state dict (GAN stage): parameters and spectral-norm buffers. */
  private discriminatorStateDict(): TensorMap {
    const s = this.gan!;
    return discriminatorStateDict(this.plan.gan!.disc, s.layout.views(s.weights), s.sn);
  }

  /** Weights by official name (views of the live buffer). */
  weights(): TensorMap {
    return this.layout.views(this.params);
  }

  /** EMA weights by official name, or null without EMA. */
  emaWeights(): TensorMap | null {
    return this.ema ? this.layout.views(this.ema.weights) : null;
  }

  private checkpoint(iter: number, loaderState: ReturnType<TrainLoader['state']>): void {
    const p = this.plan;
    const files = [saveNetwork(this.dirs, iter, p.config, p.stage, this.weights(), this.emaWeights())];
    if (this.gan) files.push(saveDiscriminator(this.dirs, iter, this.discriminatorStateDict()));
    const optimizers: Record<string, OptimizerState> = {};
    for (const [k, a] of Object.entries(this.optimizers)) {
      const s = a.getState();
      optimizers[k] = { step: s.step, m: s.m, v: s.v };
    }
    const pool = this.loader.poolState();
    files.push(
      saveTrainingState(this.dirs, {
        iter,
        epoch: loaderState.epoch,
        seed: p.seed,
        optimizers,
        loader: loaderState,
        noiseRng: [...this.noiseRng.state()],
        best: this.best,
        ...(pool ? { pool } : {}),
      }),
    );
    this.record({ event: 'checkpoint', iter, files });
  }

  private async validate(iter: number): Promise<void> {
    const p = this.plan;
    const weights = this.emaWeights() ?? this.weights();
    const results = await this.validator!.run(weights, iter, p.seed);
    this.lastSamples = [];
    let improved = false;
    for (const r of results) {
      for (const m of p.metrics) {
        const key = `${r.dataset}/${m.name}`;
        const v = r.metrics[m.name]!;
        const b = this.best[key];
        const better = !b || (m.better === 'higher' ? v >= b.value : v <= b.value);
        if (better) {
          this.best[key] = { value: v, iter };
          if (r === results[0] && m === p.metrics[0]) improved = true;
        }
      }
      const best = Object.fromEntries(Object.entries(this.best).filter(([k]) => k.startsWith(`${r.dataset}/`)).map(([k, b]) => [k.slice(r.dataset.length + 1), b]));
      this.record({ event: 'val', iter, dataset: r.dataset, metrics: r.metrics, best });
      this.say(`validation ${r.dataset} @ ${iter}: ${Object.entries(r.metrics).map(([k, v]) => `${k} ${v.toFixed(4)} (best ${best[k]!.value.toFixed(4)} @ ${best[k]!.iter})`).join(', ')}`);
      this.lastSamples.push({ dataset: r.dataset, iter, samples: r.samples });
      this.validations.push({ ...r, iter });
    }
    if (improved) {
      const file = saveNetwork(this.dirs, 'best', p.config, p.stage, this.weights(), this.emaWeights());
      this.record({ event: 'checkpoint', iter, files: [file] });
    }
    if (this.o.report !== false) await this.writeReport(`running (iteration ${iter} of ${p.totalIter})`);
  }

  private async writeReport(status: string): Promise<void> {
    const p = this.plan;
    await writeReport(join(this.dirs.root, 'report.html'), this.jsonl.read(), {
      name: p.name,
      options: p.file,
      model: `${p.modelType}: ${describeConfig(p.config)} (${this.layout.total.toLocaleString('en')} parameters)`,
      status,
      samples: this.lastSamples,
    });
  }

  /** Frees the ORT sessions. */
  async release(): Promise<void> {
    for (const s of this.steps.values()) await s.release();
    this.steps.clear();
    if (this.gan?.it) await this.gan.it.release();
    if (this.gan) this.gan.it = null;
    for (const a of Object.values(this.optimizers)) await a.release();
    this.optimizers = {};
    if (this.ema) await this.ema.release();
    if (this.validator) await this.validator.release();
  }
}
