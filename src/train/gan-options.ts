/**
 * The GAN stage's keys of an option file (`model_type: DiffIRGANS2Model`, SRGANModel's
 * settings): `network_d`, `train.optim_d`, `train.perceptual_opt`, `train.gan_opt`,
 * `train.net_d_iters` / `net_d_init_iters`, `path.pretrain_network_d` / `param_key_d` /
 * `strict_load_d`, and the `*_gt_usm` flags, resolved into a {@link GanPlan}.
 *
 * Extension (ours): `perceptual_opt.vgg_weights`, the torchvision VGG19 file when it is not in
 * one of the places BasicSR / torchvision look (see vgg-weights.ts).
 */
import type { DiscriminatorConfig } from '../models/discriminator.js';
import { VGG_LAYER_NAMES } from '../models/vgg.js';
import { GAN_TYPES, type GanLossSpec, type GanType, type PerceptualSpec } from './gan-losses.js';
import { type UsmTargets, usmTargets } from './gan.js';

/** Adam / AdamW settings of an optimizer entry. */
export interface OptimPlan {
  readonly type: 'Adam' | 'AdamW';
  readonly lr: number;
  readonly betas: readonly [number, number];
  readonly weightDecay: number;
  readonly eps: number;
}

/** Everything the GAN stage adds to a stage-2 plan. */
export interface GanPlan {
  readonly disc: DiscriminatorConfig;
  readonly perceptual: PerceptualSpec | null;
  /** Whether `pixel_opt` is set (SRGANModel makes it optional). */
  readonly pixel: boolean;
  /** `perceptual_opt.vgg_weights` (absolute), or null to look where BasicSR and torchvision do. */
  readonly vggWeights: string | null;
  readonly gan: GanLossSpec;
  /** The three `*_gt_usm` flags; all false when the file has none (DiffIR-SRGAN trains on the plain GT). */
  readonly usm: UsmTargets;
  /** Whether the file has the flags (DiffIR-RealSR's model reads them; DiffIR-SRGAN's has no USM). */
  readonly usmFlags: boolean;
  readonly netDIters: number;
  readonly netDInitIters: number;
  readonly optimD: OptimPlan;
  readonly pretrainD: string | null;
  readonly paramKeyD: string;
  readonly strictLoadD: boolean;
  /** Working directory the VGG19 file is looked for under (BasicSR's relative VGG_PRETRAIN_PATH). */
  readonly cwd: string;
}

type Opt = Record<string, unknown>;
const obj = (v: unknown): Opt => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Opt) : {});

/** Reads an optimizer entry (`optim_g` / `optim_d`), pushing problems under `key`. */
export function optimPlan(o: Opt, key: string, problem: (key: string, message: string) => void): OptimPlan {
  const type = String(o.type ?? 'Adam');
  if (type !== 'Adam' && type !== 'AdamW') problem(`${key}.type`, `'${type}' is not supported (Adam or AdamW)`);
  if (o.amsgrad === true) problem(`${key}.amsgrad`, 'true is not supported');
  if (o.lr === undefined) problem(`${key}.lr`, 'is required');
  return {
    type: type as 'Adam',
    lr: (o.lr as number | undefined) ?? 2e-4,
    betas: (o.betas as [number, number] | undefined) ?? [0.9, 0.999],
    weightDecay: (o.weight_decay as number | undefined) ?? 0,
    eps: (o.eps as number | undefined) ?? 1e-8,
  };
}

const PERCEPTUAL_KEYS = ['type', 'layer_weights', 'vgg_type', 'use_input_norm', 'range_norm', 'perceptual_weight', 'style_weight', 'criterion', 'vgg_weights'];
const GAN_KEYS = ['type', 'gan_type', 'real_label_val', 'fake_label_val', 'loss_weight'];

/** Resolves the GAN keys; problems are pushed as (key, message). */
export function resolveGan(opt: Opt, cwd: string, abs: (p: string) => string, problem: (key: string, message: string) => void): GanPlan {
  const train = obj(opt.train);
  const path = obj(opt.path);
  const nd = obj(opt.network_d);
  if (opt.network_d === undefined) problem('network_d', 'is required by DiffIRGANS2Model (the discriminator)');
  else if (nd.type !== 'UNetDiscriminatorSN') problem('network_d.type', `'${String(nd.type)}' is not supported (UNetDiscriminatorSN)`);
  const disc: DiscriminatorConfig = {
    numInCh: (nd.num_in_ch as number | undefined) ?? 3,
    numFeat: (nd.num_feat as number | undefined) ?? 64,
    skipConnection: (nd.skip_connection as boolean | undefined) ?? true,
  };
  if (disc.numInCh !== 3) problem('network_d.num_in_ch', `${disc.numInCh} is not supported (D sees RGB images)`);

  const num = (o: Opt, k: string, key: string, d: number): number => {
    const v = o[k];
    if (v === undefined) return d;
    if (typeof v !== 'number' || !Number.isFinite(v)) problem(key, `must be a number, got ${JSON.stringify(v)}`);
    return typeof v === 'number' ? v : d;
  };
  const bool = (o: Opt, k: string, key: string, d: boolean): boolean => {
    const v = o[k];
    if (v === undefined) return d;
    if (typeof v !== 'boolean') problem(key, `must be true or false, got ${JSON.stringify(v)}`);
    return v === true;
  };

  let perceptual: PerceptualSpec | null = null;
  let vggWeights: string | null = null;
  if (train.perceptual_opt != null) {
    const p = obj(train.perceptual_opt);
    const k = 'train.perceptual_opt';
    for (const x of Object.keys(p)) if (!PERCEPTUAL_KEYS.includes(x)) problem(`${k}.${x}`, 'is not an argument of PerceptualLoss');
    if (p.type !== 'PerceptualLoss') problem(`${k}.type`, `'${String(p.type)}' is not supported (PerceptualLoss)`);
    const vggType = String(p.vgg_type ?? 'vgg19');
    if (vggType !== 'vgg19') problem(`${k}.vgg_type`, `'${vggType}' is not supported (vgg19: BasicSR loads vgg19-dcbb9e9d.pth for every type)`);
    const lw = obj(p.layer_weights);
    const layerWeights: Record<string, number> = {};
    if (!Object.keys(lw).length) problem(`${k}.layer_weights`, 'is required (e.g. {conv5_4: 1})');
    for (const [name, w] of Object.entries(lw)) {
      if (!VGG_LAYER_NAMES.vgg19.includes(name)) problem(`${k}.layer_weights.${name}`, `is not a vgg19 layer (${VGG_LAYER_NAMES.vgg19.slice(0, 4).join(', ')}, …, conv5_4, relu5_4, pool5)`);
      layerWeights[name] = num(lw, name, `${k}.layer_weights.${name}`, 0);
    }
    const criterion = String(p.criterion ?? 'l1');
    if (!['l1', 'l2', 'fro'].includes(criterion)) problem(`${k}.criterion`, `'${criterion}' is not supported (l1, l2, fro)`);
    perceptual = {
      layerWeights,
      vggType: 'vgg19',
      useInputNorm: bool(p, 'use_input_norm', `${k}.use_input_norm`, true),
      rangeNorm: bool(p, 'range_norm', `${k}.range_norm`, false),
      perceptualWeight: num(p, 'perceptual_weight', `${k}.perceptual_weight`, 1),
      styleWeight: num(p, 'style_weight', `${k}.style_weight`, 0),
      criterion: criterion as PerceptualSpec['criterion'],
    };
    if (!(perceptual.perceptualWeight > 0) && !(perceptual.styleWeight > 0)) perceptual = null;
    if (p.vgg_weights != null) vggWeights = abs(String(p.vgg_weights));
  }

  const go = obj(train.gan_opt);
  if (train.gan_opt == null) problem('train.gan_opt', 'is required by DiffIRGANS2Model');
  for (const x of Object.keys(go)) if (!GAN_KEYS.includes(x)) problem(`train.gan_opt.${x}`, 'is not an argument of GANLoss');
  if (train.gan_opt != null && go.type !== 'GANLoss') problem('train.gan_opt.type', `'${String(go.type)}' is not supported (GANLoss)`);
  const ganType = String(go.gan_type ?? 'vanilla');
  if (!(GAN_TYPES as readonly string[]).includes(ganType)) problem('train.gan_opt.gan_type', `'${ganType}' is not a GANLoss type (${GAN_TYPES.join(', ')})`);
  const gan: GanLossSpec = {
    ganType: ganType as GanType,
    realLabel: num(go, 'real_label_val', 'train.gan_opt.real_label_val', 1),
    fakeLabel: num(go, 'fake_label_val', 'train.gan_opt.fake_label_val', 0),
    weight: num(go, 'loss_weight', 'train.gan_opt.loss_weight', 1),
  };

  const flags = ['l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm'];
  const present = flags.filter((f) => opt[f] !== undefined);
  if (present.length && present.length < 3) problem(flags.find((f) => opt[f] === undefined)!, `is required with ${present.join(', ')} (DiffIR-RealSR's model reads all three)`);
  const usmFlags = present.length === 3;
  const usm = usmFlags ? usmTargets(opt.l1_gt_usm, opt.percep_gt_usm, opt.gan_gt_usm) : { l1: false, percep: false, gan: false };

  // Single-process training only: DDP would broadcast D's spectral-norm buffers between replicas.
  if (typeof opt.num_gpu === 'number' && opt.num_gpu > 1) problem('num_gpu', `${opt.num_gpu} devices are not supported in the GAN stage (one device: num_gpu 1 or auto)`);
  for (const k of ['use_grad_clip', 'grad_clip_norm']) if (train[k] != null && train[k] !== false) problem(`train.${k}`, 'is not used by DiffIRGANS2Model (SRGANModel does not clip)');
  if (obj(train.mixing_augs).mixup === true) problem('train.mixing_augs.mixup', 'is not used by DiffIRGANS2Model');
  if (train.optim_d == null) problem('train.optim_d', 'is required by DiffIRGANS2Model');
  const optimD = optimPlan(obj(train.optim_d), 'train.optim_d', problem);
  return {
    disc,
    perceptual,
    pixel: train.pixel_opt != null,
    vggWeights,
    gan,
    usm,
    usmFlags,
    netDIters: (train.net_d_iters as number | undefined) ?? 1,
    netDInitIters: (train.net_d_init_iters as number | undefined) ?? 0,
    optimD,
    pretrainD: path.pretrain_network_d ? abs(String(path.pretrain_network_d)) : null,
    paramKeyD: (path.param_key_d as string | null | undefined) ?? 'params',
    strictLoadD: (path.strict_load_d as boolean | undefined) ?? true,
    cwd,
  };
}
