/**
 * NIQE as BasicSR's `calculate_niqe(img, crop_border, input_order='HWC', convert_to='y')`
 * (basicsr/metrics/niqe.py) computes it, with its pristine-parameter file
 * `niqe_pris_params.npz` (`mu_pris_param`, `cov_pris_param`, `gaussian_window`).
 *
 * BasicSR keeps the image in float32, and the AGGD fit splits values by sign and drops exact
 * zeros, so float32 rounding noise in flat areas changes the features: each step that BasicSR
 * does in float32 is rounded to float32 here too (`Math.fround`), the convolutions summed in
 * float64 and rounded like `scipy.ndimage.convolve` does for float32 input, the half-size MATLAB
 * `imresize` computed in float64 and rounded. The block statistics are float64.
 */
import { cropBorder, yChannel, type Image8 } from './color.js';
import { pinvSymmetric } from './linalg.js';
import { npzArray, readNpz } from './npy.js';
import { imresizeSize, matlabMatrix } from '../data/degrade/resize.js';

/** BasicSR's NIQE pristine model. */
export interface NiqeParams {
  /** [36] */
  readonly mu: Float64Array;
  /** [36, 36] */
  readonly cov: Float64Array;
  /** The smoothing window, `size`×`size`. */
  readonly window: Float64Array;
  readonly windowSize: number;
}

/** Reads BasicSR's `niqe_pris_params.npz`. */
export function loadNiqeParams(path: string): NiqeParams {
  const a = readNpz(path);
  const mu = npzArray(a, 'mu_pris_param', path);
  const cov = npzArray(a, 'cov_pris_param', path, 2);
  const win = npzArray(a, 'gaussian_window', path, 2);
  if (mu.data.length !== 36 || cov.shape[0] !== 36 || cov.shape[1] !== 36) {
    throw new Error(`${path}: expected mu_pris_param of 36 values and cov_pris_param 36×36 (BasicSR's niqe_pris_params.npz)`);
  }
  if (win.shape[0] !== win.shape[1] || win.shape[0]! % 2 !== 1) throw new Error(`${path}: gaussian_window must be square with an odd size`);
  return { mu: mu.data, cov: cov.data, window: win.data, windowSize: win.shape[0]! };
}

const BLOCK = 96;

/** numpy's round (half to even) of a float32 value. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** `scipy.ndimage.convolve(img, window, mode='nearest')` of a float32 image, summed in float64, rounded to float32. */
function convolveNearest(img: Float32Array, h: number, w: number, win: Float64Array, k: number): Float32Array {
  const out = new Float32Array(h * w);
  const r = (k - 1) / 2;
  const xs = new Int32Array(w + 2 * r);
  for (let x = -r; x < w + r; x++) xs[x + r] = Math.min(w - 1, Math.max(0, x));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      // convolve: out[y,x] = Σ win[i,j] · img[y + r − i, x + r − j].
      for (let i = 0; i < k; i++) {
        const yy = Math.min(h - 1, Math.max(0, y + r - i)) * w;
        const wi = i * k;
        for (let j = 0; j < k; j++) s += win[wi + j]! * img[yy + xs[x + 2 * r - j]!]!;
      }
      out[y * w + x] = s;
    }
  }
  return out;
}

/** `(img − mu) / (sigma + 1)` with BasicSR's float32 steps. */
function normalize(img: Float32Array, h: number, w: number, p: NiqeParams): Float32Array {
  const mu = convolveNearest(img, h, w, p.window, p.windowSize);
  const sq = new Float32Array(img.length);
  for (let i = 0; i < img.length; i++) sq[i] = img[i]! * img[i]!;
  const mu2 = convolveNearest(sq, h, w, p.window, p.windowSize);
  const out = new Float32Array(img.length);
  for (let i = 0; i < img.length; i++) {
    const m = mu[i]!;
    const sigma = Math.fround(Math.sqrt(Math.abs(Math.fround(mu2[i]! - Math.fround(m * m)))));
    out[i] = Math.fround(img[i]! - m) / Math.fround(sigma + 1);
  }
  return out;
}

/** Lanczos approximation of Γ (g = 7, 9 terms), ~1e-15 relative for positive arguments. */
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
  -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];
export function gamma(x: number): number {
  if (x < 0.5) return Math.PI / (Math.sin(Math.PI * x) * gamma(1 - x));
  x -= 1;
  let a = LANCZOS[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i]! / (x + i);
  return Math.sqrt(2 * Math.PI) * Math.pow(t, x + 0.5) * Math.exp(-t) * a;
}

/** `np.arange(0.2, 10.001, 0.001)` and the AGGD ratio r(γ) = Γ(2/γ)² / (Γ(1/γ)Γ(3/γ)). */
const GAM = Float64Array.from({ length: 9801 }, (_, i) => 0.2 + i * 0.001);
const R_GAM = GAM.map((g) => {
  const r = 1 / g;
  return gamma(r * 2) ** 2 / (gamma(r) * gamma(r * 3));
});

/** BasicSR's `estimate_aggd_param`: alpha, beta_l, beta_r (NaN when a side has no values, as numpy gives). */
function aggd(x: Float32Array): [number, number, number] {
  let ls = 0;
  let ln = 0;
  let rs = 0;
  let rn = 0;
  let abs = 0;
  let sq = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    const v2 = v * v;
    if (v < 0) {
      ls += v2;
      ln++;
    } else if (v > 0) {
      rs += v2;
      rn++;
    }
    abs += Math.abs(v);
    sq += v2;
  }
  const leftStd = Math.sqrt(ls / ln);
  const rightStd = Math.sqrt(rs / rn);
  const gh = leftStd / rightStd;
  const rhat = (abs / x.length) ** 2 / (sq / x.length);
  const rhatnorm = (rhat * (gh ** 3 + 1) * (gh + 1)) / (gh ** 2 + 1) ** 2;
  let best = 0;
  let bestV = Infinity;
  if (!Number.isNaN(rhatnorm)) {
    for (let i = 0; i < GAM.length; i++) {
      const d = (R_GAM[i]! - rhatnorm) ** 2;
      if (d < bestV) {
        bestV = d;
        best = i;
      }
    }
  }
  const alpha = GAM[best]!;
  const f = Math.sqrt(gamma(1 / alpha) / gamma(3 / alpha));
  return [alpha, leftStd * f, rightStd * f];
}

const SHIFTS: readonly [number, number][] = [
  [0, 1],
  [1, 0],
  [1, 1],
  [1, -1],
];

/** BasicSR's `compute_feature` of one block (18 values). */
function blockFeatures(z: Float32Array, w: number, top: number, left: number, bh: number, bw: number, out: number[]): void {
  const block = new Float32Array(bh * bw);
  for (let y = 0; y < bh; y++) for (let x = 0; x < bw; x++) block[y * bw + x] = z[(top + y) * w + left + x]!;
  const [a, bl, br] = aggd(block);
  out.push(a, (bl + br) / 2);
  const prod = new Float32Array(bh * bw);
  for (const [dy, dx] of SHIFTS) {
    // np.roll: rolled[y, x] = block[(y − dy) mod bh, (x − dx) mod bw]; the product is float32.
    for (let y = 0; y < bh; y++) {
      const sy = (((y - dy) % bh) + bh) % bh;
      for (let x = 0; x < bw; x++) {
        const sx = (((x - dx) % bw) + bw) % bw;
        prod[y * bw + x] = block[y * bw + x]! * block[sy * bw + sx]!;
      }
    }
    const [al, l, r] = aggd(prod);
    out.push(al, (r - l) * (gamma(2 / al) / gamma(1 / al)), l, r);
  }
}

/** MATLAB `imresize(img/255, 0.5)·255` as BasicSR runs it on the float32 Y image (float64 sums, float32 results). */
function halfSize(img: Float32Array, h: number, w: number): { data: Float32Array; h: number; w: number } {
  const ho = imresizeSize(h, 0.5);
  const wo = imresizeSize(w, 0.5);
  const mh = matlabMatrix(h, ho, 0.5, true);
  const mw = matlabMatrix(w, wo, 0.5, true);
  const x = new Float32Array(img.length);
  for (let i = 0; i < img.length; i++) x[i] = img[i]! / 255;
  // H first, then W (BasicSR's order), each pass rounded to float32 as torch stores it.
  const t = new Float64Array(ho * w);
  for (let o = 0; o < ho; o++) {
    for (let i = 0; i < h; i++) {
      const c = mh[o * h + i]!;
      if (c === 0) continue;
      for (let xx = 0; xx < w; xx++) t[o * w + xx] = t[o * w + xx]! + c * x[i * w + xx]!;
    }
  }
  const out = new Float32Array(ho * wo);
  for (let y = 0; y < ho; y++) {
    for (let o = 0; o < wo; o++) {
      let s = 0;
      for (let i = 0; i < w; i++) s += mw[o * w + i]! * t[y * w + i]!;
      out[y * wo + o] = Math.fround(Math.fround(s) * 255);
    }
  }
  return { data: out, h: ho, w: wo };
}

/** NIQE of a single-channel float32 image on [0,255] already rounded (BasicSR's `niqe`). */
export function niqeOfY(img: Float32Array, height: number, width: number, p: NiqeParams, name = 'image'): number {
  const nh = Math.floor(height / BLOCK);
  const nw = Math.floor(width / BLOCK);
  if (nh * nw < 2) {
    throw new Error(`${name}: NIQE needs at least two ${BLOCK}×${BLOCK} blocks (e.g. ${2 * BLOCK}×${BLOCK} pixels after the crop), got ${width}×${height}`);
  }
  let h = nh * BLOCK;
  let w = nw * BLOCK;
  let cur: Float32Array = new Float32Array(h * w);
  for (let y = 0; y < h; y++) cur.set(img.subarray(y * width, y * width + w), y * w);
  const rows: number[][] = Array.from({ length: nh * nw }, () => []);
  for (const scale of [1, 2]) {
    const z = normalize(cur, h, w, p);
    const bs = BLOCK / scale;
    let r = 0;
    for (let bx = 0; bx < nw; bx++) for (let by = 0; by < nh; by++) blockFeatures(z, w, by * bs, bx * bs, bs, bs, rows[r++]!);
    if (scale === 1) {
      const half = halfSize(cur, h, w);
      cur = half.data;
      h = half.h;
      w = half.w;
    }
  }
  const d = 36;
  // nanmean per feature; covariance of the rows without NaN.
  const mu = new Float64Array(d);
  for (let j = 0; j < d; j++) {
    let s = 0;
    let c = 0;
    for (const row of rows) {
      if (!Number.isNaN(row[j]!)) {
        s += row[j]!;
        c++;
      }
    }
    mu[j] = s / c;
  }
  const clean = rows.filter((row) => row.every((v) => !Number.isNaN(v)));
  if (clean.length < 2) throw new Error(`${name}: NIQE is undefined here (fewer than two blocks with finite features; the image is too flat)`);
  const cm = new Float64Array(d);
  for (const row of clean) for (let j = 0; j < d; j++) cm[j] = cm[j]! + row[j]! / clean.length;
  const m = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (const row of clean) s += (row[i]! - cm[i]!) * (row[j]! - cm[j]!);
      m[i * d + j] = (p.cov[i * d + j]! + s / (clean.length - 1)) / 2;
    }
  }
  const inv = pinvSymmetric(m, d);
  let q = 0;
  for (let i = 0; i < d; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += inv[i * d + j]! * (p.mu[j]! - mu[j]!);
    q += (p.mu[i]! - mu[i]!) * s;
  }
  return Math.sqrt(q);
}

/** NIQE of an 8-bit RGB (or gray) image as BasicSR's `calculate_niqe(img, crop_border)` with `convert_to='y'`. */
export function niqe(img: Image8, p: NiqeParams, crop = 0, name = 'image'): number {
  let rgb = img;
  if (img.channels === 1) {
    const hw = img.height * img.width;
    const data = new Uint8Array(3 * hw);
    for (let c = 0; c < 3; c++) data.set(img.data.subarray(0, hw), c * hw);
    rgb = { channels: 3, height: img.height, width: img.width, data };
  } else if (img.channels !== 3) throw new Error(`${name}: NIQE needs an RGB or gray image, got ${img.channels} channels`);
  const y = cropBorder(yChannel(rgb), crop);
  const r = new Float32Array(y.data.length);
  for (let i = 0; i < r.length; i++) r[i] = roundHalfEven(y.data[i]!);
  return niqeOfY(r, y.height, y.width, p, name);
}
