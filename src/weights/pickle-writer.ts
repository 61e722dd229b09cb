/**
 * A torch-compatible pickle writer: emits what `torch.save` (protocol 2) writes for dicts /
 * OrderedDicts of tensors: `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and
 * `('storage', …)` persistent ids whose storages the caller stores next to the pickle.
 */
import type { DType, HostTensor } from '../tensor.js';
import { sanitize } from '../errors.js';
import { HOST_LE, PthDtype, PthOpaque, isHostTensor } from './pickle.js';
import type { PthValue, TensorData } from './pickle.js';
import { MAX_DEPTH, latin1 } from './pickle-vm.js';

/** A storage to be stored next to the pickle (in a torch zip: `<archive>/data/<key>`). */
export interface PickledStorage {
  readonly key: string;
  readonly bytes: Uint8Array;
}

/** The output of {@link encodeTorchPickle}. */
export interface PickledCheckpoint {
  readonly pickle: Uint8Array;
  readonly storages: readonly PickledStorage[];
}

const STORAGE_CLASS_OF: Readonly<Record<DType, string>> = {
  float32: 'FloatStorage',
  float16: 'HalfStorage',
  int64: 'LongStorage',
  int32: 'IntStorage',
  uint8: 'ByteStorage',
  bool: 'BoolStorage',
};

function arrayFits(dtype: DType, data: unknown): boolean {
  switch (dtype) {
    case 'float32':
      return data instanceof Float32Array;
    case 'float16':
      return data instanceof Uint16Array;
    case 'int64':
      return data instanceof BigInt64Array;
    case 'int32':
      return data instanceof Int32Array;
    case 'uint8':
    case 'bool':
      return data instanceof Uint8Array;
    default:
      return false;
  }
}

class ByteSink {
  buf = new Uint8Array(1 << 16);
  len = 0;
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.len++] = v;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  le(v: number, n: number): void {
    this.ensure(n);
    for (let i = 0; i < n; i++) this.buf[this.len++] = Math.floor(v / 2 ** (8 * i)) & 0xff;
  }
  f64be(v: number): void {
    this.ensure(8);
    new DataView(this.buf.buffer).setFloat64(this.len, v, false);
    this.len += 8;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

function encodeLong(x: bigint): Uint8Array {
  if (x === 0n) return new Uint8Array(0);
  const out: number[] = [];
  let v = x;
  // Two's complement little-endian, minimal length (as Python's pickle.encode_long).
  for (;;) {
    const byte = Number(v & 0xffn);
    out.push(byte);
    v >>= 8n;
    if ((v === 0n && (byte & 0x80) === 0) || (v === -1n && (byte & 0x80) !== 0)) break;
  }
  return Uint8Array.from(out);
}

class TorchPickler {
  private readonly out = new ByteSink();
  private readonly enc = new TextEncoder();
  private memoCount = 0;
  private readonly globals = new Map<string, number>();
  private readonly strings = new Map<string, number>();
  private readonly storageKeys = new Map<TensorData, string>();
  readonly storages: PickledStorage[] = [];
  private readonly active = new Set<object>();

  private put(): number {
    const i = this.memoCount++;
    if (i < 256) {
      this.out.u8(0x71);
      this.out.u8(i);
    } else {
      this.out.u8(0x72);
      this.out.le(i, 4);
    }
    return i;
  }
  private get(i: number): void {
    if (i < 256) {
      this.out.u8(0x68);
      this.out.u8(i);
    } else {
      this.out.u8(0x6a);
      this.out.le(i, 4);
    }
  }
  private global(module: string, name: string): void {
    const key = `${module}\n${name}`;
    const m = this.globals.get(key);
    if (m !== undefined) return this.get(m);
    this.out.u8(0x63);
    this.out.bytes(this.enc.encode(`${module}\n${name}\n`));
    this.globals.set(key, this.put());
  }
  private str(s: string): void {
    const m = this.strings.get(s);
    if (m !== undefined) return this.get(m);
    const b = this.enc.encode(s);
    this.out.u8(0x58);
    this.out.le(b.length, 4);
    this.out.bytes(b);
    if (s.length <= 256) this.strings.set(s, this.put());
    else this.put();
  }
  private int(v: number | bigint): void {
    if (typeof v === 'number' && v >= 0 && v <= 0xff) {
      this.out.u8(0x4b);
      this.out.u8(v);
    } else if (typeof v === 'number' && v >= 0 && v <= 0xffff) {
      this.out.u8(0x4d);
      this.out.le(v, 2);
    } else if (typeof v === 'number' && v >= -0x80000000 && v <= 0x7fffffff) {
      this.out.u8(0x4a);
      this.out.le(v >>> 0, 4);
    } else {
      const b = encodeLong(BigInt(v));
      if (b.length > 255) {
        this.out.u8(0x8b);
        this.out.le(b.length, 4);
      } else {
        this.out.u8(0x8a);
        this.out.u8(b.length);
      }
      this.out.bytes(b);
    }
  }
  private tuple(items: readonly number[]): void {
    if (items.length === 0) this.out.u8(0x29);
    else {
      if (items.length > 3) this.out.u8(0x28);
      for (const x of items) this.int(x);
      this.out.u8(items.length === 1 ? 0x85 : items.length === 2 ? 0x86 : items.length === 3 ? 0x87 : 0x74);
    }
    this.put();
  }

  private tensor(t: HostTensor): void {
    if (!Object.prototype.hasOwnProperty.call(STORAGE_CLASS_OF, t.dtype)) throw new Error(`pickle writer: unsupported tensor dtype '${sanitize(String(t.dtype))}'`);
    if (!arrayFits(t.dtype, t.data)) throw new Error(`pickle writer: a ${t.dtype} tensor holds a ${t.data.constructor.name}, not the matching typed array`);
    let n = 1;
    for (const d of t.shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw new Error(`pickle writer: bad tensor shape [${t.shape.join(', ')}]`);
      n *= d;
    }
    if (n !== t.data.length) throw new Error(`pickle writer: tensor of shape [${t.shape.join(', ')}] holds ${t.data.length} elements, not ${n}`);
    let key = this.storageKeys.get(t.data);
    if (key === undefined) {
      key = String(this.storages.length);
      this.storageKeys.set(t.data, key);
      let bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      if (!HOST_LE && t.data.BYTES_PER_ELEMENT > 1) {
        bytes = new Uint8Array(bytes);
        for (let i = 0; i < bytes.length; i += t.data.BYTES_PER_ELEMENT) bytes.subarray(i, i + t.data.BYTES_PER_ELEMENT).reverse();
      }
      this.storages.push({ key, bytes });
    }
    const stride: number[] = new Array<number>(t.shape.length);
    let s = 1;
    for (let d = t.shape.length - 1; d >= 0; d--) {
      stride[d] = s;
      s *= t.shape[d]!;
    }
    this.global('torch._utils', '_rebuild_tensor_v2');
    this.out.u8(0x28); // MARK (args)
    this.out.u8(0x28); // MARK (persistent id)
    this.str('storage');
    this.global('torch', STORAGE_CLASS_OF[t.dtype]);
    this.str(key);
    this.str('cpu');
    this.int(t.data.length);
    this.out.u8(0x74);
    this.put();
    this.out.u8(0x51); // BINPERSID
    this.int(0);
    this.tuple(t.shape);
    this.tuple(stride);
    this.out.u8(0x89); // requires_grad False
    this.global('collections', 'OrderedDict');
    this.out.u8(0x29);
    this.out.u8(0x52); // OrderedDict() backward hooks
    this.put();
    this.out.u8(0x74);
    this.put();
    this.out.u8(0x52);
    this.put();
  }

  value(v: PthValue, depth: number): void {
    if (depth > MAX_DEPTH) throw new Error('pickle writer: value nests too deeply');
    if (v === null) return this.out.u8(0x4e);
    if (v === true) return this.out.u8(0x88);
    if (v === false) return this.out.u8(0x89);
    if (typeof v === 'string') return this.str(v);
    if (typeof v === 'bigint') return this.int(v);
    if (typeof v === 'number') {
      if (Number.isSafeInteger(v) && !Object.is(v, -0)) return this.int(v);
      this.out.u8(0x47);
      return this.out.f64be(v);
    }
    if (v instanceof PthDtype) return this.global('torch', v.name);
    if (v instanceof PthOpaque) throw new Error(`pickle writer: cannot write a placeholder for '${sanitize(v.global)}'`);
    if (this.active.has(v)) throw new Error('pickle writer: value contains a cycle');
    if (v instanceof Uint8Array) {
      this.global('_codecs', 'encode');
      this.str(latin1(v));
      this.str('latin1');
      this.out.u8(0x86);
      this.put();
      this.out.u8(0x52);
      this.put();
      return;
    }
    this.active.add(v);
    if (v instanceof Map) {
      if (depth === 0) {
        this.out.u8(0x7d); // plain dict at top level, like torch.save({...})
        this.put();
      } else {
        this.global('collections', 'OrderedDict');
        this.out.u8(0x29);
        this.out.u8(0x52);
        this.put();
      }
      const entries = [...v.entries()];
      for (let i = 0; i < entries.length; i += 1000) {
        const batch = entries.slice(i, i + 1000);
        if (batch.length > 1) this.out.u8(0x28);
        for (const [k, x] of batch) {
          this.str(k);
          this.value(x, depth + 1);
        }
        this.out.u8(batch.length > 1 ? 0x75 : 0x73);
      }
    } else if (Array.isArray(v)) {
      this.out.u8(0x5d);
      this.put();
      for (let i = 0; i < v.length; i += 1000) {
        const batch = v.slice(i, i + 1000);
        if (batch.length > 1) this.out.u8(0x28);
        for (const x of batch) this.value(x, depth + 1);
        this.out.u8(batch.length > 1 ? 0x65 : 0x61);
      }
    } else if (isHostTensor(v)) {
      this.tensor(v);
    } else {
      throw new Error('pickle writer: unsupported value');
    }
    this.active.delete(v);
  }

  finish(): Uint8Array {
    this.out.u8(0x2e);
    return this.out.result();
  }

  start(): void {
    this.out.u8(0x80);
    this.out.u8(2);
  }
}

/**
 * Pickles a checkpoint value the way `torch.save` does (protocol 2): the top-level Map becomes a
 * dict, nested Maps become `collections.OrderedDict`s, tensors become
 * `torch._utils._rebuild_tensor_v2(('storage', torch.<T>Storage, key, 'cpu', numel), 0, size,
 * stride, False, OrderedDict())`. Tensors sharing one data array share one storage.
 * Returns the pickle bytes and the storages (little-endian) to store as `data/<key>`.
 */
export function encodeTorchPickle(value: PthValue): PickledCheckpoint {
  const p = new TorchPickler();
  p.start();
  p.value(value, 0);
  return { pickle: p.finish(), storages: p.storages };
}
