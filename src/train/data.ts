/**
 * Training and validation data: paired LQ/GT image folders (BasicSR's PairedImageDataset and
 * DiffIR's DeblurPairedDataset), random crops and flips/rotations, the progressive patch and
 * batch schedule, mixup, and a loader whose whole state is a few numbers, so that a resumed
 * run draws exactly the batches an uninterrupted one would.
 *
 * Every random decision is drawn synchronously when a batch is planned (`TrainLoader.plan`);
 * loading the images is asynchronous and deterministic given the plan. Other dataset types
 * (e.g. the Real-ESRGAN on-the-fly degradation, realesrgan-data.ts) plug in with
 * `registerDataset`; they may plan and load whole batches and pass them through a
 * training-pair pool (`TrainLoader.take`), whose state is the plans of the batches its pairs
 * came from, so that a resumed run rebuilds it exactly.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { permutation } from '../data/rng.js';
import { crop } from '../data/tensor-ops.js';
import { loadImage } from '../image/io.js';
import { Rng } from '../random.js';
import { f32, type HostTensor } from '../tensor.js';
import type { PoolState } from './checkpoint.js';
import { type DatasetPlan, extraDatasetTypes } from './options.js';
import { progressiveStage } from './schedule.js';

/** An image in memory: planar RGB float32 in [0,1]. */
export interface Planar {
  readonly data: Float32Array;
  readonly height: number;
  readonly width: number;
}

/** A training or validation pair; `gt` is `scale` times the size of `lq`. */
export interface Pair {
  readonly lq: Planar;
  readonly gt: Planar;
  readonly name: string;
}

/** The random decisions for one sample, drawn when the batch is planned. */
export interface SamplePlan {
  readonly index: number;
  /** Uniform numbers in [0,1), meaning defined by the dataset. */
  readonly u: readonly number[];
}

/** A training dataset: random decisions are drawn in `plan`, `load` is deterministic. */
export interface TrainDataset {
  readonly size: number;
  /** Draws the random decisions for sample `index` (synchronous). */
  plan(index: number, rng: Rng): SamplePlan;
  /** Loads the sample as `plan` decided: a GT patch of `gtSize` and the matching LQ patch. */
  load(plan: SamplePlan): Promise<Pair>;
  /**
   * Optional, for datasets whose pipeline makes choices per batch (Real-ESRGAN): draws the
   * batch-level decisions, after the samples' plans.
   */
  planBatch?(rng: Rng): readonly number[];
  /** Optional: loads a whole batch as planned (with `planBatch`'s draws); deterministic. */
  loadBatch?(samples: readonly SamplePlan[], batch: readonly number[]): Promise<Batch>;
  /**
   * Optional: the capacity (pairs per device) of a training-pair pool the batches pass
   * through (Real-ESRGAN's `queue_size`); absent or 0 for none.
   */
  readonly poolSize?: number;
}

/** A validation dataset: whole images, no randomness. */
export interface ValDataset {
  readonly size: number;
  load(i: number): Promise<Pair>;
}

/** Builds the datasets of a `datasets.*` entry. */
export type DatasetFactory = (plan: DatasetPlan) => { train?: TrainDataset; val?: ValDataset };

const factories = new Map<string, DatasetFactory>();

/** Registers a dataset type under its option-file name (e.g. 'RealESRGANDataset'). */
export function registerDataset(type: string, factory: DatasetFactory): void {
  factories.set(type, factory);
  extraDatasetTypes.add(type);
}

/** An error about the data, naming the option key it comes from. */
export class DataError extends Error {
  constructor(message: string, readonly key: string) {
    super(message);
    this.name = 'DataError';
  }
}

const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm']);

/** LQ/GT file pairs of a paired dataset: from `meta_info_file` or by matching names in the folders. */
export function pairedPaths(p: DatasetPlan): { lq: string; gt: string; name: string }[] {
  const fill = (stem: string) => p.filenameTmpl.replace('{}', stem);
  for (const [root, k] of [[p.gtRoot, 'dataroot_gt'], [p.lqRoot, 'dataroot_lq']] as const) {
    if (!root || !existsSync(root) || !statSync(root).isDirectory()) throw new DataError(`${p.key}.${k}: '${root}' is not a folder`, `${p.key}.${k}`);
  }
  const out: { lq: string; gt: string; name: string }[] = [];
  if (p.metaInfoFile) {
    let text: string;
    try {
      text = readFileSync(p.metaInfoFile, 'utf8');
    } catch {
      throw new DataError(`${p.key}.meta_info_file: cannot read '${p.metaInfoFile}'`, `${p.key}.meta_info_file`);
    }
    for (const line of text.split('\n')) {
      const gtName = line.trim().split(' ')[0];
      if (!gtName) continue;
      const ext = extname(gtName);
      const lqName = `${fill(basename(gtName, ext))}${ext}`;
      out.push({ gt: join(p.gtRoot, gtName), lq: join(p.lqRoot, lqName), name: basename(gtName, ext) });
    }
  } else {
    const list = (d: string) => readdirSync(d).filter((f) => IMAGE_EXT.has(extname(f).toLowerCase()) && !f.startsWith('.')).sort();
    const gts = list(p.gtRoot);
    const lqs = list(p.lqRoot);
    if (gts.length !== lqs.length) {
      throw new DataError(`${p.key}: dataroot_lq has ${lqs.length} images and dataroot_gt ${gts.length}; they must pair one to one`, `${p.key}.dataroot_lq`);
    }
    const byStem = new Map(lqs.map((f) => [basename(f, extname(f)), f]));
    for (const g of gts) {
      const stem = basename(g, extname(g));
      const want = fill(stem);
      const lq = lqs.includes(`${want}${extname(g)}`) ? `${want}${extname(g)}` : byStem.get(want);
      if (!lq) throw new DataError(`${p.key}.dataroot_lq: no LQ image named '${want}.*' for GT '${g}'`, `${p.key}.dataroot_lq`);
      out.push({ gt: join(p.gtRoot, g), lq: join(p.lqRoot, lq), name: stem });
    }
  }
  if (out.length === 0) throw new DataError(`${p.key}: no images in '${p.gtRoot}'`, `${p.key}.dataroot_gt`);
  return out;
}

/** A small LRU cache of decoded images (by path), bounded in bytes. */
class ImageCache {
  private map = new Map<string, Promise<Planar>>();
  private bytes = 0;
  private sizes = new Map<string, number>();
  constructor(private readonly budget: number) {}
  get(path: string): Promise<Planar> {
    const hit = this.map.get(path);
    if (hit) {
      this.map.delete(path);
      this.map.set(path, hit);
      return hit;
    }
    const p = loadImage(path).then((img) => {
      const pl: Planar = { data: img.rgb.data, height: img.height, width: img.width };
      const n = pl.data.byteLength;
      if (this.map.get(path) === p) {
        this.sizes.set(path, n);
        this.bytes += n;
        this.evict();
      }
      return pl;
    });
    this.map.set(path, p);
    p.catch(() => this.map.delete(path));
    return p;
  }
  private evict(): void {
    for (const k of this.map.keys()) {
      if (this.bytes <= this.budget) break;
      const n = this.sizes.get(k);
      if (n === undefined) continue;
      this.map.delete(k);
      this.sizes.delete(k);
      this.bytes -= n;
    }
  }
}

/** Maps an output pixel (y, x) of a p×p patch to its source pixel; composes crops and flips. */
type CoordMap = (y: number, x: number) => [number, number];

/**
 * BasicSR's `augment(hflip, rotation)`: horizontal flip, vertical flip, then transpose (rot90),
 * as a map from output to input coordinates of a p×p patch.
 */
export function basicsrAugment(h: boolean, v: boolean, t: boolean, p: number): CoordMap {
  return (y, x) => {
    let a = y;
    let b = x;
    if (t) [a, b] = [b, a];
    if (v) a = p - 1 - a;
    if (h) b = p - 1 - b;
    return [a, b];
  };
}

/** Restormer's `data_augmentation(mode)` (numpy rot90 k times, then flipud for odd modes). */
export function restormerAugment(mode: number, p: number): CoordMap {
  const k = mode >> 1;
  const flip = (mode & 1) === 1;
  return (y, x) => {
    let a = y;
    let b = x;
    if (flip) a = p - 1 - a;
    for (let i = 0; i < k; i++) [a, b] = [b, p - 1 - a];
    return [a, b];
  };
}

/** OpenCV BORDER_REFLECT index (…cba|abc…cba|…), for padding to the patch size. */
function reflect(i: number, n: number): number {
  if (n === 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - 1 - i;
  return i;
}

/** Gathers a size×size patch of `src`: output (y, x) ← src(top + m(y,x)), reflecting past the edges. */
function gather(src: Planar, size: number, top: number, left: number, map: CoordMap): Planar {
  const hw = size * size;
  const shw = src.height * src.width;
  const idx = new Int32Array(hw);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const [a, b] = map(y, x);
      idx[y * size + x] = reflect(top + a, src.height) * src.width + reflect(left + b, src.width);
    }
  }
  const out = new Float32Array(3 * hw);
  for (let c = 0; c < 3; c++) {
    const so = c * shw;
    const oo = c * hw;
    for (let i = 0; i < hw; i++) out[oo + i] = src.data[so + idx[i]!]!;
  }
  return { data: out, height: size, width: size };
}

/** Number of uniforms a paired sample plan holds: crop top, crop left, and three augmentation draws. */
const PAIRED_DRAWS = 5;

/** The paired datasets (PairedImageDataset, DeblurPairedDataset) over image folders. */
export class PairedFolderDataset implements TrainDataset {
  readonly files: { lq: string; gt: string; name: string }[];
  private readonly cache: ImageCache;
  constructor(
    readonly spec: DatasetPlan,
    cacheBytes = 512 * 2 ** 20,
  ) {
    this.files = pairedPaths(spec);
    this.cache = new ImageCache(cacheBytes);
  }
  get size(): number {
    return this.files.length;
  }

  plan(index: number, rng: Rng): SamplePlan {
    const u: number[] = [];
    for (let i = 0; i < PAIRED_DRAWS; i++) u.push(rng.uniform());
    return { index, u };
  }

  private async images(i: number): Promise<{ lq: Planar; gt: Planar; name: string }> {
    const f = this.files[i]!;
    const [lq, gt] = await Promise.all([this.cache.get(f.lq), this.cache.get(f.gt)]);
    return { lq, gt, name: f.name };
  }

  /** Loads the GT patch of `gtSize` (and its LQ patch), sub-cropped to `sub` at `(oy, ox)` LQ pixels when given. */
  async loadPatch(plan: SamplePlan, sub?: { size: number; oy: number; ox: number }): Promise<Pair> {
    const p = this.spec;
    const s = p.scale;
    const { lq, gt, name } = await this.images(plan.index);
    const gtPath = this.files[plan.index]!.gt;
    const deblur = p.type === 'DeblurPairedDataset';
    if (!deblur && (gt.height !== lq.height * s || gt.width !== lq.width * s)) {
      throw new DataError(`${gtPath}: scale mismatches: GT (${gt.height}, ${gt.width}) is not ${s}x multiplication of LQ (${lq.height}, ${lq.width})`, `${p.key}.dataroot_gt`);
    }
    if (deblur && (gt.height !== lq.height || gt.width !== lq.width)) {
      throw new DataError(`${gtPath}: GT (${gt.height}, ${gt.width}) and LQ (${lq.height}, ${lq.width}) differ in size`, `${p.key}.dataroot_gt`);
    }
    const lqPatch = p.gtSize / s;
    // DeblurPairedDataset pads (reflect) images smaller than the patch; BasicSR refuses them.
    const lh = deblur ? Math.max(lq.height, lqPatch) : lq.height;
    const lw = deblur ? Math.max(lq.width, lqPatch) : lq.width;
    if (lh < lqPatch || lw < lqPatch) {
      throw new DataError(`${gtPath}: LQ (${lq.height}, ${lq.width}) is smaller than the patch size (${lqPatch}, ${lqPatch}); remove it or lower gt_size`, `${p.key}.gt_size`);
    }
    const [u0, u1, u2, u3, u4] = plan.u as [number, number, number, number, number];
    const top = Math.floor(u0 * (lh - lqPatch + 1));
    const left = Math.floor(u1 * (lw - lqPatch + 1));
    const aug = (size: number): CoordMap => {
      if (deblur) return p.geometricAugs ? restormerAugment(Math.floor(u2 * 8), size) : (y, x) => [y, x];
      return basicsrAugment(p.useHflip && u2 < 0.5, p.useRot && u3 < 0.5, p.useRot && u4 < 0.5, size);
    };
    const lqAug = aug(lqPatch);
    const gtAug = aug(p.gtSize);
    const size = sub?.size ?? lqPatch;
    const oy = sub?.oy ?? 0;
    const ox = sub?.ox ?? 0;
    return {
      lq: gather(lq, size, top, left, (y, x) => lqAug(y + oy, x + ox)),
      gt: gather(gt, size * s, top * s, left * s, (y, x) => gtAug(y + oy * s, x + ox * s)),
      name,
    };
  }

  load(plan: SamplePlan): Promise<Pair> {
    return this.loadPatch(plan);
  }

  /** Validation: the whole LQ image and its GT cropped to `scale ×` the LQ size. */
  async loadVal(i: number): Promise<Pair> {
    const { lq, gt, name } = await this.images(i);
    const s = this.spec.scale;
    const h = lq.height * s;
    const w = lq.width * s;
    if (gt.height < h || gt.width < w) {
      throw new DataError(`${this.files[i]!.gt}: GT (${gt.height}, ${gt.width}) is smaller than ${s}× the LQ (${lq.height}, ${lq.width})`, `${this.spec.key}.dataroot_gt`);
    }
    const g = crop(f32([1, 3, gt.height, gt.width], gt.data), 0, 0, h, w);
    return { lq, gt: { data: g.data, height: h, width: w }, name };
  }
}

/** Opens the datasets of a `datasets.*` entry. */
export function openTrainDataset(p: DatasetPlan): TrainDataset {
  const f = factories.get(p.type);
  if (f) {
    const d = f(p).train;
    if (!d) throw new DataError(`${p.key}.type: '${p.type}' cannot be used for training`, `${p.key}.type`);
    return d;
  }
  if (p.realesrgan) throw new Error(`${p.key}.type: '${p.type}' is not registered (import 'src/train/realesrgan-data.js', as the trainer does)`);
  return new PairedFolderDataset(p);
}

/** Opens a validation dataset. */
export function openValDataset(p: DatasetPlan): ValDataset {
  const f = factories.get(p.type);
  if (f) {
    const d = f(p).val;
    if (!d) throw new DataError(`${p.key}.type: '${p.type}' cannot be used for validation`, `${p.key}.type`);
    return d;
  }
  const d = new PairedFolderDataset(p);
  return { size: d.size, load: (i) => d.loadVal(i) };
}

// ------------------------------------------------------------------------------ loader

/** The loader's position: epoch, place in the epoch, and the random generator. */
export interface LoaderState {
  epoch: number;
  pos: number;
  rng: number[];
}

/** A batch: network input and ground truth, (B,3,h,w) and (B,3,h·s,w·s). */
export interface Batch {
  readonly lq: HostTensor<'float32'>;
  readonly gt: HostTensor<'float32'>;
}

/** What the loader decided for one iteration: per micro-batch, which samples and how. */
export interface BatchPlan {
  readonly iter: number;
  /** The loader state before this plan was drawn (what a checkpoint taken before it saves). */
  readonly before: LoaderState;
  readonly micro: readonly {
    readonly samples: readonly SamplePlan[];
    /** Progressive training: patch (LQ pixels) and offsets inside the full patch. */
    readonly sub: { readonly size: number; readonly oy: number; readonly ox: number } | null;
    readonly mixup: { readonly lam: number; readonly perm: readonly number[] } | null;
    /** Batch-level draws of datasets with `planBatch`, else null. */
    readonly batch: readonly number[] | null;
  }[];
}

/** Loader settings. */
export interface LoaderOptions {
  readonly seed: number;
  /** Micro-batches per iteration (simulated devices). */
  readonly worldSize: number;
  readonly mixup: { readonly beta: number; readonly useIdentity: boolean } | null;
}

/** A standard normal from two uniforms (Box–Muller, nothing cached, so the state stays four words). */
export function gaussian(rng: Rng): number {
  let u = 0;
  while (u === 0) u = rng.uniform();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.uniform());
}

/** `n` standard normals in pairs (Box–Muller), without caching anything in `rng`. */
export function gaussians(rng: Rng, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    let u = 0;
    while (u === 0) u = rng.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    const t = 2 * Math.PI * rng.uniform();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

/** Gamma(k, 1) by Marsaglia–Tsang. */
function gamma(rng: Rng, k: number): number {
  if (k < 1) return gamma(rng, k + 1) * rng.uniform() ** (1 / k);
  const d = k - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = gaussian(rng);
    const v = (1 + c * x) ** 3;
    if (v <= 0) continue;
    const u = rng.uniform();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

/** Beta(a, b) from two gammas. */
export function beta(rng: Rng, a: number, b: number): number {
  const x = gamma(rng, a);
  return x / (x + gamma(rng, b));
}

/**
 * Draws training batches. Each epoch visits `size × dataset_enlarge_ratio` samples in an
 * order that depends only on the seed and the epoch (like BasicSR's EnlargedSampler), in
 * batches of `batch_size_per_gpu` (the last incomplete batch is dropped, as with drop_last).
 */
export class TrainLoader {
  private st: LoaderState;
  private order: { epoch: number; perm: Uint32Array | null } = { epoch: -1, perm: null };
  private rng: Rng;
  /** One training-pair pool per device (each DDP process has its own queue), or null. */
  private readonly pools: PairPool[] | null;
  private poolRng: Rng;

  constructor(
    readonly dataset: TrainDataset,
    readonly spec: DatasetPlan,
    readonly o: LoaderOptions,
  ) {
    const total = dataset.size * spec.enlargeRatio;
    if (total < spec.batchSize) {
      throw new DataError(`${spec.key}: ${dataset.size} image(s) × dataset_enlarge_ratio ${spec.enlargeRatio} is fewer than batch_size_per_gpu ${spec.batchSize}`, `${spec.key}.batch_size_per_gpu`);
    }
    this.rng = new Rng(o.seed ^ 0x5eed);
    this.st = { epoch: 0, pos: 0, rng: [...this.rng.state()] };
    const q = dataset.poolSize ?? 0;
    this.pools = q > 0 ? Array.from({ length: o.worldSize }, () => new PairPool(q)) : null;
    this.poolRng = new Rng((o.seed ^ 0x9001) >>> 0);
  }

  /** The current state (to save in a checkpoint). */
  state(): LoaderState {
    return { epoch: this.st.epoch, pos: this.st.pos, rng: [...this.rng.state()] };
  }

  /** Restores a saved state. */
  setState(s: LoaderState): void {
    this.st = { epoch: s.epoch, pos: s.pos, rng: [...s.rng] };
    this.rng = new Rng(Uint32Array.from(s.rng));
  }

  /** Current epoch. */
  get epoch(): number {
    return this.st.epoch;
  }

  private nextIndex(): number {
    const size = this.dataset.size;
    const total = size * this.spec.enlargeRatio;
    if (this.order.epoch !== this.st.epoch) {
      this.order = { epoch: this.st.epoch, perm: this.spec.useShuffle ? permutation(new Rng((this.o.seed * 0x9e3779b1 + this.st.epoch * 0x85ebca6b) >>> 0), total) : null };
    }
    const i = this.st.pos++;
    return (this.order.perm ? this.order.perm[i]! : i) % size;
  }

  /** Plans the batches of iteration `iter` (draws every random decision now). */
  plan(iter: number): BatchPlan {
    const before = this.state();
    const p = this.spec;
    const bs = p.batchSize;
    const total = this.dataset.size * p.enlargeRatio;
    const micro: BatchPlan['micro'][number][] = [];
    for (let r = 0; r < this.o.worldSize; r++) {
      if (this.st.pos + bs > total) {
        this.st.epoch++;
        this.st.pos = 0;
      }
      const all: SamplePlan[] = [];
      for (let i = 0; i < bs; i++) all.push(this.dataset.plan(this.nextIndex(), this.rng));
      const batch = this.dataset.planBatch ? this.dataset.planBatch(this.rng) : null;
      let samples = all;
      let sub: BatchPlan['micro'][number]['sub'] = null;
      if (p.progressive) {
        const st = progressiveStage(p.progressive, iter);
        if (st.batch < bs) {
          // random.sample(range(batch_size), k=mini_batch_size)
          const idx = Array.from({ length: bs }, (_, i) => i);
          samples = [];
          for (let i = 0; i < st.batch; i++) {
            const j = i + this.rng.int(bs - i);
            [idx[i], idx[j]] = [idx[j]!, idx[i]!];
            samples.push(all[idx[i]!]!);
          }
        }
        if (st.gtSize < p.gtSize) {
          const lqFull = p.gtSize / p.scale;
          const size = st.gtSize / p.scale;
          const oy = Math.floor((lqFull - size) * this.rng.uniform());
          const ox = Math.floor((lqFull - size) * this.rng.uniform());
          sub = { size, oy, ox };
        }
      }
      let mixup: BatchPlan['micro'][number]['mixup'] = null;
      if (this.o.mixup) {
        const apply = this.o.mixup.useIdentity ? this.rng.int(2) === 0 : true;
        if (apply) {
          const lam = beta(this.rng, this.o.mixup.beta, this.o.mixup.beta);
          mixup = { lam, perm: [...permutation(this.rng, samples.length)] };
        }
      }
      micro.push({ samples, sub, mixup, batch });
    }
    return { iter, before, micro };
  }

  /**
   * Loads the planned batches (one per micro-batch). With a training-pair pool these are the
   * batches that go into the pool: pass them through {@link take} in iteration order.
   */
  async load(plan: BatchPlan): Promise<Batch[]> {
    return Promise.all(plan.micro.map(async (m) => {
      const b = await this.loadMicro(m);
      if (m.mixup && !this.pools) mix(b, m.mixup.lam, m.mixup.perm);
      return b;
    }));
  }

  private async loadMicro(m: { readonly samples: readonly SamplePlan[]; readonly sub: BatchPlan['micro'][number]['sub']; readonly batch: readonly number[] | null }): Promise<Batch> {
    const ds = this.dataset;
    if (ds.loadBatch && m.batch) return ds.loadBatch(m.samples, m.batch);
    const pairs = await Promise.all(m.samples.map((sp) => (m.sub && ds instanceof PairedFolderDataset ? ds.loadPatch(sp, m.sub) : ds.load(sp))));
    return stack(pairs);
  }

  /** Whether batches pass through a training-pair pool (see {@link take}). */
  get pooled(): boolean {
    return this.pools !== null;
  }

  /**
   * The batches to train on at iteration `plan.iter`, from what {@link load} gave: without a
   * pool, those; with one, what the pool hands out for them (then mixup). Call once per
   * iteration, in order: the pool changes with every call.
   */
  take(plan: BatchPlan, loaded: Batch[]): Batch[] {
    if (!this.pools) return loaded;
    const pools = this.pools;
    return loaded.map((b, r) => {
      const m = plan.micro[r]!;
      const out = pools[r]!.push(b, { iter: plan.iter, micro: r, samples: m.samples, batch: m.batch }, this.poolRng);
      if (m.mixup) mix(out, m.mixup.lam, m.mixup.perm);
      return out;
    });
  }

  /**
   * The pools as a training state saves them: not the pixels but where each pair came from
   * (the plan of its batch and its place in it), and the pool generator. Batches are a
   * deterministic function of their plans, so {@link restorePools} rebuilds the contents.
   */
  poolState(): PoolState | null {
    if (!this.pools) return null;
    const refs = new Map<PoolSource, number>();
    const batches: PoolState['batches'][number][] = [];
    const slots = this.pools.map((pool) =>
      pool.entries.flatMap((e) => {
        let i = refs.get(e.src);
        if (i === undefined) {
          i = batches.length;
          refs.set(e.src, i);
          batches.push({ iter: e.src.iter, micro: e.src.micro, samples: e.src.samples.map((s) => ({ index: s.index, u: [...s.u] })), batch: e.src.batch ? [...e.src.batch] : null });
        }
        return [i, e.k];
      }),
    );
    return { rng: [...this.poolRng.state()], batches, slots };
  }

  /** Rebuilds the pools of a saved {@link poolState}: reloads the batches their pairs came from. */
  async restorePools(s: PoolState): Promise<void> {
    if (!this.pools) throw new Error('internal: this loader has no training-pair pool');
    if (s.slots.length !== this.pools.length) throw new Error(`the training state has ${s.slots.length} training-pair pool(s) for ${this.pools.length} device(s)`);
    const sources: PoolSource[] = s.batches.map((b) => ({ iter: b.iter, micro: b.micro, samples: b.samples, batch: b.batch }));
    const loaded: Batch[] = [];
    for (const src of sources) loaded.push(await this.loadMicro({ samples: src.samples, sub: null, batch: src.batch }));
    this.pools.forEach((pool, r) => {
      const flat = s.slots[r]!;
      if (flat.length % 2 !== 0 || flat.length / 2 > pool.size) throw new Error('the training state has a malformed training-pair pool');
      const entries: PoolEntry[] = [];
      for (let i = 0; i < flat.length; i += 2) {
        const [ref, k] = [flat[i]!, flat[i + 1]!];
        const b = loaded[ref];
        if (!b || k >= b.lq.shape[0]!) throw new Error('the training state has a malformed training-pair pool');
        entries.push(poolEntry(b, k, sources[ref]!));
      }
      pool.entries = entries;
    });
    this.poolRng = new Rng(Uint32Array.from(s.rng));
  }
}

/** Where a pooled pair came from: its batch's plan. */
interface PoolSource {
  readonly iter: number;
  readonly micro: number;
  readonly samples: readonly SamplePlan[];
  readonly batch: readonly number[] | null;
}

/** A pair in the pool, with its source (pair `k` of the batch `src` planned). */
interface PoolEntry {
  readonly lq: Float32Array;
  readonly gt: Float32Array;
  readonly src: PoolSource;
  readonly k: number;
}

function poolEntry(b: Batch, k: number, src: PoolSource): PoolEntry {
  const nl = b.lq.data.length / b.lq.shape[0]!;
  const ng = b.gt.data.length / b.gt.shape[0]!;
  return { lq: b.lq.data.slice(k * nl, (k + 1) * nl), gt: b.gt.data.slice(k * ng, (k + 1) * ng), src, k };
}

/**
 * Real-ESRGAN's training pair pool (`_dequeue_and_enqueue` of RealESRNetModel and DiffIR's RealSR
 * models): while it fills, batches pass through and are stored; once full, the queue is
 * shuffled, its first B pairs go out and the incoming batch takes their place.
 */
class PairPool {
  entries: PoolEntry[] = [];
  constructor(readonly size: number) {}

  push(b: Batch, src: PoolSource, rng: Rng): Batch {
    const n = b.lq.shape[0]!;
    if (this.size % n !== 0) throw new Error(`queue size ${this.size} should be divisible by batch size ${n}`);
    const incoming = Array.from({ length: n }, (_, k) => poolEntry(b, k, src));
    if (this.entries.length < this.size) {
      this.entries.push(...incoming);
      return b;
    }
    const perm = permutation(rng, this.size);
    const q = Array.from(perm, (i) => this.entries[i]!);
    const out = q.slice(0, n);
    for (let k = 0; k < n; k++) q[k] = incoming[k]!;
    this.entries = q;
    const lq = new Float32Array(b.lq.data.length);
    const gt = new Float32Array(b.gt.data.length);
    out.forEach((e, k) => {
      lq.set(e.lq, k * e.lq.length);
      gt.set(e.gt, k * e.gt.length);
    });
    return { lq: f32([...b.lq.shape], lq), gt: f32([...b.gt.shape], gt) };
  }
}

/** Stacks pairs of equal size into a batch. */
export function stack(pairs: readonly Pair[]): Batch {
  const { lq: l0, gt: g0 } = pairs[0]!;
  const lqN = 3 * l0.height * l0.width;
  const gtN = 3 * g0.height * g0.width;
  const lq = new Float32Array(pairs.length * lqN);
  const gt = new Float32Array(pairs.length * gtN);
  pairs.forEach((p, i) => {
    if (p.lq.data.length !== lqN || p.gt.data.length !== gtN) throw new Error('a batch needs samples of one size');
    lq.set(p.lq.data, i * lqN);
    gt.set(p.gt.data, i * gtN);
  });
  return { lq: f32([pairs.length, 3, l0.height, l0.width], lq), gt: f32([pairs.length, 3, g0.height, g0.width], gt) };
}

/** Mixup (DiffIR's Mixing_Augment): x ← λ·x + (1−λ)·x[perm], for GT and LQ alike, in float32. */
function mix(b: Batch, lam: number, perm: readonly number[]): void {
  for (const t of [b.gt, b.lq]) {
    const n = t.data.length / perm.length;
    const src = Float32Array.from(t.data);
    const l = Math.fround(lam);
    const m = Math.fround(1 - lam);
    for (let i = 0; i < perm.length; i++) {
      for (let k = 0; k < n; k++) t.data[i * n + k] = Math.fround(l * src[i * n + k]!) + Math.fround(m * src[perm[i]! * n + k]!);
    }
  }
}
