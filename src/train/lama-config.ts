/**
 * The LaMa / DiffIR-inpainting training configs (`configs/training/*.yaml`) as users have them:
 * the composed form that `bin/train.py` saves beside its checkpoints, or the `defaults:` list
 * form resolved against the `configs/training/` tree it sits in (Hydra 1.0: each group file
 * `<group>/<name>.yaml` lands under the key `<group>`, merged over the primary file's own keys;
 * the `hydra` group is dropped). Interpolations `${a.b.c}` and `${env:VAR}` are resolved when a
 * value is read, so an unset variable only matters where it is used. Unknown keys are errors
 * naming the key; options the DiffIR configs never use with other values are refused.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import type { DiffIRConfig } from '../models/config.js';
import type { NLayerDiscriminatorConfig } from '../models/nlayer-discriminator.js';
import type { InpaintLosses } from './inpaint-step.js';
import type { MixedMaskOptions } from '../data/masks.js';

type Node = null | boolean | number | string | Node[] | { [k: string]: Node };
type Obj = { [k: string]: Node };

/** A config problem, reported as one line. */
export class LamaConfigError extends Error {}

/** The parts of a config the trainer uses, typed. */
export interface LamaConfig {
  /** `training_model.kind`: defaultS1 (stage 1) or defaultS2 (stage 2). */
  readonly stage: 1 | 2;
  readonly generator: DiffIRConfig;
  /** Stage 2: `generatorT` (the stage-1 teacher). */
  readonly teacher?: DiffIRConfig;
  readonly discriminator: NLayerDiscriminatorConfig;
  readonly losses: InpaintLosses;
  /** `losses.resnet_pl.weights_path` (resolved; null when ResNetPL is off). */
  readonly resnetPlWeightsPath: string | null;
  readonly lrG: number;
  readonly lrD: number;
  readonly gradientClipVal: number | null;
  readonly visualizeEachIters: number;
  readonly storeDiscrOutputsForVis: boolean;
  /** Stage 2 `training_model.generatorS2_path` / `generatorS1_path` (as written, relative to the working directory). */
  readonly generatorS2Path: string | null;
  readonly generatorS1Path: string | null;
  readonly data: {
    readonly batchSize: number;
    readonly trainDir: string;
    readonly outSize: number;
    readonly masks: MixedMaskOptions;
    readonly transformVariant: string;
    readonly valDir: string | null;
    readonly valSuffix: string;
  };
  readonly maxEpochs: number;
  readonly limitTrainBatches: number | null;
  /** The composed tree, interpolations unresolved (what is saved beside checkpoints). */
  readonly composed: Obj;
}

function isObj(v: Node | undefined): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function merge(base: Obj, over: Obj): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObj(out[k]) && isObj(v) ? merge(out[k] as Obj, v) : v;
  return out;
}

function readYaml(path: string): Obj {
  let v: unknown;
  try {
    v = parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new LamaConfigError(`${path}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (v === null || v === undefined) return {};
  if (!isObj(v as Node)) throw new LamaConfigError(`${path}: expected a mapping at the top level`);
  return v as Obj;
}

/** Composes a config file: its `defaults:` list (if any) resolved against the file's folder. */
export function composeLamaConfig(path: string): Obj {
  const top = readYaml(path);
  const defaults = top.defaults;
  delete top.defaults;
  if (defaults === undefined) return top;
  if (!Array.isArray(defaults)) throw new LamaConfigError(`${path}: 'defaults' must be a list`);
  let out = top;
  for (const d of defaults) {
    if (!isObj(d) || Object.keys(d).length !== 1) throw new LamaConfigError(`${path}: each 'defaults' entry must be 'group: name', got ${JSON.stringify(d)}`);
    const [group, name] = Object.entries(d)[0]!;
    if (group === 'hydra') continue; // Hydra's own settings (run directories): not part of the training config.
    if (typeof name !== 'string') throw new LamaConfigError(`${path}: defaults entry '${group}' needs a config name`);
    const file = join(dirname(path), group, `${name}.yaml`);
    if (!existsSync(file)) throw new LamaConfigError(`${path}: defaults entry '${group}: ${name}' needs ${file}, which does not exist`);
    out = merge(out, { [group]: readYaml(file) });
  }
  return out;
}

/** Reads values of a composed tree, resolving interpolations. */
class Reader {
  constructor(
    private readonly root: Obj,
    private readonly file: string,
    private readonly env: Readonly<Record<string, string | undefined>>,
  ) {}

  raw(path: string): Node | undefined {
    let v: Node | undefined = this.root;
    for (const p of path.split('.')) {
      if (!isObj(v)) return undefined;
      v = v[p];
    }
    return v;
  }

  resolve(v: Node | undefined, path: string, depth = 0): Node | undefined {
    if (typeof v !== 'string' || !v.includes('${')) return v;
    if (depth > 20) throw new LamaConfigError(`${this.file}: ${path}: interpolation loop`);
    const whole = /^\$\{([^}]+)\}$/.exec(v);
    const one = (ref: string): Node | undefined => {
      if (ref.startsWith('env:')) {
        const [name, dflt] = ref.slice(4).split(',').map((s) => s.trim());
        const val = this.env[name!] ?? dflt;
        if (val === undefined) throw new LamaConfigError(`${this.file}: ${path} is \${env:${name}}, but the environment variable ${name} is not set`);
        return val;
      }
      if (ref.includes(':')) throw new LamaConfigError(`${this.file}: ${path}: the resolver in '\${${ref}}' is not supported (only env: and key references)`);
      const target = this.raw(ref);
      if (target === undefined) throw new LamaConfigError(`${this.file}: ${path} refers to '${ref}', which is not in the config`);
      return this.resolve(target, ref, depth + 1);
    };
    if (whole) return one(whole[1]!);
    return v.replace(/\$\{([^}]+)\}/g, (_m, ref: string) => String(one(ref)));
  }

  get(path: string): Node | undefined {
    return this.resolve(this.raw(path), path);
  }

  num(path: string, dflt?: number): number {
    const v = this.get(path);
    if (v === undefined || v === null) {
      if (dflt === undefined) throw new LamaConfigError(`${this.file}: ${path} is missing`);
      return dflt;
    }
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isFinite(n)) throw new LamaConfigError(`${this.file}: ${path} must be a number, got ${JSON.stringify(v)}`);
    return n;
  }

  int(path: string, dflt?: number): number {
    const n = this.num(path, dflt);
    if (!Number.isInteger(n)) throw new LamaConfigError(`${this.file}: ${path} must be an integer, got ${n}`);
    return n;
  }

  bool(path: string, dflt: boolean): boolean {
    const v = this.get(path);
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') throw new LamaConfigError(`${this.file}: ${path} must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  str(path: string, dflt?: string | null): string | null {
    const v = this.get(path);
    if (v === undefined || v === null) {
      if (dflt === undefined) throw new LamaConfigError(`${this.file}: ${path} is missing`);
      return dflt;
    }
    if (typeof v !== 'string') throw new LamaConfigError(`${this.file}: ${path} must be a string, got ${JSON.stringify(v)}`);
    return v;
  }

  /** Fails on keys of `path` outside `known`. */
  keys(path: string, known: readonly string[]): void {
    const v = path ? this.raw(path) : this.root;
    if (v === undefined || v === null) return;
    if (!isObj(v)) throw new LamaConfigError(`${this.file}: ${path} must be a mapping`);
    for (const k of Object.keys(v)) {
      if (!known.includes(k)) throw new LamaConfigError(`${this.file}: unknown key '${path ? path + '.' : ''}${k}' (known: ${known.join(', ')})`);
    }
  }

  /** Fails unless `path` is absent or equals one of the accepted values (an option we do not implement otherwise). */
  only(path: string, accepted: readonly (Node | undefined)[], why: string): void {
    const v = this.get(path);
    if (!accepted.some((a) => JSON.stringify(a) === JSON.stringify(v))) throw new LamaConfigError(`${this.file}: ${path}: ${JSON.stringify(v)} is not supported (${why})`);
  }
}

const GENERATOR_KEYS = ['kind', 'n_encoder_res', 'inp_channels', 'out_channels', 'dim', 'num_blocks', 'num_refinement_blocks', 'heads', 'ffn_expansion_factor', 'bias', 'LayerNorm_type', 'dual_pixel_task', 'n_denoise_res', 'linear_start', 'linear_end', 'timesteps'];

function generatorConfig(r: Reader, key: string, kind: 'DiffIRS1' | 'DiffIRS2'): DiffIRConfig {
  r.keys(key, GENERATOR_KEYS);
  r.only(`${key}.kind`, [kind], `this stage's trainer builds ${kind}`);
  r.only(`${key}.inp_channels`, [undefined, 4], 'inpainting takes the masked image and the mask');
  r.only(`${key}.out_channels`, [undefined, 3], 'RGB output');
  r.only(`${key}.bias`, [undefined, false], 'the DiffIR networks have no conv biases');
  r.only(`${key}.dual_pixel_task`, [undefined, false], 'not an inpainting option');
  const list = (p: string): [number, number, number, number] => {
    const v = r.get(`${key}.${p}`);
    if (!Array.isArray(v) || v.length !== 4 || !v.every((x) => Number.isInteger(x))) throw new LamaConfigError(`${key}.${p} must be a list of 4 integers, got ${JSON.stringify(v)}`);
    return v as [number, number, number, number];
  };
  const ln = r.str(`${key}.LayerNorm_type`, 'WithBias');
  if (ln !== 'WithBias' && ln !== 'BiasFree') throw new LamaConfigError(`${key}.LayerNorm_type must be WithBias or BiasFree, got '${ln}'`);
  return {
    task: 'inpaint',
    scale: 1,
    dim: r.int(`${key}.dim`, 48),
    numBlocks: list('num_blocks'),
    numRefinementBlocks: r.int(`${key}.num_refinement_blocks`, 0),
    heads: list('heads'),
    ffnExpansionFactor: r.num(`${key}.ffn_expansion_factor`, 2.66),
    layerNormType: ln,
    nEncoderRes: r.int(`${key}.n_encoder_res`, 6),
    nDenoiseRes: r.int(`${key}.n_denoise_res`, 5),
    timesteps: r.int(`${key}.timesteps`, 4),
    linearStart: r.num(`${key}.linear_start`, 0.1),
    linearEnd: r.num(`${key}.linear_end`, 0.99),
  };
}

function maskOptions(r: Reader, key: string): MixedMaskOptions {
  r.keys(key, ['irregular_proba', 'irregular_kwargs', 'box_proba', 'box_kwargs', 'segm_proba']);
  r.only(`${key}.segm_proba`, [undefined, 0], 'segmentation masks need a detector');
  const irr = `${key}.irregular_kwargs`;
  const box = `${key}.box_kwargs`;
  r.keys(irr, ['max_angle', 'max_len', 'max_width', 'max_times', 'min_times']);
  r.keys(box, ['margin', 'bbox_min_size', 'bbox_max_size', 'max_times', 'min_times']);
  return {
    irregularProba: r.num(`${key}.irregular_proba`, 1 / 3),
    irregular: {
      maxAngle: r.num(`${irr}.max_angle`, 4),
      maxLen: r.num(`${irr}.max_len`, 60),
      maxWidth: r.num(`${irr}.max_width`, 20),
      maxTimes: r.int(`${irr}.max_times`, 10),
      minTimes: r.int(`${irr}.min_times`, 0),
    },
    boxProba: r.num(`${key}.box_proba`, 1 / 3),
    box: {
      margin: r.int(`${box}.margin`, 10),
      bboxMinSize: r.int(`${box}.bbox_min_size`, 30),
      bboxMaxSize: r.int(`${box}.bbox_max_size`, 100),
      maxTimes: r.int(`${box}.max_times`, 3),
      minTimes: r.int(`${box}.min_times`, 0),
    },
  } as MixedMaskOptions;
}

/**
 * Reads an official DiffIR-inpainting training config (composed or with `defaults:`).
 * `env` gives `${env:…}` values (default: the process environment).
 */
export function readLamaConfig(path: string, env: Readonly<Record<string, string | undefined>> = process.env): LamaConfig {
  if (!existsSync(path)) throw new LamaConfigError(`${path} does not exist`);
  const composed = composeLamaConfig(path);
  const r = new Reader(composed, path, env);
  r.keys('', ['run_title', 'training_model', 'losses', 'location', 'data', 'generator', 'generatorT', 'discriminator', 'optimizers', 'visualizer', 'evaluator', 'trainer']);
  r.keys('training_model', ['kind', 'visualize_each_iters', 'concat_mask', 'store_discr_outputs_for_vis', 'generatorS2_path', 'generatorS1_path', 'image_to_discriminator', 'rescale_scheduler_kwargs', 'add_noise_kwargs', 'noise_fill_hole', 'const_area_crop_kwargs', 'distance_weighter_kwargs', 'distance_weighted_mask_for_discr', 'fake_fakes_proba', 'fake_fakes_generator_kwargs', 'average_generator', 'generator_avg_beta', 'average_generator_start_step', 'average_generator_period', 'predict_only']);
  const kind = r.str('training_model.kind');
  if (kind !== 'defaultS1' && kind !== 'defaultS2') throw new LamaConfigError(`${path}: training_model.kind '${kind}' is not supported (defaultS1 or defaultS2)`);
  const stage = kind === 'defaultS1' ? 1 : 2;
  r.only('training_model.concat_mask', [undefined, true], 'DiffIR takes the mask as the 4th input channel');
  r.only('training_model.image_to_discriminator', [undefined, 'predicted_image'], 'the DiffIR configs use predicted_image');
  for (const k of ['rescale_scheduler_kwargs', 'add_noise_kwargs', 'const_area_crop_kwargs', 'distance_weighter_kwargs', 'fake_fakes_generator_kwargs']) r.only(`training_model.${k}`, [undefined, null], 'the DiffIR configs never set it');
  r.only('training_model.noise_fill_hole', [undefined, false], 'the DiffIR configs never set it');
  r.only('training_model.distance_weighted_mask_for_discr', [undefined, false], 'the DiffIR configs never set it');
  r.only('training_model.fake_fakes_proba', [undefined, 0], 'the DiffIR configs never set it');
  r.only('training_model.average_generator', [undefined, false], 'the DiffIR configs never set it');
  r.only('training_model.predict_only', [undefined, false], 'a training config');

  r.keys('losses', ['l1', 'perceptual', 'adversarial', 'feature_matching', 'resnet_pl', 'kd', 'mse']);
  r.keys('losses.l1', ['weight_missing', 'weight_known']);
  r.keys('losses.perceptual', ['weight']);
  r.only('losses.perceptual.weight', [undefined, 0], 'the VGG perceptual loss needs torchvision ImageNet VGG19 weights; the DiffIR configs set 0');
  r.only('losses.mse', [undefined, null], 'the DiffIR configs never set it');
  r.keys('losses.adversarial', ['kind', 'weight', 'gp_coef', 'mask_as_fake_target', 'allow_scale_mask', 'mask_scale_mode', 'extra_mask_weight_for_gen', 'use_unmasked_for_gen', 'use_unmasked_for_discr']);
  r.only('losses.adversarial.kind', ['r1'], 'NonSaturatingWithR1 is what the DiffIR configs use');
  r.only('losses.adversarial.mask_scale_mode', [undefined, 'nearest'], 'the DiffIR configs use nearest');
  r.only('losses.adversarial.extra_mask_weight_for_gen', [undefined, 0], 'the DiffIR configs never set it');
  r.only('losses.adversarial.use_unmasked_for_gen', [undefined, true], 'the DiffIR configs never set it');
  r.only('losses.adversarial.use_unmasked_for_discr', [undefined, true], 'the DiffIR configs never set it');
  r.keys('losses.feature_matching', ['weight', 'pass_mask']);
  r.only('losses.feature_matching.pass_mask', [undefined, false], 'the DiffIR configs never set it');
  r.keys('losses.resnet_pl', ['weight', 'weights_path', 'arch_encoder', 'segmentation']);
  r.only('losses.resnet_pl.arch_encoder', [undefined, 'resnet50dilated'], 'the ADE20k ResNet50-dilated encoder is what the configs use');
  r.only('losses.resnet_pl.segmentation', [undefined, true], 'the encoder weights come from the segmentation model');
  r.keys('losses.kd', ['loss_weight', 'temperature']);
  const resnetPl = r.num('losses.resnet_pl.weight', 0);
  const losses: InpaintLosses = {
    l1: { weightKnown: r.num('losses.l1.weight_known'), weightMissing: r.num('losses.l1.weight_missing') },
    adversarial: {
      weight: r.num('losses.adversarial.weight'),
      gpCoef: r.num('losses.adversarial.gp_coef', 5),
      maskAsFakeTarget: r.bool('losses.adversarial.mask_as_fake_target', false),
      allowScaleMask: r.bool('losses.adversarial.allow_scale_mask', false),
    },
    featureMatching: r.num('losses.feature_matching.weight', 0),
    resnetPl,
    ...(stage === 2 ? { kd: { weight: r.num('losses.kd.loss_weight', 1), temperature: r.num('losses.kd.temperature', 0.15) } } : {}),
  };
  if (losses.adversarial.weight <= 0) throw new LamaConfigError(`${path}: losses.adversarial.weight must be positive (training without the discriminator is not supported)`);

  r.keys('discriminator', ['kind', 'input_nc', 'ndf', 'n_layers']);
  r.only('discriminator.kind', ['pix2pixhd_nlayer'], 'the DiffIR configs use pix2pixhd_nlayer');
  const discriminator = { inputNc: r.int('discriminator.input_nc', 3), ndf: r.int('discriminator.ndf', 64), nLayers: r.int('discriminator.n_layers', 3) };
  if (discriminator.inputNc !== 3) throw new LamaConfigError(`${path}: discriminator.input_nc must be 3 (it sees RGB images), got ${discriminator.inputNc}`);

  r.keys('optimizers', ['generator', 'discriminator']);
  for (const o of ['generator', 'discriminator']) {
    r.keys(`optimizers.${o}`, ['kind', 'lr']);
    r.only(`optimizers.${o}.kind`, ['adam'], 'the DiffIR configs use adam');
  }
  r.keys('trainer', ['kwargs', 'checkpoint_kwargs']);
  r.keys('trainer.kwargs', ['gpus', 'accelerator', 'max_epochs', 'gradient_clip_val', 'log_gpu_memory', 'limit_train_batches', 'val_check_interval', 'log_every_n_steps', 'precision', 'terminate_on_nan', 'check_val_every_n_epoch', 'num_sanity_val_steps', 'replace_sampler_ddp', 'resume_from_checkpoint', 'limit_val_batches']);
  r.only('trainer.kwargs.precision', [undefined, 32], 'training runs in float32');
  const clip = r.num('trainer.kwargs.gradient_clip_val', 0);

  r.keys('data', ['batch_size', 'val_batch_size', 'num_workers', 'train', 'val', 'visual_test', 'extra_val']);
  r.keys('data.train', ['indir', 'out_size', 'mask_gen_kwargs', 'transform_variant', 'dataloader_kwargs', 'kind', 'mask_generator_kind']);
  r.only('data.train.kind', [undefined, 'default'], 'the DiffIR configs read image folders');
  r.only('data.train.mask_generator_kind', [undefined, 'mixed'], 'the DiffIR configs use the mixed generator');
  const tv = r.str('data.train.transform_variant', 'default')!;
  if (!['distortions', 'no_augs', 'default'].includes(tv)) throw new LamaConfigError(`${path}: data.train.transform_variant '${tv}' is not supported (distortions, no_augs or default)`);
  const lr = (o: string) => r.num(`optimizers.${o}.lr`);
  const s2Path = stage === 2 ? r.str('training_model.generatorS2_path', null) : null;
  const s1Path = stage === 2 ? r.str('training_model.generatorS1_path', null) : null;
  return {
    stage,
    generator: generatorConfig(r, 'generator', stage === 1 ? 'DiffIRS1' : 'DiffIRS2'),
    ...(stage === 2 ? { teacher: generatorConfig(r, 'generatorT', 'DiffIRS1') } : {}),
    discriminator,
    losses,
    resnetPlWeightsPath: resnetPl > 0 ? r.str('losses.resnet_pl.weights_path') : null,
    lrG: lr('generator'),
    lrD: lr('discriminator'),
    gradientClipVal: clip > 0 ? clip : null,
    visualizeEachIters: r.int('training_model.visualize_each_iters', 100),
    storeDiscrOutputsForVis: r.bool('training_model.store_discr_outputs_for_vis', false),
    generatorS2Path: s2Path,
    generatorS1Path: s1Path,
    data: {
      batchSize: r.int('data.train.dataloader_kwargs.batch_size', r.int('data.batch_size', 1)),
      trainDir: r.str('data.train.indir')!,
      outSize: r.int('data.train.out_size', 256),
      masks: maskOptions(r, 'data.train.mask_gen_kwargs'),
      transformVariant: tv,
      valDir: r.str('data.val.indir', null),
      valSuffix: r.str('data.val.img_suffix', '.png')!,
    },
    maxEpochs: r.int('trainer.kwargs.max_epochs', 1000),
    limitTrainBatches: r.raw('trainer.kwargs.limit_train_batches') === undefined ? null : r.int('trainer.kwargs.limit_train_batches'),
    composed,
  };
}

/** True when a YAML file is a LaMa-style training config (has `training_model`), not a BasicSR option file. */
export function isLamaConfig(path: string): boolean {
  try {
    const top = readYaml(path);
    return 'training_model' in top;
  } catch {
    return false;
  }
}

/**
 * Where ResNetPL's encoder weights are, as the official code looks for them:
 * `<weights_path>/ade20k/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth`.
 */
export function resnetPlWeightsFile(weightsPath: string): string {
  return join(weightsPath, 'ade20k', 'ade20k-resnet50dilated-ppm_deepsup', 'encoder_epoch_20.pth');
}
