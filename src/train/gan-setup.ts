/**
 * Setting up the GAN stage from a plan: the spec of the losses, the discriminator's weights
 * (strict or matching keys, as BasicSR's load_network), the teacher's `E.*` and the VGG19
 * features. Shared by the trainer and `diffir grad -opt` (one official iteration).
 */
import { type DiscriminatorConfig, discriminatorParamShapes, discriminatorStateShapes, SN_CONVS, type SnConv, unetDiscriminatorSN } from '../models/discriminator.js';
import { Graph } from '../graph/ir.js';
import { initParams } from '../nn/init.js';
import { deepestLayer } from '../models/vgg.js';
import { selectWeights } from '../models/params.js';
import type { SessionOptions } from '../runtime/session.js';
import { f32, type HostTensor, type TensorMap } from '../tensor.js';
import { loadNetworkStateDict, loadPretrainedInto } from './checkpoint.js';
import { gaussians } from './data.js';
import { GanIteration, type GanSpec, spectralBuffers, type SpectralBuffers } from './gan.js';
import { usmSharp } from '../data/degrade/runtime.js';
import type { TrainPlan } from './options.js';
import { findVggWeights, loadVggFeatures } from './vgg-weights.js';
import { Rng } from '../random.js';
import { IPR_DIM } from '../nn/ipr.js';

/** The iteration's spec from a DiffIRGANS2Model plan. */
export function ganSpec(p: TrainPlan): GanSpec {
  const g = p.gan;
  if (!g || !p.teacherConfig) throw new Error(`${p.file}: not a GAN-stage plan`);
  return { config: p.config, teacher: p.teacherConfig, disc: g.disc, pixel: g.pixel ? p.pixel : null, kd: p.kd, perceptual: g.perceptual, gan: g.gan };
}

/** The teacher's frozen `E.*` from a stage-1 checkpoint. */
export function loadTeacher(p: TrainPlan, file: string): TensorMap {
  const w = selectWeights(loadNetworkStateDict(file, p.paramKeyG), p.teacherConfig!, 1, file);
  return new Map([...w].filter(([k]) => k.startsWith('E.')));
}

/** The VGG features the perceptual loss uses (none without it), from the file BasicSR would load. */
export function loadPerceptualVgg(p: TrainPlan, cwd: string): TensorMap {
  const per = p.gan!.perceptual;
  if (!per) return new Map();
  return loadVggFeatures(findVggWeights(p.gan!.vggWeights, cwd), per.vggType, deepestLayer(per.vggType, Object.keys(per.layerWeights)));
}

/** The frozen weights of the generator step: the teacher's `E.*` and the VGG features. */
export function frozenWeights(p: TrainPlan, teacherFile: string, cwd: string): TensorMap {
  return new Map([...loadTeacher(p, teacherFile), ...loadPerceptualVgg(p, cwd)]);
}

/**
 * D's state dict from a BasicSR `net_d` file (`param_key_d`), strictly (every key, including
 * `weight_u` / `weight_v`, with its shape) or, with `strict_load_d: false`, the matching keys
 * over `into`. Returns the parameters (by name) and the spectral-norm buffers.
 */
export function loadDiscriminator(p: TrainPlan, file: string, into?: TensorMap, strict = p.gan!.strictLoadD): { weights: TensorMap; sn: SpectralBuffers } {
  const all: TensorMap = new Map(into ?? []);
  loadPretrainedInto(all, file, p.gan!.paramKeyD, discriminatorStateShapes(p.gan!.disc), { strict, optKey: 'path.pretrain_network_d', strictKey: 'strict_load_d' });
  const weights: TensorMap = new Map([...all].filter(([k]) => !/\.weight_[uv]$/.test(k)));
  return { weights, sn: spectralBuffers(all, file) };
}

/**
 * A fresh discriminator as torch builds one: conv weights and biases U(±1/√fan_in) (the
 * nn.Conv2d default), spectral-norm u, v = normalize(N(0, I)).
 */
export function initDiscriminator(c: DiscriminatorConfig, seed: number): { weights: TensorMap; sn: SpectralBuffers } {
  const g = new Graph('UNetDiscriminatorSN');
  const shapes = discriminatorParamShapes(c);
  unetDiscriminatorSN(g, c, g.input('x', [1, c.numInCh, 8, 8]), {
    weight: (name, shape) => g.param(name, shape),
    vectors: (conv) => {
      const [o, i, kh, kw] = shapes.get(`${conv}.weight_orig`)! as [number, number, number, number];
      return { u: g.input(`${conv}.u`, [o]), v: g.input(`${conv}.v`, [i * kh * kw]) };
    },
  });
  const weights = initParams(g, seed);
  const rng = new Rng((seed ^ 0x5bd1e995) >>> 0);
  const unit = (n: number) => {
    const x = gaussians(rng, n);
    const norm = Math.max(Math.sqrt(x.reduce((a, v) => a + v * v, 0)), 1e-12);
    return x.map((v) => v / norm);
  };
  const sn: SpectralBuffers = new Map();
  for (const conv of SN_CONVS) {
    const [o, i, kh, kw] = shapes.get(`${conv}.weight_orig`)! as [number, number, number, number];
    sn.set(conv, { u: unit(o), v: unit(i * kh * kw) });
  }
  return { weights, sn };
}

/** D's state dict in torch's order: parameters and the spectral-norm buffers (what BasicSR saves as `net_d`). */
export function discriminatorStateDict(c: DiscriminatorConfig, weights: ReadonlyMap<string, HostTensor>, sn: SpectralBuffers): TensorMap {
  const out: TensorMap = new Map();
  for (const [k, shape] of discriminatorStateShapes(c)) {
    const m = /^(conv\d)\.weight_([uv])$/.exec(k);
    if (m) {
      const b = sn.get(m[1] as SnConv)!;
      out.set(k, f32(shape, (m[2] === 'u' ? b.u : b.v).slice()));
    } else out.set(k, weights.get(k)!);
  }
  return out;
}

/** Checkpoints of one official iteration; each defaults to the option file's path. */
export interface GanGradFiles {
  readonly weights?: string;
  readonly teacher?: string;
  readonly discriminator?: string;
}

/**
 * One official iteration (`optimize_parameters(current_iter = 1)`) from an option file's
 * networks and weights on the tensors `lq`, `gt` (and `noise`, the q_sample draw; else drawn
 * from the file's seed). Returns every value the GAN fixture names: `gt_usm`, the IPRs,
 * `output`, D maps, losses (shape [1]), `sn.convK.{u,v}_{g,real,fake}`, `g.<param>`, `d.<param>`.
 */
export async function ganGradients(p: TrainPlan, io: ReadonlyMap<string, HostTensor>, files: GanGradFiles, cwd: string, session?: SessionOptions): Promise<TensorMap> {
  const need = (k: string, why: string): string => {
    const v = (files as Record<string, string | undefined>)[k];
    if (v) return v;
    throw new Error(`${why} is not set in ${p.file}; give it with --${k}`);
  };
  const gFile = files.weights ?? p.pretrainG ?? need('weights', 'path.pretrain_network_g');
  const tFile = files.teacher ?? p.pretrainS1 ?? need('teacher', 'path.pretrain_network_S1');
  const dFile = files.discriminator ?? p.gan!.pretrainD ?? need('discriminator', 'path.pretrain_network_d');
  const g = selectWeights(loadNetworkStateDict(gFile, p.paramKeyG), p.config, 2, gFile);
  const d = loadDiscriminator(p, dFile, undefined, true);
  const tensor = (k: string): HostTensor<'float32'> => {
    const t = io.get(k);
    if (!t || t.dtype !== 'float32') throw new Error(`--in: needs a float32 tensor '${k}'`);
    return t as HostTensor<'float32'>;
  };
  const lq = tensor('lq');
  const gt = tensor('gt');
  const [b, , h, w] = lq.shape as [number, number, number, number];
  const eps = io.has('noise') ? tensor('noise') : f32([b, IPR_DIM], gaussians(new Rng(p.seed >>> 0), b * IPR_DIM));
  const it = await GanIteration.create(ganSpec(p), b, h, w, frozenWeights(p, tFile, cwd), session);
  try {
    const gL = it.generatorLayout;
    const dL = it.discriminatorLayout;
    const gGrads = new Float32Array(gL.total);
    const dGrads = new Float32Array(dL.total);
    const gtUsm = await usmSharp(gt);
    const gan = p.gan!;
    const r = await it.run(gL.views(gL.pack(g)), dL.views(dL.pack(d.weights)), d.sn, { lq, gt, gtUsm, eps }, gGrads, dGrads, {
      usm: gan.usm,
      generatorStep: 1 % gan.netDIters === 0 && 1 > gan.netDInitIters,
    });
    const out: TensorMap = new Map([['gt_usm', gtUsm]]);
    for (const [k, v] of Object.entries(r.tensors)) out.set(k, v);
    for (const [k, v] of Object.entries(r.logs)) out.set(k, f32([1], [v]));
    for (const [tag, buf] of Object.entries(r.sn)) {
      for (const [c, s] of buf) {
        out.set(`sn.${c}.u_${tag}`, f32([s.u.length], s.u));
        out.set(`sn.${c}.v_${tag}`, f32([s.v.length], s.v));
      }
    }
    for (const [k, v] of gL.views(gGrads)) out.set(`g.${k}`, v);
    for (const [k, v] of dL.views(dGrads)) out.set(`d.${k}`, v);
    return out;
  } finally {
    await it.release();
  }
}
