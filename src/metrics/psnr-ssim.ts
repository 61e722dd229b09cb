/**
 * PSNR and SSIM exactly as BasicSR's `calculate_psnr` / `calculate_ssim` (basicsr/metrics/
 * psnr_ssim.py): on 8-bit images, optionally on the Y channel, with `crop_border` pixels
 * removed from each edge, arithmetic in float64. SSIM is the MATLAB-compatible version:
 * 11×11 Gaussian window (σ 1.5), "valid" filtering, C1 = (0.01·255)², C2 = (0.03·255)²,
 * averaged over the map and then over channels.
 */
import type { HostTensor } from '../tensor.js';
import { asFloat, cropBorder, type Image8, type ImageF, toUint8, yChannel } from './color.js';

/** Options of the metrics (BasicSR's `crop_border` and `test_y_channel`). */
export interface MetricOptions {
  /** Pixels removed from each edge before measuring. */
  readonly cropBorder?: number;
  /** Measure the Y channel (BT.601) instead of RGB. */
  readonly testYChannel?: boolean;
}

function prepare(a: Image8, b: Image8, o: MetricOptions): [ImageF, ImageF] {
  if (a.channels !== b.channels || a.height !== b.height || a.width !== b.width) {
    throw new Error(`image shapes are different: ${a.channels}×${a.height}×${a.width} vs ${b.channels}×${b.height}×${b.width}`);
  }
  const y = o.testYChannel === true && a.channels === 3;
  const fa = y ? yChannel(a) : asFloat(a);
  const fb = y ? yChannel(b) : asFloat(b);
  const border = o.cropBorder ?? 0;
  return [cropBorder(fa, border), cropBorder(fb, border)];
}

/** PSNR in dB of two 8-bit images (Infinity when they are equal). */
export function psnr(a: Image8, b: Image8, o: MetricOptions = {}): number {
  const [x, y] = prepare(a, b, o);
  let s = 0;
  const n = x.data.length;
  for (let i = 0; i < n; i++) {
    const d = x.data[i]! - y.data[i]!;
    s += d * d;
  }
  const mse = s / n;
  if (mse === 0) return Infinity;
  return 10 * Math.log10((255 * 255) / mse);
}

/** OpenCV's `getGaussianKernel(11, 1.5)` in its own arithmetic (float64, scaled by 1/sum). */
function gaussianKernel(size = 11, sigma = 1.5): Float64Array {
  const k = new Float64Array(size);
  const scale2X = -0.5 / (sigma * sigma);
  let sum = 0;
  for (let i = 0; i < size; i++) {
    const x = i - (size - 1) * 0.5;
    k[i] = Math.exp(scale2X * x * x);
    sum += k[i]!;
  }
  const inv = 1 / sum;
  for (let i = 0; i < size; i++) k[i]! *= inv;
  return k;
}

const WINDOW = 11;
const KERNEL = gaussianKernel();
/** The 2-D window, `np.outer(kernel, kernel)`. */
const WINDOW2D = (() => {
  const w = new Float64Array(WINDOW * WINDOW);
  for (let i = 0; i < WINDOW; i++) for (let j = 0; j < WINDOW; j++) w[i * WINDOW + j] = KERNEL[i]! * KERNEL[j]!;
  return w;
})();

/** "Valid" 2-D correlation with the 11×11 window (what `cv2.filter2D(...)[5:-5, 5:-5]` keeps). */
function filterValid(src: Float64Array, h: number, w: number, win: Float64Array = WINDOW2D): Float64Array {
  const oh = h - WINDOW + 1;
  const ow = w - WINDOW + 1;
  const out = new Float64Array(oh * ow);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let i = 0; i < WINDOW; i++) {
        const row = (y + i) * w + x;
        const wr = i * WINDOW;
        for (let j = 0; j < WINDOW; j++) s += src[row + j]! * win[wr + j]!;
      }
      out[y * ow + x] = s;
    }
  }
  return out;
}

/** "Same" 2-D correlation with zero padding of 5 (torch's `F.conv2d(x, window, padding=5)`), through a zero-padded copy and {@link filterValid}. */
function filterSameZero(src: Float64Array, h: number, w: number, win: Float64Array): Float64Array {
  const r = WINDOW >> 1;
  const pw = w + 2 * r;
  const padded = new Float64Array((h + 2 * r) * pw);
  for (let y = 0; y < h; y++) padded.set(src.subarray(y * w, (y + 1) * w), (y + r) * pw + r);
  return filterValid(padded, h + 2 * r, pw, win);
}

/** How one SSIM variant filters and its constants (on the data's own scale). */
interface SsimVariant {
  readonly filter: (src: Float64Array, h: number, w: number) => Float64Array;
  readonly c1: number;
  readonly c2: number;
  /** Smallest side the filter accepts. */
  readonly minSide: number;
}

/** BasicSR's `_ssim` on the [0,255] scale: "valid" filtering. */
const BASICSR_SSIM: SsimVariant = { filter: (s, h, w) => filterValid(s, h, w), c1: (0.01 * 255) ** 2, c2: (0.03 * 255) ** 2, minSide: WINDOW };

/** The mean of one channel's SSIM map. */
function ssimChannel(a: Float64Array, b: Float64Array, h: number, w: number, v: SsimVariant): number {
  if (h < v.minSide || w < v.minSide) throw new Error(`SSIM needs images of at least ${v.minSide}×${v.minSide} pixels after cropping, got ${w}×${h}`);
  const { c1, c2 } = v;
  const n = h * w;
  const aa = new Float64Array(n);
  const bb = new Float64Array(n);
  const ab = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    aa[i] = a[i]! * a[i]!;
    bb[i] = b[i]! * b[i]!;
    ab[i] = a[i]! * b[i]!;
  }
  const mu1 = v.filter(a, h, w);
  const mu2 = v.filter(b, h, w);
  const faa = v.filter(aa, h, w);
  const fbb = v.filter(bb, h, w);
  const fab = v.filter(ab, h, w);
  let sum = 0;
  for (let i = 0; i < mu1.length; i++) {
    const m1 = mu1[i]!;
    const m2 = mu2[i]!;
    const m1sq = m1 * m1;
    const m2sq = m2 * m2;
    const m12 = m1 * m2;
    const s1 = faa[i]! - m1sq;
    const s2 = fbb[i]! - m2sq;
    const s12 = fab[i]! - m12;
    sum += ((2 * m12 + c1) * (2 * s12 + c2)) / ((m1sq + m2sq + c1) * (s1 + s2 + c2));
  }
  return sum / mu1.length;
}

/** SSIM of two 8-bit images (mean over channels). */
export function ssim(a: Image8, b: Image8, o: MetricOptions = {}): number {
  const [x, y] = prepare(a, b, o);
  const hw = x.height * x.width;
  let total = 0;
  for (let c = 0; c < x.channels; c++) {
    const xa = Float64Array.from(x.data.subarray(c * hw, (c + 1) * hw));
    const ya = Float64Array.from(y.data.subarray(c * hw, (c + 1) * hw));
    total += ssimChannel(xa, ya, x.height, x.width, BASICSR_SSIM);
  }
  return total / x.channels;
}

/** The window of LaMa's (pytorch-ssim's) `SSIM`: a float32 Gaussian (σ 1.5) normalised in float32, its outer product in float32. */
const LAMA_WINDOW2D = (() => {
  const g = new Float32Array(WINDOW);
  for (let i = 0; i < WINDOW; i++) g[i] = Math.exp(-((i - (WINDOW >> 1)) ** 2) / (2 * 1.5 ** 2));
  let sum = 0;
  for (const v of g) sum = Math.fround(sum + v);
  const w = new Float64Array(WINDOW * WINDOW);
  for (let i = 0; i < WINDOW; i++) for (let j = 0; j < WINDOW; j++) w[i * WINDOW + j] = Math.fround(Math.fround(g[i]! / sum) * Math.fround(g[j]! / sum));
  return w;
})();

/** LaMa's SSIM: images in [0,1], zero-padded "same" filtering, C1 = 0.01², C2 = 0.03². */
const LAMA_SSIM: SsimVariant = { filter: (s, h, w) => filterSameZero(s, h, w, LAMA_WINDOW2D), c1: 0.01 ** 2, c2: 0.03 ** 2, minSide: 1 };

/**
 * SSIM as LaMa's evaluator scores inpainting (`saicinpainting/evaluation/losses/ssim.py`, from
 * pytorch-ssim): RGB samples as float32 `v/255`, an 11×11 Gaussian window (σ 1.5) applied with
 * zero padding (the map keeps the image size), the map averaged over channels and pixels.
 * LaMa computes in float32; this is float64 on the same float32 inputs and window.
 */
export function lamaSsim(a: Image8, b: Image8): number {
  if (a.channels !== b.channels || a.height !== b.height || a.width !== b.width) {
    throw new Error(`image shapes are different: ${a.channels}×${a.height}×${a.width} vs ${b.channels}×${b.height}×${b.width}`);
  }
  const lut = new Float64Array(256);
  for (let v = 0; v < 256; v++) lut[v] = Math.fround(v / 255);
  const hw = a.height * a.width;
  let total = 0;
  for (let c = 0; c < a.channels; c++) {
    const xa = new Float64Array(hw);
    const ya = new Float64Array(hw);
    for (let i = 0; i < hw; i++) {
      xa[i] = lut[a.data[c * hw + i]!]!;
      ya[i] = lut[b.data[c * hw + i]!]!;
    }
    total += ssimChannel(xa, ya, a.height, a.width, LAMA_SSIM);
  }
  return total / a.channels;
}

/** The metrics BasicSR's option files name (`calculate_psnr`, `calculate_ssim`). */
export type MetricName = 'psnr' | 'ssim';

/** One metric of a validation: which, and its options. */
export interface MetricSpec extends MetricOptions {
  readonly type: MetricName;
}

/** Computes a metric of a restored float image against its ground truth (both in [0,1], quantised like BasicSR). */
export function measure(out: HostTensor<'float32'>, gt: HostTensor<'float32'>, spec: MetricSpec, index = 0): number {
  const a = toUint8(out, index);
  const b = toUint8(gt, index);
  return spec.type === 'psnr' ? psnr(a, b, spec) : ssim(a, b, spec);
}
