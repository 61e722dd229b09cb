/**
 * Parameters of a model in one flat float32 buffer, with a zero-copy view per
 * official parameter name. Optimizer state and EMA live in buffers of the same
 * layout, so an update is a handful of elementwise ONNX Runtime ops over the whole
 * model at once.
 */
import { numel, type HostTensor, type TensorMap } from '../tensor.js';

/** Name, shape and offset of one parameter in the flat layout. */
export interface ParamSlot {
  readonly name: string;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly size: number;
}

/** The flat layout of a set of parameters (official order). */
export class ParamLayout {
  readonly slots: readonly ParamSlot[];
  readonly total: number;
  private byName: Map<string, ParamSlot>;
  constructor(entries: Iterable<readonly [string, readonly number[]]>) {
    const slots: ParamSlot[] = [];
    let offset = 0;
    for (const [name, shape] of entries) {
      const size = numel(shape);
      slots.push({ name, shape: [...shape], offset, size });
      offset += size;
    }
    this.slots = slots;
    this.total = offset;
    this.byName = new Map(slots.map((s) => [s.name, s]));
  }
  /** The slot of `name`, or an error naming it. */
  slot(name: string): ParamSlot {
    const s = this.byName.get(name);
    if (!s) throw new Error(`unknown parameter '${name}'`);
    return s;
  }
  /** True when `name` is part of the layout. */
  has(name: string): boolean {
    return this.byName.has(name);
  }
  /** Zero-copy host tensors viewing `flat` per parameter. */
  views(flat: Float32Array): TensorMap {
    if (flat.length !== this.total) throw new Error(`flat buffer has ${flat.length} values, layout needs ${this.total}`);
    const m: TensorMap = new Map();
    for (const s of this.slots) m.set(s.name, { dtype: 'float32', shape: s.shape, data: flat.subarray(s.offset, s.offset + s.size) });
    return m;
  }
  /** Packs tensors into a new flat buffer; every parameter must be present with its shape. */
  pack(tensors: ReadonlyMap<string, HostTensor>): Float32Array {
    const flat = new Float32Array(this.total);
    for (const s of this.slots) {
      const t = tensors.get(s.name);
      if (!t) throw new Error(`missing parameter '${s.name}'`);
      if (t.dtype !== 'float32' || t.data.length !== s.size) {
        throw new Error(`parameter '${s.name}' has shape [${t.shape.join(',')}], expected [${s.shape.join(',')}]`);
      }
      flat.set(t.data as Float32Array, s.offset);
    }
    return flat;
  }
}
