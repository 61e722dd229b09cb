/**
 * pytorch-fid's InceptionV3 feature extractor (`InceptionV3([3])`, the FID Inception of
 * `fid_inception_v3()`) as one batched ONNX Runtime graph, from the user's
 * `pt_inception-2015-12-05-6726825d.pth`: images are read like `PIL.Image.open(f).convert('RGB')`
 * + `ToTensor()`, resized to 299×299 like `F.interpolate(mode='bilinear', align_corners=False)`
 * (no antialias), scaled to [−1,1], and mapped to the 2048-d output of the final average pool.
 *
 * The FID blocks differ from torchvision's: the branch pools of Mixed_5b–5d, 6b–6e and 7b are
 * average pools that do not count padding, Mixed_7c's is a max pool. Every BasicConv2d is
 * conv (no bias) → BatchNorm (eval, eps 0.001) → ReLU; the BatchNorm is folded into the
 * convolution in float64 before the weights go to ORT.
 */
import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { sym } from '../graph/dim.js';
import { toOnnx } from '../graph/onnx.js';
import { Session, type SessionOptions } from '../runtime/session.js';
import { f32, type HostTensor, type TensorMap } from '../tensor.js';
import { loadStateDict } from '../weights/statedict.js';
import { interpolationMatrix } from '../graph/resize-matrix.js';
import type { Image8 } from './color.js';

/** Feature dimension of the pool3 output. */
export const FID_DIM = 2048;
const SIZE = 299;
const BN_EPS = 0.001;

type Conv = (name: string, x: Value, o?: { stride?: number; pads?: readonly [number, number, number, number] | number }) => Value;

/** BasicConv2d with "same" padding derived from the kernel unless given. */
function convFactory(g: Graph, shapes: ReadonlyMap<string, readonly number[]>): Conv {
  return (name, x, o = {}) => {
    const s = shapes.get(`${name}.conv.weight`);
    if (!s) throw new Error(`FID Inception: no weight '${name}.conv.weight'`);
    const [kh, kw] = [s[2]!, s[3]!];
    const pads = o.pads ?? [(kh - 1) / 2, (kw - 1) / 2, (kh - 1) / 2, (kw - 1) / 2];
    const w = g.param(`${name}.conv.weight`, s);
    const b = g.param(`${name}.conv.bias`, [s[0]!]);
    return op.relu(op.conv(x, w, b, { stride: o.stride ?? 1, pads }));
  };
}

const avgPool = (x: Value): Value => op.averagePool(x, { kernel: 3, stride: 1, pads: 1, countIncludePad: false });

/** The FID Inception graph: input `x` [B,3,299,299] in [0,1], output `features` [B,2048]. */
export function inceptionGraph(shapes: ReadonlyMap<string, readonly number[]>): Graph {
  const g = new Graph('fid-inception');
  const c = convFactory(g, shapes);
  const b = sym('B');
  const input = g.input('x', [b, 3, SIZE, SIZE]);
  let x = op.sub(op.mul(input, 2), 1);
  x = c('Conv2d_1a_3x3', x, { stride: 2, pads: 0 });
  x = c('Conv2d_2a_3x3', x, { pads: 0 });
  x = c('Conv2d_2b_3x3', x);
  x = op.maxPool(x, { kernel: 3, stride: 2 });
  x = c('Conv2d_3b_1x1', x);
  x = c('Conv2d_4a_3x3', x, { pads: 0 });
  x = op.maxPool(x, { kernel: 3, stride: 2 });
  const blockA = (n: string, v: Value): Value =>
    op.concat(
      [
        c(`${n}.branch1x1`, v),
        c(`${n}.branch5x5_2`, c(`${n}.branch5x5_1`, v)),
        c(`${n}.branch3x3dbl_3`, c(`${n}.branch3x3dbl_2`, c(`${n}.branch3x3dbl_1`, v))),
        c(`${n}.branch_pool`, avgPool(v)),
      ],
      1,
    );
  for (const n of ['Mixed_5b', 'Mixed_5c', 'Mixed_5d']) x = blockA(n, x);
  // Mixed_6a (torchvision InceptionB).
  x = op.concat(
    [
      c('Mixed_6a.branch3x3', x, { stride: 2, pads: 0 }),
      c('Mixed_6a.branch3x3dbl_3', c('Mixed_6a.branch3x3dbl_2', c('Mixed_6a.branch3x3dbl_1', x)), { stride: 2, pads: 0 }),
      op.maxPool(x, { kernel: 3, stride: 2 }),
    ],
    1,
  );
  for (const n of ['Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e']) {
    const v = x;
    x = op.concat(
      [
        c(`${n}.branch1x1`, v),
        c(`${n}.branch7x7_3`, c(`${n}.branch7x7_2`, c(`${n}.branch7x7_1`, v))),
        c(`${n}.branch7x7dbl_5`, c(`${n}.branch7x7dbl_4`, c(`${n}.branch7x7dbl_3`, c(`${n}.branch7x7dbl_2`, c(`${n}.branch7x7dbl_1`, v))))),
        c(`${n}.branch_pool`, avgPool(v)),
      ],
      1,
    );
  }
  // Mixed_7a (torchvision InceptionD).
  x = op.concat(
    [
      c('Mixed_7a.branch3x3_2', c('Mixed_7a.branch3x3_1', x), { stride: 2, pads: 0 }),
      c('Mixed_7a.branch7x7x3_4', c('Mixed_7a.branch7x7x3_3', c('Mixed_7a.branch7x7x3_2', c('Mixed_7a.branch7x7x3_1', x))), { stride: 2, pads: 0 }),
      op.maxPool(x, { kernel: 3, stride: 2 }),
    ],
    1,
  );
  const blockE = (n: string, v: Value, pool: (v: Value) => Value): Value => {
    const b3 = c(`${n}.branch3x3_1`, v);
    const d3 = c(`${n}.branch3x3dbl_2`, c(`${n}.branch3x3dbl_1`, v));
    return op.concat(
      [
        c(`${n}.branch1x1`, v),
        op.concat([c(`${n}.branch3x3_2a`, b3), c(`${n}.branch3x3_2b`, b3)], 1),
        op.concat([c(`${n}.branch3x3dbl_3a`, d3), c(`${n}.branch3x3dbl_3b`, d3)], 1),
        c(`${n}.branch_pool`, pool(v)),
      ],
      1,
    );
  };
  x = blockE('Mixed_7b', x, avgPool);
  x = blockE('Mixed_7c', x, (v) => op.maxPool(v, { kernel: 3, stride: 1, pads: 1 }));
  g.output(op.reshape(op.globalAveragePool(x), [b, FID_DIM]), 'features');
  return g;
}

/** Folds each `<name>.bn` into `<name>.conv` (float64): w·γ/√(var+eps), β − mean·γ/√(var+eps). */
function foldBatchNorm(sd: TensorMap, file: string): TensorMap {
  const out: TensorMap = new Map();
  for (const [k, w] of sd) {
    if (!k.endsWith('.conv.weight')) continue;
    const name = k.slice(0, -'.conv.weight'.length);
    const get = (p: string): Float32Array => {
      const t = sd.get(`${name}.bn.${p}`);
      if (!t || t.dtype !== 'float32' || t.data.length !== w.shape[0]) throw new Error(`${file}: missing or malformed '${name}.bn.${p}' (is this pytorch-fid's Inception file?)`);
      return t.data as Float32Array;
    };
    const [gamma, beta, mean, variance] = [get('weight'), get('bias'), get('running_mean'), get('running_var')];
    const cout = w.shape[0]!;
    const per = w.data.length / cout;
    const wd = w.data as Float32Array;
    const nw = new Float32Array(wd.length);
    const nb = new Float32Array(cout);
    for (let o = 0; o < cout; o++) {
      const s = gamma[o]! / Math.sqrt(variance[o]! + BN_EPS);
      for (let i = 0; i < per; i++) nw[o * per + i] = wd[o * per + i]! * s;
      nb[o] = beta[o]! - mean[o]! * s;
    }
    out.set(k, { dtype: 'float32', shape: w.shape, data: nw });
    out.set(`${name}.conv.bias`, f32([cout], nb));
  }
  return out;
}

/** `F.interpolate(x, (299, 299), mode='bilinear', align_corners=False)` of one image's `x/255`, into `out`. */
function resize299(img: Image8, out: Float32Array, offset: number): void {
  const { height: h, width: w } = img;
  const mh = interpolationMatrix(h, SIZE, SIZE / h, { mode: 'linear', coord: 'half_pixel', nearestMode: 'floor', cubicA: -0.75, excludeOutside: false });
  const mw = interpolationMatrix(w, SIZE, SIZE / w, { mode: 'linear', coord: 'half_pixel', nearestMode: 'floor', cubicA: -0.75, excludeOutside: false });
  // Each output sample has at most two taps per axis: collect them once.
  const taps = (m: ArrayLike<number>, inLen: number): { i: Int32Array; w: Float64Array } => {
    const idx = new Int32Array(SIZE * 2);
    const wt = new Float64Array(SIZE * 2);
    for (let o = 0; o < SIZE; o++) {
      let n = 0;
      for (let i = 0; i < inLen && n < 2; i++) {
        const v = m[o * inLen + i]!;
        if (v !== 0) {
          idx[o * 2 + n] = i;
          wt[o * 2 + n] = v;
          n++;
        }
      }
    }
    return { i: idx, w: wt };
  };
  const th = taps(mh, h);
  const tw = taps(mw, w);
  const hw = h * w;
  for (let c = 0; c < 3; c++) {
    const src = img.data.subarray(c * hw, (c + 1) * hw);
    for (let y = 0; y < SIZE; y++) {
      const y0 = th.i[2 * y]! * w;
      const y1 = th.i[2 * y + 1]! * w;
      const wy0 = th.w[2 * y]!;
      const wy1 = th.w[2 * y + 1]!;
      for (let x = 0; x < SIZE; x++) {
        const x0 = tw.i[2 * x]!;
        const x1 = tw.i[2 * x + 1]!;
        const wx0 = tw.w[2 * x]!;
        const wx1 = tw.w[2 * x + 1]!;
        const v = wy0 * (wx0 * src[y0 + x0]! + wx1 * src[y0 + x1]!) + wy1 * (wx0 * src[y1 + x0]! + wx1 * src[y1 + x1]!);
        out[offset + (c * SIZE + y) * SIZE + x] = v / 255;
      }
    }
  }
}

/** The FID Inception with its weights loaded in one ORT session (any batch size). */
export class FidInception {
  private constructor(private session: Session | null) {}

  /** Loads pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (zip or legacy `.pth`). */
  static async load(file: string, options: SessionOptions = {}): Promise<FidInception> {
    const weights = foldBatchNorm(loadStateDict(file), file);
    if (!weights.has('Mixed_7c.branch_pool.conv.weight')) throw new Error(`${file}: not pytorch-fid's Inception weights (no Mixed_7c.branch_pool)`);
    const shapes = new Map([...weights].map(([k, t]) => [k, t.shape] as const));
    const model = toOnnx(inceptionGraph(shapes), { params: 'initializers', weights });
    return new FidInception(await Session.create(model, options));
  }

  /** 2048-d pool features of each image, float32 [N·2048] row-major. */
  async features(images: readonly Image8[]): Promise<Float32Array> {
    if (!this.session) throw new Error('FID Inception was released');
    const n = SIZE * SIZE * 3;
    const x = new Float32Array(images.length * n);
    images.forEach((im, i) => resize299(im, x, i * n));
    const out = await this.session.run({ x: f32([images.length, 3, SIZE, SIZE], x) });
    return (out.features as HostTensor<'float32'>).data;
  }

  /** Releases the session. */
  async release(): Promise<void> {
    const s = this.session;
    this.session = null;
    if (s) await s.release();
  }
}
