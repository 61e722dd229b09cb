/**
 * Inpainting masks as LaMa makes them (`saicinpainting/training/data/masks.py`):
 * irregular brush strokes and boxes, mixed with given probabilities, plus the
 * evaluation mask sets (thin / medium / thick at 256 and 512, `configs/data_gen/random_*.yaml`).
 * A mask is a Uint8Array of H·W values, 1 = hole (to inpaint), 0 = known; every draw comes
 * from the Rng given, so masks are reproducible per seed.
 */
import type { Rng } from '../random.js';
import { f32 } from '../tensor.js';
import type { HostTensor } from '../tensor.js';
import { randint, weightedChoice } from './rng.js';

/** Parameters of LaMa's `RandomIrregularMaskGenerator` (line strokes). */
export interface IrregularMaskOptions {
  /** Stroke directions are 0.01 + {0, …, maxAngle−1} radians (mirrored for even groups). */
  maxAngle: number;
  /** Stroke lengths are 10 + {0, …, maxLen−1} pixels. */
  maxLen: number;
  /** Brush widths are 5 + {0, …, maxWidth−1} pixels. */
  maxWidth: number;
  /** Stroke groups: LaMa's generator draws minTimes … maxTimes+1 of them (its `max_times + 1` ramp default). */
  minTimes: number;
  maxTimes: number;
}

/** Parameters of LaMa's `RandomRectangleMaskGenerator`. */
export interface BoxMaskOptions {
  /** Distance kept free along the image border. */
  margin: number;
  /** Box sides are bboxMinSize … bboxMaxSize (both included, as the generator's ramp default makes them). */
  bboxMinSize: number;
  bboxMaxSize: number;
  /** Boxes drawn: minTimes … maxTimes. */
  minTimes: number;
  maxTimes: number;
}

/** Parameters of LaMa's `MixedMaskGenerator` (probabilities are re-normalised). */
export interface MixedMaskOptions {
  irregularProba: number;
  irregular?: IrregularMaskOptions;
  boxProba: number;
  box?: BoxMaskOptions;
  /** Probability of inverting the mask (default 0). */
  invertProba?: number;
}

/** An evaluation mask set: a mixed generator, variants per image and the largest hole fraction kept. */
export interface EvalMaskPreset {
  mixed: MixedMaskOptions;
  /** Masks proposed per image (`variants_n`); one of those within `maxTamperArea` is kept. */
  variants: number;
  /** Largest allowed hole fraction (`max_tamper_area`). */
  maxTamperArea: number;
  /** Side of the square images of the set (`out_min_size`). */
  size: number;
}

/** LaMa defaults of the irregular generator. */
export const IRREGULAR_DEFAULTS: Readonly<IrregularMaskOptions> = { maxAngle: 4, maxLen: 60, maxWidth: 20, minTimes: 0, maxTimes: 10 };
/** LaMa defaults of the box generator. */
export const BOX_DEFAULTS: Readonly<BoxMaskOptions> = { margin: 10, bboxMinSize: 30, bboxMaxSize: 100, minTimes: 0, maxTimes: 3 };

/** The masks DiffIR trains its inpainting models with (`configs/training/data/abl-04-256-mh-dist.yaml`). */
export const DIFFIR_TRAIN_MASKS: Readonly<MixedMaskOptions> = {
  irregularProba: 1,
  irregular: { maxAngle: 4, maxLen: 200, maxWidth: 100, maxTimes: 5, minTimes: 1 },
  boxProba: 1,
  box: { margin: 10, bboxMinSize: 30, bboxMaxSize: 150, maxTimes: 4, minTimes: 1 },
};

/** LaMa's evaluation mask sets (`configs/data_gen/random_{thin,medium,thick}_{256,512}.yaml`). */
export const EVAL_MASKS: Readonly<Record<'thin256' | 'medium256' | 'thick256' | 'thin512' | 'medium512' | 'thick512', EvalMaskPreset>> = {
  thin256: {
    mixed: { irregularProba: 1, irregular: { minTimes: 4, maxTimes: 50, maxWidth: 10, maxAngle: 4, maxLen: 40 }, boxProba: 0 },
    variants: 5,
    maxTamperArea: 0.5,
    size: 256,
  },
  medium256: {
    mixed: {
      irregularProba: 1,
      irregular: { minTimes: 4, maxTimes: 5, maxWidth: 50, maxAngle: 4, maxLen: 100 },
      boxProba: 0.3,
      box: { margin: 0, bboxMinSize: 10, bboxMaxSize: 50, maxTimes: 5, minTimes: 1 },
    },
    variants: 5,
    maxTamperArea: 0.5,
    size: 256,
  },
  thick256: {
    mixed: {
      irregularProba: 1,
      irregular: { minTimes: 1, maxTimes: 5, maxWidth: 100, maxAngle: 4, maxLen: 200 },
      boxProba: 0.3,
      box: { margin: 10, bboxMinSize: 30, bboxMaxSize: 150, maxTimes: 3, minTimes: 1 },
    },
    variants: 5,
    maxTamperArea: 0.5,
    size: 256,
  },
  thin512: {
    mixed: { irregularProba: 1, irregular: { minTimes: 4, maxTimes: 70, maxWidth: 20, maxAngle: 4, maxLen: 100 }, boxProba: 0 },
    variants: 5,
    maxTamperArea: 0.5,
    size: 512,
  },
  medium512: {
    mixed: {
      irregularProba: 1,
      irregular: { minTimes: 4, maxTimes: 10, maxWidth: 100, maxAngle: 4, maxLen: 200 },
      boxProba: 0.3,
      box: { margin: 0, bboxMinSize: 30, bboxMaxSize: 150, maxTimes: 5, minTimes: 1 },
    },
    variants: 5,
    maxTamperArea: 0.5,
    size: 512,
  },
  thick512: {
    mixed: {
      irregularProba: 1,
      irregular: { minTimes: 1, maxTimes: 5, maxWidth: 250, maxAngle: 4, maxLen: 450 },
      boxProba: 0.3,
      box: { margin: 10, bboxMinSize: 30, bboxMaxSize: 300, maxTimes: 4, minTimes: 1 },
    },
    variants: 5,
    maxTamperArea: 0.5,
    size: 512,
  },
};

/** Names of the evaluation mask sets. */
export type EvalMaskName = keyof typeof EVAL_MASKS;

/** One brush stroke: a segment with a thickness (pixel-centre coordinates). */
export interface Stroke {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  width: number;
  /** Which stroke group (connected polyline) it belongs to, for irregular masks. */
  group?: number;
}

/**
 * Fills the pixels whose centres lie within width/2 of the segment — a line with round
 * caps, as OpenCV's `cv2.line` draws thick lines.
 */
export function drawStroke(mask: Uint8Array, h: number, w: number, s: Stroke): void {
  const r = s.width / 2;
  const x0 = Math.max(0, Math.floor(Math.min(s.x0, s.x1) - r));
  const x1 = Math.min(w - 1, Math.ceil(Math.max(s.x0, s.x1) + r));
  const y0 = Math.max(0, Math.floor(Math.min(s.y0, s.y1) - r));
  const y1 = Math.min(h - 1, Math.ceil(Math.max(s.y0, s.y1) + r));
  const dx = s.x1 - s.x0;
  const dy = s.y1 - s.y0;
  const len2 = dx * dx + dy * dy;
  const r2 = r * r;
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      let t = len2 > 0 ? ((x - s.x0) * dx + (y - s.y0) * dy) / len2 : 0;
      t = t < 0 ? 0 : t > 1 ? 1 : t;
      const ex = s.x0 + t * dx - x;
      const ey = s.y0 + t * dy - y;
      if (ex * ex + ey * ey <= r2) mask[y * w + x] = 1;
    }
  }
}

/** The strokes LaMa's irregular generator draws for an h×w image (`make_random_irregular_mask` with its wrapper's defaults). */
export function irregularStrokes(h: number, w: number, rng: Rng, o: IrregularMaskOptions): Stroke[] {
  const strokes: Stroke[] = [];
  const times = randint(rng, o.minTimes, o.maxTimes + 1);
  for (let i = 0; i < times; i++) {
    let sx = rng.int(w);
    let sy = rng.int(h);
    const vertices = 1 + rng.int(5);
    for (let j = 0; j < vertices; j++) {
      let angle = 0.01 + rng.int(o.maxAngle);
      if (i % 2 === 0) angle = 2 * 3.1415926 - angle;
      const length = 10 + rng.int(o.maxLen);
      const width = 5 + rng.int(o.maxWidth);
      const ex = Math.min(w, Math.max(0, Math.trunc(sx + length * Math.sin(angle))));
      const ey = Math.min(h, Math.max(0, Math.trunc(sy + length * Math.cos(angle))));
      strokes.push({ x0: sx, y0: sy, x1: ex, y1: ey, width, group: i });
      sx = ex;
      sy = ey;
    }
  }
  return strokes;
}

/** An irregular (brush stroke) mask. */
export function irregularMask(h: number, w: number, rng: Rng, o: IrregularMaskOptions = IRREGULAR_DEFAULTS): Uint8Array {
  const mask = new Uint8Array(h * w);
  for (const s of irregularStrokes(h, w, rng, o)) drawStroke(mask, h, w, s);
  return mask;
}

/** A box: [top, top+height) × [left, left+width). */
export interface Box {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** The boxes LaMa's rectangle generator draws for an h×w image (`make_random_rectangle_mask` with its wrapper's defaults). */
export function randomBoxes(h: number, w: number, rng: Rng, o: BoxMaskOptions): Box[] {
  const maxSize = Math.min(o.bboxMaxSize + 1, h - 2 * o.margin, w - 2 * o.margin);
  if (maxSize <= o.bboxMinSize) {
    throw new Error(`box masks: a ${h}x${w} image with margin ${o.margin} has no room for boxes of at least ${o.bboxMinSize} pixels`);
  }
  const boxes: Box[] = [];
  const times = randint(rng, o.minTimes, o.maxTimes);
  for (let i = 0; i < times; i++) {
    const width = randint(rng, o.bboxMinSize, maxSize - 1);
    const height = randint(rng, o.bboxMinSize, maxSize - 1);
    const left = randint(rng, o.margin, w - o.margin - width);
    const top = randint(rng, o.margin, h - o.margin - height);
    boxes.push({ top, left, height, width });
  }
  return boxes;
}

/** A box mask. */
export function boxMask(h: number, w: number, rng: Rng, o: BoxMaskOptions = BOX_DEFAULTS): Uint8Array {
  const mask = new Uint8Array(h * w);
  for (const b of randomBoxes(h, w, rng, o)) {
    for (let y = b.top; y < b.top + b.height; y++) mask.fill(1, y * w + b.left, y * w + b.left + b.width);
  }
  return mask;
}

/** A mask of LaMa's mixed generator; `kind` says which generator drew it. */
export function mixedMask(h: number, w: number, rng: Rng, o: MixedMaskOptions = DIFFIR_TRAIN_MASKS): { mask: Uint8Array; kind: 'irregular' | 'box' } {
  const kinds: ('irregular' | 'box')[] = [];
  const probs: number[] = [];
  if (o.irregularProba > 0) {
    kinds.push('irregular');
    probs.push(o.irregularProba);
  }
  if (o.boxProba > 0) {
    kinds.push('box');
    probs.push(o.boxProba);
  }
  if (kinds.length === 0) throw new Error('mixed masks: give irregularProba or boxProba above 0');
  const kind = weightedChoice(rng, kinds, probs);
  const mask = kind === 'irregular' ? irregularMask(h, w, rng, o.irregular ?? IRREGULAR_DEFAULTS) : boxMask(h, w, rng, o.box ?? BOX_DEFAULTS);
  if ((o.invertProba ?? 0) > 0 && rng.uniform() < o.invertProba!) for (let i = 0; i < mask.length; i++) mask[i] = 1 - mask[i]!;
  return { mask, kind };
}

/** Fraction of hole pixels. */
export function coverage(mask: Uint8Array): number {
  let s = 0;
  for (const v of mask) s += v;
  return mask.length ? s / mask.length : 0;
}

/**
 * A mask of an evaluation set, as LaMa's `gen_mask_dataset.py` picks it: `variants`
 * proposals, those covering more than `maxTamperArea` dropped, one of the rest chosen at
 * random; up to 10 attempts. Defaults to the set's square size.
 */
export function evalMask(preset: EvalMaskPreset | EvalMaskName, rng: Rng, h?: number, w?: number): Uint8Array {
  const p = typeof preset === 'string' ? EVAL_MASKS[preset] : preset;
  if (!p) throw new Error(`unknown evaluation mask set '${String(preset)}' (have: ${Object.keys(EVAL_MASKS).join(', ')})`);
  const H = h ?? p.size;
  const W = w ?? p.size;
  for (let attempt = 0; attempt < 10; attempt++) {
    const ok: Uint8Array[] = [];
    for (let v = 0; v < p.variants; v++) {
      const m = mixedMask(H, W, rng, p.mixed).mask;
      if (coverage(m) <= p.maxTamperArea) ok.push(m);
    }
    if (ok.length) return ok[rng.int(ok.length)]!;
  }
  throw new Error(`evaluation masks: no mask within ${p.maxTamperArea} coverage in 10 attempts for a ${H}x${W} image`);
}

/** A mask as a float tensor [1,1,H,W] (1 = hole). */
export function maskTensor(mask: Uint8Array, h: number, w: number): HostTensor<'float32'> {
  if (mask.length !== h * w) throw new Error(`mask has ${mask.length} pixels, expected ${h}x${w}`);
  return f32([1, 1, h, w], Float32Array.from(mask));
}

/** Mask sources by name: 'train' (DiffIR's training masks) or an evaluation set. */
export type MaskPresetName = 'train' | EvalMaskName;

/** Draws a mask of an h×w image from a named preset. */
export function drawMask(preset: MaskPresetName | MixedMaskOptions, h: number, w: number, rng: Rng): Uint8Array {
  if (typeof preset === 'object') return mixedMask(h, w, rng, preset).mask;
  if (preset === 'train') return mixedMask(h, w, rng, DIFFIR_TRAIN_MASKS).mask;
  return evalMask(preset, rng, h, w);
}
