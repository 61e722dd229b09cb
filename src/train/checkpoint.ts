/**
 * Experiment folders as BasicSR lays them out, and what goes in them:
 *
 *   experiments/<name>/models/net_g_<iter>.pth         {'params': OrderedDict, 'params_ema': OrderedDict}
 *   experiments/<name>/training_states/<iter>.state    optimizer moments, iteration, RNG and loader state
 *                                                      (and the plans behind a training-pair pool)
 *
 * Model files are real `torch.save` zip pickles: `torch.load` reads them and the official
 * DiffIRS1 / DiffIRS2 modules accept them with `load_state_dict(strict=True)` — a stage-2 file
 * holds the 12 `diffusion.*` schedule buffers and the `diffusion.model.*` /
 * `diffusion.condition.*` aliases, sharing storage with `denoise.*` / `condition.*` as
 * torch.save writes them. Training states are torch-readable pickles too. Every file is
 * written atomically (temporary file, fsync, rename).
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { DiffIRConfig, Stage } from '../models/config.js';
import { ddpmSchedule, scheduleBuffers } from '../models/ddpm.js';
import { S2_ALIAS_PREFIXES } from '../models/params.js';
import type { HostTensor, TensorMap } from '../tensor.js';
import { loadPth, writePth, isHostTensor, type PthDict, type PthValue } from '../weights/pth.js';
import { diffStateDict, extractStateDict, formatStateDictDiff } from '../weights/statedict.js';
import { readSafetensors } from '../weights/safetensors.js';

/** The folders of an experiment. */
export interface ExperimentDirs {
  readonly root: string;
  readonly models: string;
  readonly states: string;
  readonly visualization: string;
}

/** Folder layout of an experiment root (BasicSR's `make_exp_dirs`). */
export function experimentDirs(root: string): ExperimentDirs {
  return { root, models: join(root, 'models'), states: join(root, 'training_states'), visualization: join(root, 'visualization') };
}

/** Creates the folders. */
export function makeExperimentDirs(d: ExperimentDirs): void {
  for (const p of [d.root, d.models, d.states, d.visualization]) mkdirSync(p, { recursive: true });
}

/**
 * The state dict the official module holds, from weights keyed by parameter name: for stage 2
 * the parameters, then the schedule buffers, then the aliases (same tensors, shared storage).
 */
export function officialStateDict(weights: ReadonlyMap<string, HostTensor>, cfg: DiffIRConfig, stage: Stage): PthDict {
  const sd: PthDict = new Map();
  for (const [k, t] of weights) sd.set(k, t);
  if (stage === 2) {
    for (const [k, t] of scheduleBuffers(ddpmSchedule(cfg.timesteps, cfg.linearStart, cfg.linearEnd))) sd.set(k, t);
    for (const [alias, target] of S2_ALIAS_PREFIXES) {
      for (const [k, t] of weights) if (k.startsWith(target)) sd.set(alias + k.slice(target.length), t);
    }
  }
  return sd;
}

/** Writes `net_g_<tag>.pth` with `params` (and `params_ema` when given), atomically; returns its path. */
export function saveNetwork(
  dirs: ExperimentDirs,
  tag: number | 'latest' | 'best',
  cfg: DiffIRConfig,
  stage: Stage,
  params: ReadonlyMap<string, HostTensor>,
  ema: ReadonlyMap<string, HostTensor> | null,
): string {
  const path = join(dirs.models, `net_g_${tag}.pth`);
  const top: PthDict = new Map([['params', officialStateDict(params, cfg, stage)]]);
  if (ema) top.set('params_ema', officialStateDict(ema, cfg, stage));
  writePth(path, top);
  return path;
}

/** Writes `net_d_<tag>.pth` = {'params': D's state dict} as BasicSR saves the discriminator; returns its path. */
export function saveDiscriminator(dirs: ExperimentDirs, tag: number | 'latest', sd: ReadonlyMap<string, HostTensor>): string {
  const path = join(dirs.models, `net_d_${tag}.pth`);
  writePth(path, new Map([['params', new Map(sd)]]));
  return path;
}

/** Loads a state dict from a BasicSR checkpoint: `key`, falling back to `params` as BasicSR's load_network does. */
export function loadNetworkStateDict(path: string, key: string): TensorMap {
  // A safetensors file (e.g. a bundled model) holds one state dict: it serves every key.
  if (/\.safetensors$/i.test(path)) return readSafetensors(path);
  const v = loadPth(path);
  const k = v instanceof Map && !v.has(key) && v.has('params') ? 'params' : key;
  return extractStateDict(v, path, v instanceof Map && v.has(k) ? { key: k } : {});
}

/**
 * BasicSR's `load_network`: copies the weights of checkpoint `file` (entry `key`) whose names and
 * shapes `shapes` expects into `into` — all of them (`strict`: any missing, unexpected or
 * mismatched key is an error naming `optKey` and the strict switch), or the matching ones.
 * Returns how many keys had other shapes (not loaded).
 */
export function loadPretrainedInto(
  into: Map<string, HostTensor>,
  file: string,
  key: string,
  shapes: ReadonlyMap<string, readonly number[]>,
  o: { readonly strict: boolean; readonly optKey: string; readonly strictKey: string; readonly ignore?: (key: string) => boolean },
): { mismatched: number } {
  const sd = loadNetworkStateDict(file, key);
  const diff = diffStateDict(shapes, sd, o.ignore);
  if (o.strict && (diff.missing.length || diff.unexpected.length || diff.mismatched.length)) {
    throw new Error(`${o.optKey}: ${formatStateDictDiff(diff, file)} (set path.${o.strictKey}: false to load the matching keys only)`);
  }
  let n = 0;
  for (const [k, t] of sd) {
    const want = shapes.get(k);
    if (!want || t.dtype !== 'float32' || t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) continue;
    into.set(k, t);
    n++;
  }
  if (n === 0) throw new Error(`${o.optKey}: ${file} has no weights this model can use`);
  return { mismatched: diff.mismatched.length };
}

/** Adam state in a training state file. */
export interface OptimizerState {
  readonly step: number;
  readonly m: Float32Array;
  readonly v: Float32Array;
}

/** What a `<iter>.state` file holds. */
export interface TrainingState {
  readonly iter: number;
  readonly epoch: number;
  /** `g`: all parameters; `e`: CPEN_S2 + denoiser (stage-2 phase A); `d`: the GAN stage's discriminator. Absent until first used. */
  readonly optimizers: Readonly<Record<string, OptimizerState>>;
  readonly loader: { readonly epoch: number; readonly pos: number; readonly rng: readonly number[] };
  readonly noiseRng: readonly number[];
  /** Best validation results: `<dataset>/<metric>` → value and iteration. */
  readonly best: Readonly<Record<string, { readonly value: number; readonly iter: number }>>;
  /** Training seed (the run's `manual_seed`). */
  readonly seed: number;
  /**
   * The training-pair pools (RealESRGANDataset's `queue_size`): where each pooled pair came
   * from, not its pixels — the trainer reloads those batches on resume. Absent without a pool.
   */
  readonly pool?: PoolState;
  /** Other networks trained alongside the generator (the inpainting discriminator), as state dicts. */
  readonly networks?: Readonly<Record<string, ReadonlyMap<string, HostTensor>>>;
}

/** What a training state holds about the training-pair pools (see `TrainLoader.poolState`). */
export interface PoolState {
  readonly rng: readonly number[];
  readonly batches: readonly {
    readonly iter: number;
    readonly micro: number;
    readonly samples: readonly { readonly index: number; readonly u: readonly number[] }[];
    readonly batch: readonly number[] | null;
  }[];
  readonly slots: readonly (readonly number[])[];
}

const FORMAT = 'diffir-ts training state 1';

function f32(a: Float32Array): HostTensor<'float32'> {
  return { dtype: 'float32', shape: [a.length], data: a };
}

/** Writes `training_states/<iter>.state` atomically; returns its path. */
export function saveTrainingState(dirs: ExperimentDirs, s: TrainingState): string {
  const path = join(dirs.states, `${s.iter}.state`);
  const opts: PthDict = new Map();
  for (const [k, o] of Object.entries(s.optimizers)) opts.set(k, new Map<string, PthValue>([['step', o.step], ['exp_avg', f32(o.m)], ['exp_avg_sq', f32(o.v)]]));
  const best: PthDict = new Map();
  for (const [k, b] of Object.entries(s.best)) best.set(k, new Map<string, PthValue>([['value', b.value], ['iter', b.iter]]));
  const top: PthDict = new Map<string, PthValue>([
    ['format', FORMAT],
    ['iter', s.iter],
    ['epoch', s.epoch],
    ['seed', s.seed],
    ['optimizers', opts],
    ['loader', new Map<string, PthValue>([['epoch', s.loader.epoch], ['pos', s.loader.pos], ['rng', [...s.loader.rng]]])],
    ['noise_rng', [...s.noiseRng]],
    ['best', best],
  ]);
  if (s.pool) {
    const batches = s.pool.batches.map(
      (b) =>
        new Map<string, PthValue>([
          ['iter', b.iter],
          ['micro', b.micro],
          // one row per sample: its dataset index, then its draws
          ['samples', b.samples.map((x) => [x.index, ...x.u])],
          ['batch', b.batch ? [...b.batch] : null],
        ]),
    );
    top.set('pool', new Map<string, PthValue>([['rng', [...s.pool.rng]], ['batches', batches], ['slots', s.pool.slots.map((x) => [...x])]]));
  }
  if (s.networks) {
    const nets: PthDict = new Map();
    for (const [k, sd] of Object.entries(s.networks)) nets.set(k, new Map<string, PthValue>(sd));
    top.set('networks', nets);
  }
  writePth(path, top);
  return path;
}

function numbers(v: PthValue | undefined, what: string, path: string): number[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'number')) throw new Error(`${path}: training state has no valid '${what}'`);
  return v as number[];
}

function readPool(v: PthValue, path: string): PoolState {
  const bad = (what: string): never => {
    throw new Error(`${path}: training state has no valid 'pool.${what}'`);
  };
  if (!(v instanceof Map)) return bad('');
  const batches = v.get('batches');
  const slots = v.get('slots');
  if (!Array.isArray(batches)) return bad('batches');
  if (!Array.isArray(slots)) return bad('slots');
  return {
    rng: words(v.get('rng'), 'pool.rng', path),
    batches: batches.map((b, i) => {
      if (!(b instanceof Map)) return bad(`batches[${i}]`);
      const samples = b.get('samples');
      if (!Array.isArray(samples)) return bad(`batches[${i}].samples`);
      const batch = b.get('batch');
      return {
        iter: num(b.get('iter'), `pool.batches[${i}].iter`, path),
        micro: num(b.get('micro'), `pool.batches[${i}].micro`, path),
        samples: samples.map((row) => {
          const r = numbers(row, `pool.batches[${i}].samples`, path);
          return { index: r[0]!, u: r.slice(1) };
        }),
        batch: batch === null || batch === undefined ? null : numbers(batch, `pool.batches[${i}].batch`, path),
      };
    }),
    slots: slots.map((x) => numbers(x, 'pool.slots', path)),
  };
}

function num(v: PthValue | undefined, what: string, path: string): number {
  if (typeof v !== 'number') throw new Error(`${path}: training state has no valid '${what}'`);
  return v;
}

function words(v: PthValue | undefined, what: string, path: string): number[] {
  if (!Array.isArray(v) || v.length !== 4 || v.some((x) => typeof x !== 'number')) throw new Error(`${path}: training state has no valid '${what}'`);
  return v as number[];
}

function readNetworks(v: PthDict, path: string): Record<string, TensorMap> {
  const out: Record<string, TensorMap> = {};
  for (const [k, sd] of v) out[k] = extractStateDict(sd, `${path} (${k})`);
  return out;
}

/** Reads a training state written by {@link saveTrainingState}. */
export function loadTrainingState(path: string): TrainingState {
  const v = loadPth(path);
  if (!(v instanceof Map) || v.get('format') !== FORMAT) throw new Error(`${path}: not a diffir training state`);
  const optimizers: Record<string, OptimizerState> = {};
  const opts = v.get('optimizers');
  if (opts instanceof Map) {
    for (const [k, o] of opts) {
      if (!(o instanceof Map)) continue;
      const m = o.get('exp_avg');
      const vv = o.get('exp_avg_sq');
      if (!isHostTensor(m) || !isHostTensor(vv) || m.dtype !== 'float32' || vv.dtype !== 'float32') throw new Error(`${path}: optimizer '${k}' has no moments`);
      optimizers[k] = { step: num(o.get('step'), `optimizers.${k}.step`, path), m: m.data as Float32Array, v: vv.data as Float32Array };
    }
  }
  const loader = v.get('loader');
  if (!(loader instanceof Map)) throw new Error(`${path}: training state has no loader state`);
  const best: Record<string, { value: number; iter: number }> = {};
  const b = v.get('best');
  if (b instanceof Map) for (const [k, x] of b) if (x instanceof Map) best[k] = { value: num(x.get('value'), 'best', path), iter: num(x.get('iter'), 'best', path) };
  return {
    iter: num(v.get('iter'), 'iter', path),
    epoch: num(v.get('epoch'), 'epoch', path),
    seed: num(v.get('seed'), 'seed', path),
    optimizers,
    loader: { epoch: num(loader.get('epoch'), 'loader.epoch', path), pos: num(loader.get('pos'), 'loader.pos', path), rng: words(loader.get('rng'), 'loader.rng', path) },
    noiseRng: words(v.get('noise_rng'), 'noise_rng', path),
    best,
    ...(v.has('pool') ? { pool: readPool(v.get('pool')!, path) } : {}),
    ...(v.get('networks') instanceof Map ? { networks: readNetworks(v.get('networks') as PthDict, path) } : {}),
  };
}

/** The training state with the highest iteration in an experiment (BasicSR's auto_resume), or null. */
export function latestTrainingState(dirs: ExperimentDirs): { iter: number; path: string } | null {
  if (!existsSync(dirs.states)) return null;
  let best: { iter: number; path: string } | null = null;
  for (const f of readdirSync(dirs.states)) {
    const m = /^(\d+)\.state$/.exec(f);
    if (!m) continue;
    const iter = Number(m[1]);
    if (!best || iter > best.iter) best = { iter, path: join(dirs.states, f) };
  }
  return best;
}
