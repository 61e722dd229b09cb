/**
 * Held-out evaluation pairs for ×4 super-resolution on the three kinds of input the default
 * model is meant for: clean (MATLAB bicubic ×1/4), mild (blur σ 0.8, ×1/4, JPEG 80) and heavy
 * (Real-ESRGAN second order with DiffIR's RealSR ranges). The crops and every random draw
 * depend only on the photo's position in the list and the seed, so the benchmark, the test and
 * the training-time validation folders see the same pairs.
 */
import { Rng } from '../random.js';
import { loadImage } from '../image/io.js';
import { crop, type Image } from './tensor-ops.js';
import { degradeRealESRGAN } from './degrade/realesrgan.js';
import { degradeBicubic, degradeMild, MILD_EVAL } from './degrade/mild.js';

/** The input kinds, in report order. */
export const EVAL_KINDS = ['clean', 'mild', 'heavy'] as const;
export type EvalKind = (typeof EVAL_KINDS)[number];

/** How each kind is made, for reports. */
export const EVAL_KIND_LABEL: Readonly<Record<EvalKind, string>> = {
  clean: 'bicubic ×1/4',
  mild: 'mild: blur 0.8, ×1/4, JPEG 80',
  heavy: 'heavy: Real-ESRGAN second order',
};

/** One held-out pair. */
export interface EvalPair {
  /** `<photo stem>_<crop>`. */
  readonly name: string;
  readonly kind: EvalKind;
  readonly gt: Image;
  readonly lq: Image;
}

/** Options of {@link evalPairs}. */
export interface EvalPairOptions {
  /** GT crop size (a multiple of 4; default 256, LQ 64). */
  size?: number;
  /** Crops per photo (default 2). */
  crops?: number;
  /** Seed of the crop positions and degradations (default 0). */
  seed?: number;
  /** Kinds to make (default all three). */
  kinds?: readonly EvalKind[];
}

/** The kind's LQ for a GT crop; `rng` draws the heavy degradation. */
export async function degradeFor(kind: EvalKind, gt: Image, rng: Rng): Promise<Image> {
  const [, , h] = gt.shape as number[];
  switch (kind) {
    case 'clean':
      return degradeBicubic(gt, 4);
    case 'mild':
      return (await degradeMild(gt, rng, MILD_EVAL)).lq;
    case 'heavy':
      return (await degradeRealESRGAN(gt, rng, { gtSize: h! })).lq;
  }
}

/** Pairs for every photo (paths), every crop and every kind; a photo smaller than the crop is an error. */
export async function evalPairs(photos: readonly string[], o: EvalPairOptions = {}): Promise<EvalPair[]> {
  const size = o.size ?? 256;
  if (size % 4 !== 0 || size < 64) throw new Error(`evaluation pairs: crop size ${size} must be a multiple of 4, at least 64`);
  const crops = o.crops ?? 2;
  const seed = o.seed ?? 0;
  const kinds = o.kinds ?? EVAL_KINDS;
  const out: EvalPair[] = [];
  for (const [i, path] of photos.entries()) {
    const img = (await loadImage(path)).rgb;
    const [, , h, w] = img.shape as [number, number, number, number];
    if (h < size || w < size) throw new Error(`${path}: ${w}x${h} is smaller than the ${size}-pixel evaluation crop`);
    const stem = path.replace(/^.*[\\/]/, '').replace(/\.[^.]+$/, '');
    const rng = new Rng(seed * 1000 + i + 1);
    for (let c = 0; c < crops; c++) {
      const gt = crop(img, rng.int(h - size + 1), rng.int(w - size + 1), size, size);
      for (const kind of kinds) {
        const lq = await degradeFor(kind, { ...gt, data: Float32Array.from(gt.data) }, new Rng(seed * 7919 + i * 101 + c * 13 + EVAL_KINDS.indexOf(kind) + 1));
        out.push({ name: `${stem}_${c}`, kind, gt, lq });
      }
    }
  }
  return out;
}
