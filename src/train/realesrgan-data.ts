/**
 * BasicSR's `RealESRGANDataset` as a training dataset of the trainer (`datasets.train.type:
 * RealESRGANDataset`, every DiffIR RealSR option file): GT images only, each iteration's batch
 * made on the fly as DiffIR's RealSR DiffIRS1Model / DiffIRS2Model (RealESRNetModel) make it —
 * per image a GT crop (`crop_pad_size`, 400 in BasicSR) with flips and its three kernels, per
 * batch the second-order degradation (blur, resize, noise, JPEG, twice, then resize back + sinc
 * and JPEG in random order), the paired random crop of `gt_size`, and the training-pair pool
 * of `queue_size` pairs (see `TrainLoader.take`).
 *
 * Every random choice comes from the plan the loader draws: four uniforms per sample seed the
 * sample's generator (crop, flips, kernels, its noise and JPEG draws), four per batch the
 * batch's (resize scales and modes, noise type, second blur, order). So a batch is a
 * deterministic function of its plan, which is what lets a resumed run rebuild the pool from
 * the plans saved in its training state.
 *
 * Importing this module registers the type (the trainer does).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { RealESRGANDataset } from '../data/datasets.js';
import { IMAGE_EXTENSIONS } from '../data/folder.js';
import { Rng } from '../random.js';
import { type Batch, DataError, type Pair, type Planar, registerDataset, type SamplePlan, type TrainDataset } from './data.js';
import type { DatasetPlan, RealESRGANPlan } from './options.js';

/** Uniform draws that seed a generator (4 words of state). */
const SEED_DRAWS = 4;

function draws(rng: Rng): number[] {
  return Array.from({ length: SEED_DRAWS }, () => rng.uniform());
}

/** The generator seeded by 4 uniforms in [0,1) (each a 32-bit word / 2³²). */
function seeded(u: readonly number[]): Rng {
  if (u.length !== SEED_DRAWS) throw new Error(`RealESRGANDataset: a plan needs ${SEED_DRAWS} draws, got ${u.length}`);
  const state = Uint32Array.from(u, (v) => Math.floor(v * 4294967296) >>> 0);
  if (state.every((v) => v === 0)) state[0] = 1;
  return new Rng(state);
}

/** Image files under `dir` (recursive, hidden skipped), relative with '/', sorted: as `listImages`. */
function listFolder(dir: string, key: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new DataError(`${key}.dataroot_gt: '${dir}' is not a folder`, `${key}.dataroot_gt`);
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if ((e.isFile() || e.isSymbolicLink()) && IMAGE_EXTENSIONS.has(extname(e.name).toLowerCase())) out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  walk(dir);
  if (out.length === 0) throw new DataError(`${key}.dataroot_gt: no images in '${dir}'`, `${key}.dataroot_gt`);
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** BasicSR's `meta_info`: the first word of each line, a path relative to `dataroot_gt`. */
function readMetaInfo(file: string, key: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new DataError(`${key}.meta_info: cannot read '${file}'`, `${key}.meta_info`);
  }
  const out = text.split('\n').map((l) => l.trim().split(' ')[0]!).filter((f) => f.length > 0);
  if (out.length === 0) throw new DataError(`${key}.meta_info: '${file}' lists no images`, `${key}.meta_info`);
  return out;
}

function planar(t: { shape: readonly number[]; data: Float32Array }): Planar {
  const [, , h, w] = t.shape as [number, number, number, number];
  return { data: t.data, height: h, width: w };
}

/** `datasets.train` of type RealESRGANDataset. */
export class RealESRGANTrainDataset implements TrainDataset {
  /** GT images relative to `dataroot_gt`. */
  readonly files: readonly string[];
  readonly poolSize: number;
  private readonly r: RealESRGANPlan;
  private opened: Promise<RealESRGANDataset> | null = null;

  constructor(readonly spec: DatasetPlan) {
    if (!spec.realesrgan) throw new Error(`internal: ${spec.key} has no Real-ESRGAN plan`);
    this.r = spec.realesrgan;
    this.files = this.r.metaInfo ? readMetaInfo(this.r.metaInfo, spec.key) : listFolder(spec.gtRoot, spec.key);
    this.poolSize = this.r.queueSize;
  }

  get size(): number {
    return this.files.length;
  }

  plan(index: number, rng: Rng): SamplePlan {
    return { index, u: draws(rng) };
  }

  planBatch(rng: Rng): readonly number[] {
    return draws(rng);
  }

  private dataset(): Promise<RealESRGANDataset> {
    this.opened ??= RealESRGANDataset.open({
      root: this.spec.gtRoot,
      files: this.files,
      degradation: this.r.degradation,
      cropPadSize: this.r.cropPadSize,
      hflip: this.spec.useHflip,
      rot: this.spec.useRot,
      ...(this.r.mix ? { mix: this.r.mix } : {}),
      mild: this.r.mild,
      // Training revisits every photo many times; decoded photos stay in memory (up to 1 GiB per dataset).
      cacheBytes: 1 << 30,
    });
    return this.opened;
  }

  /** Names the failing key (and file) in errors that reach the command line. */
  private async guard<T>(what: () => Promise<T>): Promise<T> {
    try {
      return await what();
    } catch (e) {
      if (e instanceof DataError) throw e;
      const msg = e instanceof Error ? e.message.split('\n')[0]! : String(e);
      throw new DataError(`${this.spec.key} (RealESRGANDataset, ${this.spec.gtRoot}): ${msg}`, `${this.spec.key}.dataroot_gt`);
    }
  }

  async loadBatch(samples: readonly SamplePlan[], batch: readonly number[]): Promise<Batch> {
    return this.guard(async () => {
      const ds = await this.dataset();
      const b = await ds.batch(samples.map((s) => ({ index: s.index, rng: seeded(s.u) })), seeded(batch));
      return { lq: b.lq, gt: b.gt };
    });
  }

  /** One sample degraded alone (its batch-level choices drawn from its own generator). */
  async load(plan: SamplePlan): Promise<Pair> {
    return this.guard(async () => {
      const ds = await this.dataset();
      const s = await ds.sample(plan.index, seeded(plan.u));
      return { lq: planar(s.lq), gt: planar(s.gt), name: s.name };
    });
  }
}

registerDataset('RealESRGANDataset', (p) => ({ train: new RealESRGANTrainDataset(p) }));
