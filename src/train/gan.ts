/**
 * One iteration of DiffIR's GAN stage, as `DiffIRGANS2Model.optimize_parameters` runs it, on two
 * compiled training steps:
 *
 * - Generator step (D frozen): IPR_S1 = E_S1(lq, l1_gt) (frozen, in the graph), output, IPRs =
 *   net_g(lq, IPR_S1) in train mode (q_sample with ε, T reverse steps, DIRformer); l_g_total =
 *   l_g_pix(output, l1_gt) + l_abs (KD's L1; its KL term is logged only) + l_g_percep (+ l_g_style)
 *   (output vs percep_gt) + l_g_gan(D(output), real); gradients for every net_g parameter.
 *   D's weights enter as plain inputs (not differentiated), the VGG weights and the teacher as
 *   frozen constants.
 * - Discriminator step: l_d_real = GANLoss(D(gan_gt), real), l_d_fake = GANLoss(D(output), fake)
 *   with output detached; their gradients summed, as the official two backward calls do.
 *
 * Spectral norm: D runs in train mode on every forward, so torch runs one power iteration per
 * forward and writes u, v back — in the generator step, then the real, then the fake forward of
 * the D step. D's weights do not change in between, so the three iterations are done on the host
 * first and each forward gets its own (u, v) as inputs; σ = u·(W v) and W/σ are in the graph.
 */
import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { type DiffIRConfig, inputChannels, outputScale } from '../models/config.js';
import { cpenS1 } from '../models/cpen.js';
import { buildS2Forward, IO_NAMES } from '../models/diffir.js';
import { type DiscriminatorConfig, discriminatorParamShapes, type DiscriminatorWeights, SN_CONVS, type SnConv, unetDiscriminatorSN } from '../models/discriminator.js';
import { IPR_DIM } from '../nn/ipr.js';
import { powerIteration, type SpectralVectors } from '../nn/spectral-norm.js';
import type { SessionOptions } from '../runtime/session.js';
import type { HostTensor, TensorMap } from '../tensor.js';
import { ganLoss, type GanLossSpec, perceptualLoss, type PerceptualSpec } from './gan-losses.js';
import { type KdLoss, kdLoss, officialOrder, type PixelLoss, pixelLoss } from './objective.js';
import { ParamLayout } from './params.js';
import { TrainStep } from './step.js';

/** What the GAN stage trains and with which losses (from an option file). */
export interface GanSpec {
  /** `network_g` (DiffIRS2). */
  readonly config: DiffIRConfig;
  /** `network_S1`: the frozen stage-1 teacher. */
  readonly teacher: DiffIRConfig;
  /** `network_d`. */
  readonly disc: DiscriminatorConfig;
  /** `pixel_opt`, `kd_opt`, `perceptual_opt` (each optional, as in SRGANModel), `gan_opt`. */
  readonly pixel: PixelLoss | null;
  readonly kd: KdLoss | null;
  readonly perceptual: PerceptualSpec | null;
  readonly gan: GanLossSpec;
}

/**
 * `l1_gt_usm`, `percep_gt_usm`, `gan_gt_usm` as the official code reads them: the target is
 * `gt_usm` unless the option `is False` — only a literal false selects the plain GT.
 */
export interface UsmTargets {
  readonly l1: boolean;
  readonly percep: boolean;
  readonly gan: boolean;
}

/** The flags from option values (`is False` semantics: only `false` turns one off). */
export function usmTargets(l1: unknown, percep: unknown, gan: unknown): UsmTargets {
  return { l1: l1 !== false, percep: percep !== false, gan: gan !== false };
}

/** D's trainable parameters by state-dict name, in `named_parameters()` order. */
export function discriminatorLayout(c: DiscriminatorConfig): ParamLayout {
  return new ParamLayout(discriminatorParamShapes(c));
}

/** The spectral-norm buffers of D, per conv (what `convK.weight_u` / `weight_v` hold). */
export type SpectralBuffers = Map<SnConv, SpectralVectors>;

/** The buffers from a `net_d` state dict. */
export function spectralBuffers(sd: ReadonlyMap<string, HostTensor>, where: string): SpectralBuffers {
  const m: SpectralBuffers = new Map();
  for (const c of SN_CONVS) {
    const u = sd.get(`${c}.weight_u`);
    const v = sd.get(`${c}.weight_v`);
    if (!u || !v || u.dtype !== 'float32' || v.dtype !== 'float32') throw new Error(`${where}: missing spectral-norm buffers ${c}.weight_u / ${c}.weight_v`);
    m.set(c, { u: Float32Array.from(u.data as Float32Array), v: Float32Array.from(v.data as Float32Array) });
  }
  return m;
}

/** One power iteration of every SN conv of D with weights `d`, from (and into) `buffers`. */
export function advanceSpectralNorm(d: TensorMap, buffers: SpectralBuffers): SpectralBuffers {
  for (const c of SN_CONVS) {
    const w = d.get(`${c}.weight_orig`)!;
    buffers.set(c, powerIteration(w.data as Float32Array, w.shape[0]!, buffers.get(c)!.u));
  }
  return new Map([...buffers].map(([k, s]) => [k, { u: s.u.slice(), v: s.v.slice() }]));
}

const snInput = (tag: string, c: SnConv, which: 'u' | 'v') => `${tag}.${c}.weight_${which}`;

function snFeeds(tag: string, b: SpectralBuffers, into: Record<string, HostTensor>): void {
  for (const [c, s] of b) {
    into[snInput(tag, c, 'u')] = { dtype: 'float32', shape: [s.u.length], data: s.u };
    into[snInput(tag, c, 'v')] = { dtype: 'float32', shape: [s.v.length], data: s.v };
  }
}

/** D's weights as graph inputs (`<tag>.*`, generator step) or parameters (D step), with the u, v inputs of `snTag`. */
function discWeights(g: Graph, c: DiscriminatorConfig, asInputs: string | null, snTag: string): DiscriminatorWeights {
  const shapes = discriminatorParamShapes(c);
  const made = new Map<string, Value>();
  return {
    weight: (name, shape) => {
      if (!asInputs) return g.param(name, shape);
      let v = made.get(name);
      if (!v) made.set(name, (v = g.input(`${asInputs}.${name}`, shape)));
      return v;
    },
    vectors: (conv) => {
      const w = shapes.get(`${conv}.weight_orig`)!;
      return { u: g.input(snInput(snTag, conv, 'u'), [w[0]!]), v: g.input(snInput(snTag, conv, 'v'), [w[1]! * w[2]! * w[3]!]) };
    },
  };
}

/** A built generator or discriminator step graph. */
interface StepGraph {
  readonly graph: Graph;
  readonly loss: Value;
  readonly logs: Record<string, Value>;
  readonly outputs: Record<string, Value>;
  readonly trainable: readonly string[];
  readonly frozen: readonly string[];
}

/** Names of the data inputs of the two steps. */
export const GAN_INPUTS = { lq: IO_NAMES.input, l1Gt: IO_NAMES.gt, percepGt: 'percep_gt', eps: IO_NAMES.eps, real: 'real', fake: 'fake' } as const;

/** The generator step's graph; LQ of batch×height×width. */
export function buildGeneratorStep(s: GanSpec, batch: number, height: number, width: number): StepGraph {
  const cfg = s.config;
  const g = new Graph('DiffIRGANS2_G');
  const k = outputScale(cfg);
  const lq = g.input(GAN_INPUTS.lq, [batch, inputChannels(cfg), height, width]);
  const l1Gt = g.input(GAN_INPUTS.l1Gt, [batch, 3, height * k, width * k]);
  const eps = g.input(GAN_INPUTS.eps, [batch, IPR_DIM]);
  const before = new Set(g.params.keys());
  const teacher = g.scope('teacher', () => cpenS1(g, s.teacher, lq, l1Gt, 'E'));
  const r = buildS2Forward(g, cfg, { input: lq, teacher, eps }, { mode: 'train' });
  const gParams = new Set([...g.params.keys()].filter((n) => !before.has(n) && !n.startsWith('E.')));
  const logs: Record<string, Value> = {};
  const terms: Value[] = [];
  if (s.pixel) terms.push((logs.l_g_pix = pixelLoss(r.out, l1Gt, s.pixel)));
  if (s.kd) {
    const t = r.iprSteps.length - 1;
    const kd = kdLoss(r.ipr, teacher, s.kd);
    logs[`l_kd_${t}`] = kd.kl;
    terms.push((logs[`l_abs_${t}`] = kd.abs));
  }
  if (s.perceptual) {
    const percepGt = g.input(GAN_INPUTS.percepGt, [batch, 3, height * k, width * k]);
    const p = perceptualLoss(g, r.out, percepGt, s.perceptual);
    if (p.percep) terms.push((logs.l_g_percep = p.percep));
    if (p.style) terms.push((logs.l_g_style = p.style));
  }
  const dFake = g.scope('net_d', () => unetDiscriminatorSN(g, s.disc, r.out, discWeights(g, s.disc, 'd', 'sn_g')));
  terms.push((logs.l_g_gan = ganLoss(dFake, true, false, s.gan)));
  const loss = terms.reduce((a, b) => op.add(a, b));
  logs.l_g_total = loss;
  const T = r.iprSteps.length;
  const outputs: Record<string, Value> = { output: r.out, d_fake_g: dFake, ipr_teacher: teacher, cond: r.cond, ipr_noisy: r.xStart };
  r.iprSteps.forEach((v, i) => (outputs[`ipr_t${T - 1 - i}`] = v));
  const all = [...g.params.keys()];
  return { graph: g, loss, logs, outputs, trainable: officialOrder(all.filter((n) => gParams.has(n))), frozen: all.filter((n) => !gParams.has(n)) };
}

/** The discriminator step's graph on HR images of batch×height×width. */
export function buildDiscriminatorStep(s: GanSpec, batch: number, height: number, width: number): StepGraph {
  const g = new Graph('DiffIRGANS2_D');
  const real = g.input(GAN_INPUTS.real, [batch, s.disc.numInCh, height, width]);
  const fake = g.input(GAN_INPUTS.fake, [batch, s.disc.numInCh, height, width]);
  const dReal = g.scope('real', () => unetDiscriminatorSN(g, s.disc, real, discWeights(g, s.disc, null, 'sn_real')));
  const dFake = g.scope('fake', () => unetDiscriminatorSN(g, s.disc, fake, discWeights(g, s.disc, null, 'sn_fake')));
  const lReal = ganLoss(dReal, true, true, s.gan);
  const lFake = ganLoss(dFake, false, true, s.gan);
  const mean = (v: Value) => op.reduceMean(v, [0, 1, 2, 3], false);
  return {
    graph: g,
    loss: op.add(lReal, lFake),
    logs: { l_d_real: lReal, out_d_real: mean(dReal), l_d_fake: lFake, out_d_fake: mean(dFake) },
    outputs: { d_real: dReal, d_fake: dFake },
    trainable: [...discriminatorParamShapes(s.disc).keys()],
    frozen: [],
  };
}

/** The data of one iteration (after feed_data). */
export interface GanBatch {
  readonly lq: HostTensor<'float32'>;
  readonly gt: HostTensor<'float32'>;
  /** USMSharp(gt). */
  readonly gtUsm: HostTensor<'float32'>;
  /** The q_sample noise ε (B, 256). */
  readonly eps: HostTensor<'float32'>;
}

/** What one iteration computed. */
export interface GanIterationResult {
  /** BasicSR's loss_dict: generator terms (when the generator step ran), D terms and D output means. */
  readonly logs: Record<string, number>;
  readonly generatorRan: boolean;
  readonly gGradNorm: number;
  readonly dGradNorm: number;
  /** `output`, D maps `d_fake_g` (generator step), `d_real`, `d_fake`, and the IPRs. */
  readonly tensors: Record<string, HostTensor>;
  /** Spectral-norm buffers after each D forward: `g` (absent without generator step), `real`, `fake`. */
  readonly sn: { readonly g?: SpectralBuffers; readonly real: SpectralBuffers; readonly fake: SpectralBuffers };
}

/** The two compiled steps of the GAN stage for one batch geometry. */
export class GanIteration {
  private constructor(
    readonly spec: GanSpec,
    private readonly gStep: TrainStep,
    private readonly dStep: TrainStep,
  ) {}

  /**
   * Compiles both steps. `frozen` holds the teacher's `E.*` and, with a perceptual loss, the
   * VGG `features.*` weights.
   */
  static async create(spec: GanSpec, batch: number, height: number, width: number, frozen: TensorMap, session?: SessionOptions): Promise<GanIteration> {
    const gs = buildGeneratorStep(spec, batch, height, width);
    const fz: TensorMap = new Map();
    for (const n of gs.frozen) {
      const t = frozen.get(n);
      if (!t) throw new Error(`missing frozen weight '${n}'`);
      fz.set(n, t);
    }
    const so = session ? { session } : {};
    const gStep = await TrainStep.create(gs.graph, gs.loss, { trainable: gs.trainable, frozen: fz, logs: gs.logs, outputs: gs.outputs, ...so });
    const k = outputScale(spec.config);
    const ds = buildDiscriminatorStep(spec, batch, height * k, width * k);
    const dStep = await TrainStep.create(ds.graph, ds.loss, { trainable: ds.trainable, logs: ds.logs, outputs: ds.outputs, ...so });
    return new GanIteration(spec, gStep, dStep);
  }

  /** Flat layout of net_g's trained parameters (official order). */
  get generatorLayout(): ParamLayout {
    return this.gStep.layout;
  }

  /** Flat layout of D's parameters. */
  get discriminatorLayout(): ParamLayout {
    return this.dStep.layout;
  }

  /**
   * Runs the iteration's forwards and backwards (not the optimizer steps): the generator step
   * when `o.generatorStep` (`iter % net_d_iters == 0 && iter > net_d_init_iters`; otherwise only
   * its forward is used, for the output), then the D step; targets chosen by `o.usm`. `sn` is updated in place as torch
   * updates D's buffers. Gradients land in `gGrads` / `dGrads` (layouts above).
   */
  async run(g: TensorMap, d: TensorMap, sn: SpectralBuffers, b: GanBatch, gGrads: Float32Array, dGrads: Float32Array, o: { readonly usm: UsmTargets; readonly generatorStep: boolean }): Promise<GanIterationResult> {
    const t = o.usm;
    const generatorStep = o.generatorStep;
    const l1Gt = t.l1 ? b.gtUsm : b.gt;
    const feeds: Record<string, HostTensor> = { [GAN_INPUTS.lq]: b.lq, [GAN_INPUTS.l1Gt]: l1Gt, [GAN_INPUTS.eps]: b.eps };
    if (this.spec.perceptual) feeds[GAN_INPUTS.percepGt] = t.percep ? b.gtUsm : b.gt;
    for (const [k, v] of d) feeds[`d.${k}`] = v;
    // The generator step's D forward only happens when the generator is optimised.
    const snG = generatorStep ? advanceSpectralNorm(d, sn) : undefined;
    snFeeds('sn_g', snG ?? sn, feeds);
    const gr = await this.gStep.run(g, feeds, gGrads);
    const snReal = advanceSpectralNorm(d, sn);
    const snFake = advanceSpectralNorm(d, sn);
    const dFeeds: Record<string, HostTensor> = { [GAN_INPUTS.real]: t.gan ? b.gtUsm : b.gt, [GAN_INPUTS.fake]: gr.outputs.output! };
    snFeeds('sn_real', snReal, dFeeds);
    snFeeds('sn_fake', snFake, dFeeds);
    const dr = await this.dStep.run(d, dFeeds, dGrads);
    const logs: Record<string, number> = {};
    if (generatorStep) Object.assign(logs, gr.logs);
    Object.assign(logs, dr.logs);
    const tensors: Record<string, HostTensor> = { ...gr.outputs, ...dr.outputs };
    if (!generatorStep) delete tensors.d_fake_g;
    return { logs, generatorRan: generatorStep, gGradNorm: gr.gradNorm, dGradNorm: dr.gradNorm, tensors, sn: { ...(snG ? { g: snG } : {}), real: snReal, fake: snFake } };
  }

  /** Frees both sessions. */
  async release(): Promise<void> {
    await this.gStep.release();
    await this.dStep.release();
  }
}
