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
function filterValid(src: Float64Array, h: number, w: number): Float64Array {
  const oh = h - WINDOW + 1;
  const ow = w - WINDOW + 1;
  const out = new Float64Array(oh * ow);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let i = 0; i < WINDOW; i++) {
        const row = (y + i) * w + x;
        const wr = i * WINDOW;
        for (let j = 0; j < WINDOW; j++) s += src[row + j]! * WINDOW2D[wr + j]!;
      }
      out[y * ow + x] = s;
    }
  }
  return out;
}

/** SSIM of one channel on the [0,255] scale (BasicSR's `_ssim`). */
function ssimChannel(a: Float64Array, b: Float64Array, h: number, w: number): number {
  if (h < WINDOW || w < WINDOW) throw new Error(`SSIM needs images of at least ${WINDOW}×${WINDOW} pixels after cropping, got ${w}×${h}`);
  const c1 = (0.01 * 255) ** 2;
  const c2 = (0.03 * 255) ** 2;
  const n = h * w;
  const aa = new Float64Array(n);
  const bb = new Float64Array(n);
  const ab = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    aa[i] = a[i]! * a[i]!;
    bb[i] = b[i]! * b[i]!;
    ab[i] = a[i]! * b[i]!;
  }
  const mu1 = filterValid(a, h, w);
  const mu2 = filterValid(b, h, w);
  const faa = filterValid(aa, h, w);
  const fbb = filterValid(bb, h, w);
  const fab = filterValid(ab, h, w);
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
    total += ssimChannel(xa, ya, x.height, x.width);
  }
  return total / x.channels;
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
