/**
 * Training datasets that synthesise their inputs: a GT-only folder degraded on the fly
 * (Real-ESRGAN second-order degradation, or MATLAB bicubic downsampling for the SRGAN
 * recipe) and an inpainting set (images with generated or given masks).
 *
 * A dataset returns samples as host tensors [1,C,H,W] float32 in [0,1]; every random
 * choice comes from the Rng it is handed, so a sample depends only on (seed, position)
 * (see `prefetch.ts`). Datasets are also built from plain-data specs (`openDataset`) so
 * that worker threads can make their own.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Rng } from '../random.js';
import { f32 } from '../tensor.js';
import { loadImage } from '../image/io.js';
import { loadMask } from '../image/mask.js';
import { listImages, matchByName, stem } from './folder.js';
import { applyAugment, crop, drawAugment, item, padBottomRight, stack, type Image } from './tensor-ops.js';
import { degradeRealESRGAN, drawKernels, realESRGANOptions, REALESRGAN_CROP_PAD_SIZE, type RealESRGANOptions, type DegradationInfo } from './degrade/realesrgan.js';
import { imresize, interpolate, imresizeSize } from './degrade/resize.js';
import { checkMix, degradeBicubic, degradeMild, drawKind, mildOptions, type DegradationKind, type DegradationMix, type MildOptions } from './degrade/mild.js';
import { drawMask, EVAL_MASKS, maskTensor, type MaskPresetName, type MixedMaskOptions } from './masks.js';
import { uniform } from './rng.js';

/** One training sample. Tensors are [1,C,H,W] float32 in [0,1]. */
export interface Sample {
  /** Network input: the degraded image (for inpainting, the image with holes zeroed). */
  lq: Image;
  /** Target. */
  gt: Image;
  /** Inpainting mask [1,1,H,W], 1 = hole. */
  mask?: Image;
  /** USM-sharpened target (Real-ESRGAN 'V2' recipe). */
  gtUsm?: Image;
  /** Source file, relative to the dataset folder. */
  name: string;
  /** What the degradation drew (JSON-serialisable). */
  info?: unknown;
}

/** Samples stacked along the batch axis. */
export interface SampleBatch {
  lq: Image;
  gt: Image;
  mask?: Image;
  gtUsm?: Image;
  names: string[];
  info?: unknown[];
}

/** Per-batch options the trainer may vary (progressive patch sizes). */
export interface SampleOptions {
  /** GT patch size for this batch (overrides the dataset's). */
  patchSize?: number;
}

/** One sample of a batch request: which image and its own generator. */
export interface SampleRequest {
  index: number;
  rng: Rng;
}

/** A source of training samples. */
export interface Dataset {
  /** Number of images. */
  readonly size: number;
  /** Sample `index` (0 ≤ index < size), drawing every random choice from `rng`. */
  sample(index: number, rng: Rng, opts?: SampleOptions): Promise<Sample>;
  /**
   * Optional: a whole batch at once, for datasets whose official pipeline makes some
   * choices per batch (Real-ESRGAN). `rng` is the batch's generator, `items[i].rng` the samples'.
   */
  batch?(items: readonly SampleRequest[], rng: Rng, opts?: SampleOptions): Promise<SampleBatch>;
  /** Releases resources. */
  close?(): Promise<void>;
}

/** Stacks samples into a batch. */
export function stackSamples(samples: readonly Sample[]): SampleBatch {
  const b: SampleBatch = {
    lq: stack(samples.map((s) => s.lq), 'batch lq'),
    gt: stack(samples.map((s) => s.gt), 'batch gt'),
    names: samples.map((s) => s.name),
  };
  if (samples.some((s) => s.mask)) {
    if (!samples.every((s) => s.mask)) throw new Error('batch: some samples have masks and some do not');
    b.mask = stack(samples.map((s) => s.mask!), 'batch mask');
  }
  if (samples.some((s) => s.gtUsm)) b.gtUsm = stack(samples.map((s) => s.gtUsm!), 'batch gt_usm');
  if (samples.some((s) => s.info !== undefined)) b.info = samples.map((s) => s.info);
  return b;
}

async function loadRgb(root: string, rel: string): Promise<Image> {
  return (await loadImage(join(root, rel))).rgb;
}

/** Pads (reflect-101, bottom/right) to at least `size` and takes a random `size`² window. */
function cropOrPad(t: Image, size: number, rng: Rng): { img: Image; top: number; left: number } {
  const [, , h, w] = t.shape as [number, number, number, number];
  const padded = padBottomRight(t, size - h, size - w);
  const [, , ph, pw] = padded.shape as [number, number, number, number];
  const top = ph > size ? rng.int(ph - size + 1) : 0;
  const left = pw > size ? rng.int(pw - size + 1) : 0;
  return { img: crop(padded, top, left, size, size), top, left };
}

function checkIndex(i: number, size: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= size) throw new Error(`sample index ${i} is out of range (dataset has ${size} images)`);
}

// ------------------------------------------------------------------ Real-ESRGAN

/** Options of {@link RealESRGANDataset}. */
export interface RealESRGANDatasetOptions {
  /** Folder of GT images. */
  root: string;
  /** Include sub-folders (default true). */
  recursive?: boolean;
  /** The images, relative to `root` (e.g. from a BasicSR `meta_info` file); default: the folder's images. */
  files?: readonly string[];
  /** Degradation options (default: DiffIR RealSR ×4); `gtSize` is the final GT patch. */
  degradation?: Partial<RealESRGANOptions>;
  /** GT crop (or reflect-pad) size before degrading (Real-ESRGAN: 400). */
  cropPadSize?: number;
  /** Horizontal flips (default true, as DiffIR's RealSR options). */
  hflip?: boolean;
  /** Vertical flips and transposes (default false). */
  rot?: boolean;
  /**
   * Shares of clean bicubic, mild and Real-ESRGAN samples (default: Real-ESRGAN only). Each
   * sample draws its kind first; bicubic and mild samples are `gtSize` crops of the image,
   * degraded alone (`degrade/mild.ts`).
   */
  mix?: Partial<DegradationMix>;
  /** Ranges of the mild kind (default `MILD_OPTIONS`; the scale is the degradation's). */
  mild?: Partial<MildOptions>;
  /** Keep decoded images in memory up to this many bytes (default 0: decode every sample). */
  cacheBytes?: number;
}

/**
 * A GT-only folder degraded on the fly with the Real-ESRGAN second-order pipeline (or a mix
 * of it with clean bicubic and mild samples). `sample` degrades one image with its own
 * batch-level choices; `batch` reproduces the official data flow (per-batch
 * resize/noise/order choices, per-image kernels) for the Real-ESRGAN samples.
 */
export class RealESRGANDataset implements Dataset {
  private constructor(
    readonly files: readonly string[],
    private readonly o: RealESRGANDatasetOptions,
    readonly degradation: RealESRGANOptions,
    /** The mix of kinds, null for Real-ESRGAN only. */
    readonly mix: DegradationMix | null,
    readonly mild: MildOptions,
  ) {}

  /** Lists the folder. */
  static async open(o: RealESRGANDatasetOptions): Promise<RealESRGANDataset> {
    const deg = realESRGANOptions(o.degradation);
    const cps = o.cropPadSize ?? REALESRGAN_CROP_PAD_SIZE;
    if (!Number.isInteger(cps) || cps % deg.scale !== 0) throw new Error(`Real-ESRGAN dataset: crop size ${cps} must be a multiple of the scale ${deg.scale}`);
    if (deg.gtSize !== null && deg.gtSize > cps) throw new Error(`Real-ESRGAN dataset: gt_size ${deg.gtSize} is larger than the crop size ${cps}`);
    if (o.files && o.files.length === 0) throw new Error(`Real-ESRGAN dataset: no images listed for ${o.root}`);
    const mix = o.mix ? checkMix(o.mix) : null;
    const mild = mildOptions({ ...o.mild, scale: deg.scale });
    return new RealESRGANDataset(o.files ? [...o.files] : await listImages(o.root, { recursive: o.recursive }), o, deg, mix, mild);
  }

  get size(): number {
    return this.files.length;
  }

  /** Decoded images kept between samples (decoding a photo costs more than degrading a crop of it). */
  private readonly decoded = new Map<string, Image>();
  private decodedBytes = 0;

  /** A random `size`² window of image `index` (reflect-padded if smaller), a copy, flipped as configured. */
  private async window(index: number, size: number, rng: Rng): Promise<Image> {
    checkIndex(index, this.size);
    const name = this.files[index]!;
    let img = this.decoded.get(name);
    if (!img) {
      img = await loadRgb(this.o.root, name);
      if (this.decodedBytes + img.data.byteLength <= (this.o.cacheBytes ?? 0)) {
        this.decoded.set(name, img);
        this.decodedBytes += img.data.byteLength;
      }
    }
    let { img: c } = cropOrPad(img, size, rng);
    if (c === img) c = { ...img, shape: [...img.shape], data: Float32Array.from(img.data) };
    return applyAugment(c, drawAugment(rng, { hflip: this.o.hflip ?? true, rot: this.o.rot ?? false }));
  }

  private gtCrop(index: number, rng: Rng): Promise<Image> {
    return this.window(index, this.o.cropPadSize ?? REALESRGAN_CROP_PAD_SIZE, rng);
  }

  private opts(o?: SampleOptions): RealESRGANOptions {
    return o?.patchSize !== undefined ? realESRGANOptions({ ...this.degradation, gtSize: o.patchSize }) : this.degradation;
  }

  /** The sample's kind: drawn first from its generator when there is a mix. */
  private kind(rng: Rng): DegradationKind {
    return this.mix ? drawKind(rng, this.mix) : 'realesrgan';
  }

  /** A clean-bicubic or mild sample: a `gtSize` crop (reflect-padded if smaller) with flips, degraded alone. */
  private async light(index: number, kind: 'bicubic' | 'mild', rng: Rng, o?: SampleOptions): Promise<Sample> {
    const gt = await this.window(index, this.opts(o).gtSize ?? this.o.cropPadSize ?? REALESRGAN_CROP_PAD_SIZE, rng);
    if (kind === 'bicubic') return { lq: await degradeBicubic(gt, this.degradation.scale), gt, name: this.files[index]!, info: { kind } };
    const r = await degradeMild(gt, rng, this.mild);
    return { lq: r.lq, gt, name: this.files[index]!, info: { kind, ...r.info } };
  }

  async sample(index: number, rng: Rng, o?: SampleOptions): Promise<Sample> {
    const kind = this.kind(rng);
    if (kind !== 'realesrgan') return this.light(index, kind, rng, o);
    const gt = await this.gtCrop(index, rng);
    const kernels = drawKernels(rng, this.degradation);
    const r = await degradeRealESRGAN(gt, rng, this.opts(o), [kernels]);
    const s: Sample = { lq: r.lq, gt: r.gt, name: this.files[index]!, info: r.info };
    if (r.gtUsm) s.gtUsm = r.gtUsm;
    return s;
  }

  async batch(items: readonly SampleRequest[], rng: Rng, o?: SampleOptions): Promise<SampleBatch> {
    const kinds = items.map((it) => this.kind(it.rng));
    const real = items.filter((_, i) => kinds[i] === 'realesrgan');
    if (real.length < items.length) {
      // A mixed batch: the Real-ESRGAN samples share the batch's choices, the others are made alone.
      if (this.degradation.usmTarget) throw new Error('Real-ESRGAN dataset: a degradation mix cannot give USM targets');
      const realBatch = real.length ? await this.realBatch(real, rng, o) : null;
      const samples: Sample[] = [];
      let r = 0;
      for (const [i, it] of items.entries()) {
        if (kinds[i] !== 'realesrgan') samples.push(await this.light(it.index, kinds[i] as 'bicubic' | 'mild', it.rng, o));
        else {
          samples.push({ lq: item(realBatch!.lq, r), gt: item(realBatch!.gt, r), name: realBatch!.names[r]!, info: { kind: 'realesrgan', ...(realBatch!.info![r] as object) } });
          r++;
        }
      }
      return stackSamples(samples);
    }
    return this.realBatch(items, rng, o);
  }

  private async realBatch(items: readonly SampleRequest[], rng: Rng, o?: SampleOptions): Promise<SampleBatch> {
    const gts: Image[] = [];
    const kernels = [];
    for (const it of items) {
      gts.push(await this.gtCrop(it.index, it.rng));
      kernels.push(drawKernels(it.rng, this.degradation));
    }
    const r = await degradeRealESRGAN(stack(gts), rng, this.opts(o), kernels);
    const b: SampleBatch = { lq: r.lq, gt: r.gt, names: items.map((it) => this.files[it.index]!), info: items.map(() => r.info as DegradationInfo) };
    if (r.gtUsm) b.gtUsm = r.gtUsm;
    return b;
  }
}

// ------------------------------------------------------------------ bicubic (SRGAN recipe)

/** Options of {@link BicubicDataset}. */
export interface BicubicDatasetOptions {
  /** Folder of GT images. */
  root: string;
  recursive?: boolean;
  /** Downsampling factor (default 4). */
  scale?: number;
  /** GT patch size (default 256); null uses the whole (mod-cropped) image. */
  gtSize?: number | null;
  /** Horizontal flips (default true). */
  hflip?: boolean;
  /** Vertical flips and transposes (default true, as BasicSR's SR recipes). */
  rot?: boolean;
}

/**
 * A GT-only folder whose LQ is MATLAB bicubic `imresize(gt, 1/scale)` (the DF2K/DIV2K
 * LR of the SRGAN recipe), computed on the fly for each patch. The GT is mod-cropped to
 * a multiple of the scale; the patch's LQ equals that of the whole image cropped
 * (the resize runs on the patch plus a 3-pixel LQ margin, and image borders are the
 * image's own).
 */
export class BicubicDataset implements Dataset {
  private constructor(
    readonly files: readonly string[],
    private readonly o: BicubicDatasetOptions,
  ) {}

  static async open(o: BicubicDatasetOptions): Promise<BicubicDataset> {
    const scale = o.scale ?? 4;
    if (!Number.isInteger(scale) || scale < 1) throw new Error(`bicubic dataset: scale must be a positive integer, got ${scale}`);
    const gtSize = o.gtSize === undefined ? 256 : o.gtSize;
    if (gtSize !== null && (!Number.isInteger(gtSize) || gtSize % scale !== 0)) throw new Error(`bicubic dataset: gt_size ${gtSize} must be a multiple of the scale ${scale}`);
    return new BicubicDataset(await listImages(o.root, { recursive: o.recursive }), o);
  }

  get size(): number {
    return this.files.length;
  }

  async sample(index: number, rng: Rng, opts?: SampleOptions): Promise<Sample> {
    checkIndex(index, this.size);
    const s = this.o.scale ?? 4;
    const name = this.files[index]!;
    const full = await loadRgb(this.o.root, name);
    const [, , H, W] = full.shape as [number, number, number, number];
    const lh = Math.floor(H / s);
    const lw = Math.floor(W / s);
    const gtSize = opts?.patchSize ?? (this.o.gtSize === undefined ? 256 : this.o.gtSize);
    let lq: Image;
    let gt: Image;
    let top = 0;
    let left = 0;
    if (gtSize === null) {
      gt = crop(full, 0, 0, lh * s, lw * s);
      lq = await imresize(gt, 1 / s);
    } else {
      const p = gtSize / s;
      if (lh < p || lw < p) throw new Error(`${name}: image ${H}x${W} is smaller than the patch ${gtSize}x${gtSize}`);
      top = rng.int(lh - p + 1);
      left = rng.int(lw - p + 1);
      const m = 3;
      const t0 = Math.max(0, top - m);
      const l0 = Math.max(0, left - m);
      const t1 = Math.min(lh, top + p + m);
      const l1 = Math.min(lw, left + p + m);
      const region = crop(full, t0 * s, l0 * s, (t1 - t0) * s, (l1 - l0) * s);
      const small = await imresize(region, 1 / s);
      if (imresizeSize((t1 - t0) * s, 1 / s) !== t1 - t0) throw new Error('bicubic dataset: unexpected resize size');
      lq = crop(small, top - t0, left - l0, p, p);
      gt = crop(full, top * s, left * s, gtSize, gtSize);
    }
    const a = drawAugment(rng, { hflip: this.o.hflip ?? true, rot: this.o.rot ?? true });
    return { lq: applyAugment(lq, a), gt: applyAugment(gt, a), name, info: { top, left, augment: a } };
  }
}

// ------------------------------------------------------------------ inpainting

/** Masks of {@link InpaintingDataset}: a generator preset or options, or a folder of mask images matched by name. */
export type MaskSource = MaskPresetName | MixedMaskOptions | { dir: string };

/** Options of {@link InpaintingDataset}. */
export interface InpaintingDatasetOptions {
  /** Folder of images. */
  root: string;
  recursive?: boolean;
  /** Square crop size (default 256; smaller images are reflect-padded); null keeps whole images. */
  size?: number | null;
  /**
   * Masks (default 'train': DiffIR's LaMa training masks). A folder of masks is matched
   * by name: `<name>.<ext>` or LaMa's `<name>_mask<digits>.<ext>`; when it is the image
   * folder itself, the `_mask` files are the masks and the rest the images.
   */
  masks?: MaskSource;
  /** Horizontal flips (default true). */
  hflip?: boolean;
  /** Random rescale factor range before cropping, e.g. [0.7, 1.3] (default none). */
  scaleRange?: readonly [number, number];
}

const MASK_SUFFIX = /_mask\d*$/;

/**
 * Images with inpainting masks: `gt` the image crop, `mask` [1,1,H,W] (1 = hole), `lq`
 * the image with holes set to 0 (what the network sees besides the mask).
 */
export class InpaintingDataset implements Dataset {
  private constructor(
    readonly files: readonly string[],
    private readonly maskFiles: ReadonlyMap<string, string> | null,
    private readonly maskDir: string | null,
    private readonly o: InpaintingDatasetOptions,
  ) {}

  static async open(o: InpaintingDatasetOptions): Promise<InpaintingDataset> {
    const src = o.masks ?? 'train';
    let files = await listImages(o.root, { recursive: o.recursive });
    if (typeof src === 'object' && 'dir' in src) {
      const sameDir = src.dir === o.root;
      const masks = sameDir ? files.filter((f) => MASK_SUFFIX.test(stem(f))) : await listImages(src.dir, { recursive: o.recursive });
      if (sameDir) files = files.filter((f) => !MASK_SUFFIX.test(stem(f)));
      if (files.length === 0) throw new Error(`${o.root}: only mask files found, no images`);
      const pairs = matchByName(files, masks, { a: o.root, b: src.dir }, (s) => s.replace(MASK_SUFFIX, ''));
      return new InpaintingDataset(files, pairs, src.dir, o);
    }
    if (typeof src === 'string' && src !== 'train' && !(src in EVAL_MASKS)) {
      throw new Error(`unknown mask set '${src}' (have: train, ${Object.keys(EVAL_MASKS).join(', ')})`);
    }
    return new InpaintingDataset(files, null, null, o);
  }

  get size(): number {
    return this.files.length;
  }

  async sample(index: number, rng: Rng, opts?: SampleOptions): Promise<Sample> {
    checkIndex(index, this.size);
    const name = this.files[index]!;
    let img = await loadRgb(this.o.root, name);
    let [, , h, w] = img.shape as [number, number, number, number];
    let mask: Image | null = null;
    if (this.maskFiles) mask = await loadMask(join(this.maskDir!, this.maskFiles.get(name)!), w, h);
    else if (this.o.scaleRange) {
      const f = uniform(rng, this.o.scaleRange[0], this.o.scaleRange[1]);
      const nh = Math.max(1, Math.round(h * f));
      const nw = Math.max(1, Math.round(w * f));
      img = await interpolate(img, { mode: f < 1 ? 'area' : 'bicubic', size: [nh, nw] });
      for (let i = 0; i < img.data.length; i++) img.data[i] = Math.min(1, Math.max(0, img.data[i]!));
      [h, w] = [nh, nw];
    }
    const size = opts?.patchSize ?? (this.o.size === undefined ? 256 : this.o.size);
    if (size !== null) {
      const c = cropOrPad(img, size, rng);
      if (mask) {
        const padded = padBottomRight(mask, size - h, size - w);
        mask = crop(padded, c.top, c.left, size, size);
      }
      img = c.img;
      [h, w] = [size, size];
    }
    const a = drawAugment(rng, { hflip: this.o.hflip ?? true, rot: false });
    img = applyAugment(img, a);
    if (mask) mask = applyAugment(mask, a);
    else {
      const src = this.o.masks ?? 'train';
      mask = maskTensor(drawMask(src as MaskPresetName | MixedMaskOptions, h, w, rng), h, w);
    }
    const lq = f32(img.shape, new Float32Array(img.data.length));
    const hw = h * w;
    for (let c = 0; c < 3; c++) for (let p = 0; p < hw; p++) lq.data[c * hw + p] = img.data[c * hw + p]! * (1 - mask.data[p]!);
    return { lq, gt: img, mask, name };
  }
}

// ------------------------------------------------------------------ specs

/** A dataset described by plain data, so that worker threads can open their own copy. */
export type DatasetSpec =
  | { kind: 'realesrgan'; options: RealESRGANDatasetOptions }
  | { kind: 'bicubic'; options: BicubicDatasetOptions }
  | { kind: 'inpainting'; options: InpaintingDatasetOptions }
  | {
      kind: 'module';
      /** Path or file URL of an ES module exporting a factory `(options) => Dataset | Promise<Dataset>`. */
      module: string;
      /** Export name of the factory (default 'default'). */
      export?: string;
      options?: unknown;
    };

/** Opens the dataset a spec describes. */
export async function openDataset(spec: DatasetSpec): Promise<Dataset> {
  switch (spec.kind) {
    case 'realesrgan':
      return RealESRGANDataset.open(spec.options);
    case 'bicubic':
      return BicubicDataset.open(spec.options);
    case 'inpainting':
      return InpaintingDataset.open(spec.options);
    case 'module': {
      const url = /^[a-z]+:/i.test(spec.module) && !/^[a-z]:[\\/]/i.test(spec.module) ? spec.module : pathToFileURL(spec.module).href;
      const mod = (await import(url)) as Record<string, unknown>;
      const factory = mod[spec.export ?? 'default'];
      if (typeof factory !== 'function') throw new Error(`${spec.module}: no dataset factory exported as '${spec.export ?? 'default'}'`);
      const ds = (await (factory as (o: unknown) => Dataset | Promise<Dataset>)(spec.options)) as Dataset;
      if (!ds || typeof ds.sample !== 'function' || typeof ds.size !== 'number') throw new Error(`${spec.module}: the factory did not return a dataset (size and sample())`);
      return ds;
    }
    default:
      throw new Error(`unknown dataset kind '${(spec as { kind: string }).kind}'`);
  }
}

