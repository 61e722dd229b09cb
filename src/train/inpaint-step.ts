/**
 * One iteration of DiffIR's LaMa-based inpainting trainers (`defaultS1.py` / `defaultS2.py`)
 * as PyTorch Lightning 1.2 runs automatic optimisation with two optimizers:
 *
 * 1. generator step: forward, losses (masked L1, [KD L1], adversarial, feature matching,
 *    ResNetPL), gradients of G, Lightning's norm clipping, Adam;
 * 2. discriminator step: a second forward with the UPDATED generator (stage 2: fresh q_sample
 *    noise), NonSaturatingWithR1 with the R1 penalty (a gradient of a gradient through D),
 *    clipping, Adam.
 *
 * Each step is one compiled graph and one ONNX Runtime run. D's BatchNorms run in training
 * mode: their running statistics are fed in, updated by each call (two per step) and fed to the
 * next step; `num_batches_tracked` counts the calls.
 */
import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { IPR_DIM } from '../nn/ipr.js';
import { BatchNormState } from '../nn/batchnorm.js';
import { cpenS1 } from '../models/cpen.js';
import type { DiffIRConfig } from '../models/config.js';
import { buildS1Forward, buildS2Forward } from '../models/diffir.js';
import { type NLayerDiscriminatorConfig, discriminatorBatchNorms, discriminatorParamShapes, nLayerDiscriminator } from '../models/nlayer-discriminator.js';
import { ade20kEncoderShapes } from '../models/ade20k-resnet.js';
import type { Session, SessionOptions } from '../runtime/session.js';
import { compile } from '../runtime/compile.js';
import { initParams } from '../nn/init.js';
import { f32, type HostTensor, type TensorMap } from '../tensor.js';
import { Adam } from './adam.js';
import { type KdLoss, kdLoss, officialOrder } from './objective.js';
import { ParamLayout } from './params.js';
import { TrainStep } from './step.js';
import {
  adversarialDiscriminatorLoss,
  adversarialGeneratorLoss,
  featureMatching,
  maskedL1,
  resizeMaskNearest,
  resnetPL,
} from './inpaint-losses.js';

/** Loss settings (`losses:` of the config). */
export interface InpaintLosses {
  readonly l1: { readonly weightKnown: number; readonly weightMissing: number };
  readonly adversarial: { readonly weight: number; readonly gpCoef: number; readonly maskAsFakeTarget: boolean; readonly allowScaleMask: boolean };
  /** `feature_matching.weight` (0: off). */
  readonly featureMatching: number;
  /** `resnet_pl.weight` (0: off). */
  readonly resnetPl: number;
  /** Stage 2: `kd.loss_weight`, `kd.temperature`. */
  readonly kd?: KdLoss;
}

/** What one iteration trains. */
export interface InpaintSpec {
  readonly stage: 1 | 2;
  /** The generator (DiffIRS1 for stage 1, DiffIRS2 for stage 2). */
  readonly generator: DiffIRConfig;
  /** Stage 2: the stage-1 teacher whose CPEN `E.*` gives IPR_S1. */
  readonly teacher?: DiffIRConfig;
  readonly discriminator: NLayerDiscriminatorConfig;
  readonly losses: InpaintLosses;
  readonly batch: number;
  readonly height: number;
  readonly width: number;
  /** Optimizers (`optimizers:`): Adam learning rates. */
  readonly lrG: number;
  readonly lrD: number;
  /** `trainer.kwargs.gradient_clip_val` (0 or null: no clipping). */
  readonly gradientClipVal: number | null;
}

/** One batch. `gEps` / `dEps` (B, 256): stage 2's q_sample noise of the G-step and D-step forwards. */
export interface InpaintBatch {
  readonly image: HostTensor<'float32'>;
  readonly mask: HostTensor<'float32'>;
  readonly gEps?: HostTensor<'float32'>;
  readonly dEps?: HostTensor<'float32'>;
}

/** Everything one iteration computes (gradients before clipping). */
export interface InpaintIterationResult {
  /** Loss terms: `loss_l1`, `loss_adv`, `loss_fm`, `loss_resnet_pl`, `loss_kd_l1`, `loss_kd_kl`, `g_loss_total`, `loss_d_real`, `loss_d_fake`, `loss_d_r1`, `d_loss_total`. */
  readonly losses: Record<string, number>;
  readonly gGradNorm: number;
  readonly dGradNorm: number;
  /** With `record`: `g_pred`, `d_pred`, `d_d_real`, `d_d_fake` (and stage 2 `g_ipr`, `teacher_ipr`), and the gradients by parameter name. */
  readonly tensors?: Record<string, HostTensor>;
  readonly gGrads?: TensorMap;
  readonly dGrads?: TensorMap;
}

const IO = { image: 'image', mask: 'mask', eps: 'eps', maskD: 'mask_d' } as const;

/** Builds the generator forward in `g`: the prediction, and for stage 2 the student and teacher IPRs. */
function generatorForward(g: Graph, s: InpaintSpec, image: Value, mask: Value, eps: Value | null): { pred: Value; ipr?: Value; teacher?: Value } {
  const x = op.concat([op.mul(image, op.sub(1, mask)), mask], 1);
  if (s.stage === 1) return { pred: buildS1Forward(g, s.generator, { input: x, gt: image }).out };
  if (!s.teacher) throw new Error('inpainting stage 2 needs the teacher configuration');
  const teacher = g.scope('teacher', () => cpenS1(g, s.teacher!, x, image, 'E'));
  const r = buildS2Forward(g, s.generator, { input: x, teacher, eps: eps! }, { mode: 'train' });
  return { pred: r.out, ipr: r.ipr, teacher };
}

function dataInputs(g: Graph, s: InpaintSpec): { image: Value; mask: Value; eps: Value | null } {
  const image = g.input(IO.image, [s.batch, 3, s.height, s.width]);
  const mask = g.input(IO.mask, [s.batch, 1, s.height, s.width]);
  const eps = s.stage === 2 ? g.input(IO.eps, [s.batch, IPR_DIM]) : null;
  return { image, mask, eps };
}

function bnOutputs(bn: BatchNormState, outputs: Record<string, Value>): void {
  for (const [prefix, l] of bn.layers) {
    outputs[`${prefix}.running_mean`] = l.mean;
    outputs[`${prefix}.running_var`] = l.var;
  }
}

/** The discriminator's logits size for an input of `h`×`w` (three stride-2 convs … as built). */
function logitsSize(s: InpaintSpec): [number, number] {
  const g = new Graph('probe');
  const d = nLayerDiscriminator(g, s.discriminator, g.input('x', [1, 3, s.height, s.width]), new BatchNormState(g, 'batch-only'));
  return [d.logits.sdim(2), d.logits.sdim(3)];
}

/** The generator step's graph: loss, logs and outputs. */
function generatorStepGraph(s: InpaintSpec): { graph: Graph; loss: Value; logs: Record<string, Value>; outputs: Record<string, Value>; frozenPrefixes: string[] } {
  const g = new Graph(`inpaint_s${s.stage}_G`);
  const { image, mask, eps } = dataInputs(g, s);
  const gen = generatorForward(g, s, image, mask, eps);
  const L = s.losses;
  const logs: Record<string, Value> = {};
  let total = maskedL1(gen.pred, image, mask, L.l1.weightKnown, L.l1.weightMissing);
  logs.loss_l1 = total;
  if (s.stage === 2) {
    const kd = kdLoss(gen.ipr!, gen.teacher!, L.kd ?? { weight: 1, temperature: 0.15 });
    logs.loss_kd_l1 = kd.abs;
    logs.loss_kd_kl = kd.kl;
    total = op.add(total, kd.abs);
  }
  const bn = new BatchNormState(g, 'train');
  const dReal = g.scope('D', () => nLayerDiscriminator(g, s.discriminator, image, bn));
  const dFake = g.scope('D', () => nLayerDiscriminator(g, s.discriminator, gen.pred, bn));
  const adv = adversarialGeneratorLoss(dFake.logits, L.adversarial.weight);
  logs.loss_adv = adv;
  total = op.add(total, adv);
  if (L.featureMatching > 0) {
    const fm = op.mul(featureMatching(dFake.features, dReal.features), L.featureMatching);
    logs.loss_fm = fm;
    total = op.add(total, fm);
  }
  if (L.resnetPl > 0) {
    const rpl = resnetPL(g, gen.pred, image, L.resnetPl);
    logs.loss_resnet_pl = rpl;
    total = op.add(total, rpl);
  }
  const outputs: Record<string, Value> = { g_pred: gen.pred };
  if (gen.ipr) outputs.g_ipr = gen.ipr;
  if (gen.teacher) outputs.teacher_ipr = gen.teacher;
  bnOutputs(bn, outputs);
  return { graph: g, loss: total, logs, outputs, frozenPrefixes: [] };
}

/** The discriminator step's graph. */
function discriminatorStepGraph(s: InpaintSpec, h: number, w: number): { graph: Graph; loss: Value; logs: Record<string, Value>; outputs: Record<string, Value> } {
  const g = new Graph(`inpaint_s${s.stage}_D`);
  const { image, mask, eps } = dataInputs(g, s);
  const maskD = s.losses.adversarial.maskAsFakeTarget ? g.input(IO.maskD, [s.batch, 1, h, w]) : null;
  const gen = generatorForward(g, s, image, mask, eps);
  const bn = new BatchNormState(g, 'train');
  const dReal = g.scope('D', () => nLayerDiscriminator(g, s.discriminator, image, bn));
  const dFake = g.scope('D', () => nLayerDiscriminator(g, s.discriminator, gen.pred, bn));
  const t = adversarialDiscriminatorLoss(image, dReal.logits, dFake.logits, maskD, s.losses.adversarial.gpCoef);
  const outputs: Record<string, Value> = { d_pred: gen.pred, d_d_real: dReal.logits, d_d_fake: dFake.logits };
  bnOutputs(bn, outputs);
  return { graph: g, loss: t.total, logs: { loss_d_real: t.real, loss_d_fake: t.fake, loss_d_r1: t.r1 }, outputs };
}

/**
 * A fresh discriminator as PyTorch builds it: convs U(±1/√fan_in), BatchNorm weight 1, bias 0,
 * running mean 0, variance 1, `num_batches_tracked` 0.
 */
export function initDiscriminator(c: NLayerDiscriminatorConfig, seed: number): TensorMap {
  const g = new Graph('D_init');
  nLayerDiscriminator(g, c, g.input('x', [2, c.inputNc, 64, 64]), new BatchNormState(g, 'batch-only'));
  const sd: TensorMap = new Map(initParams(g, seed));
  for (const p of discriminatorBatchNorms(c)) {
    const n = sd.get(`${p}.weight`)!.shape[0]!;
    sd.set(`${p}.running_mean`, f32([n], new Float32Array(n)));
    sd.set(`${p}.running_var`, f32([n], new Float32Array(n).fill(1)));
    sd.set(`${p}.num_batches_tracked`, { dtype: 'int64', shape: [], data: BigInt64Array.of(0n) });
  }
  return sd;
}

/** Lightning 1.2's gradient clipping factor: `min(clip / (‖g‖ + 1e-6), 1)` (always applied). */
export function clipFactor(norm: number, clip: number | null): number {
  return clip ? Math.min(clip / (norm + 1e-6), 1) : 1;
}

/** Weights of one iteration's networks. */
export interface InpaintWeights {
  /** Generator state dict (official names; stage 2 without the teacher). */
  readonly generator: ReadonlyMap<string, HostTensor>;
  /** Discriminator state dict, BatchNorm running statistics and `num_batches_tracked` included. */
  readonly discriminator: ReadonlyMap<string, HostTensor>;
  /** Stage 2: the teacher's `E.*`. */
  readonly teacher?: ReadonlyMap<string, HostTensor>;
  /** ResNetPL's encoder (`encoder_epoch_20.pth` keys), when `resnet_pl.weight` > 0. */
  readonly encoder?: ReadonlyMap<string, HostTensor>;
}

function pick(sd: ReadonlyMap<string, HostTensor>, names: Iterable<string>, what: string): TensorMap {
  const out: TensorMap = new Map();
  for (const n of names) {
    const t = sd.get(n);
    if (!t) throw new Error(`${what}: missing '${n}'`);
    if (t.dtype !== 'float32') throw new Error(`${what}: '${n}' is ${t.dtype}, expected float32`);
    out.set(n, t);
  }
  return out;
}

/**
 * The compiled iteration with its state: generator and discriminator weights in flat buffers,
 * both Adams, D's running statistics and `num_batches_tracked`.
 */
export class InpaintIteration {
  /** Current D BatchNorm running statistics, `<prefix>.running_mean|running_var`. */
  readonly runningStats = new Map<string, Float32Array>();
  /** `num_batches_tracked` per D BatchNorm prefix. */
  readonly numBatchesTracked = new Map<string, bigint>();

  private constructor(
    readonly spec: InpaintSpec,
    private readonly gStep: TrainStep,
    private readonly dStep: TrainStep,
    readonly gAdam: Adam,
    readonly dAdam: Adam,
    public gParams: Float32Array,
    public dParams: Float32Array,
    private readonly logitsHW: [number, number],
    private readonly session: SessionOptions,
  ) {}

  /** Layout of the generator's trained parameters (official order). */
  get gLayout(): ParamLayout {
    return this.gStep.layout;
  }

  /** Layout of the discriminator's parameters. */
  get dLayout(): ParamLayout {
    return this.dStep.layout;
  }

  /** Builds and compiles both steps and loads the weights. */
  static async create(s: InpaintSpec, w: InpaintWeights, session: SessionOptions = {}): Promise<InpaintIteration> {
    const [h, wd] = logitsSize(s);
    const gb = generatorStepGraph(s);
    const dParamNames = [...discriminatorParamShapes(s.discriminator).keys()];
    const teacherNames = s.stage === 2 ? [...gb.graph.params.keys()].filter((k) => k.startsWith('E.')) : [];
    const encoderNames = s.losses.resnetPl > 0 ? [...gb.graph.params.keys()].filter((k) => ade20kEncoderShapes().has(k)) : [];
    const teacherW = s.stage === 2 ? pick(w.teacher ?? new Map(), teacherNames, 'teacher') : new Map<string, HostTensor>();
    const encoderW = encoderNames.length ? pick(w.encoder ?? new Map(), encoderNames, 'ResNetPL encoder') : new Map<string, HostTensor>();
    const frozen: TensorMap = new Map([...teacherW, ...encoderW]);
    const dSet = new Set(dParamNames);
    const gNames = officialOrder([...gb.graph.params.keys()].filter((k) => !dSet.has(k) && !frozen.has(k)));
    const gStep = await TrainStep.create(gb.graph, gb.loss, { trainable: gNames, fed: dParamNames, frozen, logs: gb.logs, outputs: gb.outputs, session });
    const db = discriminatorStepGraph(s, h, wd);
    const dNames = dParamNames.filter((k) => db.graph.params.has(k));
    const dStep = await TrainStep.create(db.graph, db.loss, {
      trainable: dNames,
      fed: gNames,
      frozen: teacherW,
      logs: db.logs,
      outputs: db.outputs,
      session,
    });
    const gAdam = await Adam.create(gStep.layout.total, { lr: s.lrG, gradScale: true }, session);
    const dAdam = await Adam.create(dStep.layout.total, { lr: s.lrD, gradScale: true }, session);
    const it = new InpaintIteration(
      s,
      gStep,
      dStep,
      gAdam,
      dAdam,
      gStep.layout.pack(pick(w.generator, gNames, 'generator')),
      dStep.layout.pack(pick(w.discriminator, dNames, 'discriminator')),
      [h, wd],
      session,
    );
    for (const p of discriminatorBatchNorms(s.discriminator)) {
      for (const k of ['running_mean', 'running_var']) {
        const t = w.discriminator.get(`${p}.${k}`);
        if (!t || t.dtype !== 'float32') throw new Error(`discriminator: missing float32 '${p}.${k}'`);
        it.runningStats.set(`${p}.${k}`, Float32Array.from(t.data as Float32Array));
      }
      const n = w.discriminator.get(`${p}.num_batches_tracked`);
      it.numBatchesTracked.set(p, n ? BigInt((n.data as BigInt64Array | Float32Array)[0]!) : 0n);
    }
    return it;
  }

  private statsSession: Session | null = null;

  /**
   * `store_discr_outputs_for_vis`: on visualisation iterations the official `_do_step` also runs
   * D on the image and the prediction under `no_grad`, still in training mode, after each of
   * the two losses — two more running-statistics updates per step and nothing else.
   */
  async visualizationCalls(image: HostTensor<'float32'>, pred: HostTensor): Promise<void> {
    const s = this.spec;
    if (!this.statsSession) {
      const g = new Graph(`inpaint_s${s.stage}_Dstats`);
      const img = g.input('image', [s.batch, 3, s.height, s.width]);
      const p = g.input('pred', [s.batch, 3, s.height, s.width]);
      const bn = new BatchNormState(g, 'train');
      nLayerDiscriminator(g, s.discriminator, img, bn);
      nLayerDiscriminator(g, s.discriminator, p, bn);
      const outs: Record<string, Value> = {};
      bnOutputs(bn, outs);
      for (const [k, v] of Object.entries(outs)) g.output(v, `out_${k}`);
      this.statsSession = await compile(g, { params: 'inputs' }, this.session);
    }
    const feeds: Record<string, HostTensor> = { image, pred, ...this.statsFeeds() };
    for (const [k, v] of this.dStep.layout.views(this.dParams)) feeds[k] = v;
    const r = await this.statsSession.run(feeds);
    this.takeStats(Object.fromEntries([...this.runningStats.keys()].map((k) => [k, r[`out_${k}`]!])));
  }

  /** The generator's weights by name (views of the live buffer). */
  generatorWeights(): TensorMap {
    return this.gStep.layout.views(this.gParams);
  }

  /** The discriminator's state dict: parameters, running statistics, `num_batches_tracked`. */
  discriminatorState(): TensorMap {
    const out: TensorMap = new Map(this.dStep.layout.views(this.dParams));
    for (const p of discriminatorBatchNorms(this.spec.discriminator)) {
      for (const k of ['running_mean', 'running_var']) {
        const v = this.runningStats.get(`${p}.${k}`)!;
        out.set(`${p}.${k}`, f32([v.length], v));
      }
      out.set(`${p}.num_batches_tracked`, { dtype: 'int64', shape: [], data: BigInt64Array.of(this.numBatchesTracked.get(p)!) });
    }
    return out;
  }

  private statsFeeds(): Record<string, HostTensor> {
    const f: Record<string, HostTensor> = {};
    for (const [k, v] of this.runningStats) f[k] = f32([v.length], v);
    return f;
  }

  private takeStats(outputs: Record<string, HostTensor>): void {
    for (const k of this.runningStats.keys()) this.runningStats.set(k, Float32Array.from(outputs[k]!.data as Float32Array));
    for (const p of discriminatorBatchNorms(this.spec.discriminator)) this.numBatchesTracked.set(p, this.numBatchesTracked.get(p)! + 2n);
  }

  /**
   * Runs one iteration (G step then D step) and updates all state. `record` keeps tensors and
   * gradients; `vis` adds the visualisation iteration's extra D calls (see {@link visualizationCalls}).
   */
  async run(b: InpaintBatch, record = false, vis = false): Promise<InpaintIterationResult> {
    const s = this.spec;
    const data: Record<string, HostTensor> = { [IO.image]: b.image, [IO.mask]: b.mask };
    const epsFor = (e: HostTensor<'float32'> | undefined, which: string) => {
      if (s.stage !== 2) return;
      if (!e) throw new Error(`inpainting stage 2: the ${which} step needs its q_sample noise`);
      data[IO.eps] = e;
    };
    // Generator step.
    epsFor(b.gEps, 'generator');
    const gGrads = new Float32Array(this.gStep.layout.total);
    const feedsG: Record<string, HostTensor> = { ...data, ...this.statsFeeds() };
    for (const [k, v] of this.dStep.layout.views(this.dParams)) feedsG[k] = v;
    const rg = await this.gStep.run(this.gStep.layout.views(this.gParams), feedsG, gGrads);
    this.takeStats(rg.outputs);
    if (vis) await this.visualizationCalls(b.image, rg.outputs.g_pred!);
    this.gParams = await this.gAdam.update(this.gParams, gGrads, clipFactor(rg.gradNorm, s.gradientClipVal));
    // Discriminator step with the updated generator.
    epsFor(b.dEps, 'discriminator');
    const feedsD: Record<string, HostTensor> = { ...data, ...this.statsFeeds() };
    if (s.losses.adversarial.maskAsFakeTarget) {
      const [h, w] = this.logitsHW;
      if (!s.losses.adversarial.allowScaleMask && (h !== s.height || w !== s.width)) {
        throw new Error(`the mask (${s.height}×${s.width}) differs from the discriminator's output (${h}×${w}): set losses.adversarial.allow_scale_mask`);
      }
      feedsD[IO.maskD] = resizeMaskNearest(b.mask, h, w);
    }
    for (const [k, v] of this.gStep.layout.views(this.gParams)) feedsD[k] = v;
    const dGrads = new Float32Array(this.dStep.layout.total);
    const rd = await this.dStep.run(this.dStep.layout.views(this.dParams), feedsD, dGrads);
    this.takeStats(rd.outputs);
    if (vis) await this.visualizationCalls(b.image, rd.outputs.d_pred!);
    this.dParams = await this.dAdam.update(this.dParams, dGrads, clipFactor(rd.gradNorm, s.gradientClipVal));

    const losses: Record<string, number> = { ...rg.logs, g_loss_total: rg.loss, ...rd.logs, d_loss_total: rd.loss };
    const res: InpaintIterationResult = { losses, gGradNorm: rg.gradNorm, dGradNorm: rd.gradNorm };
    if (!record) return res;
    const tensors: Record<string, HostTensor> = {};
    for (const k of ['g_pred', 'g_ipr', 'teacher_ipr']) if (rg.outputs[k]) tensors[k] = rg.outputs[k]!;
    for (const k of ['d_pred', 'd_d_real', 'd_d_fake']) tensors[k] = rd.outputs[k]!;
    return { ...res, tensors, gGrads: this.gStep.layout.views(gGrads), dGrads: this.dStep.layout.views(dGrads) };
  }

  /** Frees the sessions. */
  async release(): Promise<void> {
    await Promise.all([this.gStep.release(), this.dStep.release(), this.gAdam.release(), this.dAdam.release(), this.statsSession?.release()]);
  }
}
