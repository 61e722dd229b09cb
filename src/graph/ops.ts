/**
 * Graph-building ops. Each function infers the output shape and dtype, fails at
 * build time with a one-line message naming the op and the shapes, and appends one
 * ONNX node (or a few, for composites such as GELU or pixel shuffle). The emitted
 * ops are standard ONNX opset 17.
 */
import type { DType, HostTensor } from '../tensor.js';
import { Graph, Value, attr, type Attr } from './ir.js';
import {
  type Dim,
  type Shape,
  Sym,
  dimAdd,
  dimDiv,
  dimEq,
  dimMul,
  dimProd,
  fmtShape,
  isStatic,
  isStaticShape,
  sym,
} from './dim.js';

/** A value or a plain number (which becomes a scalar constant of the other operand's dtype). */
export type Operand = Value | number;

function where(g: Graph, op: string): string {
  return g.prefix ? `${op} in ${g.prefix}` : op;
}

function fail(g: Graph, op: string, msg: string): never {
  throw new Error(`${where(g, op)}: ${msg}`);
}

function graphOf(...xs: Operand[]): Graph {
  for (const x of xs) if (x instanceof Value) return x.graph;
  throw new Error('op needs at least one graph value among its operands');
}

/** A scalar (rank-0) constant. */
export function scalar(g: Graph, v: number, dtype: DType = 'float32'): Value {
  if (dtype === 'float32') return g.constant({ dtype, shape: [], data: new Float32Array([v]) }, 'scalar');
  if (dtype === 'int64') return g.constant({ dtype, shape: [], data: new BigInt64Array([BigInt(v)]) }, 'scalar');
  throw new Error(`scalar constants of dtype ${dtype} are not supported`);
}

/** A float32 constant tensor. */
export function constF32(g: Graph, shape: readonly number[], data: ArrayLike<number>, name = 'const'): Value {
  return g.constant({ dtype: 'float32', shape: [...shape], data: Float32Array.from(data) }, name);
}

/** A 1-D int64 constant. */
export function constI64(g: Graph, data: readonly number[], name = 'ints'): Value {
  return g.constant({ dtype: 'int64', shape: [data.length], data: BigInt64Array.from(data.map((d) => BigInt(d))) }, name);
}

function lift(g: Graph, x: Operand, dtype: DType): Value {
  return x instanceof Value ? x : scalar(g, x, dtype);
}

// ---------------------------------------------------------------- shapes

/** Numpy-style broadcast of shapes; null if they do not broadcast. */
export function broadcastShapes(a: Shape, b: Shape): Dim[] | null {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)]!;
    const db = i < n - b.length ? 1 : b[i - (n - b.length)]!;
    if (dimEq(da, db) || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else return null;
  }
  return out;
}

function normAxis(g: Graph, op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(g, op, `axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/**
 * A run-time int64 tensor holding `dims`. Static dims are constants; symbolic dims are
 * read from the graph input that declared their variable (Shape → Gather → Mul/Div).
 */
export function dimsTensor(g: Graph, dims: readonly Dim[]): Value {
  if (dims.every(isStatic)) return constI64(g, dims as number[], 'shape');
  const parts = dims.map((d) => (isStatic(d) ? constI64(g, [d]) : symDimTensor(g, d)));
  return node1(g, 'Concat', parts, { axis: attr.int(0) }, 'int64', [dims.length]);
}

function symDimTensor(g: Graph, d: Sym): Value {
  let acc: Value | null = null;
  for (const v of d.vars) {
    const src = g.symSources.get(v);
    if (!src) throw new Error(`symbolic dim '${v}' has no graph input to read it from`);
    const sh = node1(g, 'Shape', [src.value], { start: attr.int(src.axis), end: attr.int(src.axis + 1) }, 'int64', [1]);
    acc = acc ? node1(g, 'Mul', [acc, sh], {}, 'int64', [1]) : sh;
  }
  if (d.num !== 1) acc = node1(g, 'Mul', [acc!, constI64(g, [d.num])], {}, 'int64', [1]);
  if (d.den !== 1) acc = node1(g, 'Div', [acc!, constI64(g, [d.den])], {}, 'int64', [1]);
  return acc!;
}

function node1(g: Graph, op: string, inputs: (Value | null)[], attrs: Record<string, Attr>, dtype: DType, shape: Shape): Value {
  return g.node(op, inputs, attrs, [{ dtype, shape }])[0]!;
}

// ---------------------------------------------------------------- elementwise

const FLOAT_OPS_BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow']);

function binary(op: string, a: Operand, b: Operand): Value {
  const g = graphOf(a, b);
  const dt = a instanceof Value ? a.dtype : (b as Value).dtype;
  const va = lift(g, a, dt);
  const vb = lift(g, b, dt);
  if (va.dtype !== vb.dtype && op !== 'Pow') fail(g, op, `dtypes ${va.dtype} and ${vb.dtype} differ`);
  const shape = broadcastShapes(va.shape, vb.shape);
  if (!shape) fail(g, op, `shapes ${fmtShape(va.shape)} and ${fmtShape(vb.shape)} do not broadcast`);
  const outType: DType = FLOAT_OPS_BINARY.has(op) ? va.dtype : 'bool';
  return node1(g, op, [va, vb], {}, outType, shape);
}

/** a + b with broadcasting. */
export const add = (a: Operand, b: Operand): Value => binary('Add', a, b);
/** a − b with broadcasting. */
export const sub = (a: Operand, b: Operand): Value => binary('Sub', a, b);
/** a · b with broadcasting. */
export const mul = (a: Operand, b: Operand): Value => binary('Mul', a, b);
/** a / b with broadcasting. */
export const div = (a: Operand, b: Operand): Value => binary('Div', a, b);
/** a ^ b with broadcasting. */
export const pow = (a: Operand, b: Operand): Value => binary('Pow', a, b);
/** a == b (bool). */
export const equal = (a: Operand, b: Operand): Value => binary('Equal', a, b);
/** a < b (bool). */
export const less = (a: Operand, b: Operand): Value => binary('Less', a, b);
/** a > b (bool). */
export const greater = (a: Operand, b: Operand): Value => binary('Greater', a, b);
/** a <= b (bool). */
export const lessOrEqual = (a: Operand, b: Operand): Value => binary('LessOrEqual', a, b);
/** a >= b (bool). */
export const greaterOrEqual = (a: Operand, b: Operand): Value => binary('GreaterOrEqual', a, b);

/** Logical and of two bool tensors. */
export function and(a: Value, b: Value): Value {
  const shape = broadcastShapes(a.shape, b.shape);
  if (!shape || a.dtype !== 'bool' || b.dtype !== 'bool') fail(a.graph, 'And', `needs two broadcastable bool tensors, got ${a} and ${b}`);
  return node1(a.graph, 'And', [a, b], {}, 'bool', shape);
}

/** Elementwise select: cond ? a : b, with broadcasting. */
export function whereOp(cond: Value, a: Operand, b: Operand): Value {
  const g = cond.graph;
  const dt = a instanceof Value ? a.dtype : b instanceof Value ? b.dtype : 'float32';
  const va = lift(g, a, dt);
  const vb = lift(g, b, dt);
  if (cond.dtype !== 'bool') fail(g, 'Where', `condition must be bool, got ${cond.dtype}`);
  if (va.dtype !== vb.dtype) fail(g, 'Where', `branch dtypes ${va.dtype} and ${vb.dtype} differ`);
  const s1 = broadcastShapes(va.shape, vb.shape);
  const shape = s1 && broadcastShapes(cond.shape, s1);
  if (!shape) fail(g, 'Where', `shapes ${fmtShape(cond.shape)}, ${fmtShape(va.shape)}, ${fmtShape(vb.shape)} do not broadcast`);
  return node1(g, 'Where', [cond, va, vb], {}, va.dtype, shape);
}

function unary(op: string, x: Value, attrs: Record<string, Attr> = {}): Value {
  if (x.dtype !== 'float32' && x.dtype !== 'float16') fail(x.graph, op, `needs a float tensor, got ${x}`);
  return node1(x.graph, op, [x], attrs, x.dtype, x.shape);
}

/** −x. */
export const neg = (x: Value): Value => unary('Neg', x);
/** |x|. */
export const abs = (x: Value): Value => unary('Abs', x);
/** √x. */
export const sqrt = (x: Value): Value => unary('Sqrt', x);
/** eˣ. */
export const exp = (x: Value): Value => unary('Exp', x);
/** ln x. */
export const log = (x: Value): Value => unary('Log', x);
/** erf x. */
export const erf = (x: Value): Value => unary('Erf', x);
/** tanh x. */
export const tanh = (x: Value): Value => unary('Tanh', x);
/** σ(x). */
export const sigmoid = (x: Value): Value => unary('Sigmoid', x);
/** ln(1+eˣ). */
export const softplus = (x: Value): Value => unary('Softplus', x);
/** max(x, 0). */
export const relu = (x: Value): Value => unary('Relu', x);
/** sign(x) ∈ {−1, 0, 1}. */
export const sign = (x: Value): Value => unary('Sign', x);
/** 1/x. */
export const reciprocal = (x: Value): Value => unary('Reciprocal', x);
/** ⌊x⌋ (not differentiable). */
export const floor = (x: Value): Value => unary('Floor', x);
/** Identity (a copy in the graph). */
export const identity = (x: Value): Value => node1(x.graph, 'Identity', [x], {}, x.dtype, x.shape);
/** LeakyReLU with negative slope `alpha`. */
export const leakyRelu = (x: Value, alpha = 0.01): Value => unary('LeakyRelu', x, { alpha: attr.float(alpha) });

/** Clamps x to [min, max] (either bound may be omitted). */
export function clip(x: Value, min?: number, max?: number): Value {
  const g = x.graph;
  const lo = min === undefined ? null : scalar(g, min, x.dtype);
  const hi = max === undefined ? null : scalar(g, max, x.dtype);
  return node1(g, 'Clip', [x, lo, hi], {}, x.dtype, x.shape);
}

/**
 * Exact (erf) GELU, as PyTorch's default `F.gelu`: x·(1+erf(x/√2))/2, in the op order
 * that ONNX Runtime fuses into one `Gelu` kernel (Div √2 → Erf → Add 1 → Mul x → Mul ½).
 */
export function gelu(x: Value): Value {
  return mul(mul(x, add(erf(div(x, Math.SQRT2)), 1)), 0.5);
}

/** Converts the element type. */
export function cast(x: Value, to: DType): Value {
  const code = ONNX_DTYPE_CODE[to];
  return node1(x.graph, 'Cast', [x], { to: attr.int(code) }, to, x.shape);
}

/** ONNX TensorProto.DataType codes. */
export const ONNX_DTYPE_CODE: Record<DType, number> = { float32: 1, uint8: 2, int32: 6, int64: 7, bool: 9, float16: 10 };

// ---------------------------------------------------------------- linear algebra

/** Matrix product with batch broadcasting (both operands of rank ≥ 2). */
export function matmul(a: Value, b: Value): Value {
  const g = a.graph;
  if (a.rank < 2 || b.rank < 2) fail(g, 'MatMul', `operands need rank ≥ 2, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  if (!dimEq(a.dim(-1), b.dim(-2))) fail(g, 'MatMul', `inner dims differ: ${fmtShape(a.shape)} × ${fmtShape(b.shape)}`);
  const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
  if (!batch) fail(g, 'MatMul', `batch dims of ${fmtShape(a.shape)} and ${fmtShape(b.shape)} do not broadcast`);
  return node1(g, 'MatMul', [a, b], {}, a.dtype, [...batch, a.dim(-2), b.dim(-1)]);
}

/** Options of `gemm`. */
export interface GemmOptions {
  alpha?: number;
  beta?: number;
  transA?: boolean;
  transB?: boolean;
}

/** alpha·op(A)·op(B) + beta·C for 2-D A and B (C broadcast to the result). */
export function gemm(a: Value, b: Value, c: Value | null = null, o: GemmOptions = {}): Value {
  const g = a.graph;
  if (a.rank !== 2 || b.rank !== 2) fail(g, 'Gemm', `needs 2-D operands, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  const [m, k1] = o.transA ? [a.dim(1), a.dim(0)] : [a.dim(0), a.dim(1)];
  const [k2, n] = o.transB ? [b.dim(1), b.dim(0)] : [b.dim(0), b.dim(1)];
  if (!dimEq(k1, k2)) fail(g, 'Gemm', `inner dims differ: ${fmtShape(a.shape)}${o.transA ? 'ᵀ' : ''} × ${fmtShape(b.shape)}${o.transB ? 'ᵀ' : ''}`);
  if (c && !broadcastShapes([m, n], c.shape)?.every((d, i) => dimEq(d, [m, n][i]!))) {
    fail(g, 'Gemm', `C of shape ${fmtShape(c.shape)} does not broadcast to [${m},${n}]`);
  }
  const attrs: Record<string, Attr> = {};
  if (o.alpha !== undefined && o.alpha !== 1) attrs.alpha = attr.float(o.alpha);
  if (o.beta !== undefined && o.beta !== 1) attrs.beta = attr.float(o.beta);
  if (o.transA) attrs.transA = attr.int(1);
  if (o.transB) attrs.transB = attr.int(1);
  return node1(g, 'Gemm', c ? [a, b, c] : [a, b], attrs, a.dtype, [m, n]);
}

// ---------------------------------------------------------------- convolution

/** Options of 2-D convolutions; pads are [top, left, bottom, right] or one number for all. */
export interface ConvOptions {
  stride?: number | readonly [number, number];
  pads?: number | readonly [number, number, number, number];
  dilation?: number | readonly [number, number];
  group?: number;
}

function pair(v: number | readonly [number, number] | undefined, d: number): [number, number] {
  return v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : [v[0], v[1]];
}

function quad(v: number | readonly [number, number, number, number] | undefined): [number, number, number, number] {
  return v === undefined ? [0, 0, 0, 0] : typeof v === 'number' ? [v, v, v, v] : [v[0], v[1], v[2], v[3]];
}

/** Output size of a convolution along one axis. */
function convOut(g: Graph, op: string, inp: Dim, k: number, s: number, p0: number, p1: number, d: number): Dim {
  const off = p0 + p1 - d * (k - 1) - 1;
  if (isStatic(inp)) {
    const o = Math.floor((inp + off) / s) + 1;
    if (o <= 0) fail(g, op, `input size ${inp} is too small for kernel ${k} (dilation ${d}, pads ${p0},${p1})`);
    return o;
  }
  // H divisible by s: floor((H+off)/s)+1 = H/s + floor(off/s) + 1.
  return dimAdd(dimDiv(inp, s), Math.floor(off / s) + 1, `${where(g, op)} output size`);
}

/** 2-D convolution of NCHW `x` with weight (Cout, Cin/group, kh, kw) and optional bias (Cout). */
export function conv(x: Value, w: Value, b: Value | null = null, o: ConvOptions = {}): Value {
  const g = x.graph;
  const [sh, sw] = pair(o.stride, 1);
  const [dh, dw] = pair(o.dilation, 1);
  const pads = quad(o.pads);
  const group = o.group ?? 1;
  if (x.rank !== 4 || w.rank !== 4) fail(g, 'Conv', `needs NCHW input and 4-D weight, got ${fmtShape(x.shape)} and ${fmtShape(w.shape)}`);
  const cin = x.dim(1);
  const cout = w.sdim(0);
  if (!isStatic(cin) || cin % group !== 0 || cout % group !== 0 || w.sdim(1) * group !== cin) {
    fail(g, 'Conv', `input ${fmtShape(x.shape)} does not fit weight ${fmtShape(w.shape)} with group ${group}`);
  }
  if (b && (b.rank !== 1 || b.dim(0) !== cout)) fail(g, 'Conv', `bias ${fmtShape(b.shape)} does not match ${cout} output channels`);
  const kh = w.sdim(2);
  const kw = w.sdim(3);
  const ho = convOut(g, 'Conv', x.dim(2), kh, sh, pads[0], pads[2], dh);
  const wo = convOut(g, 'Conv', x.dim(3), kw, sw, pads[1], pads[3], dw);
  const attrs: Record<string, Attr> = {
    kernel_shape: attr.ints([kh, kw]),
    strides: attr.ints([sh, sw]),
    pads: attr.ints(pads),
    dilations: attr.ints([dh, dw]),
    group: attr.int(group),
  };
  return node1(g, 'Conv', b ? [x, w, b] : [x, w], attrs, x.dtype, [x.dim(0), cout, ho, wo]);
}

/** Options of a transposed convolution. */
export interface ConvTransposeOptions extends ConvOptions {
  outputPadding?: number | readonly [number, number];
}

/** 2-D transposed convolution; weight (Cin, Cout/group, kh, kw). */
export function convTranspose(x: Value, w: Value, b: Value | null = null, o: ConvTransposeOptions = {}): Value {
  const g = x.graph;
  const [sh, sw] = pair(o.stride, 1);
  const [dh, dw] = pair(o.dilation, 1);
  const [oph, opw] = pair(o.outputPadding, 0);
  const pads = quad(o.pads);
  const group = o.group ?? 1;
  if (x.rank !== 4 || w.rank !== 4) fail(g, 'ConvTranspose', `needs NCHW input and 4-D weight, got ${fmtShape(x.shape)} and ${fmtShape(w.shape)}`);
  if (x.dim(1) !== w.sdim(0) || w.sdim(0) % group !== 0) {
    fail(g, 'ConvTranspose', `input ${fmtShape(x.shape)} does not fit weight ${fmtShape(w.shape)} with group ${group}`);
  }
  const cout = w.sdim(1) * group;
  if (b && (b.rank !== 1 || b.dim(0) !== cout)) fail(g, 'ConvTranspose', `bias ${fmtShape(b.shape)} does not match ${cout} output channels`);
  const kh = w.sdim(2);
  const kw = w.sdim(3);
  const size = (inp: Dim, k: number, s: number, p0: number, p1: number, d: number, op: number): Dim =>
    dimAdd(dimMul(inp, s), -s + d * (k - 1) + 1 + op - p0 - p1, `${where(g, 'ConvTranspose')} output size`);
  const ho = size(x.dim(2), kh, sh, pads[0], pads[2], dh, oph);
  const wo = size(x.dim(3), kw, sw, pads[1], pads[3], dw, opw);
  const attrs: Record<string, Attr> = {
    kernel_shape: attr.ints([kh, kw]),
    strides: attr.ints([sh, sw]),
    pads: attr.ints(pads),
    dilations: attr.ints([dh, dw]),
    group: attr.int(group),
  };
  if (oph || opw) attrs.output_padding = attr.ints([oph, opw]);
  return node1(g, 'ConvTranspose', b ? [x, w, b] : [x, w], attrs, x.dtype, [x.dim(0), cout, ho, wo]);
}

// ---------------------------------------------------------------- reductions

function reduced(x: Value, op: string, axes: readonly number[], keepdims: boolean): { axes: number[]; shape: Dim[] } {
  const ax = [...new Set(axes.map((a) => normAxis(x.graph, op, a, x.rank)))].sort((a, b) => a - b);
  const shape: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!ax.includes(i)) shape.push(d);
    else if (keepdims) shape.push(1);
  });
  return { axes: ax, shape };
}

/** Sum over `axes`. */
export function reduceSum(x: Value, axes: readonly number[], keepdims = true): Value {
  const r = reduced(x, 'ReduceSum', axes, keepdims);
  return node1(x.graph, 'ReduceSum', [x, constI64(x.graph, r.axes)], { keepdims: attr.int(keepdims ? 1 : 0) }, x.dtype, r.shape);
}

/** Sum of squares over `axes` (one pass, not a Mul and a ReduceSum; no gradient rule: inference graphs only). */
export function reduceSumSquare(x: Value, axes: readonly number[], keepdims = true): Value {
  const r = reduced(x, 'ReduceSumSquare', axes, keepdims);
  return node1(x.graph, 'ReduceSumSquare', [x], { axes: attr.ints(r.axes), keepdims: attr.int(keepdims ? 1 : 0) }, x.dtype, r.shape);
}

/** Mean over `axes`. */
export function reduceMean(x: Value, axes: readonly number[], keepdims = true): Value {
  const r = reduced(x, 'ReduceMean', axes, keepdims);
  return node1(x.graph, 'ReduceMean', [x], { axes: attr.ints(r.axes), keepdims: attr.int(keepdims ? 1 : 0) }, x.dtype, r.shape);
}

/** Maximum over `axes`. */
export function reduceMax(x: Value, axes: readonly number[], keepdims = true): Value {
  const r = reduced(x, 'ReduceMax', axes, keepdims);
  return node1(x.graph, 'ReduceMax', [x], { axes: attr.ints(r.axes), keepdims: attr.int(keepdims ? 1 : 0) }, x.dtype, r.shape);
}

/** Softmax along `axis`. */
export function softmax(x: Value, axis = -1): Value {
  return node1(x.graph, 'Softmax', [x], { axis: attr.int(normAxis(x.graph, 'Softmax', axis, x.rank)) }, x.dtype, x.shape);
}

/** Log-softmax along `axis`. */
export function logSoftmax(x: Value, axis = -1): Value {
  return node1(x.graph, 'LogSoftmax', [x], { axis: attr.int(normAxis(x.graph, 'LogSoftmax', axis, x.rank)) }, x.dtype, x.shape);
}

// ---------------------------------------------------------------- shape manipulation

/** Concatenation along `axis`. */
export function concat(xs: readonly Value[], axis: number): Value {
  if (xs.length === 0) throw new Error('Concat needs at least one input');
  const g = xs[0]!.graph;
  if (xs.length === 1) return xs[0]!;
  const a = normAxis(g, 'Concat', axis, xs[0]!.rank);
  const ref = xs[0]!;
  for (const x of xs) {
    if (x.rank !== ref.rank || x.dtype !== ref.dtype || x.shape.some((d, i) => i !== a && !dimEq(d, ref.shape[i]!))) {
      fail(g, 'Concat', `cannot concatenate ${xs.map((v) => fmtShape(v.shape)).join(', ')} along axis ${a}`);
    }
  }
  const shape = [...ref.shape];
  shape[a] = xs.reduce<Dim>((s, x) => (isStatic(s) && isStatic(x.dim(a)) ? s + (x.dim(a) as number) : addSym(g, s, x.dim(a))), 0);
  return node1(g, 'Concat', [...xs], { axis: attr.int(a) }, ref.dtype, shape);
}

function addSym(g: Graph, a: Dim, b: Dim): Dim {
  if (isStatic(a) && a === 0) return b;
  if (a instanceof Sym && b instanceof Sym && a.den === b.den && a.vars.join() === b.vars.join()) return new Sym(a.num + b.num, a.den, a.vars);
  return fail(g, 'Concat', `cannot add symbolic sizes ${a} and ${b}`);
}

/** Splits along `axis` into pieces of the given sizes. */
export function split(x: Value, sizes: readonly number[], axis: number): Value[] {
  const g = x.graph;
  const a = normAxis(g, 'Split', axis, x.rank);
  const total = sizes.reduce((s, v) => s + v, 0);
  if (!dimEq(x.dim(a), total)) fail(g, 'Split', `sizes ${sizes.join('+')} do not add up to axis ${a} of ${fmtShape(x.shape)}`);
  const outs = sizes.map((s) => {
    const sh = [...x.shape];
    sh[a] = s;
    return { dtype: x.dtype, shape: sh };
  });
  return g.node('Split', [x, constI64(g, sizes)], { axis: attr.int(a) }, outs);
}

/**
 * Gathers entries of `x` along axis 0 at the given static indices (a 1-D int64 constant):
 * out[i, …] = x[indices[i], …]. Used to rearrange weights, which ORT constant-folds.
 */
export function gather(x: Value, indices: readonly number[]): Value {
  const g = x.graph;
  const n = x.dim(0);
  if (x.rank < 1 || !isStatic(n)) fail(g, 'Gather', `needs a tensor with a static first axis, got ${fmtShape(x.shape)}`);
  const bad = indices.find((i) => !Number.isInteger(i) || i < 0 || i >= n);
  if (bad !== undefined) fail(g, 'Gather', `index ${bad} is outside [0, ${n})`);
  return node1(g, 'Gather', [x, constI64(g, indices, 'gather_indices')], { axis: attr.int(0) }, x.dtype, [indices.length, ...x.shape.slice(1)]);
}

/** Splits along `axis` into `n` equal parts (works for symbolic sizes). */
export function chunk(x: Value, n: number, axis: number): Value[] {
  const g = x.graph;
  const a = normAxis(g, 'Split', axis, x.rank);
  const part = dimDiv(x.dim(a), n, `${where(g, 'Split')} axis ${a}`);
  if (isStatic(part)) return split(x, new Array<number>(n).fill(part), a);
  const sh = [...x.shape];
  sh[a] = part;
  return g.node('Split', [x], { axis: attr.int(a), num_outputs: attr.int(n) }, new Array(n).fill({ dtype: x.dtype, shape: sh }));
}

/**
 * Reshape to `shape`; one entry may be -1 (inferred). Symbolic entries are computed
 * at run time from the graph inputs.
 */
export function reshape(x: Value, shape: readonly Dim[]): Value {
  const g = x.graph;
  const total = dimProd(x.shape);
  const minus = shape.filter((d) => d === -1).length;
  if (minus > 1) fail(g, 'Reshape', `at most one -1 allowed, got ${fmtShape(shape)}`);
  let out: Dim[] = [...shape];
  if (minus === 1) {
    const known = dimProd(shape.filter((d) => d !== -1));
    let rest: Dim;
    if (isStatic(total) && isStatic(known)) {
      if (known === 0 || total % known !== 0) fail(g, 'Reshape', `cannot reshape ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
      rest = total / known;
    } else rest = divDims(g, total, known, x.shape, shape);
    out = shape.map((d) => (d === -1 ? rest : d));
  }
  if (!dimEq(dimProd(out), total)) fail(g, 'Reshape', `cannot reshape ${fmtShape(x.shape)} (${total} elements) to ${fmtShape(shape)}`);
  if (out.length === x.rank && out.every((d, i) => dimEq(d, x.shape[i]!))) return x;
  // A static target is a constant; a symbolic one uses -1 for one symbolic entry when possible.
  let target: Value;
  if (isStaticShape(out)) target = constI64(g, out);
  else {
    const symIdx = out.findIndex((d) => !isStatic(d));
    const onlyOne = out.filter((d) => !isStatic(d)).length === 1;
    target = onlyOne ? constI64(g, out.map((d, i) => (i === symIdx ? -1 : (d as number)))) : dimsTensor(g, out);
  }
  return node1(g, 'Reshape', [x, target], {}, x.dtype, out);
}

function divDims(g: Graph, total: Dim, known: Dim, from: Shape, to: Shape): Dim {
  const t = total instanceof Sym ? total : new Sym(total, 1, []);
  const k = known instanceof Sym ? known : new Sym(known, 1, []);
  const vars = [...t.vars];
  for (const v of k.vars) {
    const i = vars.indexOf(v);
    if (i < 0) fail(g, 'Reshape', `cannot infer -1 reshaping ${fmtShape(from)} to ${fmtShape(to)}`);
    vars.splice(i, 1);
  }
  const r = new Sym(t.num * k.den, t.den * k.num, vars);
  if (vars.length === 0) {
    if (r.den !== 1) fail(g, 'Reshape', `cannot infer -1 reshaping ${fmtShape(from)} to ${fmtShape(to)}`);
    return r.num;
  }
  return r;
}

/** Permutes axes. */
export function transpose(x: Value, perm: readonly number[]): Value {
  const g = x.graph;
  if (perm.length !== x.rank || [...perm].sort().some((p, i) => p !== i)) fail(g, 'Transpose', `perm [${perm}] is not a permutation of rank ${x.rank}`);
  if (perm.every((p, i) => p === i)) return x;
  return node1(g, 'Transpose', [x], { perm: attr.ints(perm) }, x.dtype, perm.map((p) => x.shape[p]!));
}

/** Inserts size-1 axes at `axes` (positions in the output). */
export function unsqueeze(x: Value, axes: readonly number[]): Value {
  const rank = x.rank + axes.length;
  const ax = axes.map((a) => normAxis(x.graph, 'Unsqueeze', a, rank)).sort((a, b) => a - b);
  const shape: Dim[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) shape.push(ax.includes(i) ? 1 : x.shape[j++]!);
  return node1(x.graph, 'Unsqueeze', [x, constI64(x.graph, ax)], {}, x.dtype, shape);
}

/** Removes the size-1 axes `axes`. */
export function squeeze(x: Value, axes: readonly number[]): Value {
  const ax = axes.map((a) => normAxis(x.graph, 'Squeeze', a, x.rank));
  for (const a of ax) if (x.dim(a) !== 1) fail(x.graph, 'Squeeze', `axis ${a} of ${fmtShape(x.shape)} is not 1`);
  return node1(x.graph, 'Squeeze', [x, constI64(x.graph, ax)], {}, x.dtype, x.shape.filter((_, i) => !ax.includes(i)));
}

/** Broadcasts `x` to `shape`. */
export function expand(x: Value, shape: readonly Dim[]): Value {
  const out = broadcastShapes(x.shape, shape);
  if (!out || out.length !== shape.length || out.some((d, i) => !dimEq(d, shape[i]!))) {
    fail(x.graph, 'Expand', `cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  }
  if (out.length === x.rank && out.every((d, i) => dimEq(d, x.shape[i]!))) return x;
  return node1(x.graph, 'Expand', [x, dimsTensor(x.graph, shape)], {}, x.dtype, out);
}

/**
 * Slices `x`: for each listed axis, elements start, start+step, … before end (Python
 * semantics: negative indices count from the end, ends are clamped).
 */
export function slice(x: Value, starts: readonly number[], ends: readonly number[], axes: readonly number[], steps?: readonly number[]): Value {
  const g = x.graph;
  const st = steps ?? axes.map(() => 1);
  if (starts.length !== axes.length || ends.length !== axes.length || st.length !== axes.length) {
    fail(g, 'Slice', 'starts, ends, axes and steps must have equal lengths');
  }
  const shape = [...x.shape];
  axes.forEach((axis, i) => {
    const a = normAxis(g, 'Slice', axis, x.rank);
    const step = st[i]!;
    if (step === 0) fail(g, 'Slice', 'step 0');
    const d = x.dim(a);
    if (!isStatic(d)) {
      // Symbolic axes: only full slices are supported.
      if (!(step === 1 && starts[i] === 0 && ends[i]! >= 2 ** 31 - 1)) fail(g, 'Slice', `partial slice of symbolic axis ${a} (${d})`);
      return;
    }
    const r = sliceRange(d, starts[i]!, ends[i]!, step);
    shape[a] = r.count;
  });
  const t = (v: readonly number[]) => constI64(g, v.map((n) => Math.max(-(2 ** 62), Math.min(2 ** 62, n))));
  return node1(g, 'Slice', [x, t(starts), t(ends), t(axes.map((a) => normAxis(g, 'Slice', a, x.rank))), t(st)], {}, x.dtype, shape);
}

/** Resolves Python/ONNX slice bounds on a dimension of size d. */
export function sliceRange(d: number, start: number, end: number, step: number): { first: number; count: number } {
  let s = start < 0 ? start + d : start;
  let e = end < 0 ? end + d : end;
  if (step > 0) {
    s = Math.max(0, Math.min(d, s));
    e = Math.max(0, Math.min(d, e));
    return { first: s, count: Math.max(0, Math.ceil((e - s) / step)) };
  }
  s = Math.max(-1, Math.min(d - 1, s));
  e = Math.max(-1, Math.min(d - 1, e));
  return { first: s, count: Math.max(0, Math.ceil((s - e) / -step)) };
}

/** Reverses `x` along the given axes. */
export function flip(x: Value, axes: readonly number[]): Value {
  return slice(x, axes.map(() => -1), axes.map(() => -(2 ** 62)), axes, axes.map(() => -1));
}

/** Padding modes of `pad`. */
export type PadMode = 'constant' | 'reflect' | 'edge';

/** Pads with `pads` = [begin_0, …, begin_{r−1}, end_0, …, end_{r−1}] (ONNX order). */
export function pad(x: Value, pads: readonly number[], mode: PadMode = 'constant', value = 0): Value {
  const g = x.graph;
  if (pads.length !== 2 * x.rank) fail(g, 'Pad', `needs ${2 * x.rank} pads for ${fmtShape(x.shape)}, got ${pads.length}`);
  if (pads.every((p) => p === 0)) return x;
  const shape = x.shape.map((d, i) => {
    const p0 = pads[i]!;
    const p1 = pads[i + x.rank]!;
    if (mode === 'reflect' && isStatic(d) && (p0 >= d || p1 >= d)) fail(g, 'Pad', `reflect padding ${p0},${p1} must be smaller than size ${d} on axis ${i}`);
    const out = dimAdd(d, p0 + p1, `${where(g, 'Pad')} axis ${i}`);
    if (isStatic(out) && out <= 0) fail(g, 'Pad', `padding ${p0},${p1} leaves nothing of size ${d} on axis ${i}`);
    return out;
  });
  const inputs = [x, constI64(g, pads)];
  if (mode === 'constant' && value !== 0) inputs.push(scalar(g, value, x.dtype));
  return node1(g, 'Pad', inputs, { mode: attr.string(mode) }, x.dtype, shape);
}

/** Options of `resize` (2-D spatial resize of NCHW tensors). */
export interface ResizeOptions {
  mode: 'nearest' | 'linear' | 'cubic';
  /** Integer or fractional scale for H and W; or give `size`. */
  scale?: number | readonly [number, number];
  size?: readonly [number, number];
  /** 'half_pixel' (PyTorch align_corners=False) by default; nearest defaults to 'asymmetric' + floor like PyTorch. */
  coordinateTransform?: 'half_pixel' | 'asymmetric' | 'align_corners' | 'pytorch_half_pixel';
  /** Cubic coefficient; PyTorch uses −0.75. */
  cubicCoeffA?: number;
  /** Anti-aliased downscaling (PIL/`antialias=True`). */
  antialias?: boolean;
}

/** Spatial resize with ONNX Resize semantics (PyTorch-compatible defaults). */
export function resize(x: Value, o: ResizeOptions): Value {
  const g = x.graph;
  if (x.rank !== 4) fail(g, 'Resize', `needs an NCHW tensor, got ${fmtShape(x.shape)}`);
  const attrs: Record<string, Attr> = { mode: attr.string(o.mode) };
  const ct = o.coordinateTransform ?? (o.mode === 'nearest' ? 'asymmetric' : 'half_pixel');
  attrs.coordinate_transformation_mode = attr.string(ct);
  if (o.mode === 'nearest') attrs.nearest_mode = attr.string('floor');
  if (o.mode === 'cubic') attrs.cubic_coeff_a = attr.float(o.cubicCoeffA ?? -0.75);
  if (o.antialias) attrs.antialias = attr.int(1);
  let outH: Dim;
  let outW: Dim;
  let inputs: (Value | null)[];
  if (o.size) {
    [outH, outW] = o.size;
    inputs = [x, null, null, constI64(g, [x.sdim(0), x.sdim(1), o.size[0], o.size[1]])];
  } else {
    const [sh, sw] = typeof o.scale === 'number' ? [o.scale, o.scale] : o.scale ?? fail(g, 'Resize', 'give scale or size');
    const scaled = (d: Dim, s: number): Dim => {
      if (isStatic(d)) return Math.floor(d * s);
      if (Number.isInteger(s)) return dimMul(d, s);
      if (Number.isInteger(1 / s)) return dimDiv(d, 1 / s);
      return fail(g, 'Resize', `scale ${s} of a symbolic size`);
    };
    outH = scaled(x.dim(2), sh);
    outW = scaled(x.dim(3), sw);
    inputs = [x, null, g.constant({ dtype: 'float32', shape: [4], data: new Float32Array([1, 1, sh, sw]) }, 'scales')];
  }
  return node1(g, 'Resize', inputs, attrs, x.dtype, [x.dim(0), x.dim(1), outH, outW]);
}

/**
 * PixelShuffle in PyTorch channel order: (B, C·r², H, W) → (B, C, H·r, W·r).
 * Two simple transposes instead of one 6-D permutation: ORT runs them much faster.
 */
export function pixelShuffle(x: Value, r: number): Value {
  const [b, c, h, w] = x.shape as [Dim, Dim, Dim, Dim];
  const co = dimDiv(c, r * r, `${where(x.graph, 'PixelShuffle')} channels`);
  const n = dimMul(b, co);
  const hw = dimMul(h, w);
  // (n, i, j, h·w) → (n, i, h·w, j) = (n, i, h, w·r) → (n, h, i, w·r).
  const t1 = transpose(reshape(x, [n, r, r, hw]), [0, 1, 3, 2]);
  const t2 = transpose(reshape(t1, [n, r, h, dimMul(w, r)]), [0, 2, 1, 3]);
  return reshape(t2, [b, co, dimMul(h, r), dimMul(w, r)]);
}

/** PixelUnshuffle in PyTorch channel order: (B, C, H·r, W·r) → (B, C·r², H, W); the inverse of `pixelShuffle`. */
export function pixelUnshuffle(x: Value, r: number): Value {
  const [b, c, h, w] = x.shape as [Dim, Dim, Dim, Dim];
  const ho = dimDiv(h, r, `${where(x.graph, 'PixelUnshuffle')} height`);
  const wo = dimDiv(w, r, `${where(x.graph, 'PixelUnshuffle')} width`);
  const n = dimMul(b, c);
  // (n, h, i, w·r) → (n, i, h, w·r) = (n, i, h·w, j) → (n, i, j, h·w).
  const t1 = transpose(reshape(x, [n, ho, r, w]), [0, 2, 1, 3]);
  const t2 = transpose(reshape(t1, [n, r, dimMul(ho, wo), r]), [0, 1, 3, 2]);
  return reshape(t2, [b, dimMul(c, r * r), ho, wo]);
}

/** Options of 2-D pooling. */
export interface PoolOptions {
  kernel: number | readonly [number, number];
  stride?: number | readonly [number, number];
  pads?: number | readonly [number, number, number, number];
  /** AveragePool: count padded zeros in the divisor (PyTorch default true). */
  countIncludePad?: boolean;
}

function poolShape(x: Value, op: string, o: PoolOptions): { attrs: Record<string, Attr>; shape: Dim[] } {
  const g = x.graph;
  if (x.rank !== 4) fail(g, op, `needs an NCHW tensor, got ${fmtShape(x.shape)}`);
  const [kh, kw] = pair(o.kernel, 1);
  const [sh, sw] = pair(o.stride ?? o.kernel, 1);
  const pads = quad(o.pads);
  const attrs: Record<string, Attr> = { kernel_shape: attr.ints([kh, kw]), strides: attr.ints([sh, sw]), pads: attr.ints(pads) };
  return {
    attrs,
    shape: [x.dim(0), x.dim(1), convOut(g, op, x.dim(2), kh, sh, pads[0], pads[2], 1), convOut(g, op, x.dim(3), kw, sw, pads[1], pads[3], 1)],
  };
}

/** Average pooling. */
export function averagePool(x: Value, o: PoolOptions): Value {
  const { attrs, shape } = poolShape(x, 'AveragePool', o);
  attrs.count_include_pad = attr.int(o.countIncludePad === false ? 0 : 1);
  return node1(x.graph, 'AveragePool', [x], attrs, x.dtype, shape);
}

/** Max pooling. */
export function maxPool(x: Value, o: PoolOptions): Value {
  const { attrs, shape } = poolShape(x, 'MaxPool', o);
  return node1(x.graph, 'MaxPool', [x], attrs, x.dtype, shape);
}

/** Mean over H and W, keeping them as size 1: (B, C, H, W) → (B, C, 1, 1). */
export function globalAveragePool(x: Value): Value {
  if (x.rank !== 4) fail(x.graph, 'GlobalAveragePool', `needs an NCHW tensor, got ${fmtShape(x.shape)}`);
  return node1(x.graph, 'GlobalAveragePool', [x], {}, x.dtype, [x.dim(0), x.dim(1), 1, 1]);
}

/** The shape of `x` as an int64 tensor (not differentiable). */
export function shapeOf(x: Value): Value {
  return node1(x.graph, 'Shape', [x], {}, 'int64', [x.rank]);
}

/** A host tensor as a graph constant (convenience re-export for layers). */
export function constant(g: Graph, t: HostTensor, name?: string): Value {
  return g.constant(t, name);
}

/**
 * Pads the bottom and right of an NCHW tensor to the next multiple of `m` (no-op where
 * already a multiple), computing the padding at run time so that it works for symbolic
 * sizes. Symbolic sizes get fresh symbols (`<name>_pad<m>`) readable from the result.
 */
export function padToMultiple(x: Value, m: number, mode: PadMode = 'reflect'): Value {
  const g = x.graph;
  if (x.rank !== 4) fail(g, 'Pad', `padToMultiple needs an NCHW tensor, got ${fmtShape(x.shape)}`);
  const [h, w] = [x.dim(2), x.dim(3)];
  if (isStatic(h) && isStatic(w)) return pad(x, [0, 0, 0, 0, 0, 0, (m - (h % m)) % m, (m - (w % m)) % m], mode);
  // pads = [0,0,0,0, 0,0,(m − H mod m) mod m, (m − W mod m) mod m]
  const hw = node1(g, 'Shape', [x], { start: attr.int(2), end: attr.int(4) }, 'int64', [2]);
  const mm = constI64(g, [m, m]);
  const extra = node1(g, 'Mod', [node1(g, 'Sub', [mm, node1(g, 'Mod', [hw, mm], {}, 'int64', [2])], {}, 'int64', [2]), mm], {}, 'int64', [2]);
  const pads = node1(g, 'Concat', [constI64(g, [0, 0, 0, 0, 0, 0]), extra], { axis: attr.int(0) }, 'int64', [8]);
  const fresh = (d: Dim, axis: string): Dim => (isStatic(d) ? Math.ceil(d / m) * m : sym(`${String(d).replace(/[^A-Za-z0-9_]/g, '_')}_pad${m}_${axis}`));
  const out = node1(g, 'Pad', [x, pads], { mode: attr.string(mode) }, x.dtype, [x.dim(0), x.dim(1), fresh(h, 'h'), fresh(w, 'w')]);
  [2, 3].forEach((axis) => {
    const d = out.shape[axis]!;
    if (!isStatic(d)) g.symSources.set(d.vars[0]!, { value: out, axis });
  });
  return out;
}

/** Crops an NCHW tensor to the top-left `scale`·H × `scale`·W of `ref`'s spatial size (run-time sizes). */
export function cropToScaled(x: Value, ref: Value, scale: number): Value {
  const g = x.graph;
  const [h, w] = [dimMul(ref.dim(2), scale), dimMul(ref.dim(3), scale)];
  if (isStatic(h) && isStatic(w) && isStatic(x.dim(2)) && isStatic(x.dim(3))) return slice(x, [0, 0], [h, w], [2, 3]);
  const hw = node1(g, 'Shape', [ref], { start: attr.int(2), end: attr.int(4) }, 'int64', [2]);
  const ends = scale === 1 ? hw : node1(g, 'Mul', [hw, constI64(g, [scale, scale])], {}, 'int64', [2]);
  return node1(g, 'Slice', [x, constI64(g, [0, 0]), ends, constI64(g, [2, 3])], {}, x.dtype, [x.dim(0), x.dim(1), h, w]);
}
