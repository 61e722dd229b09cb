/**
 * BasicSR-style training option files (`diffir train -opt options.yml`).
 *
 * `readOptions` parses the YAML (PyYAML's YAML 1.1 rules, duplicate keys refused) and checks
 * it against the schema of every key the official DiffIR training files use — RealSR, SRGAN
 * and deblurring, GAN stage included — plus BasicSR's generic ones. Unknown keys and values
 * of the wrong type are errors naming the key and its line. `resolveOptions` then turns the
 * options into a training plan and refuses, naming the keys, what contradicts itself
 * (e.g. `scale` vs `network_g.scale`) and what this implementation does not run yet
 * (the GAN stage, LMDB storage, ...).
 *
 * Extensions (not in BasicSR, all optional): `network_g.task` (sr | deblur | inpaint, normally
 * inferred), `train.lr_rule` (manual | scheduler, see below), `train.grad_clip_norm`,
 * `datasets.train.crop_pad_size` (RealESRGANDataset's GT crop before degrading, hard-coded 400
 * in BasicSR) and a missing `datasets.train.meta_info` (RealESRGANDataset lists the folder).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, type ScalarTag } from 'yaml';
import { checkMix, mildOptions, type DegradationMix, type MildOptions } from '../data/degrade/mild.js';
import { realESRGANOptionsFromBasicSR, REALESRGAN_CROP_PAD_SIZE, REALESRGAN_QUEUE_SIZE, type RealESRGANOptions } from '../data/degrade/realesrgan.js';
import { type DiffIRConfig, type Task, padMultiple, validateConfig } from '../models/config.js';
import { OptionError, check, s, type Schema } from './schema.js';
import { type GanPlan, resolveGan } from './gan-options.js';
import { type ManualRule, type ProgressiveSpec, type SchedulerSpec, SCHEDULER_TYPES } from './schedule.js';

export { OptionError } from './schema.js';

// ------------------------------------------------------------------------------ schema

const range2 = s.list(s.num(), 2);

/** `network_g` / `network_S1`: DiffIRS1 / DiffIRS2 constructor arguments. */
const NETWORK = s.obj({
  type: s.str(),
  n_encoder_res: s.int(0),
  inp_channels: s.int(1),
  out_channels: s.int(1),
  scale: s.int(1),
  dim: s.int(1),
  num_blocks: s.list(s.int(0), 4),
  num_refinement_blocks: s.int(0),
  heads: s.list(s.int(1), 4),
  ffn_expansion_factor: s.num(),
  bias: s.bool(),
  LayerNorm_type: s.oneOf('WithBias', 'BiasFree'),
  n_denoise_res: s.int(0),
  linear_start: s.num(),
  linear_end: s.num(),
  timesteps: s.int(1),
  task: s.oneOf('sr', 'deblur', 'inpaint'),
});

/** A dataset under `datasets`: the paired datasets, the Real-ESRGAN one, and loader settings. */
const DATASET = s.obj({
  name: s.str(),
  type: s.str(),
  phase: s.str(),
  scale: s.int(1),
  dataroot_gt: s.nullable(s.str()),
  dataroot_lq: s.nullable(s.str()),
  meta_info_file: s.nullable(s.str()),
  meta_info: s.nullable(s.str()),
  filename_tmpl: s.str(),
  io_backend: s.obj({ type: s.str(), db_paths: s.any(), client_keys: s.any() }),
  mean: s.nullable(s.list(s.num(), 3)),
  std: s.nullable(s.list(s.num(), 3)),
  color: s.nullable(s.str()),
  gt_size: s.int(1),
  use_hflip: s.bool(),
  use_flip: s.bool(),
  use_rot: s.bool(),
  geometric_augs: s.bool(),
  use_shuffle: s.bool(),
  num_worker_per_gpu: s.int(0),
  batch_size_per_gpu: s.int(1),
  dataset_enlarge_ratio: s.int(1),
  prefetch_mode: s.nullable(s.oneOf('cpu', 'cuda')),
  pin_memory: s.bool(),
  persistent_workers: s.bool(),
  mini_batch_sizes: s.list(s.int(1)),
  iters: s.list(s.int(0)),
  gt_sizes: s.list(s.int(1)),
  // Real-ESRGAN kernels (RealESRGANDataset)
  blur_kernel_size: s.int(1),
  kernel_list: s.list(s.str()),
  kernel_prob: s.list(s.num(0)),
  sinc_prob: s.num(0),
  blur_sigma: range2,
  betag_range: range2,
  betap_range: range2,
  blur_kernel_size2: s.int(1),
  kernel_list2: s.list(s.str()),
  kernel_prob2: s.list(s.num(0)),
  sinc_prob2: s.num(0),
  blur_sigma2: range2,
  betag_range2: range2,
  betap_range2: range2,
  final_sinc_prob: s.num(0),
  /** Ours: RealESRGANDataset's GT crop (or reflect pad) size before degrading (BasicSR hard-codes 400). */
  crop_pad_size: s.int(1),
  /** Ours: RealESRGANDataset's shares of clean bicubic, mild and Real-ESRGAN samples (default: Real-ESRGAN only). */
  degradation_mix: s.obj({ bicubic: s.num(0), mild: s.num(0), realesrgan: s.num(0) }),
  /** Ours: ranges of the mix's mild kind (src/data/degrade/mild.ts). */
  mild_blur_prob: s.num(0),
  mild_blur_sigma: range2,
  mild_noise_prob: s.num(0),
  mild_noise_range: range2,
  mild_gray_noise_prob: s.num(0),
  mild_jpeg_prob: s.num(0),
  mild_jpeg_range: range2,
});

const OPTIM = s.obj({ type: s.str(), lr: s.num(0), weight_decay: s.num(0), betas: s.list(s.num(0), 2), eps: s.num(0), amsgrad: s.bool() });

const LOSS = s.obj({ type: s.str(), loss_weight: s.num(), reduction: s.oneOf('none', 'mean', 'sum'), eps: s.num(0) });

/** The whole option file. */
export const OPTIONS_SCHEMA: Schema = s.obj({
  name: s.str(),
  model_type: s.str(),
  scale: s.int(1),
  num_gpu: s.union(s.oneOf('auto'), s.int(0)),
  manual_seed: s.nullable(s.int()),
  find_unused_parameters: s.bool(),
  // Real-ESRGAN on-the-fly degradation (RealESRNetModel / RealESRGANModel options)
  high_order_degradation: s.bool(),
  gt_usm: s.bool(),
  // DiffIRGANS2Model tests `is False`: any other value (0, ~, true) selects the USM target.
  l1_gt_usm: s.any(),
  percep_gt_usm: s.any(),
  gan_gt_usm: s.any(),
  resize_prob: s.list(s.num(0), 3),
  resize_range: range2,
  gaussian_noise_prob: s.num(0),
  noise_range: range2,
  poisson_scale_range: range2,
  gray_noise_prob: s.num(0),
  jpeg_range: range2,
  second_blur_prob: s.num(0),
  resize_prob2: s.list(s.num(0), 3),
  resize_range2: range2,
  gaussian_noise_prob2: s.num(0),
  noise_range2: range2,
  poisson_scale_range2: range2,
  gray_noise_prob2: s.num(0),
  jpeg_range2: range2,
  gt_size: s.int(1),
  queue_size: s.int(1),
  datasets: s.dict(DATASET, /^(train|val(_.*)?)$/, "dataset phases are 'train', 'val' and 'val_<n>'"),
  network_g: NETWORK,
  network_S1: NETWORK,
  network_d: s.obj({ type: s.str(), num_in_ch: s.int(1), num_feat: s.int(1), skip_connection: s.bool() }),
  path: s.obj({
    pretrain_network_g: s.nullable(s.str()),
    pretrain_network_S1: s.nullable(s.str()),
    pretrain_network_d: s.nullable(s.str()),
    param_key_g: s.nullable(s.str()),
    param_key_d: s.nullable(s.str()),
    strict_load_g: s.bool(),
    strict_load_d: s.bool(),
    resume_state: s.nullable(s.str()),
    ignore_resume_networks: s.nullable(s.union(s.str(), s.list(s.str()))),
    experiments_root: s.nullable(s.str()),
  }),
  train: s.obj({
    ema_decay: s.num(0),
    optim_g: OPTIM,
    optim_d: OPTIM,
    scheduler: s.obj({
      type: s.str(),
      milestones: s.list(s.int(0)),
      gamma: s.num(0),
      restarts: s.list(s.int(0)),
      restart_weights: s.list(s.num(0)),
      periods: s.list(s.int(1)),
      eta_min: s.num(0),
      eta_mins: s.list(s.num(0)),
    }),
    total_iter: s.int(1),
    warmup_iter: s.int(),
    encoder_iter: s.int(0),
    lr_encoder: s.num(0),
    lr_sr: s.num(0),
    gamma_encoder: s.num(0),
    gamma_sr: s.num(0),
    lr_decay_encoder: s.int(1),
    lr_decay_sr: s.int(1),
    lr_rule: s.oneOf('manual', 'scheduler'),
    mixing_augs: s.obj({ mixup: s.bool(), mixup_beta: s.num(0), use_identity: s.bool() }),
    use_grad_clip: s.bool(),
    grad_clip_norm: s.num(0),
    pixel_opt: LOSS,
    kd_opt: s.obj({ type: s.str(), loss_weight: s.num(), temperature: s.num(0) }),
    perceptual_opt: s.any(),
    gan_opt: s.any(),
    net_d_iters: s.int(1),
    net_d_init_iters: s.int(0),
  }),
  val: s.obj({
    window_size: s.int(0),
    val_freq: s.int(1),
    save_img: s.bool(),
    suffix: s.nullable(s.str()),
    pbar: s.bool(),
    metrics: s.dict(s.obj({ type: s.str(), crop_border: s.int(0), test_y_channel: s.bool(), better: s.oneOf('higher', 'lower'), input_order: s.oneOf('HWC', 'CHW') })),
  }),
  logger: s.obj({
    print_freq: s.int(1),
    save_checkpoint_freq: s.int(1),
    use_tb_logger: s.bool(),
    wandb: s.nullable(s.obj({ project: s.nullable(s.str()), resume_id: s.nullable(s.str()), entity: s.nullable(s.str()) })),
  }),
  dist_params: s.obj({ backend: s.str(), port: s.int(0) }),
});

/**
 * The schema of a test option file (`diffir test`, BasicSR's test.py): the same keys, with
 * `test_<n>` dataset phases, and ours: `img_suffix` of LaMa's InpaintingDataset and `net`
 * (alex|vgg) of a calculate_lpips metric.
 */
export const TEST_OPTIONS_SCHEMA: Schema = (() => {
  type Obj = Extract<Schema, { t: 'obj' }>;
  const o = OPTIONS_SCHEMA as Obj;
  const val = o.fields.val as Obj;
  const metric = (val.fields.metrics as Extract<Schema, { t: 'dict' }>).of as Obj;
  return s.obj({
    ...o.fields,
    datasets: s.dict(s.obj({ ...(DATASET as Obj).fields, img_suffix: s.str() }), /^(val|test)(_.*)?$/, "test dataset phases are 'test_<n>', 'val' and 'val_<n>'"),
    val: s.obj({ ...val.fields, metrics: s.dict(s.obj({ ...metric.fields, net: s.oneOf('alex', 'vgg') })) }),
  });
})();

// ------------------------------------------------------------------------------ reading

/** A checked option file: the plain values (keys as in the file) and where they came from. */
export interface OptionFile {
  readonly file: string;
  readonly opt: Record<string, unknown>;
  /** `file:line: ` for a key path (empty when unknown), for error messages. */
  readonly where: (path: readonly (string | number)[]) => string;
}

/** A plain decimal number as YAML writes it (`300`, `2e-4`, `.5`), for `!!float` and `--force_yml` values. */
const NUMBER_TEXT = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/** Parses a `--force_yml` override value as BasicSR does (`~`/none, true/false, numbers, lists, strings). */
export function parseOverrideValue(v: string): unknown {
  const t = v.trim();
  if (t === '~' || t.toLowerCase() === 'none') return null;
  if (t.toLowerCase() === 'true') return true;
  if (t.toLowerCase() === 'false') return false;
  if (t.startsWith('!!float')) return Number(t.slice(7));
  if (NUMBER_TEXT.test(t)) return Number(t);
  if (t.startsWith('[')) {
    try {
      return JSON.parse(t.replace(/'/g, '"'));
    } catch {
      throw new OptionError(`--force_yml: cannot read the list '${t}'`, '');
    }
  }
  return t;
}

/**
 * Reads and checks an option file. `overrides` are BasicSR `--force_yml` entries
 * (`train:ema_decay=0.999`): the path must exist up to its last key.
 */
export function readOptions(file: string, overrides: readonly string[] = [], schema: Schema = OPTIONS_SCHEMA): OptionFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new OptionError(`${file}: cannot read the option file (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`, '');
  }
  return parseOptions(text, file, overrides, schema);
}

/**
 * `!!float` as PyYAML (BasicSR's reader) resolves it: any number, so `val_freq: !!float 300` is
 * 300. The YAML 1.1 schema of the `yaml` package only accepts a float-looking text there and
 * warns on the rest.
 */
const PY_FLOAT: ScalarTag = {
  tag: 'tag:yaml.org,2002:float',
  resolve(text, onError) {
    const t = text.replace(/_/g, '');
    const special = /^([-+]?)\.(inf|nan)$/i.exec(t);
    if (special) return special[2]!.toLowerCase() === 'nan' ? NaN : special[1] === '-' ? -Infinity : Infinity;
    const v = NUMBER_TEXT.test(t) ? Number(t) : NaN;
    if (Number.isNaN(v)) onError(`!!float ${text} is not a number`);
    return v;
  },
};

/** {@link readOptions} on the text of a file. */
export function parseOptions(text: string, file = 'options.yml', overrides: readonly string[] = [], schema: Schema = OPTIONS_SCHEMA): OptionFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { version: '1.1', uniqueKeys: true, lineCounter: lines, prettyErrors: false, customTags: (tags) => [...tags, PY_FLOAT] });
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
    throw new OptionError(`${file}${pos ? `:${pos.line}` : ''}: ${e.message.split('\n')[0]}`, '');
  }
  const where = (path: readonly (string | number)[]): string => {
    for (let n = path.length; n > 0; n--) {
      const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      const pair = n === path.length ? findKeyNode(doc, path) : undefined;
      const at = pair ?? node?.range?.[0];
      if (at !== undefined) return `${file}:${lines.linePos(at).line}: `;
    }
    return `${file}: `;
  };
  const raw = doc.toJS() as unknown;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new OptionError(`${file}: an option file must be a mapping of options`, '');
  const opt = raw as Record<string, unknown>;
  for (const entry of overrides) {
    const eq = entry.indexOf('=');
    if (eq < 0) throw new OptionError(`--force_yml '${entry}': expected key:subkey=value`, '');
    const keys = entry.slice(0, eq).trim().split(':');
    let node = opt;
    for (const k of keys.slice(0, -1)) {
      const next = node[k];
      if (typeof next !== 'object' || next === null || Array.isArray(next)) throw new OptionError(`--force_yml '${entry}': '${keys.join('.')}' is not in ${file}`, keys.join('.'));
      node = next as Record<string, unknown>;
    }
    node[keys.at(-1)!] = parseOverrideValue(entry.slice(eq + 1));
  }
  const checked = check(opt, schema, [], where) as Record<string, unknown>;
  return { file, opt: checked, where };
}

function findKeyNode(doc: ReturnType<typeof parseDocument>, path: readonly (string | number)[]): number | undefined {
  const parent = path.length > 1 ? (doc.getIn(path.slice(0, -1), true) as unknown) : doc.contents;
  const items = (parent as { items?: { key?: { value?: unknown; range?: [number, number, number] } }[] } | null)?.items;
  const last = path.at(-1);
  const item = items?.find((it) => it.key?.value === last);
  return item?.key?.range?.[0];
}

// ------------------------------------------------------------------------------ resolution

/** Where training data comes from and how it is augmented (one `datasets.*` entry). */
export interface DatasetPlan {
  /** `datasets.train`, `datasets.val_1`, ... */
  readonly key: string;
  readonly name: string;
  readonly type: string;
  readonly phase: 'train' | 'val';
  readonly scale: number;
  /** Absolute folders. */
  readonly gtRoot: string;
  readonly lqRoot: string;
  readonly metaInfoFile: string | null;
  readonly filenameTmpl: string;
  /** Train: GT patch size (the largest, with progressive training). */
  readonly gtSize: number;
  readonly useHflip: boolean;
  readonly useRot: boolean;
  /** Restormer's 8 dihedral augmentations (DeblurPairedDataset `geometric_augs`). */
  readonly geometricAugs: boolean;
  readonly useShuffle: boolean;
  /** Per-device batch (`batch_size_per_gpu`). */
  readonly batchSize: number;
  readonly enlargeRatio: number;
  readonly progressive: ProgressiveSpec | null;
  /** The entry as written, for dataset types registered later. */
  readonly raw: Readonly<Record<string, unknown>>;
  /** RealESRGANDataset: the on-the-fly degradation and its training-pair pool. */
  readonly realesrgan?: RealESRGANPlan;
}

/** How a RealESRGANDataset makes its pairs (the dataset keys and the model keys of the file). */
export interface RealESRGANPlan {
  /** Every degradation parameter (kernels from `datasets.train`, the rest from the top level). */
  readonly degradation: RealESRGANOptions;
  /** Training-pair pool capacity per device (`queue_size`, default 180). */
  readonly queueSize: number;
  /** GT crop (or reflect pad) size before degrading (`crop_pad_size`, ours; BasicSR's 400). */
  readonly cropPadSize: number;
  /** `meta_info`: GT files relative to `dataroot_gt` (first word of each line); null lists the folder. */
  readonly metaInfo: string | null;
  /** `degradation_mix` (ours): shares of clean bicubic, mild and Real-ESRGAN samples; null for Real-ESRGAN only. */
  readonly mix: DegradationMix | null;
  /** `mild_*` (ours): the mild kind's ranges. */
  readonly mild: Partial<MildOptions>;
}

/** A validation metric (`val.metrics.<name>`). */
export interface MetricPlan {
  readonly name: string;
  readonly type: 'psnr' | 'ssim';
  readonly cropBorder: number;
  readonly testYChannel: boolean;
  readonly better: 'higher' | 'lower';
}

/** Everything a training run needs, resolved from an option file. */
export interface TrainPlan {
  readonly file: string;
  readonly name: string;
  readonly modelType: 'DiffIRS1Model' | 'DiffIRS2Model' | 'DiffIRGANS2Model';
  readonly stage: 1 | 2;
  /** The model being trained (`network_g`). */
  readonly config: DiffIRConfig;
  /** The stage-1 teacher (`network_S1`), stage 2 only. */
  readonly teacherConfig: DiffIRConfig | null;
  readonly seed: number;
  /** `num_gpu`: devices whose gradients BasicSR would average (simulated by gradient accumulation); 'auto' is 1. */
  readonly worldSize: number;
  readonly train: DatasetPlan;
  readonly val: readonly DatasetPlan[];
  readonly experimentsRoot: string;
  readonly pretrainG: string | null;
  readonly pretrainS1: string | null;
  readonly paramKeyG: string;
  readonly strictLoadG: boolean;
  readonly resumeState: string | null;
  readonly optim: { readonly type: 'Adam' | 'AdamW'; readonly lr: number; readonly betas: readonly [number, number]; readonly weightDecay: number; readonly eps: number };
  readonly scheduler: SchedulerSpec;
  readonly totalIter: number;
  readonly warmupIter: number;
  /**
   * Stage 2: 'manual' sets the lr by the official models' per-phase rules (RealSR and
   * deblurring code); 'scheduler' uses `train.scheduler` for both optimizers (the SRGAN code,
   * where the manual rules are commented out).
   */
  readonly lrRule: 'manual' | 'scheduler';
  readonly manual: ManualRule | null;
  readonly emaDecay: number;
  readonly pixel: { readonly type: 'L1Loss' | 'MSELoss' | 'CharbonnierLoss'; readonly weight: number; readonly reduction: 'mean' | 'sum'; readonly eps: number };
  readonly kd: { readonly weight: number; readonly temperature: number } | null;
  /** Max gradient norm for clipping (Restormer's `use_grad_clip` is 0.01), or null. */
  readonly gradClip: number | null;
  readonly mixup: { readonly beta: number; readonly useIdentity: boolean } | null;
  readonly valFreq: number | null;
  readonly windowSize: number;
  readonly saveImg: boolean;
  readonly metrics: readonly MetricPlan[];
  readonly printFreq: number;
  readonly checkpointFreq: number;
  /** Options that were read but have no effect here, one line each. */
  readonly notices: readonly string[];
  /** DiffIRGANS2Model: the discriminator, its optimizer and the GAN-stage losses; null otherwise. */
  readonly gan: GanPlan | null;
}

/** What `resolveOptions` needs besides the file. */
export interface ResolveContext {
  /** Folder relative paths are taken from (BasicSR: the working directory). Default: cwd. */
  readonly cwd?: string;
  /** BasicSR `--debug`: name prefixed `debug_`, print every iteration, checkpoint and validate every 8. */
  readonly debug?: boolean;
}

/** Dataset types registered besides the paired ones (see `registerDataset` in data.ts). */
export const extraDatasetTypes = new Set<string>();

/** Dataset types this implementation runs, and the ones it knows but cannot run yet (with why). */
export const PAIRED_DATASET_TYPES = ['PairedImageDataset', 'DeblurPairedDataset'] as const;
/** Training datasets that synthesise their LQ on the fly (see realesrgan-data.ts). */
export const SYNTHETIC_DATASET_TYPES = ['RealESRGANDataset'] as const;
const PLANNED_DATASET_TYPES: Record<string, string> = {
  RealESRGANPairedDataset: 'the Real-ESRGAN paired dataset, not yet wired into the trainer',
};

/** A problem found while resolving: the key and the message. */
interface Problem {
  readonly key: string;
  readonly message: string;
}

/** The model types we train (stage 1, stage 2, the GAN stage), and other GAN models we know. */
const MODEL_TYPES = { DiffIRS1Model: 1, DiffIRS2Model: 2, DiffIRGANS2Model: 2 } as const;
const OTHER_GAN_MODEL_TYPES = ['RealESRGANModel', 'SRGANModel'];

type Opt = Record<string, unknown>;
const obj = (v: unknown): Opt => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Opt) : {});

/** Infers the task from the option file: explicit `network_g.task`, else SR when a scale is set. */
function inferTask(opt: Opt, net: Opt): Task {
  if (typeof net.task === 'string') return net.task as Task;
  if (net.scale !== undefined || (opt.scale as number | undefined ?? 1) > 1) return 'sr';
  return 'deblur';
}

/** DiffIRConfig from a `network_*` entry (official defaults for missing keys). */
function networkConfig(net: Opt, task: Task, stage: 1 | 2, key: string, problems: Problem[]): DiffIRConfig {
  const num = (k: string, d: number) => (net[k] === undefined ? d : (net[k] as number));
  const scale = task === 'sr' ? num('scale', 4) : 1;
  const cfg: DiffIRConfig = {
    task,
    scale: scale as 1 | 2 | 4,
    dim: num('dim', 48),
    numBlocks: (net.num_blocks as [number, number, number, number] | undefined) ?? [4, 6, 6, 8],
    numRefinementBlocks: num('num_refinement_blocks', 4),
    heads: (net.heads as [number, number, number, number] | undefined) ?? [1, 2, 4, 8],
    ffnExpansionFactor: num('ffn_expansion_factor', 2.66),
    layerNormType: (net.LayerNorm_type as 'WithBias' | 'BiasFree' | undefined) ?? 'WithBias',
    nEncoderRes: num('n_encoder_res', 6),
    nDenoiseRes: num('n_denoise_res', 1),
    timesteps: num('timesteps', 4),
    linearStart: num('linear_start', 0.1),
    linearEnd: num('linear_end', 0.99),
  };
  const want = stage === 1 ? 'DiffIRS1' : 'DiffIRS2';
  if (net.type !== want) problems.push({ key: `${key}.type`, message: `'${String(net.type)}' where ${want} is needed` });
  if (net.bias === true) problems.push({ key: `${key}.bias`, message: 'true is not supported (every released DiffIR model uses bias: False)' });
  const inCh = task === 'inpaint' ? 4 : 3;
  if (net.inp_channels !== undefined && net.inp_channels !== 3 && task !== 'inpaint') problems.push({ key: `${key}.inp_channels`, message: `${String(net.inp_channels)} is not supported (the models take ${inCh} channels)` });
  if (net.out_channels !== undefined && net.out_channels !== 3) problems.push({ key: `${key}.out_channels`, message: `${String(net.out_channels)} is not supported (the models output RGB)` });
  if (task === 'sr' && ![1, 2, 4].includes(scale)) problems.push({ key: `${key}.scale`, message: `${scale} is not a DiffIR scale (1, 2 or 4)` });
  try {
    validateConfig(cfg);
  } catch (e) {
    problems.push({ key, message: e instanceof Error ? e.message : String(e) });
  }
  return cfg;
}

/** Keys of the Real-ESRGAN degradation that sit in `datasets.train` (the rest are top-level model keys). */
const REALESRGAN_DATASET_KEYS = new Set([
  'blur_kernel_size', 'kernel_list', 'kernel_prob', 'sinc_prob', 'blur_sigma', 'betag_range', 'betap_range',
  'blur_kernel_size2', 'kernel_list2', 'kernel_prob2', 'sinc_prob2', 'blur_sigma2', 'betag_range2', 'betap_range2', 'final_sinc_prob',
]);

/**
 * The RealESRGANDataset of `datasets.train` with the Real-ESRGAN keys of the file: the kernels in
 * the dataset, the degradation and the pool at the top level (RealESRNetModel's options, which
 * DiffIR's RealSR DiffIRS1Model / DiffIRS2Model share).
 */
function resolveRealESRGAN(
  opt: Opt,
  d: Opt,
  key: string,
  scale: number,
  gtSize: number,
  batchSize: number,
  stage: 1 | 2,
  isGan: boolean,
  problems: Problem[],
  notices: string[],
  abs: (p: string) => string,
): RealESRGANPlan {
  const at = (k: string) => (REALESRGAN_DATASET_KEYS.has(k) || k === 'crop_pad_size' ? `${key}.${k}` : k);
  if (!d.dataroot_gt) problems.push({ key: `${key}.dataroot_gt`, message: 'is required (the folder of GT images)' });
  if (d.meta_info_file != null) problems.push({ key: `${key}.meta_info_file`, message: "is not read by RealESRGANDataset (its file list is 'meta_info')" });
  if (d.dataroot_lq != null) notices.push(`${key}.dataroot_lq: ignored by RealESRGANDataset (the LQ is synthesised from the GT)`);
  for (const k of ['iters', 'mini_batch_sizes', 'gt_sizes']) {
    if (d[k] !== undefined) problems.push({ key: `${key}.${k}`, message: 'progressive patches are not supported with RealESRGANDataset' });
  }
  if (opt.high_order_degradation === false) {
    problems.push({ key: 'high_order_degradation', message: 'false trains on paired LQ images, which RealESRGANDataset does not provide (use PairedImageDataset)' });
  }
  const flags = ['l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm'].filter((k) => opt[k] !== undefined);
  if (flags.length && !isGan) notices.push(`${flags.join(', ')}: GAN-stage options; DiffIRS${stage}Model does not use them`);
  // Ranges are [low, high]; probabilities of a choice must not all be zero.
  for (const [k, v] of [...Object.entries(opt), ...Object.entries(d)]) {
    if (/_range2?$|^blur_sigma2?$/.test(k) && Array.isArray(v) && (v[0] as number) > (v[1] as number)) problems.push({ key: at(k), message: `[${v.join(', ')}] is not a [low, high] range` });
    if (/^(resize_prob|kernel_prob)2?$/.test(k) && Array.isArray(v) && !(v as number[]).some((x) => x > 0)) problems.push({ key: at(k), message: 'needs a positive probability' });
  }
  let degradation: RealESRGANOptions | null = null;
  try {
    // DiffIRGANS2Model.feed_data blurs USM(GT) first when `l1_gt_usm` is truthy; the targets are made by the trainer.
    degradation = { ...realESRGANOptionsFromBasicSR({ ...opt, scale, gt_size: gtSize || undefined }), usmTarget: false, degradeFromUsm: isGan && Boolean(opt.l1_gt_usm) };
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).replace(/^Real-ESRGAN degradation: /, '');
    const word = /^(\w+)/.exec(msg)?.[1] ?? '';
    const k = word.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    // gt_size and scale are checked (and named) above.
    if (k !== 'gt_size' && k !== 'scale') problems.push({ key: at(k || key), message: msg.slice(word.length).trim() || msg });
  }
  const queueSize = (opt.queue_size as number | undefined) ?? REALESRGAN_QUEUE_SIZE;
  if (queueSize % batchSize !== 0) problems.push({ key: 'queue_size', message: `${queueSize} should be divisible by batch_size_per_gpu ${batchSize} (the training-pair pool swaps whole batches)` });
  const cropPadSize = (d.crop_pad_size as number | undefined) ?? REALESRGAN_CROP_PAD_SIZE;
  if (cropPadSize % scale !== 0) problems.push({ key: `${key}.crop_pad_size`, message: `${cropPadSize} is not a multiple of the scale ${scale}` });
  else if (gtSize > cropPadSize) problems.push({ key: at(d.crop_pad_size !== undefined ? 'crop_pad_size' : 'gt_size'), message: `gt_size ${gtSize} is larger than the ${cropPadSize}-pixel GT crop the degradation starts from` });
  else if (degradation) {
    // The first resize may shrink the crop to resize_range[0]; the blur kernels need more than half their size.
    const smallest = Math.min(Math.floor(cropPadSize * degradation.resizeRange[0]), Math.floor(cropPadSize / scale));
    const half = (degradation.blurKernelSize - 1) / 2;
    if (smallest <= half) problems.push({ key: `${key}.crop_pad_size`, message: `${cropPadSize} is too small for these ranges: the image can shrink to ${smallest} pixels, the ${degradation.blurKernelSize}×${degradation.blurKernelSize} kernels need more than ${half}` });
  }
  let mix: DegradationMix | null = null;
  if (d.degradation_mix != null) {
    try {
      mix = checkMix(d.degradation_mix as Record<string, unknown>);
    } catch (e) {
      problems.push({ key: `${key}.degradation_mix`, message: (e instanceof Error ? e.message : String(e)).replace(/^degradation mix: /, '') });
    }
  }
  const mild: Partial<MildOptions> = {};
  const mildKeys = { mild_blur_prob: 'blurProb', mild_blur_sigma: 'blurSigma', mild_noise_prob: 'noiseProb', mild_noise_range: 'noiseRange', mild_gray_noise_prob: 'grayNoiseProb', mild_jpeg_prob: 'jpegProb', mild_jpeg_range: 'jpegRange' } as const;
  for (const [k, field] of Object.entries(mildKeys)) if (d[k] !== undefined) (mild as Record<string, unknown>)[field] = d[k];
  if (Object.keys(mild).length) {
    if (!mix || mix.mild === 0) notices.push(`${key}.mild_*: used only when degradation_mix gives the mild kind a share`);
    try {
      mildOptions(mild);
    } catch (e) {
      const msg = (e instanceof Error ? e.message : String(e)).replace(/^mild degradation: /, '');
      const field = /^(\w+)/.exec(msg)?.[1] ?? '';
      const k = Object.entries(mildKeys).find(([, f]) => f === field)?.[0];
      problems.push({ key: `${key}.${k ?? 'mild_blur_sigma'}`, message: k ? msg.slice(field.length).trim() : msg });
    }
  }
  return {
    degradation: degradation ?? ({} as RealESRGANOptions),
    queueSize,
    cropPadSize,
    metaInfo: d.meta_info ? abs(String(d.meta_info)) : null,
    mix,
    mild,
  };
}

/** Resolves an option file into a training plan; throws one OptionError listing every problem (with its key). */
export function resolveOptions(f: OptionFile, ctx: ResolveContext = {}): TrainPlan {
  const cwd = ctx.cwd ?? process.cwd();
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(cwd, p.startsWith('~/') ? `${process.env.HOME ?? ''}${p.slice(1)}` : p));
  const opt = f.opt;
  const problems: Problem[] = [];
  const notices: string[] = [];
  const unsupported = (key: string, message: string) => problems.push({ key, message });
  const required = (key: string): unknown => {
    const path = key.split('.');
    let v: unknown = opt;
    for (const k of path) v = obj(v)[k];
    if (v === undefined || v === null) problems.push({ key, message: 'is required' });
    return v;
  };

  // --- model
  const modelType = String(required('model_type') ?? '');
  let stage: 1 | 2 = 1;
  if (modelType in MODEL_TYPES) stage = MODEL_TYPES[modelType as keyof typeof MODEL_TYPES];
  else if (OTHER_GAN_MODEL_TYPES.includes(modelType)) {
    unsupported('model_type', `'${modelType}' is not a DiffIR model (DiffIR's GAN stage is DiffIRGANS2Model)`);
    stage = 2;
  } else if (modelType) unsupported('model_type', `'${modelType}' is not a DiffIR training model (DiffIRS1Model, DiffIRS2Model or DiffIRGANS2Model)`);
  const isGan = modelType === 'DiffIRGANS2Model';
  const train = obj(opt.train);
  if (opt.network_d !== undefined && !isGan) problems.push({ key: 'network_d', message: `a discriminator is only used by the GAN stage (model_type: DiffIRGANS2Model), not ${modelType}` });
  for (const k of ['perceptual_opt', 'gan_opt', 'optim_d', 'net_d_iters', 'net_d_init_iters']) {
    if (train[k] !== undefined && !isGan) problems.push({ key: `train.${k}`, message: `belongs to the GAN stage (model_type: DiffIRGANS2Model), not ${modelType}` });
  }
  const gan = isGan ? resolveGan(opt, cwd, abs, (key, message) => problems.push({ key, message })) : null;

  const net = obj(required('network_g'));
  const task = inferTask(opt, net);
  const config = networkConfig(net, task, stage, 'network_g', problems);
  const scale = (opt.scale as number | undefined) ?? (task === 'sr' ? config.scale : 1);
  if (task === 'sr' && scale !== config.scale) {
    problems.push({ key: 'scale', message: `${scale} contradicts network_g.scale ${config.scale}${net.scale === undefined ? ' (the default of DiffIR-RealSR / -SRGAN)' : ''}` });
  }
  if (task !== 'sr' && scale !== 1) problems.push({ key: 'scale', message: `${scale} contradicts the ${task} task (scale 1)` });
  let teacherConfig: DiffIRConfig | null = null;
  if (stage === 2) {
    const s1 = obj(required('network_S1'));
    const t1: Opt = { ...s1, task: s1.task ?? net.task };
    teacherConfig = networkConfig(t1, inferTask({ scale: opt.scale }, t1), 1, 'network_S1', problems);
    for (const [k, a, b] of [
      ['scale', teacherConfig.scale, config.scale],
      ['task', teacherConfig.task, config.task],
    ] as const) {
      if (a !== b) problems.push({ key: `network_S1.${k}`, message: `${a} contradicts network_g.${k} ${b}` });
    }
  } else if (opt.network_S1 !== undefined) notices.push('network_S1: ignored by DiffIRS1Model');

  // --- datasets
  const datasets = obj(required('datasets'));
  const dsPlans: DatasetPlan[] = [];
  for (const [phaseKey, d0] of Object.entries(datasets)) {
    const d = obj(d0);
    const key = `datasets.${phaseKey}`;
    const phase = phaseKey === 'train' ? 'train' : 'val';
    const type = String(d.type ?? '');
    const isSynthetic = (SYNTHETIC_DATASET_TYPES as readonly string[]).includes(type);
    if (!d.type) problems.push({ key: `${key}.type`, message: 'is required' });
    else if (isSynthetic) {
      if (phase === 'val') problems.push({ key: `${key}.type`, message: `'${type}' synthesises training pairs; validation needs a paired dataset (PairedImageDataset)` });
    } else if (extraDatasetTypes.has(type)) {
      /* registered later (see registerDataset) */
    } else if (PLANNED_DATASET_TYPES[type]) unsupported(`${key}.type`, `'${type}' (${PLANNED_DATASET_TYPES[type]}) is not supported yet`);
    else if (!(PAIRED_DATASET_TYPES as readonly string[]).includes(type)) {
      unsupported(`${key}.type`, `'${type}' is not a dataset type this implementation knows (${[...new Set([...PAIRED_DATASET_TYPES, ...SYNTHETIC_DATASET_TYPES, ...extraDatasetTypes])].join(', ')})`);
    }
    const io = obj(d.io_backend);
    if (io.type !== undefined && io.type !== 'disk') unsupported(`${key}.io_backend.type`, `'${String(io.type)}' is not supported (only 'disk': image folders)`);
    if (d.mean != null || d.std != null) unsupported(`${key}.mean`, 'input normalisation (mean/std) is not supported');
    if (d.color != null) unsupported(`${key}.color`, `'${String(d.color)}' is not supported (RGB only)`);
    if (d.scale !== undefined && d.scale !== scale) problems.push({ key: `${key}.scale`, message: `${String(d.scale)} contradicts scale ${scale}` });
    const isPaired = (PAIRED_DATASET_TYPES as readonly string[]).includes(type);
    if (isPaired) {
      if (!d.dataroot_gt) problems.push({ key: `${key}.dataroot_gt`, message: 'is required' });
      if (!d.dataroot_lq) problems.push({ key: `${key}.dataroot_lq`, message: 'is required' });
    }
    let progressive: ProgressiveSpec | null = null;
    const gtSize = (d.gt_size as number | undefined) ?? (opt.gt_size as number | undefined) ?? 0;
    const batchSize = (d.batch_size_per_gpu as number | undefined) ?? 1;
    if (phase === 'train') {
      if (!gtSize) problems.push({ key: `${key}.gt_size`, message: 'is required for training' });
      if (d.batch_size_per_gpu === undefined) problems.push({ key: `${key}.batch_size_per_gpu`, message: 'is required for training' });
      if (opt.gt_size !== undefined && d.gt_size !== undefined && opt.gt_size !== d.gt_size) {
        problems.push({ key: 'gt_size', message: `${String(opt.gt_size)} contradicts ${key}.gt_size ${String(d.gt_size)}` });
      }
      const prog = ['iters', 'mini_batch_sizes', 'gt_sizes'].filter((k) => d[k] !== undefined);
      if (prog.length > 0 && prog.length < 3) {
        problems.push({ key: `${key}.${['iters', 'mini_batch_sizes', 'gt_sizes'].find((k) => d[k] === undefined)}`, message: 'is required with progressive training (iters, mini_batch_sizes and gt_sizes go together)' });
      } else if (prog.length === 3) {
        const iters = d.iters as number[];
        const bs = d.mini_batch_sizes as number[];
        const sizes = d.gt_sizes as number[];
        if (bs.length !== iters.length || sizes.length !== iters.length) {
          problems.push({ key: `${key}.gt_sizes`, message: `iters (${iters.length}), mini_batch_sizes (${bs.length}) and gt_sizes (${sizes.length}) must have the same length` });
        }
        bs.forEach((b, i) => {
          if (b > batchSize) problems.push({ key: `${key}.mini_batch_sizes[${i}]`, message: `${b} is larger than batch_size_per_gpu ${batchSize}` });
        });
        sizes.forEach((g, i) => {
          if (g > gtSize) problems.push({ key: `${key}.gt_sizes[${i}]`, message: `${g} is larger than gt_size ${gtSize}` });
        });
        progressive = { iters, batchSizes: bs, gtSizes: sizes };
      }
      for (const [i, g] of (progressive?.gtSizes ?? [gtSize]).entries()) {
        const k = progressive ? `${key}.gt_sizes[${i}]` : `${key}.gt_size`;
        const m = padMultiple(config);
        if (g % scale !== 0) problems.push({ key: k, message: `${g} is not a multiple of the scale ${scale}` });
        else if ((g / scale) % m !== 0) problems.push({ key: k, message: `${g} gives LQ patches of ${g / scale} pixels; the model needs multiples of ${m}` });
      }
      if (d.use_flip !== undefined && d.use_hflip !== undefined && d.use_flip !== d.use_hflip) {
        problems.push({ key: `${key}.use_flip`, message: 'contradicts use_hflip (use_flip is its old name)' });
      }
      if (d.geometric_augs !== undefined && type !== 'DeblurPairedDataset') notices.push(`${key}.geometric_augs: only DeblurPairedDataset uses it`);
    }
    let realesrgan: RealESRGANPlan | undefined;
    if (isSynthetic && phase === 'train') realesrgan = resolveRealESRGAN(opt, d, key, scale, gtSize, batchSize, stage, isGan, problems, notices, abs);
    if (phase === 'val' && !isPaired && !extraDatasetTypes.has(type)) continue;
    dsPlans.push({
      key,
      name: String(d.name ?? phaseKey),
      type,
      phase,
      scale,
      gtRoot: d.dataroot_gt ? abs(String(d.dataroot_gt)) : '',
      lqRoot: d.dataroot_lq ? abs(String(d.dataroot_lq)) : '',
      metaInfoFile: d.meta_info_file ? abs(String(d.meta_info_file)) : null,
      filenameTmpl: (d.filename_tmpl as string | undefined) ?? '{}',
      gtSize,
      useHflip: ((d.use_hflip ?? d.use_flip) as boolean | undefined) ?? false,
      useRot: (d.use_rot as boolean | undefined) ?? false,
      geometricAugs: type === 'DeblurPairedDataset' && ((d.geometric_augs as boolean | undefined) ?? false),
      useShuffle: (d.use_shuffle as boolean | undefined) ?? true,
      batchSize,
      enlargeRatio: (d.dataset_enlarge_ratio as number | undefined) ?? 1,
      progressive,
      raw: d,
      ...(realesrgan ? { realesrgan } : {}),
    });
  }
  const trainDs = dsPlans.find((d) => d.phase === 'train');
  if (!trainDs && datasets.train === undefined) problems.push({ key: 'datasets.train', message: 'is required' });

  // Real-ESRGAN degradation options only act with the RealESRGAN dataset.
  if (datasets.train && obj(datasets.train).type !== 'RealESRGANDataset') {
    const deg = ['gt_usm', ...(isGan ? [] : ['l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm']), 'resize_prob', 'queue_size', 'high_order_degradation'].filter((k) => opt[k] !== undefined);
    if (deg.length) notices.push(`${deg.join(', ')}: Real-ESRGAN degradation options, ignored with a paired dataset`);
    const kernels = ['blur_kernel_size', 'kernel_list', 'sinc_prob', 'final_sinc_prob', 'crop_pad_size', 'degradation_mix'].filter((k) => obj(datasets.train)[k] !== undefined);
    if (kernels.length) notices.push(`datasets.train.${kernels.join(', ')}: RealESRGANDataset options, ignored by ${String(obj(datasets.train).type)}`);
  }

  // --- optimizer and schedule
  const og = obj(required('train.optim_g'));
  const optimType = String(og.type ?? 'Adam');
  if (optimType !== 'Adam' && optimType !== 'AdamW') unsupported('train.optim_g.type', `'${optimType}' is not supported (Adam or AdamW)`);
  if (og.amsgrad === true) unsupported('train.optim_g.amsgrad', 'true is not supported');
  if (og.lr === undefined) problems.push({ key: 'train.optim_g.lr', message: 'is required' });
  const betas = (og.betas as [number, number] | undefined) ?? [0.9, 0.999];
  const sch = obj(required('train.scheduler'));
  const schType = String(sch.type ?? '');
  let scheduler: SchedulerSpec = { type: 'MultiStepLR', milestones: [], gamma: 1, restarts: [0], restartWeights: [1] };
  const schKeys: Record<string, readonly string[]> = {
    MultiStepLR: ['milestones', 'gamma', 'restarts', 'restart_weights'],
    MultiStepRestartLR: ['milestones', 'gamma', 'restarts', 'restart_weights'],
    CosineAnnealingRestartLR: ['periods', 'restart_weights', 'eta_min'],
    CosineAnnealingRestartCyclicLR: ['periods', 'restart_weights', 'eta_mins'],
  };
  if (!(SCHEDULER_TYPES as readonly string[]).includes(schType)) {
    unsupported('train.scheduler.type', `'${schType}' is not supported (${SCHEDULER_TYPES.join(', ')})`);
  } else {
    for (const k of Object.keys(sch)) if (k !== 'type' && !schKeys[schType]!.includes(k)) problems.push({ key: `train.scheduler.${k}`, message: `is not an argument of ${schType}` });
    const restartWeights = (sch.restart_weights as number[] | undefined) ?? [1];
    if (schType.startsWith('MultiStep')) {
      const restarts = (sch.restarts as number[] | undefined) ?? [0];
      if (sch.milestones === undefined) problems.push({ key: 'train.scheduler.milestones', message: 'is required' });
      if (restarts.length !== restartWeights.length) problems.push({ key: 'train.scheduler.restart_weights', message: `has ${restartWeights.length} values for ${restarts.length} restarts` });
      scheduler = { type: schType as 'MultiStepLR', milestones: (sch.milestones as number[] | undefined) ?? [], gamma: (sch.gamma as number | undefined) ?? 0.1, restarts, restartWeights };
    } else {
      const periods = (sch.periods as number[] | undefined) ?? [];
      if (!periods.length) problems.push({ key: 'train.scheduler.periods', message: 'is required' });
      if (restartWeights.length !== periods.length) problems.push({ key: 'train.scheduler.restart_weights', message: `has ${restartWeights.length} values for ${periods.length} periods` });
      if (schType === 'CosineAnnealingRestartLR') scheduler = { type: 'CosineAnnealingRestartLR', periods, restartWeights, etaMin: (sch.eta_min as number | undefined) ?? 0 };
      else {
        const etaMins = (sch.eta_mins as number[] | undefined) ?? [0];
        if (etaMins.length < periods.length) problems.push({ key: 'train.scheduler.eta_mins', message: `has ${etaMins.length} values for ${periods.length} periods` });
        scheduler = { type: 'CosineAnnealingRestartCyclicLR', periods, restartWeights, etaMins };
      }
    }
  }
  const totalIter = (required('train.total_iter') as number | undefined) ?? 1;
  if (scheduler.type.startsWith('Cosine')) {
    const periods = (scheduler as { periods: readonly number[] }).periods;
    const sum = periods.reduce((a, b) => a + b, 0);
    if (periods.length && sum < totalIter - 1) problems.push({ key: 'train.scheduler.periods', message: `sum to ${sum}, fewer than total_iter ${totalIter} needs` });
  }

  let lrRule: 'manual' | 'scheduler' = 'scheduler';
  let manual: ManualRule | null = null;
  if (stage === 2) {
    lrRule = (train.lr_rule as 'manual' | 'scheduler' | undefined) ?? 'manual';
    const need = ['encoder_iter', 'lr_encoder', 'lr_sr', 'gamma_encoder', 'gamma_sr', 'lr_decay_encoder', 'lr_decay_sr'];
    if (lrRule === 'manual') for (const k of need) if (train[k] === undefined) problems.push({ key: `train.${k}`, message: 'is required by DiffIRS2Model' });
    if (lrRule === 'scheduler' && train.encoder_iter === undefined) problems.push({ key: 'train.encoder_iter', message: 'is required by DiffIRS2Model' });
    const n = (k: string, d: number) => (train[k] as number | undefined) ?? d;
    manual = {
      encoderIter: n('encoder_iter', 0),
      lrEncoder: n('lr_encoder', 2e-4),
      gammaEncoder: n('gamma_encoder', 0.1),
      lrDecayEncoder: n('lr_decay_encoder', 60000),
      lrSr: n('lr_sr', 2e-4),
      gammaSr: n('gamma_sr', 0.5),
      lrDecaySr: n('lr_decay_sr', 600000),
    };
  } else {
    for (const k of ['encoder_iter', 'lr_encoder', 'lr_sr', 'gamma_encoder', 'gamma_sr', 'lr_decay_encoder', 'lr_decay_sr', 'lr_rule']) {
      if (train[k] !== undefined) problems.push({ key: `train.${k}`, message: 'is a stage-2 option; DiffIRS1Model does not use it' });
    }
  }

  // --- losses
  const pix = obj(train.pixel_opt);
  const pixType = String(pix.type ?? 'L1Loss');
  // SRGANModel (the GAN stage) makes the pixel and KD losses optional.
  if (train.pixel_opt === undefined && !isGan) problems.push({ key: 'train.pixel_opt', message: 'is required (the official models need a pixel loss)' });
  if (!['L1Loss', 'MSELoss', 'CharbonnierLoss'].includes(pixType)) unsupported('train.pixel_opt.type', `'${pixType}' is not supported (L1Loss, MSELoss, CharbonnierLoss)`);
  if (pix.reduction === 'none') unsupported('train.pixel_opt.reduction', "'none' cannot be optimised (mean or sum)");
  if (pix.eps !== undefined && pixType !== 'CharbonnierLoss') problems.push({ key: 'train.pixel_opt.eps', message: `is not an argument of ${pixType}` });
  let kd: TrainPlan['kd'] = null;
  if (stage === 2) {
    const k = obj(train.kd_opt);
    if (train.kd_opt === undefined && !isGan) problems.push({ key: 'train.kd_opt', message: 'is required by DiffIRS2Model' });
    else if (train.kd_opt !== undefined && k.type !== 'KDLoss') unsupported('train.kd_opt.type', `'${String(k.type)}' is not supported (KDLoss)`);
    if (train.kd_opt !== undefined || !isGan) kd = { weight: (k.loss_weight as number | undefined) ?? 1, temperature: (k.temperature as number | undefined) ?? 0.15 };
  } else if (train.kd_opt !== undefined) problems.push({ key: 'train.kd_opt', message: 'is a stage-2 loss; DiffIRS1Model does not use it' });

  let gradClip: number | null = null;
  if (train.use_grad_clip === true) gradClip = 0.01;
  if (train.grad_clip_norm !== undefined) {
    if (train.use_grad_clip === false) problems.push({ key: 'train.grad_clip_norm', message: 'contradicts use_grad_clip: false' });
    else if (train.use_grad_clip === true && train.grad_clip_norm !== 0.01) problems.push({ key: 'train.grad_clip_norm', message: `${String(train.grad_clip_norm)} contradicts use_grad_clip: true (max norm 0.01)` });
    gradClip = train.grad_clip_norm as number;
  }
  const mix = obj(train.mixing_augs);
  const mixup = mix.mixup === true ? { beta: (mix.mixup_beta as number | undefined) ?? 1.2, useIdentity: (mix.use_identity as boolean | undefined) ?? false } : null;

  // --- paths
  const path = obj(opt.path);
  const name0 = String(required('name') ?? 'experiment');
  const name = ctx.debug && !name0.startsWith('debug') ? `debug_${name0}` : name0;
  const debug = name.includes('debug'); // BasicSR: any experiment whose name contains 'debug'
  if (!/^[\w.+-]+$/.test(name)) problems.push({ key: 'name', message: `'${name}' cannot name an experiment folder (letters, digits, _ . + - only)` });
  const pretrainG = path.pretrain_network_g ? abs(String(path.pretrain_network_g)) : null;
  const pretrainS1 = path.pretrain_network_S1 ? abs(String(path.pretrain_network_S1)) : null;
  if (stage === 2 && !pretrainS1) problems.push({ key: 'path.pretrain_network_S1', message: 'is required by DiffIRS2Model (the frozen stage-1 teacher)' });
  if (!isGan) for (const k of ['pretrain_network_d', 'param_key_d', 'strict_load_d']) if (path[k] != null) problems.push({ key: `path.${k}`, message: `belongs to the GAN stage (model_type: DiffIRGANS2Model), not ${modelType}` });

  // --- validation and logging
  const val = obj(opt.val);
  const metrics: MetricPlan[] = [];
  for (const [mname, m0] of Object.entries(obj(val.metrics))) {
    const m = obj(m0);
    const t = String(m.type ?? '');
    const type = t === 'calculate_psnr' ? 'psnr' : t === 'calculate_ssim' ? 'ssim' : null;
    if (!type) {
      unsupported(`val.metrics.${mname}.type`, `'${t}' is not supported (calculate_psnr, calculate_ssim)`);
      continue;
    }
    metrics.push({ name: mname, type, cropBorder: (m.crop_border as number | undefined) ?? 0, testYChannel: (m.test_y_channel as boolean | undefined) ?? false, better: (m.better as 'higher' | 'lower' | undefined) ?? 'higher' });
  }
  const logger = obj(opt.logger);
  if (logger.use_tb_logger === true) notices.push('logger.use_tb_logger: TensorBoard is not available; the JSONL log and report.html take its place');
  if (obj(logger.wandb).project) notices.push('logger.wandb: Weights & Biases is not available; ignored');
  const num_gpu = opt.num_gpu;
  const worldSize = typeof num_gpu === 'number' && num_gpu > 1 ? num_gpu : 1;

  if (problems.length) {
    const first = problems[0]!;
    const list = problems.map((p) => `'${p.key}' ${p.message}`).join('; ');
    throw new OptionError(
      `${f.where(first.key.replace(/\[\d+\]/g, '').split('.'))}${problems.length > 1 ? `${problems.length} problems: ` : ''}${list}`,
      first.key,
      problems.map((p) => p.key),
    );
  }
  let printFreq = (logger.print_freq as number | undefined) ?? 100;
  let checkpointFreq = (logger.save_checkpoint_freq as number | undefined) ?? 5000;
  let valFreq = opt.val !== undefined ? ((val.val_freq as number | undefined) ?? 5000) : null;
  if (debug) {
    printFreq = 1;
    checkpointFreq = 8;
    if (valFreq !== null) valFreq = 8;
  }
  return {
    file: f.file,
    name,
    modelType: modelType as TrainPlan['modelType'],
    stage,
    config,
    teacherConfig,
    seed: (opt.manual_seed as number | null | undefined) ?? 1 + Math.floor(Math.random() * 10000),
    worldSize,
    train: trainDs!,
    val: dsPlans.filter((d) => d.phase === 'val'),
    experimentsRoot: path.experiments_root ? abs(String(path.experiments_root)) : resolve(cwd, 'experiments', name),
    pretrainG,
    pretrainS1,
    paramKeyG: (path.param_key_g as string | undefined) ?? 'params',
    strictLoadG: (path.strict_load_g as boolean | undefined) ?? true,
    resumeState: path.resume_state ? abs(String(path.resume_state)) : null,
    optim: { type: optimType as 'Adam', lr: (og.lr as number | undefined) ?? 2e-4, betas, weightDecay: (og.weight_decay as number | undefined) ?? 0, eps: (og.eps as number | undefined) ?? 1e-8 },
    scheduler,
    totalIter,
    warmupIter: (train.warmup_iter as number | undefined) ?? -1,
    lrRule,
    manual,
    emaDecay: (train.ema_decay as number | undefined) ?? 0,
    pixel: { type: pixType as 'L1Loss', weight: (pix.loss_weight as number | undefined) ?? 1, reduction: (pix.reduction as 'mean' | 'sum' | undefined) ?? 'mean', eps: (pix.eps as number | undefined) ?? 1e-12 },
    kd,
    gradClip,
    mixup,
    valFreq,
    windowSize: (val.window_size as number | undefined) ?? 0,
    saveImg: (val.save_img as boolean | undefined) ?? false,
    metrics,
    printFreq,
    checkpointFreq,
    notices,
    gan,
  };
}

