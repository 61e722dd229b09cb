/**
 * Elementwise kernels over flat float32 buffers, compiled once into an ONNX
 * Runtime session and run with preallocated outputs (ORT writes the results
 * directly into our buffers: no per-step allocation or copy).
 */
import { Graph, type Value } from '../graph/ir.js';
import { toOnnx } from '../graph/onnx.js';
import { Session, type SessionOptions } from '../runtime/session.js';
import type { HostTensor } from '../tensor.js';

/** Builds the kernel body from flat inputs and scalar inputs; returns named outputs. */
export type KernelBody = (g: Graph, flat: Record<string, Value>, scalars: Record<string, Value>) => Record<string, Value>;

/** A compiled elementwise kernel over buffers of one length. */
export class FlatKernel {
  private constructor(
    private readonly session: Session,
    readonly length: number,
  ) {}

  /** Compiles `body` for buffers of `length` elements. */
  static async create(
    length: number,
    flatNames: readonly string[],
    scalarNames: readonly string[],
    body: KernelBody,
    o: SessionOptions = {},
  ): Promise<FlatKernel> {
    const g = new Graph('flat_kernel');
    const flat = Object.fromEntries(flatNames.map((n) => [n, g.input(n, [length])]));
    const scalars = Object.fromEntries(scalarNames.map((n) => [n, g.input(n, [1])]));
    const outs = body(g, flat, scalars);
    for (const [name, v] of Object.entries(outs)) g.output(v, name);
    return new FlatKernel(await Session.create(toOnnx(g, { params: 'initializers' }), { ...o, optimization: 'basic' }), length);
  }

  /** Runs the kernel; each output is written into the given buffer. */
  async run(flat: Record<string, Float32Array>, scalars: Record<string, number>, outputs: Record<string, Float32Array>): Promise<void> {
    const feeds: Record<string, HostTensor> = {};
    for (const [k, v] of Object.entries(flat)) feeds[k] = { dtype: 'float32', shape: [v.length], data: v };
    for (const [k, v] of Object.entries(scalars)) feeds[k] = { dtype: 'float32', shape: [1], data: new Float32Array([v]) };
    const into: Record<string, HostTensor> = {};
    for (const name of this.session.outputNames) {
      const buf = outputs[name];
      if (!buf || buf.length !== this.length) throw new Error(`kernel output '${name}' needs a buffer of ${this.length} values`);
      into[name] = { dtype: 'float32', shape: [this.length], data: buf };
    }
    await this.session.run(feeds, undefined, into);
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}
