/**
 * `nn.Conv2d` (NCHW, stride 1, "same" zero padding k//2 as every DiffIR convolution uses).
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';

/** Shape of a 2-D convolution. */
export interface Conv2dOptions {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number;
  /** Whether the layer has `<prefix>.bias` (default true, as in PyTorch). */
  readonly bias?: boolean;
  /** Channel groups (`inChannels` for a depthwise convolution); default 1. */
  readonly groups?: number;
  /** Zero padding on each side; default kernelSize // 2. */
  readonly padding?: number;
}

/**
 * Convolution declaring `<prefix>.weight` (out, in/groups, k, k) and, with bias,
 * `<prefix>.bias` (out).
 */
export function conv2d(g: Graph, prefix: string, x: Value, o: Conv2dOptions): Value {
  const groups = o.groups ?? 1;
  if (x.rank !== 4 || x.dim(1) !== o.inChannels) {
    throw new Error(`conv2d ${prefix}: expected input (B, ${o.inChannels}, H, W), got ${x}`);
  }
  if (o.inChannels % groups !== 0 || o.outChannels % groups !== 0) {
    throw new Error(`conv2d ${prefix}: ${o.inChannels}→${o.outChannels} channels are not divisible by ${groups} groups`);
  }
  const k = o.kernelSize;
  const w = g.param(`${prefix}.weight`, [o.outChannels, o.inChannels / groups, k, k]);
  const b = o.bias === false ? null : g.param(`${prefix}.bias`, [o.outChannels]);
  return op.conv(x, w, b, { pads: o.padding ?? Math.floor(k / 2), group: groups });
}

/**
 * `conv2d(g, prefix, pixelShuffle(y, r), o)` computed at y's resolution: a convolution of
 * y whose kernel (gathered from the same `<prefix>.weight`) has one output channel per
 * output channel and sub-pixel phase, followed by the PixelShuffle. Equal up to float
 * rounding (same products, other summation order). On ONNX Runtime's CPU kernels this
 * saves the layout reorders and the shuffle of the wide map before the convolution (and,
 * for few output channels, the padding of them to a channel block), at the cost of r²
 * times the multiply-adds of that convolution: worth it for a narrow last layer.
 */
export function conv2dAfterShuffle(g: Graph, prefix: string, y: Value, o: Conv2dOptions, r: number): Value {
  const { inChannels: cin, outChannels: cout, kernelSize: k } = o;
  const p = o.padding ?? Math.floor(k / 2);
  if ((o.groups ?? 1) !== 1 || k % 2 !== 1 || p !== Math.floor(k / 2)) throw new Error(`conv2dAfterShuffle ${prefix}: needs an ungrouped odd 'same' convolution`);
  if (y.rank !== 4 || y.dim(1) !== cin * r * r) throw new Error(`conv2dAfterShuffle ${prefix}: expected input (B, ${cin * r * r}, H, W), got ${y}`);
  const w = g.param(`${prefix}.weight`, [cout, cin, k, k]);
  const b = o.bias === false ? null : g.param(`${prefix}.bias`, [cout]);
  // High-resolution tap u of output phase a reads low-resolution offset d = floor((a+u)/r)
  // at input phase (a+u) mod r; P is the largest |d|.
  const P = Math.max(Math.ceil(p / r), Math.floor((r - 1 + p) / r));
  const K = 2 * P + 1;
  const n = cout * cin * k * k;
  const zero = n; // index of an appended zero
  const idx = new Array<number>(cout * r * r * cin * r * r * K * K).fill(zero);
  for (let oc = 0; oc < cout; oc++)
    for (let a = 0; a < r; a++)
      for (let bb = 0; bb < r; bb++)
        for (let c = 0; c < cin; c++)
          for (let al = 0; al < r; al++)
            for (let be = 0; be < r; be++)
              for (let dp = -P; dp <= P; dp++)
                for (let dq = -P; dq <= P; dq++) {
                  const u = r * dp + al - a;
                  const v = r * dq + be - bb;
                  if (Math.abs(u) > p || Math.abs(v) > p) continue;
                  // PixelShuffle order: channel c·r² + α·r + β is phase (α, β) of channel c.
                  const outCh = (oc * r + a) * r + bb;
                  const inCh = (c * r + al) * r + be;
                  idx[((outCh * cin * r * r + inCh) * K + dp + P) * K + dq + P] = ((oc * cin + c) * k + u + p) * k + v + p;
                }
  const flat = op.concat([op.reshape(w, [n]), op.constF32(g, [1], [0], 'zero')], 0);
  const w2 = op.reshape(op.gather(flat, idx), [cout * r * r, cin * r * r, K, K]);
  const b2 = b ? op.gather(b, Array.from({ length: cout * r * r }, (_, i) => Math.floor(i / (r * r)))) : null;
  return op.pixelShuffle(op.conv(y, w2, b2, { pads: P }), r);
}

/**
 * Part `i` of a 1×1 → depthwise convolution pair whose output channels split into parts of `n`
 * (q, k, v; DGFN's two halves): both convolutions on the part's slices of the weights (constant-
 * folded by ORT). `pointwise` applies the 1×1 conv to the pair's input (see `maskedPointwise`).
 * For ORT's blocked layout (NCHWc) each part then leaves that layout on its own, where the whole
 * output was reordered out of it and split (measured: whole deblur 384² 3.95 → 3.1–3.2 s).
 */
export function pointwiseDepthwisePart(
  pointwise: (apply: (x: Value) => Value) => Value,
  w1: Value,
  b1: Value | null,
  wd: Value,
  bd: Value | null,
  i: number,
  n: number,
  pads: number,
): Value {
  const sel = (w: Value) => op.slice(w, [i * n], [(i + 1) * n], [0]);
  return op.conv(pointwise((u) => op.conv(u, sel(w1), b1 && sel(b1))), sel(wd), bd && sel(bd), { pads, group: n });
}
