/**
 * The graph IR: values (symbolic tensors with shape and dtype), nodes (ONNX ops
 * with attributes) and the graph that owns them. Ops are added through the
 * functions in `ops.ts`, which infer shapes and fail at build time.
 */
import type { DType, HostTensor } from '../tensor.js';
import { type Shape, type Dim, fmtShape, isStatic } from './dim.js';

/** An ONNX attribute value, tagged with its ONNX type. */
export type Attr =
  | { readonly type: 'int'; readonly v: number }
  | { readonly type: 'float'; readonly v: number }
  | { readonly type: 'string'; readonly v: string }
  | { readonly type: 'ints'; readonly v: readonly number[] }
  | { readonly type: 'floats'; readonly v: readonly number[] }
  | { readonly type: 'tensor'; readonly v: HostTensor };

/** Attribute constructors. */
export const attr = {
  int: (v: number): Attr => ({ type: 'int', v }),
  float: (v: number): Attr => ({ type: 'float', v }),
  string: (v: string): Attr => ({ type: 'string', v }),
  ints: (v: readonly number[]): Attr => ({ type: 'ints', v: [...v] }),
  floats: (v: readonly number[]): Attr => ({ type: 'floats', v: [...v] }),
  tensor: (v: HostTensor): Attr => ({ type: 'tensor', v }),
};

/** How a value enters the graph. */
export type ValueKind = 'input' | 'param' | 'const' | 'node';

/** A symbolic tensor of a graph. */
export class Value {
  /** Node that computes this value (kind 'node' only). */
  producer: Node | null = null;
  /** Output index within the producer. */
  outIndex = 0;
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly name: string,
    readonly kind: ValueKind,
    readonly dtype: DType,
    readonly shape: Shape,
  ) {}
  /** Rank of the tensor. */
  get rank(): number {
    return this.shape.length;
  }
  /** Dimension `i` (negative counts from the end). */
  dim(i: number): Dim {
    const d = this.shape[i < 0 ? this.shape.length + i : i];
    if (d === undefined) throw new Error(`value '${this.name}' of shape ${fmtShape(this.shape)} has no axis ${i}`);
    return d;
  }
  /** Dimension `i` that must be concrete. */
  sdim(i: number): number {
    const d = this.dim(i);
    if (!isStatic(d)) throw new Error(`value '${this.name}': axis ${i} must be static, got ${d}`);
    return d;
  }
  toString(): string {
    return `${this.name}:${this.dtype}${fmtShape(this.shape)}`;
  }
}

/** One ONNX operator application. */
export class Node {
  constructor(
    readonly id: number,
    readonly name: string,
    readonly op: string,
    readonly inputs: readonly (Value | null)[],
    readonly outputs: Value[],
    readonly attrs: Readonly<Record<string, Attr>>,
    readonly domain = '',
  ) {}
  /** Integer attribute with default. */
  int(name: string, dflt?: number): number {
    const a = this.attrs[name];
    if (a === undefined) {
      if (dflt === undefined) throw new Error(`node ${this.name} (${this.op}) has no attribute '${name}'`);
      return dflt;
    }
    if (a.type !== 'int') throw new Error(`node ${this.name}: attribute '${name}' is not an int`);
    return a.v;
  }
  /** Float attribute with default. */
  float(name: string, dflt?: number): number {
    const a = this.attrs[name];
    if (a === undefined) {
      if (dflt === undefined) throw new Error(`node ${this.name} (${this.op}) has no attribute '${name}'`);
      return dflt;
    }
    if (a.type !== 'float') throw new Error(`node ${this.name}: attribute '${name}' is not a float`);
    return a.v;
  }
  /** Int-list attribute with default. */
  ints(name: string, dflt?: readonly number[]): readonly number[] {
    const a = this.attrs[name];
    if (a === undefined) {
      if (dflt === undefined) throw new Error(`node ${this.name} (${this.op}) has no attribute '${name}'`);
      return dflt;
    }
    if (a.type !== 'ints') throw new Error(`node ${this.name}: attribute '${name}' is not an int list`);
    return a.v;
  }
  /** String attribute with default. */
  str(name: string, dflt?: string): string {
    const a = this.attrs[name];
    if (a === undefined) {
      if (dflt === undefined) throw new Error(`node ${this.name} (${this.op}) has no attribute '${name}'`);
      return dflt;
    }
    if (a.type !== 'string') throw new Error(`node ${this.name}: attribute '${name}' is not a string`);
    return a.v;
  }
  /** The required input `i`. */
  in(i: number): Value {
    const v = this.inputs[i];
    if (!v) throw new Error(`node ${this.name} (${this.op}) has no input ${i}`);
    return v;
  }
}

/** A parameter declaration: its official name, shape and (optional) initial value. */
export interface ParamInfo {
  readonly value: Value;
  init: HostTensor | null;
}

/**
 * A computation graph under construction. Values are created by `input`, `param`,
 * `constant` and by ops; `output` marks results.
 */
export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly params = new Map<string, ParamInfo>();
  readonly constants = new Map<Value, HostTensor>();
  /** Where each symbolic dim variable can be read at run time: (graph input, axis). */
  readonly symSources = new Map<string, { value: Value; axis: number }>();
  /** Name scope stack used for node names (e.g. `G.encoder_level1.0.attn`). */
  private scopes: string[] = [];
  private nextId = 0;
  private names = new Set<string>();
  private constCache = new Map<string, Value>();

  constructor(readonly name = 'diffir') {}

  private uniqueName(base: string): string {
    let n = base;
    let i = 1;
    while (this.names.has(n)) n = `${base}_${i++}`;
    this.names.add(n);
    return n;
  }

  /** Runs `fn` with `scope` appended to node names, for readable graphs and error messages. */
  scope<T>(scope: string, fn: () => T): T {
    this.scopes.push(scope);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /** Current scope prefix, e.g. `G.latent.3`. */
  get prefix(): string {
    return this.scopes.join('.');
  }

  /** Declares a graph input. Symbolic dims that are plain variables become readable at run time. */
  input(name: string, shape: Shape, dtype: DType = 'float32'): Value {
    if (this.names.has(name)) throw new Error(`graph input '${name}' is declared twice`);
    const v = new Value(this, this.nextId++, this.uniqueName(name), 'input', dtype, [...shape]);
    this.inputs.push(v);
    shape.forEach((d, axis) => {
      if (!isStatic(d) && d.vars.length === 1 && d.num === 1 && d.den === 1 && !this.symSources.has(d.vars[0]!)) {
        this.symSources.set(d.vars[0]!, { value: v, axis });
      }
    });
    return v;
  }

  /**
   * Declares a learnable parameter named by its official state_dict key. Declaring the
   * same name twice returns the same value (shared weights) if the shapes agree.
   */
  param(name: string, shape: readonly number[], init: HostTensor | null = null): Value {
    const old = this.params.get(name);
    if (old) {
      if (old.value.shape.length !== shape.length || old.value.shape.some((d, i) => d !== shape[i])) {
        throw new Error(`parameter '${name}' declared twice with shapes ${fmtShape(old.value.shape)} and ${fmtShape(shape)}`);
      }
      return old.value;
    }
    if (this.names.has(name)) throw new Error(`parameter name '${name}' clashes with another value`);
    const v = new Value(this, this.nextId++, this.uniqueName(name), 'param', 'float32', [...shape]);
    this.params.set(name, { value: v, init });
    return v;
  }

  /** Embeds a constant tensor. Small constants with equal content are shared. */
  constant(t: HostTensor, name = 'const'): Value {
    const small = t.data.length <= 16;
    const key = small ? `${t.dtype}|${t.shape.join(',')}|${Array.from(t.data as ArrayLike<number | bigint>, String).join(',')}` : '';
    if (small) {
      const hit = this.constCache.get(key);
      if (hit) return hit;
    }
    const v = new Value(this, this.nextId++, this.uniqueName(`${this.prefix ? this.prefix + '.' : ''}${name}`), 'const', t.dtype, [...t.shape]);
    this.constants.set(v, t);
    if (small) this.constCache.set(key, v);
    return v;
  }

  /** Appends a node; `outs` gives each output's dtype and shape (already inferred by the caller). */
  node(
    op: string,
    inputs: readonly (Value | null)[],
    attrs: Record<string, Attr>,
    outs: readonly { dtype: DType; shape: Shape }[],
    domain = '',
  ): Value[] {
    for (const v of inputs) {
      if (v && v.graph !== this) throw new Error(`${op}: input '${v.name}' belongs to another graph`);
    }
    const id = this.nextId++;
    const base = `${this.prefix ? this.prefix + '/' : ''}${op}`;
    const name = this.uniqueName(base);
    const outputs = outs.map((o, i) => new Value(this, this.nextId++, this.uniqueName(`${name}:${i}`), 'node', o.dtype, [...o.shape]));
    const n = new Node(id, name, op, inputs, outputs, attrs, domain);
    outputs.forEach((v, i) => {
      v.producer = n;
      v.outIndex = i;
    });
    this.nodes.push(n);
    return outputs;
  }

  /** Marks values as graph outputs, optionally renaming them. */
  output(v: Value, name?: string): Value {
    if (v.graph !== this) throw new Error(`output '${v.name}' belongs to another graph`);
    const out = name && name !== v.name ? this.rename(v, name) : v;
    this.outputs.push(out);
    return out;
  }

  /** An Identity node giving `v` a chosen name (graph outputs need stable names). */
  private rename(v: Value, name: string): Value {
    if (this.names.has(name)) throw new Error(`output name '${name}' is already used`);
    const id = this.nextId++;
    const out = new Value(this, this.nextId++, name, 'node', v.dtype, v.shape);
    this.names.add(name);
    const n = new Node(id, this.uniqueName(`${name}/Identity`), 'Identity', [v], [out], {});
    out.producer = n;
    this.nodes.push(n);
    return out;
  }

  /** Total number of learnable scalars. */
  paramCount(): number {
    let n = 0;
    for (const p of this.params.values()) n += p.value.shape.reduce<number>((a, d) => a * (d as number), 1);
    return n;
  }
}
