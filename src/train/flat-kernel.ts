/**
 * Elementwise kernels over flat float32 buffers, compiled once into an ONNX
 * Runtime session and run chunk by chunk: ORT sees views of at most `chunk`
 * elements, writes each chunk's results into small scratch buffers, and those are
 * copied to their destinations. So the kernel's intermediates and outputs cost a few
 * MiB instead of several copies of the whole model, and an output may be one of the
 * inputs (in-place updates: the optimizer needs no spare moment or weight buffers).
 */
import { Graph, type Value } from '../graph/ir.js';
import { sym } from '../graph/dim.js';
import { toOnnx } from '../graph/onnx.js';
import { Session, type SessionOptions } from '../runtime/session.js';
import type { HostTensor } from '../tensor.js';

/** Builds the kernel body from flat inputs and scalar inputs; returns named outputs. */
export type KernelBody = (g: Graph, flat: Record<string, Value>, scalars: Record<string, Value>) => Record<string, Value>;

/** Elements per ORT run: 1 MiB per buffer, so the kernel's temporaries stay in cache; ~100 runs for a 26 M-parameter model. */
export const FLAT_CHUNK = 1 << 18;

/** A compiled elementwise kernel over buffers of one length. */
export class FlatKernel {
  private readonly scratch: Record<string, Float32Array>;
  private constructor(
    private readonly session: Session,
    readonly length: number,
    private readonly chunk: number,
  ) {
    this.scratch = Object.fromEntries(session.outputNames.map((n) => [n, new Float32Array(Math.min(chunk, length))]));
  }

  /** Compiles `body` for buffers of `length` elements, run `chunk` elements at a time. */
  static async create(
    length: number,
    flatNames: readonly string[],
    scalarNames: readonly string[],
    body: KernelBody,
    o: SessionOptions = {},
    chunk = FLAT_CHUNK,
  ): Promise<FlatKernel> {
    if (!Number.isInteger(chunk) || chunk < 1) throw new Error(`chunk must be a positive integer, got ${chunk}`);
    const g = new Graph('flat_kernel');
    const n = sym('n');
    const flat = Object.fromEntries(flatNames.map((name) => [name, g.input(name, [n])]));
    const scalars = Object.fromEntries(scalarNames.map((name) => [name, g.input(name, [1])]));
    const outs = body(g, flat, scalars);
    for (const [name, v] of Object.entries(outs)) g.output(v, name);
    return new FlatKernel(await Session.create(toOnnx(g, { params: 'initializers' }), { ...o, optimization: 'basic' }), length, chunk);
  }

  /**
   * Runs the kernel; each output lands in the given buffer, which may be one of the
   * inputs (a chunk's results are copied out only after its run).
   */
  async run(flat: Record<string, Float32Array>, scalars: Record<string, number>, outputs: Record<string, Float32Array>): Promise<void> {
    for (const [k, v] of Object.entries(flat)) if (v.length !== this.length) throw new Error(`kernel input '${k}' has ${v.length} values, expected ${this.length}`);
    for (const name of this.session.outputNames) {
      const buf = outputs[name];
      if (!buf || buf.length !== this.length) throw new Error(`kernel output '${name}' needs a buffer of ${this.length} values`);
    }
    const scalarFeeds: Record<string, HostTensor> = {};
    for (const [k, v] of Object.entries(scalars)) scalarFeeds[k] = { dtype: 'float32', shape: [1], data: new Float32Array([v]) };
    for (let start = 0; start < this.length; start += this.chunk) {
      const end = Math.min(this.length, start + this.chunk);
      const len = end - start;
      const feeds: Record<string, HostTensor> = { ...scalarFeeds };
      for (const [k, v] of Object.entries(flat)) feeds[k] = { dtype: 'float32', shape: [len], data: v.subarray(start, end) };
      const into: Record<string, HostTensor> = {};
      for (const name of this.session.outputNames) into[name] = { dtype: 'float32', shape: [len], data: this.scratch[name]!.subarray(0, len) };
      await this.session.run(feeds, undefined, into);
      for (const name of this.session.outputNames) outputs[name]!.set(this.scratch[name]!.subarray(0, len), start);
    }
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}
