/**
 * Reverse-mode automatic differentiation over the graph IR. `grad(loss, wrt)`
 * appends the backward graph, built from vector-Jacobian products (VJPs) that are
 * themselves ordinary ops, so one ORT run returns the loss and its gradients.
 *
 * Backward forms are chosen for speed on ORT's kernels: a stride-1 convolution's
 * input gradient is a convolution with flipped, transposed weights (MLAS's fast
 * path), its weight gradient one GEMM per kernel tap over im2col slices, and
 * depthwise weight gradients are fused multiply-reductions.
 */
import type { HostTensor } from '../tensor.js';
import { type Dim, type Shape, dimEq, fmtShape, isStatic, isStaticShape, staticNumel } from './dim.js';
import { Graph, Node, Value, attr } from './ir.js';
import * as op from './ops.js';
import { interpolationMatrix } from './resize-matrix.js';

/** A VJP rule: gradients of the node's inputs from the gradients of its outputs. */
type Rule = (n: Node, gOut: readonly (Value | null)[], need: readonly boolean[]) => readonly (Value | null)[];

const FLOAT = new Set(['float32', 'float16']);

/** Ops whose outputs are piecewise constant in their inputs: zero gradient, by definition. */
const ZERO_GRAD = new Set(['Shape', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Sign', 'And', 'Or', 'Not']);
/** Ops that cut the gradient and may not lie on a differentiated path. */
const NON_DIFF = new Set(['Floor', 'Ceil', 'Round', 'ArgMax', 'ArgMin', 'TopK', 'NonZero', 'RandomNormalLike', 'RandomUniformLike']);

function constValue(v: Value | null, what: string): HostTensor {
  const t = v ? v.graph.constants.get(v) : undefined;
  if (!t) throw new Error(`${what}: expected a constant input`);
  return t;
}

function constInts(v: Value | null, what: string): number[] {
  const t = constValue(v, what);
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

/** Zeros shaped like `v` (an Expand of a scalar: no large constant). */
export function zerosLike(v: Value): Value {
  return op.expand(op.scalar(v.graph, 0, v.dtype), v.shape);
}

/** Sums `g` over broadcast axes so that it has shape `shape` (the VJP of broadcasting). */
export function sumTo(g: Value, shape: Shape): Value {
  if (g.rank === shape.length && g.shape.every((d, i) => dimEq(d, shape[i]!))) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead) axes.push(i);
    else if (shape[i - lead] === 1 && g.shape[i] !== 1) axes.push(i);
  }
  const r = axes.length ? op.reduceSum(g, axes, true) : g;
  return op.reshape(r, shape);
}

function reduceAxes(n: Node): { axes: number[]; keepdims: boolean } {
  const x = n.in(0);
  const keepdims = n.int('keepdims', 1) === 1;
  const raw = n.op === 'ReduceSum' ? (n.inputs[1] ? constInts(n.inputs[1], n.name) : []) : [...n.ints('axes', [])];
  const axes = raw.length ? raw.map((a) => (a < 0 ? a + x.rank : a)) : x.shape.map((_, i) => i);
  return { axes, keepdims };
}

function keptShape(x: Value, axes: readonly number[]): Dim[] {
  return x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

// ------------------------------------------------------------- convolution helpers

interface ConvGeom {
  k: [number, number];
  s: [number, number];
  p: [number, number, number, number];
  d: [number, number];
  group: number;
}

function convGeom(n: Node): ConvGeom {
  const w = n.in(1);
  const k = n.ints('kernel_shape', [w.sdim(2), w.sdim(3)]);
  const s = n.ints('strides', [1, 1]);
  const p = n.ints('pads', [0, 0, 0, 0]);
  const d = n.ints('dilations', [1, 1]);
  return { k: [k[0]!, k[1]!], s: [s[0]!, s[1]!], p: [p[0]!, p[1]!, p[2]!, p[3]!], d: [d[0]!, d[1]!], group: n.int('group', 1) };
}

/** Conv weight (Cout, Cin/G, kh, kw) → flipped weight of the adjoint conv (Cin, Cout/G, kh, kw). */
function flipTransposeWeight(w: Value, group: number): Value {
  const [co, cig, kh, kw] = w.shape as number[] as [number, number, number, number];
  let t: Value;
  if (group === 1) t = op.transpose(w, [1, 0, 2, 3]);
  else if (cig === 1 && co === group) t = w;
  else {
    const r = op.reshape(w, [group, co / group, cig, kh, kw]);
    t = op.reshape(op.transpose(r, [0, 2, 1, 3, 4]), [cig * group, co / group, kh, kw]);
  }
  return kh === 1 && kw === 1 ? t : op.flip(t, [2, 3]);
}

/**
 * im2col as one convolution: each input channel convolved with the K = kh·kw unit
 * kernels gives (N·C, K, Ho, Wo), padding, stride and dilation included, in a single
 * fast ORT Conv instead of a pad and K strided slices.
 */
function im2col(inp: Value, geo: ConvGeom): Value {
  const [N, C, H, W] = inp.shape as number[] as [number, number, number, number];
  const [kh, kw] = geo.k;
  const K = kh * kw;
  const eye = new Float32Array(K * K);
  for (let i = 0; i < K; i++) eye[i * K + i] = 1;
  const kernel = op.constF32(inp.graph, [K, 1, kh, kw], eye, 'im2col_eye');
  return op.conv(op.reshape(inp, [N * C, 1, H, W]), kernel, null, { stride: geo.s, pads: geo.p, dilation: geo.d });
}

/**
 * Weight gradient of conv(inp, W) given the output gradient `gOut`:
 * dW[o, i, a, b] = Σ gOut[n, o, y, x] · inp_pad[n, i, y·s + a·d, x·s + b·d],
 * i.e. one GEMM of gOut against the im2col columns (batched per group).
 */
function convWeightGrad(gOut: Value, inp: Value, geo: ConvGeom, wShape: readonly number[]): Value {
  const [N, ci] = inp.shape as number[] as [number, number];
  const co = gOut.sdim(1);
  const P = gOut.sdim(2) * gOut.sdim(3);
  const [kh, kw] = geo.k;
  const K = kh * kw;
  const G = geo.group;
  const cols = () => K === 1 && geo.s[0] === 1 && geo.s[1] === 1 && geo.p.every((p) => p === 0) ? inp : im2col(inp, geo);
  if (wShape[1] === 1 && co === G && ci === G && geo.s[0] === 1 && geo.s[1] === 1 && geo.d[0] === 1 && geo.d[1] === 1) {
    // Depthwise: a grouped correlation of the padded input with gOut as the kernel,
    // giving (N, C, kh, kw) in ORT's vectorised depthwise conv, without im2col.
    const Ho = gOut.sdim(2);
    const Wo = gOut.sdim(3);
    const per = (n: number) => {
      const xn = N === 1 ? inp : op.slice(inp, [n], [n + 1], [0]);
      const gn = N === 1 ? gOut : op.slice(gOut, [n], [n + 1], [0]);
      return op.conv(xn, op.reshape(gn, [co, 1, Ho, Wo]), null, { pads: geo.p, group: co });
    };
    let acc = per(0);
    for (let n = 1; n < N; n++) acc = op.add(acc, per(n));
    return op.reshape(acc, [co, 1, kh, kw]);
  }
  if (G === 1) {
    // One GEMM per kernel tap, (Cout, N·P) × (Cin, N·P)ᵀ, over strided slices of the
    // padded input; faster in ORT than a K-times larger im2col buffer.
    const flat = (v: Value, c: number) => (N === 1 ? op.reshape(v, [c, P]) : op.reshape(op.transpose(op.reshape(v, [N, c, P]), [1, 0, 2]), [c, N * P]));
    const g2 = flat(gOut, co);
    if (K === 1 && geo.s[0] === 1 && geo.s[1] === 1 && geo.p.every((p) => p === 0)) return op.reshape(op.gemm(g2, flat(inp, ci), null, { transB: true }), [co, ci, 1, 1]);
    const xp = op.pad(inp, [0, 0, geo.p[0], geo.p[1], 0, 0, geo.p[2], geo.p[3]]);
    const [ho, wo] = [gOut.sdim(2), gOut.sdim(3)];
    const taps: Value[] = [];
    for (let a = 0; a < kh; a++) {
      for (let b = 0; b < kw; b++) {
        const y0 = a * geo.d[0];
        const x0 = b * geo.d[1];
        const tap = op.slice(xp, [y0, x0], [y0 + (ho - 1) * geo.s[0] + 1, x0 + (wo - 1) * geo.s[1] + 1], [2, 3], [geo.s[0], geo.s[1]]);
        taps.push(op.unsqueeze(op.gemm(g2, flat(tap, ci), null, { transB: true }), [2]));
      }
    }
    return op.reshape(op.concat(taps, 2), [co, ci, kh, kw]);
  }
  const g4 = op.reshape(gOut, [N, G, co / G, P]);
  const c4 = op.transpose(op.reshape(cols(), [N, G, (ci / G) * K, P]), [0, 1, 3, 2]);
  const dw = op.matmul(g4, c4);
  return op.reshape(N === 1 ? dw : op.reduceSum(dw, [0], false), [co, ci / G, kh, kw]);
}

function convRule(n: Node, [g]: readonly (Value | null)[], need: readonly boolean[]): (Value | null)[] {
  const x = n.in(0);
  const w = n.in(1);
  const geo = convGeom(n);
  const gy = g!;
  let gx: Value | null = null;
  if (need[0]) {
    if (!isStaticShape(x.shape) && !(geo.s[0] === 1 && geo.s[1] === 1)) throw new Error(`node ${n.name} (Conv): gradient of a strided conv needs static shapes`);
    const fullH = geo.d[0] * (geo.k[0] - 1);
    const fullW = geo.d[1] * (geo.k[1] - 1);
    const padsOk = geo.p[0] <= fullH && geo.p[2] <= fullH && geo.p[1] <= fullW && geo.p[3] <= fullW;
    if (geo.s[0] === 1 && geo.s[1] === 1 && padsOk) {
      gx = op.conv(gy, flipTransposeWeight(w, geo.group), null, {
        pads: [fullH - geo.p[0], fullW - geo.p[1], fullH - geo.p[2], fullW - geo.p[3]],
        dilation: geo.d,
        group: geo.group,
      });
    } else {
      const covered = (i: 0 | 1) => (gy.sdim(2 + i) - 1) * geo.s[i] - geo.p[i] - geo.p[i + 2] + geo.d[i] * (geo.k[i] - 1) + 1;
      gx = op.convTranspose(gy, w, null, {
        stride: geo.s,
        pads: geo.p,
        dilation: geo.d,
        group: geo.group,
        outputPadding: [x.sdim(2) - covered(0), x.sdim(3) - covered(1)],
      });
    }
  }
  const gw = need[1] ? convWeightGrad(gy, x, geo, w.shape as number[]) : null;
  const gb = need[2] ? op.reduceSum(gy, [0, 2, 3], false) : null;
  return [gx, gw, gb];
}

function convTransposeRule(n: Node, [g]: readonly (Value | null)[], need: readonly boolean[]): (Value | null)[] {
  const x = n.in(0);
  const w = n.in(1);
  const geo = convGeom(n);
  const gy = g!;
  const gx = need[0] ? op.conv(gy, w, null, { stride: geo.s, pads: geo.p, dilation: geo.d, group: geo.group }) : null;
  // ⟨convT(x, w), g⟩ = ⟨x, conv(g, w)⟩, so dW is the conv weight gradient with x as output gradient.
  const gw = need[1] ? convWeightGrad(x, gy, geo, w.shape as number[]) : null;
  const gb = need[2] ? op.reduceSum(gy, [0, 2, 3], false) : null;
  return [gx, gw, gb];
}

// ------------------------------------------------------------- other rules

function unbroadcastPair(n: Node, ga: Value | null, gb: Value | null, need: readonly boolean[]): (Value | null)[] {
  return [need[0] && ga ? sumTo(ga, n.in(0).shape) : null, need[1] && gb ? sumTo(gb, n.in(1).shape) : null];
}

function sliceRule(n: Node, [g]: readonly (Value | null)[]): (Value | null)[] {
  const x = n.in(0);
  const starts = constInts(n.inputs[1]!, n.name);
  const ends = constInts(n.inputs[2]!, n.name);
  const axes = n.inputs[3] ? constInts(n.inputs[3], n.name) : starts.map((_, i) => i);
  const steps = n.inputs[4] ? constInts(n.inputs[4], n.name) : starts.map(() => 1);
  let gx = g!;
  axes.forEach((axRaw, i) => {
    const a = axRaw < 0 ? axRaw + x.rank : axRaw;
    const d = x.dim(a);
    if (!isStatic(d)) return; // full slice of a symbolic axis
    const { first, count } = op.sliceRange(d, starts[i]!, ends[i]!, steps[i]!);
    let step = steps[i]!;
    let lo = first;
    if (step < 0) {
      gx = op.flip(gx, [a]);
      step = -step;
      lo = first - (count - 1) * step;
    }
    if (step > 1 && count > 1) {
      // Interleave step−1 zeros after each element.
      const u = op.unsqueeze(gx, [a + 1]);
      const pads = new Array<number>(2 * u.rank).fill(0);
      pads[u.rank + a + 1] = step - 1;
      const shp = [...gx.shape];
      shp[a] = count * step;
      gx = op.slice(op.reshape(op.pad(u, pads), shp), [0], [(count - 1) * step + 1], [a]);
    }
    const len = count > 0 ? (count - 1) * step + 1 : 0;
    const pads = new Array<number>(2 * x.rank).fill(0);
    pads[a] = lo;
    pads[x.rank + a] = d - lo - len;
    gx = op.pad(gx, pads);
  });
  return [gx];
}

function padRule(n: Node, [g]: readonly (Value | null)[]): (Value | null)[] {
  const x = n.in(0);
  const pads = constInts(n.inputs[1]!, n.name);
  const mode = n.str('mode', 'constant');
  const r = x.rank;
  if (pads.some((p) => p < 0)) throw new Error(`node ${n.name} (Pad): gradient of negative padding is not supported`);
  let gx = g!;
  for (let a = 0; a < r; a++) {
    const p0 = pads[a]!;
    const p1 = pads[a + r]!;
    if (!p0 && !p1) continue;
    const len = x.sdim(a);
    const mid = op.slice(gx, [p0], [p0 + len], [a]);
    if (mode === 'constant') {
      gx = mid;
      continue;
    }
    const padAxis = (v: Value, before: number, after: number) => {
      const pp = new Array<number>(2 * r).fill(0);
      pp[a] = before;
      pp[a + r] = after;
      return op.pad(v, pp);
    };
    let acc = mid;
    if (mode === 'reflect') {
      // Left border rows 0..p0−1 copy x[p0..1]; right rows copy x[len−2..len−1−p1].
      if (p0) acc = op.add(acc, padAxis(op.flip(op.slice(gx, [0], [p0], [a]), [a]), 1, len - 1 - p0));
      if (p1) acc = op.add(acc, padAxis(op.flip(op.slice(gx, [p0 + len], [p0 + len + p1], [a]), [a]), len - 1 - p1, 1));
    } else if (mode === 'edge') {
      if (p0) acc = op.add(acc, padAxis(op.reduceSum(op.slice(gx, [0], [p0], [a]), [a]), 0, len - 1));
      if (p1) acc = op.add(acc, padAxis(op.reduceSum(op.slice(gx, [p0 + len], [p0 + len + p1], [a]), [a]), len - 1, 0));
    } else throw new Error(`node ${n.name} (Pad): no gradient for mode '${mode}'`);
    gx = acc;
  }
  return [gx];
}

function resizeRule(n: Node, [g]: readonly (Value | null)[]): (Value | null)[] {
  const x = n.in(0);
  const y = n.outputs[0]!;
  if (n.int('antialias', 0)) throw new Error(`node ${n.name} (Resize): gradient of antialiased resize is not supported`);
  if (!isStaticShape(x.shape)) throw new Error(`node ${n.name} (Resize): gradient needs static shapes`);
  const scales = n.inputs[2] ? Array.from(constValue(n.inputs[2], n.name).data as Float32Array) : null;
  const spec = {
    mode: n.str('mode', 'nearest') as 'nearest' | 'linear' | 'cubic',
    coord: n.str('coordinate_transformation_mode', 'half_pixel'),
    nearestMode: n.str('nearest_mode', 'round_prefer_floor'),
    cubicA: n.float('cubic_coeff_a', -0.75),
    excludeOutside: n.int('exclude_outside', 0) === 1,
  };
  const mh = interpolationMatrix(x.sdim(2), y.sdim(2), scales ? scales[2]! : y.sdim(2) / x.sdim(2), spec);
  const mw = interpolationMatrix(x.sdim(3), y.sdim(3), scales ? scales[3]! : y.sdim(3) / x.sdim(3), spec);
  // y = Mh · x · Mwᵀ  ⇒  dx = Mhᵀ · g · Mw.
  const gw = op.matmul(g!, op.constF32(x.graph, [y.sdim(3), x.sdim(3)], mw, 'resize_w'));
  const mhT = new Float32Array(mh.length);
  const [ho, hi] = [y.sdim(2), x.sdim(2)];
  for (let i = 0; i < ho; i++) for (let j = 0; j < hi; j++) mhT[j * ho + i] = mh[i * hi + j]!;
  return [op.matmul(op.constF32(x.graph, [hi, ho], mhT, 'resize_hT'), gw)];
}

function avgPoolRule(n: Node, [g]: readonly (Value | null)[]): (Value | null)[] {
  const x = n.in(0);
  const C = x.sdim(1);
  const k = n.ints('kernel_shape');
  const s = n.ints('strides', [1, 1]);
  const p = n.ints('pads', [0, 0, 0, 0]);
  const [ho, wo] = [g!.sdim(2), g!.sdim(3)];
  let scaled: Value;
  if (n.int('count_include_pad', 0) === 1 || p.every((v) => v === 0)) scaled = op.div(g!, k[0]! * k[1]!);
  else {
    // Divisor per output position: the number of window cells inside the unpadded input.
    const cnt = new Float32Array(ho * wo);
    const inside = (o: number, st: number, pad: number, kk: number, size: number) => {
      const lo = o * st - pad;
      return Math.min(size, lo + kk) - Math.max(0, lo);
    };
    for (let i = 0; i < ho; i++) for (let j = 0; j < wo; j++) cnt[i * wo + j] = inside(i, s[0]!, p[0]!, k[0]!, x.sdim(2)) * inside(j, s[1]!, p[1]!, k[1]!, x.sdim(3));
    scaled = op.div(g!, op.constF32(x.graph, [ho, wo], cnt, 'pool_count'));
  }
  const ones = op.constF32(x.graph, [C, 1, k[0]!, k[1]!], new Float32Array(C * k[0]! * k[1]!).fill(1), 'pool_ones');
  const covered = (i: 0 | 1) => ((i === 0 ? ho : wo) - 1) * s[i]! - p[i]! - p[i + 2]! + k[i]!;
  return [
    op.convTranspose(scaled, ones, null, {
      stride: [s[0]!, s[1]!],
      pads: [p[0]!, p[1]!, p[2]!, p[3]!],
      group: C,
      outputPadding: [x.sdim(2) - covered(0), x.sdim(3) - covered(1)],
    }),
  ];
}

function maxPoolRule(n: Node, [g]: readonly (Value | null)[]): (Value | null)[] {
  const x = n.in(0);
  const y = n.outputs[0]!;
  const G = x.graph;
  // Recompute the pooling with indices (flat into N·C·H·W), then scatter-add.
  const [, idx] = G.node('MaxPool', [x], { ...n.attrs }, [
    { dtype: x.dtype, shape: y.shape },
    { dtype: 'int64', shape: y.shape },
  ]);
  const total = staticNumel(x.shape, `${n.name} (MaxPool) gradient`);
  const zeros = op.expand(op.scalar(G, 0), [total]);
  const [flat] = G.node(
    'ScatterElements',
    [zeros, op.reshape(idx!, [-1]), op.reshape(g!, [-1])],
    { axis: attr.int(0), reduction: attr.string('add') },
    [{ dtype: x.dtype, shape: [total] }],
  );
  return [op.reshape(flat!, x.shape)];
}

function matmulRule(n: Node, [g]: readonly (Value | null)[], need: readonly boolean[]): (Value | null)[] {
  const a = n.in(0);
  const b = n.in(1);
  if (a.rank === 2 && b.rank === 2) {
    return [need[0] ? op.gemm(g!, b, null, { transB: true }) : null, need[1] ? op.gemm(a, g!, null, { transA: true }) : null];
  }
  const tr = (v: Value) => op.transpose(v, [...v.shape.keys()].map((i) => (i === v.rank - 2 ? v.rank - 1 : i === v.rank - 1 ? v.rank - 2 : i)));
  return [need[0] ? sumTo(op.matmul(g!, tr(b)), a.shape) : null, need[1] ? sumTo(op.matmul(tr(a), g!), b.shape) : null];
}

function gemmRule(n: Node, [g]: readonly (Value | null)[], need: readonly boolean[]): (Value | null)[] {
  const a = n.in(0);
  const b = n.in(1);
  const c = n.inputs[2] ?? null;
  const alpha = n.float('alpha', 1);
  const beta = n.float('beta', 1);
  const tA = n.int('transA', 0) === 1;
  const tB = n.int('transB', 0) === 1;
  let ga: Value | null = null;
  let gb: Value | null = null;
  if (need[0]) ga = tA ? op.gemm(b, g!, null, { transA: tB, transB: true, alpha }) : op.gemm(g!, b, null, { transB: !tB, alpha });
  if (need[1]) gb = tB ? op.gemm(g!, a, null, { transA: true, transB: tA, alpha }) : op.gemm(a, g!, null, { transA: !tA, alpha });
  const gc = need[2] && c ? sumTo(beta === 1 ? g! : op.mul(g!, beta), c.shape) : null;
  return [ga, gb, gc];
}

const RULES: Record<string, Rule> = {
  Identity: (_n, [g]) => [g!],
  // The multi-input Sum that accumulates gradients (reached again by second-order gradients).
  Sum: (n, [g], need) => n.inputs.map((v, i) => (need[i] ? sumTo(g!, v!.shape) : null)),
  Add: (n, [g], need) => unbroadcastPair(n, g!, g!, need),
  Sub: (n, [g], need) => unbroadcastPair(n, g!, need[1] ? op.neg(g!) : null, need),
  Mul: (n, [g], need) => unbroadcastPair(n, need[0] ? op.mul(g!, n.in(1)) : null, need[1] ? op.mul(g!, n.in(0)) : null, need),
  Div: (n, [g], need) =>
    unbroadcastPair(n, need[0] ? op.div(g!, n.in(1)) : null, need[1] ? op.neg(op.div(op.mul(g!, n.outputs[0]!), n.in(1))) : null, need),
  Pow: (n, [g], need) => {
    const [a, b] = [n.in(0), n.in(1)];
    const ga = need[0] ? op.mul(g!, op.mul(b, op.pow(a, op.sub(b, 1)))) : null;
    const gb = need[1] ? op.mul(g!, op.mul(n.outputs[0]!, op.log(a))) : null;
    return unbroadcastPair(n, ga, gb, need);
  },
  Neg: (_n, [g]) => [op.neg(g!)],
  Abs: (n, [g]) => [op.mul(g!, op.sign(n.in(0)))],
  Sqrt: (n, [g]) => [op.div(op.mul(g!, 0.5), n.outputs[0]!)],
  Exp: (n, [g]) => [op.mul(g!, n.outputs[0]!)],
  Log: (n, [g]) => [op.div(g!, n.in(0))],
  Reciprocal: (n, [g]) => {
    const y = n.outputs[0]!;
    return [op.neg(op.mul(g!, op.mul(y, y)))];
  },
  Erf: (n, [g]) => {
    const x = n.in(0);
    return [op.mul(g!, op.mul(op.exp(op.neg(op.mul(x, x))), 2 / Math.sqrt(Math.PI)))];
  },
  Tanh: (n, [g]) => {
    const y = n.outputs[0]!;
    return [op.mul(g!, op.sub(1, op.mul(y, y)))];
  },
  Sigmoid: (n, [g]) => {
    const y = n.outputs[0]!;
    return [op.mul(g!, op.mul(y, op.sub(1, y)))];
  },
  Softplus: (n, [g]) => [op.mul(g!, op.sigmoid(n.in(0)))],
  Relu: (n, [g]) => [op.whereOp(op.greater(n.in(0), 0), g!, 0)],
  LeakyRelu: (n, [g]) => [op.whereOp(op.greater(n.in(0), 0), g!, op.mul(g!, n.float('alpha', 0.01)))],
  Clip: (n, [g]) => {
    const x = n.in(0);
    let mask: Value | null = null;
    if (n.inputs[1]) mask = op.greaterOrEqual(x, n.inputs[1]);
    if (n.inputs[2]) {
      const m2 = op.lessOrEqual(x, n.inputs[2]);
      mask = mask ? op.and(mask, m2) : m2;
    }
    return [mask ? op.whereOp(mask, g!, 0) : g!, null, null];
  },
  Where: (n, [g], need) => {
    const c = n.in(0);
    const ga = need[1] ? sumTo(op.whereOp(c, g!, 0), n.in(1).shape) : null;
    const gb = need[2] ? sumTo(op.whereOp(c, 0, g!), n.in(2).shape) : null;
    return [null, ga, gb];
  },
  Cast: (n, [g]) => {
    const x = n.in(0);
    return [x.dtype === g!.dtype ? g! : op.cast(g!, x.dtype)];
  },
  MatMul: matmulRule,
  Gemm: gemmRule,
  Conv: convRule,
  ConvTranspose: convTransposeRule,
  ReduceSum: (n, [g]) => {
    const x = n.in(0);
    const { axes, keepdims } = reduceAxes(n);
    const gk = keepdims ? g! : op.reshape(g!, keptShape(x, axes));
    return [op.expand(gk, x.shape), null];
  },
  ReduceMean: (n, [g]) => {
    const x = n.in(0);
    const { axes, keepdims } = reduceAxes(n);
    const count = axes.reduce((c, a) => c * x.sdim(a), 1);
    const gk = keepdims ? g! : op.reshape(g!, keptShape(x, axes));
    return [op.expand(op.div(gk, count), x.shape)];
  },
  ReduceMax: (n, [g]) => {
    const x = n.in(0);
    const { axes, keepdims } = reduceAxes(n);
    const kept = keptShape(x, axes);
    const yk = keepdims ? n.outputs[0]! : op.reshape(n.outputs[0]!, kept);
    const gk = keepdims ? g! : op.reshape(g!, kept);
    // Ties share the gradient evenly, as PyTorch's amax does.
    const mask = op.cast(op.equal(x, yk), x.dtype);
    return [op.mul(mask, op.div(gk, op.reduceSum(mask, axes, true)))];
  },
  Softmax: (n, [g]) => {
    const y = n.outputs[0]!;
    const axis = n.int('axis', -1);
    return [op.mul(y, op.sub(g!, op.reduceSum(op.mul(g!, y), [axis], true)))];
  },
  LogSoftmax: (n, [g]) => {
    const y = n.outputs[0]!;
    const axis = n.int('axis', -1);
    return [op.sub(g!, op.mul(op.exp(y), op.reduceSum(g!, [axis], true)))];
  },
  Concat: (n, [g], need) => {
    const axis = n.int('axis');
    const sizes = n.inputs.map((v) => v!.dim(axis));
    if (!sizes.every(isStatic)) throw new Error(`node ${n.name} (Concat): gradient needs static sizes on axis ${axis}`);
    if (sizes.length === 1) return [g!];
    const parts = op.split(g!, sizes as number[], axis);
    return parts.map((p, i) => (need[i] ? p : null));
  },
  Split: (n, gs) => {
    const axis = n.int('axis', 0);
    const parts = n.outputs.map((o, i) => gs[i] ?? zerosLike(o));
    return [op.concat(parts, axis), null];
  },
  Slice: sliceRule,
  Reshape: (n, [g]) => [op.reshape(g!, n.in(0).shape), null],
  Squeeze: (n, [g]) => [op.reshape(g!, n.in(0).shape), null],
  Unsqueeze: (n, [g]) => [op.reshape(g!, n.in(0).shape), null],
  Flatten: (n, [g]) => [op.reshape(g!, n.in(0).shape)],
  Transpose: (n, [g]) => {
    const perm = n.ints('perm');
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    return [op.transpose(g!, inv)];
  },
  Expand: (n, [g]) => [sumTo(g!, n.in(0).shape), null],
  Pad: padRule,
  Resize: resizeRule,
  AveragePool: avgPoolRule,
  GlobalAveragePool: (n, [g]) => {
    const x = n.in(0);
    return [op.expand(op.div(g!, x.sdim(2) * x.sdim(3)), x.shape)];
  },
  MaxPool: maxPoolRule,
};

/** True when `opType` has a gradient rule. */
export function isDifferentiable(opType: string): boolean {
  return opType in RULES || ZERO_GRAD.has(opType);
}

/**
 * Appends the backward graph of `outputs` with cotangents `seeds` and returns the
 * gradient of each value in `wrt` (zeros where it does not influence the outputs).
 */
export function vjp(outputs: readonly Value[], seeds: readonly Value[], wrt: readonly Value[]): Value[] {
  if (outputs.length !== seeds.length) throw new Error('vjp: one seed per output is needed');
  const graph = outputs[0]!.graph;
  for (const w of wrt) {
    if (w.graph !== graph) throw new Error(`vjp: '${w.name}' belongs to another graph`);
    if (!FLOAT.has(w.dtype)) throw new Error(`vjp: cannot differentiate with respect to ${w} (not a float tensor)`);
  }
  const nodeCount = graph.nodes.length;
  const forward = graph.nodes.slice(0, nodeCount);

  // Values that depend on wrt (forward reachability).
  const dep = new Set<Value>(wrt);
  for (const n of forward) if (n.inputs.some((i) => i && dep.has(i))) for (const o of n.outputs) dep.add(o);
  // Nodes on a path from wrt to the outputs.
  const reaches = new Set<Value>(outputs.filter((o) => dep.has(o)));
  const onPath: Node[] = [];
  for (let i = forward.length - 1; i >= 0; i--) {
    const n = forward[i]!;
    if (!n.outputs.some((o) => reaches.has(o))) continue;
    if (!n.inputs.some((v) => v && dep.has(v))) continue;
    onPath.push(n);
    for (const v of n.inputs) if (v && dep.has(v)) reaches.add(v);
  }
  for (const n of onPath) {
    if (NON_DIFF.has(n.op) || (n.op === 'Cast' && !FLOAT.has(n.outputs[0]!.dtype) && FLOAT.has(n.in(0).dtype))) {
      throw new Error(`cannot differentiate through node ${n.name} (${n.op}): the op is not differentiable`);
    }
    if (!(n.op in RULES) && !ZERO_GRAD.has(n.op)) throw new Error(`cannot differentiate through node ${n.name} (${n.op}): no gradient rule for this op`);
  }

  const grads = new Map<Value, Value[]>();
  const push = (v: Value, g: Value) => {
    if (!dimEq(g.shape.length, v.shape.length) || !g.shape.every((d, i) => dimEq(d, v.shape[i]!))) {
      throw new Error(`internal: gradient of ${v} has shape ${fmtShape(g.shape)}`);
    }
    const l = grads.get(v);
    if (l) l.push(g);
    else grads.set(v, [g]);
  };
  const total = (v: Value): Value | null => {
    const l = grads.get(v);
    if (!l || l.length === 0) return null;
    if (l.length === 1) return l[0]!;
    const s = graph.node('Sum', l, {}, [{ dtype: v.dtype, shape: v.shape }])[0]!;
    grads.set(v, [s]);
    return s;
  };
  outputs.forEach((o, i) => {
    if (dep.has(o)) push(o, seeds[i]!);
  });

  for (const n of onPath) {
    if (ZERO_GRAD.has(n.op)) continue;
    const gOut = n.outputs.map((o) => total(o));
    if (gOut.every((g) => g === null)) continue;
    const need = n.inputs.map((v) => !!v && dep.has(v) && reaches.has(v) && FLOAT.has(v.dtype));
    const gIn = graph.scope(`grad(${n.name})`, () => RULES[n.op]!(n, gOut, need));
    n.inputs.forEach((v, i) => {
      const g = gIn[i];
      if (v && need[i] && g) push(v, g);
    });
  }
  return wrt.map((w) => total(w) ?? zerosLike(w));
}

/** Gradients of a scalar `loss` (any shape with one element) with respect to `wrt`. */
export function grad(loss: Value, wrt: readonly Value[]): Value[] {
  if (!isStaticShape(loss.shape) || staticNumel(loss.shape) !== 1) throw new Error(`grad: loss must have one element, got shape ${fmtShape(loss.shape)}`);
  const seed = op.constF32(loss.graph, loss.shape as number[], [1], 'grad_seed');
  return vjp([loss], [seed], wrt);
}

/** Re-export for rules that need it. */
export type { Graph };
