/**
 * The Real-ESRGAN second-order degradation (Real-ESRGAN `RealESRGANDataset` kernels +
 * `RealESRGANModel.feed_data`), with the default ranges of DiffIR's RealSR option files
 * (`options/train_DiffIRS*_x4.yml`), and the training pair pool.
 *
 * Per batch, as the official code: the resize directions, scales and modes, the choice
 * of Gaussian or Poisson noise, whether the second blur happens and the order of the
 * final [resize + sinc] and JPEG. Per image: the three kernels, noise strengths, gray
 * noise and JPEG qualities. Filtering and resizing run in ONNX Runtime, noise in JS,
 * JPEG in libjpeg (sharp).
 */
import type { Rng } from '../../random.js';
import type { HostTensor } from '../../tensor.js';
import { choice, permutation, uniform, weightedChoice } from '../rng.js';
import { dims4, pairedRandomCrop, clamp01, quantize8, type Image } from '../tensor-ops.js';
import { KERNEL_TYPES, randomBlurKernel, randomFinalSinc, type Kernel, type KernelInfo, type KernelType } from './kernels.js';
import { INTERP_MODES, interpolate, type InterpMode } from './resize.js';
import { addGaussianNoise, addPoissonNoise, type NoiseInfo } from './noise.js';
import { randomJpeg } from './jpeg.js';
import { filter2D, usmSharp } from './runtime.js';

/** Every parameter of the pipeline; names follow the BasicSR option keys in camelCase. */
export interface RealESRGANOptions {
  /** SR scale: the LQ is (H/scale)×(W/scale). */
  scale: number;
  /** GT patch size of the final paired random crop (null: no crop, whole image). */
  gtSize: number | null;
  /** Size every kernel is zero-padded to (blur_kernel_size). */
  blurKernelSize: number;
  kernelList: readonly KernelType[];
  kernelProb: readonly number[];
  sincProb: number;
  blurSigma: readonly [number, number];
  betagRange: readonly [number, number];
  betapRange: readonly [number, number];
  kernelList2: readonly KernelType[];
  kernelProb2: readonly number[];
  sincProb2: number;
  blurSigma2: readonly [number, number];
  betagRange2: readonly [number, number];
  betapRange2: readonly [number, number];
  finalSincProb: number;
  /** Probabilities of up, down, keep. */
  resizeProb: readonly [number, number, number];
  resizeRange: readonly [number, number];
  gaussianNoiseProb: number;
  noiseRange: readonly [number, number];
  poissonScaleRange: readonly [number, number];
  grayNoiseProb: number;
  jpegRange: readonly [number, number];
  secondBlurProb: number;
  resizeProb2: readonly [number, number, number];
  resizeRange2: readonly [number, number];
  gaussianNoiseProb2: number;
  noiseRange2: readonly [number, number];
  poissonScaleRange2: readonly [number, number];
  grayNoiseProb2: number;
  jpegRange2: readonly [number, number];
  /** `gt_usm`: USM-sharpen the GT first, so both the target and the degradation start from it (RealESRNet style). */
  gtUsm: boolean;
  /** Also return `gtUsm` = USM(GT patch), the L1 / perceptual target of the 'V2' GAN recipe (`l1_gt_usm`, `percep_gt_usm`). */
  usmTarget: boolean;
  /**
   * Degrade USM(GT) instead of GT while keeping GT as the target, as Real-ESRGAN's own
   * `RealESRGANModel` does (DiffIR's GAN model degrades the plain GT: default false).
   */
  degradeFromUsm: boolean;
}

/** DiffIR RealSR ×4 training options (`train_DiffIRS1_x4.yml`, `train_DiffIRS2_x4.yml`, `train_DiffIRS2_GAN_x4.yml`). */
export const DIFFIR_REALSR_OPTIONS: Readonly<RealESRGANOptions> = Object.freeze({
  scale: 4,
  gtSize: 256,
  blurKernelSize: 21,
  kernelList: KERNEL_TYPES,
  kernelProb: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
  sincProb: 0.1,
  blurSigma: [0.2, 3],
  betagRange: [0.5, 4],
  betapRange: [1, 2],
  kernelList2: KERNEL_TYPES,
  kernelProb2: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
  sincProb2: 0.1,
  blurSigma2: [0.2, 1.5],
  betagRange2: [0.5, 4],
  betapRange2: [1, 2],
  finalSincProb: 0.8,
  resizeProb: [0.2, 0.7, 0.1],
  resizeRange: [0.15, 1.5],
  gaussianNoiseProb: 0.5,
  noiseRange: [1, 30],
  poissonScaleRange: [0.05, 3],
  grayNoiseProb: 0.4,
  jpegRange: [30, 95],
  secondBlurProb: 0.8,
  resizeProb2: [0.3, 0.4, 0.3],
  resizeRange2: [0.3, 1.2],
  gaussianNoiseProb2: 0.5,
  noiseRange2: [1, 25],
  poissonScaleRange2: [0.05, 2.5],
  grayNoiseProb2: 0.4,
  jpegRange2: [30, 95],
  gtUsm: false,
  usmTarget: false,
  degradeFromUsm: false,
} as RealESRGANOptions);

/** The 'V2' GAN recipe (`train_DiffIRS2_GAN_x4_V2.yml`): same ranges, USM-sharpened L1/perceptual targets. */
export const DIFFIR_REALSR_V2_OPTIONS: Readonly<RealESRGANOptions> = Object.freeze({ ...DIFFIR_REALSR_OPTIONS, usmTarget: true });

/** GT crop (or reflect pad) size of Real-ESRGAN's dataset before degradation (hard-coded 400 there). */
export const REALESRGAN_CROP_PAD_SIZE = 400;

/** Training-pair pool size (`queue_size`). */
export const REALESRGAN_QUEUE_SIZE = 180;

/** Fills defaults and checks ranges. */
export function realESRGANOptions(o: Partial<RealESRGANOptions> = {}): RealESRGANOptions {
  const r = { ...DIFFIR_REALSR_OPTIONS, ...o } as RealESRGANOptions;
  if (!Number.isInteger(r.scale) || r.scale < 1) throw new Error(`Real-ESRGAN degradation: scale must be a positive integer, got ${r.scale}`);
  if (r.gtSize !== null && (!Number.isInteger(r.gtSize) || r.gtSize % r.scale !== 0)) {
    throw new Error(`Real-ESRGAN degradation: gt_size ${r.gtSize} must be a multiple of the scale ${r.scale}`);
  }
  if (r.blurKernelSize % 2 !== 1 || r.blurKernelSize < 21) throw new Error(`Real-ESRGAN degradation: blur_kernel_size must be odd and at least 21, got ${r.blurKernelSize}`);
  for (const [list, prob, key] of [
    [r.kernelList, r.kernelProb, 'kernel_list'],
    [r.kernelList2, r.kernelProb2, 'kernel_list2'],
  ] as const) {
    const bad = list.filter((t) => !KERNEL_TYPES.includes(t));
    if (bad.length) throw new Error(`Real-ESRGAN degradation: ${key} has unknown kernel types ${bad.join(', ')} (have: ${KERNEL_TYPES.join(', ')})`);
    if (list.length !== prob.length) throw new Error(`Real-ESRGAN degradation: ${key} has ${list.length} types but its probabilities ${prob.length}`);
  }
  for (const [k, v] of Object.entries(r)) {
    if (/Prob2?$/.test(k) && typeof v === 'number' && !(v >= 0 && v <= 1)) throw new Error(`Real-ESRGAN degradation: ${k} must be in [0,1], got ${v}`);
  }
  return r;
}

/**
 * Reads the Real-ESRGAN keys of a BasicSR option file (top level for the model keys,
 * `datasets.train` for the kernel keys) into options; absent keys keep DiffIR's defaults.
 */
export function realESRGANOptionsFromBasicSR(opt: Record<string, unknown>): RealESRGANOptions {
  const ds = ((opt.datasets as Record<string, unknown> | undefined)?.train ?? {}) as Record<string, unknown>;
  const camel = (s: string): string => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  const out: Record<string, unknown> = {};
  const keys = new Set(Object.keys(DIFFIR_REALSR_OPTIONS));
  for (const src of [ds, opt]) {
    for (const [k, v] of Object.entries(src)) {
      const c = camel(k);
      if (keys.has(c) && v !== null && v !== undefined) out[c] = v;
    }
  }
  if (typeof opt.gt_usm === 'boolean') out.gtUsm = opt.gt_usm;
  if (opt.l1_gt_usm === true || opt.percep_gt_usm === true) out.usmTarget = true;
  return realESRGANOptions(out as Partial<RealESRGANOptions>);
}

/** The three kernels of one image. */
export interface SampleKernels {
  kernel1: Kernel;
  kernel2: Kernel;
  sinc: Kernel;
  info: { kernel1: KernelInfo; kernel2: KernelInfo; sinc: KernelInfo };
}

/** Draws one image's kernels as `RealESRGANDataset.__getitem__` does. */
export function drawKernels(rng: Rng, opts: Partial<RealESRGANOptions> = {}): SampleKernels {
  const o = realESRGANOptions(opts);
  const k1 = randomBlurKernel(
    rng,
    { kernelList: o.kernelList, kernelProb: o.kernelProb, blurSigma: o.blurSigma, betagRange: o.betagRange, betapRange: o.betapRange, sincProb: o.sincProb },
    o.blurKernelSize,
  );
  const k2 = randomBlurKernel(
    rng,
    { kernelList: o.kernelList2, kernelProb: o.kernelProb2, blurSigma: o.blurSigma2, betagRange: o.betagRange2, betapRange: o.betapRange2, sincProb: o.sincProb2 },
    o.blurKernelSize,
  );
  const s = randomFinalSinc(rng, o.finalSincProb, o.blurKernelSize);
  return { kernel1: k1.kernel, kernel2: k2.kernel, sinc: s.kernel, info: { kernel1: k1.info, kernel2: k2.info, sinc: s.info } };
}

/** One random resize as drawn. */
export interface ResizeInfo {
  direction: 'up' | 'down' | 'keep';
  scale: number;
  mode: InterpMode;
  size: [number, number];
}

/** Everything the pipeline drew, for logs and `diffir degrade`. */
export interface DegradationInfo {
  kernels: SampleKernels['info'][];
  stage1: { resize: ResizeInfo; noise: NoiseInfo[]; jpeg: number[] };
  stage2: { blur: boolean; resize: ResizeInfo; noise: NoiseInfo[] };
  final: { order: 'resize+sinc,jpeg' | 'jpeg,resize+sinc'; mode: InterpMode; jpeg: number[] };
  crop?: { gtSize: number };
}

/** Result of {@link degradeRealESRGAN}: LQ, GT (cropped), optionally USM(GT), and what was drawn. */
export interface DegradedPair {
  lq: Image;
  gt: Image;
  gtUsm?: Image;
  info: DegradationInfo;
}

function drawDirection(rng: Rng, prob: readonly [number, number, number], range: readonly [number, number]): { direction: 'up' | 'down' | 'keep'; scale: number } {
  const direction = weightedChoice(rng, ['up', 'down', 'keep'] as const, prob);
  const scale = direction === 'up' ? uniform(rng, 1, range[1]) : direction === 'down' ? uniform(rng, range[0], 1) : 1;
  return { direction, scale };
}

function addNoise(x: Image, rng: Rng, gaussProb: number, sigma: readonly [number, number], poisson: readonly [number, number], grayProb: number): NoiseInfo[] {
  return rng.uniform() < gaussProb ? addGaussianNoise(x, rng, sigma, grayProb) : addPoissonNoise(x, rng, poisson, grayProb);
}

/**
 * Degrades a batch of GT images [N,3,H,W] in [0,1] (H, W multiples of `scale`, typically
 * the 400² crops of the dataset) into LQ [N,3,H/scale,W/scale] with the second-order
 * pipeline, then takes the paired random crop (`gtSize`). `kernels` defaults to drawing
 * one set per image from `rng`. The input is not modified.
 */
export async function degradeRealESRGAN(gtIn: Image, rng: Rng, opts: Partial<RealESRGANOptions> = {}, kernels?: readonly SampleKernels[]): Promise<DegradedPair> {
  const o = realESRGANOptions(opts);
  const [n, c, oriH, oriW] = dims4(gtIn, 'Real-ESRGAN degradation');
  if (c !== 3) throw new Error(`Real-ESRGAN degradation: expected RGB images, got ${c} channels`);
  if (oriH % o.scale || oriW % o.scale) throw new Error(`Real-ESRGAN degradation: GT ${oriH}x${oriW} is not a multiple of the scale ${o.scale}`);
  const half = (o.blurKernelSize - 1) / 2;
  const smallest = Math.min(Math.floor(Math.min(oriH, oriW) * o.resizeRange[0]), Math.floor(Math.min(oriH, oriW) / o.scale));
  if (smallest <= half) {
    throw new Error(`Real-ESRGAN degradation: a ${oriH}x${oriW} GT is too small for these ranges (the image can shrink to ${smallest} pixels, the ${o.blurKernelSize}x${o.blurKernelSize} kernels need more than ${half})`);
  }
  const ks = kernels ?? Array.from({ length: n }, () => drawKernels(rng, o));
  if (ks.length !== n) throw new Error(`Real-ESRGAN degradation: ${ks.length} kernel sets for a batch of ${n}`);

  let gt = gtIn;
  if (o.gtUsm) gt = await usmSharp(gt);
  const source = o.degradeFromUsm && !o.gtUsm ? await usmSharp(gt) : gt;

  // ---- first degradation: blur, random resize, noise, JPEG
  let out = await filter2D(source, ks.map((k) => k.kernel1));
  const d1 = drawDirection(rng, o.resizeProb, o.resizeRange);
  const mode1 = choice(rng, INTERP_MODES);
  out = await interpolate(out, { mode: mode1, scale: d1.scale });
  const noise1 = addNoise(out, rng, o.gaussianNoiseProb, o.noiseRange, o.poissonScaleRange, o.grayNoiseProb);
  clamp01(out);
  const jpeg1 = await randomJpeg(out, rng, o.jpegRange);

  // ---- second degradation: blur (sometimes), random resize to a size relative to the LQ, noise
  const blur2 = rng.uniform() < o.secondBlurProb;
  if (blur2) out = await filter2D(out, ks.map((k) => k.kernel2));
  const d2 = drawDirection(rng, o.resizeProb2, o.resizeRange2);
  const mode2 = choice(rng, INTERP_MODES);
  const size2: [number, number] = [Math.trunc((oriH / o.scale) * d2.scale), Math.trunc((oriW / o.scale) * d2.scale)];
  out = await interpolate(out, { mode: mode2, size: size2 });
  const noise2 = addNoise(out, rng, o.gaussianNoiseProb2, o.noiseRange2, o.poissonScaleRange2, o.grayNoiseProb2);

  // ---- [resize back + final sinc] and JPEG, in random order
  const lqSize: [number, number] = [Math.floor(oriH / o.scale), Math.floor(oriW / o.scale)];
  const sincFirst = rng.uniform() < 0.5;
  let mode3: InterpMode;
  let jpeg2: number[];
  if (sincFirst) {
    mode3 = choice(rng, INTERP_MODES);
    out = await interpolate(out, { mode: mode3, size: lqSize });
    out = await filter2D(out, ks.map((k) => k.sinc));
    clamp01(out);
    jpeg2 = await randomJpeg(out, rng, o.jpegRange2);
  } else {
    clamp01(out);
    jpeg2 = await randomJpeg(out, rng, o.jpegRange2);
    mode3 = choice(rng, INTERP_MODES);
    out = await interpolate(out, { mode: mode3, size: lqSize });
    out = await filter2D(out, ks.map((k) => k.sinc));
  }
  const lqFull = quantize8(out);

  const info: DegradationInfo = {
    kernels: ks.map((k) => k.info),
    stage1: { resize: { ...d1, mode: mode1, size: [Math.floor(oriH * d1.scale), Math.floor(oriW * d1.scale)] }, noise: noise1, jpeg: jpeg1 },
    stage2: { blur: blur2, resize: { ...d2, mode: mode2, size: size2 }, noise: noise2 },
    final: { order: sincFirst ? 'resize+sinc,jpeg' : 'jpeg,resize+sinc', mode: mode3, jpeg: jpeg2 },
  };
  let lq = lqFull;
  let gtOut = gt === gtIn ? { dtype: 'float32' as const, shape: [...gt.shape], data: Float32Array.from(gt.data) } : gt;
  if (o.gtSize !== null) {
    const r = pairedRandomCrop(lqFull, [gtOut], o.gtSize, o.scale, rng);
    lq = r.lq;
    gtOut = r.gts[0]!;
    info.crop = { gtSize: o.gtSize };
  }
  const res: DegradedPair = { lq, gt: gtOut, info };
  if (o.usmTarget) res.gtUsm = await usmSharp(gtOut);
  return res;
}

/** A training pair (batch) the pool holds. */
export interface PairBatch {
  lq: HostTensor<'float32'>;
  gt: HostTensor<'float32'>;
  gtUsm?: HostTensor<'float32'>;
  /** Optional labels (e.g. source file names) that travel with their pairs. */
  names?: string[];
}

/**
 * Real-ESRGAN's training pair pool (`_dequeue_and_enqueue`): while filling, batches pass
 * through and are stored; once full, the pool is shuffled, the first B pairs go out and
 * the incoming batch takes their place — so a batch mixes pairs degraded with different
 * batch-level choices (resize scale, noise type, order).
 */
export class TrainingPairPool {
  private slots: { lq: Float32Array; gt: Float32Array; gtUsm?: Float32Array; name?: string }[] = [];
  private order: number[] = [];
  private shapes: { lq: number[]; gt: number[]; usm: boolean } | null = null;

  constructor(
    /** Pool capacity in pairs (`queue_size`); must be a multiple of the batch size. */
    readonly size: number,
    private readonly rng: Rng,
  ) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`training pair pool: size must be a positive integer, got ${size}`);
  }

  /** Pairs currently held. */
  get filled(): number {
    return this.slots.length;
  }

  /** Feeds a batch; returns the batch to train on (the same one while the pool fills). */
  push(batch: PairBatch): PairBatch {
    const [b, ...lqShape] = dims4(batch.lq, 'pool lq');
    const [gb, ...gtShape] = dims4(batch.gt, 'pool gt');
    if (gb !== b) throw new Error(`training pair pool: lq has ${b} images but gt has ${gb}`);
    const usm = batch.gtUsm !== undefined;
    if (!this.shapes) {
      if (this.size % b !== 0) throw new Error(`training pair pool: queue size ${this.size} should be divisible by batch size ${b}`);
      this.shapes = { lq: lqShape, gt: gtShape, usm };
    } else if (this.shapes.lq.join() !== lqShape.join() || this.shapes.gt.join() !== gtShape.join() || this.shapes.usm !== usm) {
      throw new Error('training pair pool: every batch must have the same shapes');
    }
    const lqN = lqShape.reduce((a, d) => a * d, 1);
    const gtN = gtShape.reduce((a, d) => a * d, 1);
    const pair = (i: number) => ({
      lq: batch.lq.data.slice(i * lqN, (i + 1) * lqN),
      gt: batch.gt.data.slice(i * gtN, (i + 1) * gtN),
      ...(usm ? { gtUsm: batch.gtUsm!.data.slice(i * gtN, (i + 1) * gtN) } : {}),
      ...(batch.names ? { name: batch.names[i] } : {}),
    });
    if (this.slots.length < this.size) {
      for (let i = 0; i < b; i++) {
        this.order.push(this.slots.length);
        this.slots.push(pair(i));
      }
      return batch;
    }
    const perm = permutation(this.rng, this.size);
    this.order = Array.from(perm, (p) => this.order[p]!);
    const lq = new Float32Array(b * lqN);
    const gt = new Float32Array(b * gtN);
    const gtUsm = usm ? new Float32Array(b * gtN) : undefined;
    const names: string[] = [];
    for (let i = 0; i < b; i++) {
      const slot = this.order[i]!;
      const s = this.slots[slot]!;
      names.push(s.name ?? '');
      lq.set(s.lq, i * lqN);
      gt.set(s.gt, i * gtN);
      if (gtUsm) gtUsm.set(s.gtUsm!, i * gtN);
      this.slots[slot] = pair(i);
    }
    const out: PairBatch = {
      lq: { dtype: 'float32', shape: [b, ...lqShape], data: lq },
      gt: { dtype: 'float32', shape: [b, ...gtShape], data: gt },
    };
    if (gtUsm) out.gtUsm = { dtype: 'float32', shape: [b, ...gtShape], data: gtUsm };
    if (batch.names) out.names = names;
    return out;
  }
}
