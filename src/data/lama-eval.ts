/**
 * LaMa-style inpainting evaluation folders (`saicinpainting/evaluation/data.py`, which the
 * official DiffIR-inpainting scripts use): every `*mask*.png` under the folder (recursively,
 * sorted) is one sample; its image is the mask path up to the last `_mask` plus the image
 * suffix (`.png` in LaMa's eval2 configs), e.g. `a/img7_mask003.png` → `a/img7.png`. The
 * prediction of a sample is named like its mask (`<mask path without extension>.png`), as
 * LaMa's `bin/predict.py` writes and `evaluate_predicts.py` reads them.
 */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { listImages, stem } from './folder.js';
import { decodePixels } from '../image/decode.js';
import { f32, type HostTensor } from '../tensor.js';

/** One sample of a LaMa evaluation folder (paths relative to it, '/' separators). */
export interface LamaSample {
  /** The mask file; also the sample's name. */
  readonly mask: string;
  /** The image file. */
  readonly image: string;
  /** The prediction's file name (relative to the prediction folder). */
  readonly prediction: string;
}

/**
 * The samples of a LaMa evaluation folder, in LaMa's order (sorted mask paths).
 * @throws one-line error when the folder has no `*mask*.png` or a mask's image is missing
 */
export async function listLamaSamples(dir: string, imgSuffix = '.png', predictionSuffix = '.png'): Promise<LamaSample[]> {
  let files: string[];
  try {
    files = await listImages(dir, { recursive: true });
  } catch (e) {
    throw new Error(`${e instanceof Error ? e.message : String(e)} (a LaMa evaluation folder holds <name>${imgSuffix} and its masks <name>_mask*.png)`);
  }
  // glob('**/*mask*.png'): case-sensitive, hidden names skipped (listImages skips them too).
  const masks = files.filter((f) => basename(f).includes('mask') && f.endsWith('.png'));
  if (masks.length === 0) throw new Error(`${dir}: no *mask*.png files; a LaMa evaluation folder holds <name>${imgSuffix} and its masks <name>_mask*.png`);
  return masks.map((m) => {
    const cut = m.lastIndexOf('_mask');
    const image = (cut >= 0 ? m.slice(0, cut) : m) + imgSuffix;
    if (!existsSync(join(dir, image))) throw new Error(`${join(dir, m)}: its image ${image} is not in ${dir} (the image of <name>_mask*.png is <name>${imgSuffix})`);
    return { mask: m, image, prediction: stem(m) + predictionSuffix };
  });
}

/** A mask as LaMa reads it: PIL's `convert('L')` gray levels (0-255). */
export interface LamaMask {
  readonly width: number;
  readonly height: number;
  readonly gray: Uint8Array;
}

/**
 * Reads a mask as `PIL.Image.open(f).convert('L')`: gray as is, RGB(A) by PIL's integer luma
 * `(19595·R + 38470·G + 7471·B + 2¹⁵) >> 16`, alpha ignored; 16-bit samples reduced to their
 * high byte (as the metrics read images).
 */
export async function readLamaMask(path: string): Promise<LamaMask> {
  const dec = await decodePixels(path);
  const { width, height, channels: c, data } = dec;
  const shift = dec.maxValue === 65535 ? 8 : 0;
  const gray = new Uint8Array(width * height);
  for (let p = 0, s = 0; p < gray.length; p++, s += c) {
    gray[p] = c < 3 ? data[s]! >> shift : ((data[s]! >> shift) * 19595 + (data[s + 1]! >> shift) * 38470 + (data[s + 2]! >> shift) * 7471 + 0x8000) >> 16;
  }
  return { width, height, gray };
}

/**
 * The share of the image the mask covers, as LaMa's `InpaintingEvaluator` computes it: the
 * mean of the float32 samples `gray/255`, as float32 (so a mask's bin matches LaMa's at the
 * bin edges).
 */
export function maskArea(m: LamaMask): number {
  const lut = new Float64Array(256);
  for (let v = 0; v < 256; v++) lut[v] = Math.fround(v / 255);
  let s = 0;
  for (const g of m.gray) s += lut[g]!;
  return Math.fround(s / m.gray.length);
}

/** The model's mask as LaMa's `predict.py` feeds it (`mask > 0`): [1,1,H,W], 1 = hole. */
export function holeTensor(m: LamaMask): HostTensor<'float32'> {
  const out = new Float32Array(m.gray.length);
  for (let i = 0; i < out.length; i++) out[i] = m.gray[i]! > 0 ? 1 : 0;
  return f32([1, 1, m.height, m.width], out);
}

/**
 * What LaMa's `predict.py` saves of a prediction in [0,1]: `np.clip(x·255, 0, 255).astype(uint8)`
 * (float32 product, truncated, not rounded), returned as float32 `k/255`, which 8-bit saving
 * (rounding ×255) and BasicSR-style `tensor2img` quantisation keep as `k`.
 */
export function truncate8(t: HostTensor<'float32'>): HostTensor<'float32'> {
  const d = t.data;
  const out = new Float32Array(d.length);
  for (let i = 0; i < d.length; i++) out[i] = Math.floor(Math.min(255, Math.max(0, Math.fround(d[i]! * 255)))) / 255;
  return f32([...t.shape], out);
}
