/**
 * A restricted Python pickle reader and a torch-compatible pickle writer.
 *
 * The reader is a stack machine over the opcodes `torch.save` emits (protocol 2, plus the
 * protocol 3–5 opcodes that are harmless). It never executes anything: GLOBAL / STACK_GLOBAL
 * resolve only a fixed whitelist (OrderedDict, torch's tensor rebuild functions, storage
 * classes and dtypes); any other global is refused before anything else happens. Tensors are
 * materialised into fresh, contiguous host arrays with every size checked against the real
 * storage bytes, and total output is capped so no file can make it allocate absurd amounts.
 *
 * The writer emits what `torch.save` (protocol 2) writes for dicts / OrderedDicts of tensors:
 * `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and `('storage', …)` persistent
 * ids whose storages the caller stores next to the pickle.
 */
import type { DType, HostTensor } from '../tensor.js';
import { halfToFloat } from '../tensor.js';
import { sanitize } from '../errors.js';
import { FIXED_WORK, ReadBudget, WORK_PER_PICKLE_BYTE } from './budget.js';

/** A torch dtype object found in a pickle (e.g. `torch.float32`), by its torch name. */
export class PthDtype {
  constructor(readonly name: string) {}
  toString(): string {
    return `torch.${this.name}`;
  }
}

/**
 * An inert stand-in for an object of a non-whitelisted class, produced only when
 * `allowOpaqueGlobals` is set. Nothing is ever imported or called: it just records the name
 * and the constructor arguments / state found in the pickle.
 */
export class PthOpaque {
  constructor(
    readonly global: string,
    readonly args: readonly PthValue[],
    public state: PthValue | undefined = undefined,
  ) {}
}

/**
 * A value loaded from a checkpoint. Python dicts (and OrderedDicts) become Maps with string
 * keys (non-string keys are stringified), lists / tuples / sets become arrays, ints become
 * numbers (bigint beyond 2^53), bytes become Uint8Array, tensors become contiguous HostTensors.
 */
export type PthValue = HostTensor | PthDict | PthValue[] | string | number | bigint | boolean | null | Uint8Array | PthDtype | PthOpaque;

/** A Python dict / OrderedDict from a checkpoint. */
export type PthDict = Map<string, PthValue>;

/** Element types of torch storages (what is on disk, before conversion). */
export type StorageDtype = 'float64' | 'float32' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** Bytes per element of each storage type. */
export const STORAGE_ELEMENT_SIZE: Readonly<Record<StorageDtype, number>> = {
  float64: 8,
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** The host dtype a storage type is converted to (half, bfloat16 and double become float32). */
export function hostDtypeOf(s: StorageDtype): DType {
  switch (s) {
    case 'float64':
    case 'float32':
    case 'float16':
    case 'bfloat16':
      return 'float32';
    case 'int64':
      return 'int64';
    case 'int32':
    case 'int16':
    case 'int8':
      return 'int32';
    case 'uint8':
      return 'uint8';
    case 'bool':
      return 'bool';
  }
}

/** Returns the bytes of storage `key` holding `numel` elements of `dtype`; throws if unavailable. */
export type StorageLoader = (key: string, dtype: StorageDtype, numel: number, location: string) => Uint8Array;

/** Options for {@link unpickle}. */
export interface UnpickleOptions {
  /** Checkpoint name used in every error message. */
  readonly name: string;
  /** Resolves persistent storage ids; without it any persistent id is an error. */
  readonly loadStorage?: StorageLoader;
  /** Storage bytes are big-endian (torch `byteorder` record says "big"). */
  readonly bigEndian?: boolean;
  /** Turn non-whitelisted globals into inert {@link PthOpaque} placeholders instead of refusing (default false). */
  readonly allowOpaqueGlobals?: boolean;
  /** Upper bound on the bytes of all tensors materialised (default: only the memory budget applies). */
  readonly maxTensorBytes?: number;
  /**
   * Memory allowance that the pickle's objects and the tensors are charged to (default: a new one
   * for the pickle's size, see {@link ReadBudget}); share one across every stage reading a file.
   */
  readonly budget?: ReadBudget;
  /**
   * Only walk the structure: `loadStorage` is called to announce each storage (its result is
   * ignored) and tensors come back empty. Used to learn storage types of legacy checkpoints.
   */
  readonly dryRun?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Whitelisted globals

type GlobalKind =
  | 'ordereddict'
  | 'rebuild_v1'
  | 'rebuild_v2'
  | 'rebuild_v3'
  | 'parameter'
  | 'parameter_state'
  | 'from_type_v2'
  | 'tensor_class'
  | 'storage'
  | 'size'
  | 'device'
  | 'codecs_encode'
  | 'opaque';

class GlobalRef {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly kind: GlobalKind,
    readonly storageDtype: StorageDtype | undefined = undefined,
  ) {}
  get full(): string {
    return `${this.module}.${this.name}`;
  }
}

class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: StorageDtype,
    readonly numel: number,
    readonly bytes: Uint8Array,
  ) {}
}

const STORAGE_CLASSES: Readonly<Record<string, StorageDtype>> = {
  DoubleStorage: 'float64',
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  UntypedStorage: 'uint8',
};

const DTYPE_NAMES: Readonly<Record<string, StorageDtype>> = {
  float64: 'float64',
  double: 'float64',
  float32: 'float32',
  float: 'float32',
  float16: 'float16',
  half: 'float16',
  bfloat16: 'bfloat16',
  int64: 'int64',
  long: 'int64',
  int32: 'int32',
  int: 'int32',
  int16: 'int16',
  short: 'int16',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
};

function resolveGlobal(module: string, name: string): GlobalRef | PthDtype | undefined {
  const full = `${module}.${name}`;
  switch (full) {
    case 'collections.OrderedDict':
      return new GlobalRef(module, name, 'ordereddict');
    case 'torch._utils._rebuild_tensor':
      return new GlobalRef(module, name, 'rebuild_v1');
    case 'torch._utils._rebuild_tensor_v2':
      return new GlobalRef(module, name, 'rebuild_v2');
    case 'torch._utils._rebuild_tensor_v3':
      return new GlobalRef(module, name, 'rebuild_v3');
    case 'torch._utils._rebuild_parameter':
      return new GlobalRef(module, name, 'parameter');
    case 'torch._utils._rebuild_parameter_with_state':
      return new GlobalRef(module, name, 'parameter_state');
    case 'torch._tensor._rebuild_from_type_v2':
      return new GlobalRef(module, name, 'from_type_v2');
    case 'torch.Tensor':
    case 'torch.nn.parameter.Parameter':
      return new GlobalRef(module, name, 'tensor_class');
    case 'torch.Size':
      return new GlobalRef(module, name, 'size');
    case 'torch.device':
      return new GlobalRef(module, name, 'device');
    case '_codecs.encode':
      return new GlobalRef(module, name, 'codecs_encode');
    case 'torch.storage.UntypedStorage':
      return new GlobalRef(module, name, 'storage', 'uint8');
  }
  if (module === 'torch') {
    const s = Object.prototype.hasOwnProperty.call(STORAGE_CLASSES, name) ? STORAGE_CLASSES[name] : undefined;
    if (s) return new GlobalRef(module, name, 'storage', s);
    if (Object.prototype.hasOwnProperty.call(DTYPE_NAMES, name)) return new PthDtype(name);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Tensor materialisation

type TensorData = HostTensor['data'];
type Indexable = { [index: number]: number | bigint; readonly length: number };

const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
let halfLut: Float32Array | undefined;

function getHalfLut(): Float32Array {
  if (!halfLut) {
    halfLut = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfLut[i] = halfToFloat(i);
  }
  return halfLut;
}

/** Decodes `count` elements starting at element `start` of a storage into a fresh host array. */
function decodeElements(bytes: Uint8Array, dtype: StorageDtype, start: number, count: number, fileBigEndian: boolean): TensorData {
  const es = STORAGE_ELEMENT_SIZE[dtype];
  const copy = new Uint8Array(count * es);
  copy.set(bytes.subarray(start * es, (start + count) * es));
  if (es > 1 && fileBigEndian === HOST_LE) {
    for (let i = 0; i < copy.length; i += es) copy.subarray(i, i + es).reverse();
  }
  switch (dtype) {
    case 'float32':
      return new Float32Array(copy.buffer);
    case 'float64': {
      const f = new Float32Array(count);
      f.set(new Float64Array(copy.buffer));
      return f;
    }
    case 'float16': {
      const lut = getHalfLut();
      const u = new Uint16Array(copy.buffer);
      const f = new Float32Array(count);
      for (let i = 0; i < count; i++) f[i] = lut[u[i]!]!;
      return f;
    }
    case 'bfloat16': {
      const u = new Uint16Array(copy.buffer);
      const w = new Uint32Array(count);
      for (let i = 0; i < count; i++) w[i] = u[i]! << 16;
      return new Float32Array(w.buffer);
    }
    case 'int64':
      return new BigInt64Array(copy.buffer);
    case 'int32':
      return new Int32Array(copy.buffer);
    case 'int16': {
      const r = new Int32Array(count);
      r.set(new Int16Array(copy.buffer));
      return r;
    }
    case 'int8': {
      const r = new Int32Array(count);
      r.set(new Int8Array(copy.buffer));
      return r;
    }
    case 'uint8':
      return copy;
    case 'bool':
      for (let i = 0; i < count; i++) copy[i] = copy[i] ? 1 : 0;
      return copy;
  }
}

/**
 * Reads element `i` of a storage (converted like {@link decodeElements}) without copying it when
 * the storage is aligned and in host byte order (a misaligned or byte-swapped storage is
 * converted once, charged to the budget).
 */
function elementReader(bytes: Uint8Array, dtype: StorageDtype, fileBigEndian: boolean, budget: ReadBudget): (i: number) => number | bigint {
  const es = STORAGE_ELEMENT_SIZE[dtype];
  let b = bytes;
  if (es > 1 && (b.byteOffset % es !== 0 || fileBigEndian === HOST_LE)) {
    budget.charge(b.length, 'an unaligned storage');
    b = b.slice();
    if (fileBigEndian === HOST_LE) for (let i = 0; i + es <= b.length; i += es) b.subarray(i, i + es).reverse();
  }
  const count = Math.floor(b.length / es);
  switch (dtype) {
    case 'float32': {
      const a = new Float32Array(b.buffer, b.byteOffset, count);
      return (i) => a[i]!;
    }
    case 'float64': {
      const a = new Float64Array(b.buffer, b.byteOffset, count);
      return (i) => Math.fround(a[i]!);
    }
    case 'float16': {
      const lut = getHalfLut();
      const a = new Uint16Array(b.buffer, b.byteOffset, count);
      return (i) => lut[a[i]!]!;
    }
    case 'bfloat16': {
      const a = new Uint16Array(b.buffer, b.byteOffset, count);
      const f = new Float32Array(1);
      const w = new Uint32Array(f.buffer);
      return (i) => {
        w[0] = a[i]! << 16;
        return f[0]!;
      };
    }
    case 'int64': {
      const a = new BigInt64Array(b.buffer, b.byteOffset, count);
      return (i) => a[i]!;
    }
    case 'int32': {
      const a = new Int32Array(b.buffer, b.byteOffset, count);
      return (i) => a[i]!;
    }
    case 'int16': {
      const a = new Int16Array(b.buffer, b.byteOffset, count);
      return (i) => a[i]!;
    }
    case 'int8': {
      const a = new Int8Array(b.buffer, b.byteOffset, count);
      return (i) => a[i]!;
    }
    case 'uint8':
      return (i) => b[i]!;
    case 'bool':
      return (i) => (b[i] ? 1 : 0);
  }
}

function allocLike(dtype: DType, n: number): TensorData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(n);
    case 'float16':
      return new Uint16Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'uint8':
    case 'bool':
      return new Uint8Array(n);
  }
}

interface TensorContext {
  readonly name: string;
  readonly bigEndian: boolean;
  /** Bytes of tensors still allowed to be materialised (`maxTensorBytes`). */
  tensorBytesLeft: number;
  /** The file's memory allowance. */
  readonly budget: ReadBudget;
}

function fmtDims(d: readonly number[]): string {
  return `[${d.join(', ')}]`;
}

/** Rebuilds a contiguous host tensor from a storage view (offset, size, stride in elements). */
function rebuildTensor(ctx: TensorContext, storage: StorageRef, offset: number, size: readonly number[], stride: readonly number[]): HostTensor {
  const where = `tensor of size ${fmtDims(size)} on storage '${sanitize(storage.key)}'`;
  if (size.length !== stride.length) throw new Error(`${ctx.name}: ${where} has ${stride.length} strides for ${size.length} dimensions`);
  if (size.length > 64) throw new Error(`${ctx.name}: ${where} has too many dimensions (${size.length})`);
  let n = 1;
  let extent = 1;
  for (let d = 0; d < size.length; d++) {
    n *= size[d]!;
    if (n > Number.MAX_SAFE_INTEGER) throw new Error(`${ctx.name}: ${where} has an absurd number of elements`);
  }
  if (n > 0) {
    for (let d = 0; d < size.length; d++) {
      extent += (size[d]! - 1) * stride[d]!;
      if (extent > Number.MAX_SAFE_INTEGER) throw new Error(`${ctx.name}: ${where} has absurd strides ${fmtDims(stride)}`);
    }
    if (offset + extent > storage.numel) {
      throw new Error(
        `${ctx.name}: ${where} (stride ${fmtDims(stride)}, offset ${offset}) needs ${offset + extent} elements but the storage holds only ${storage.numel}`,
      );
    }
  }
  const dtype = hostDtypeOf(storage.dtype);
  const outBytes = n * (dtype === 'int64' ? 8 : dtype === 'uint8' || dtype === 'bool' ? 1 : 4);
  if (outBytes > ctx.tensorBytesLeft) {
    throw new Error(`${ctx.name}: ${where} would need ${outBytes} bytes, more than the tensor limit allows (${Math.max(0, ctx.tensorBytesLeft)} bytes left)`);
  }
  ctx.budget.charge(outBytes, where);
  if (n > 0x7fffffff) throw new Error(`${ctx.name}: ${where} has more elements (${n}) than a host array can hold`);
  ctx.tensorBytesLeft -= outBytes;
  const shape = [...size];
  if (n === 0) return { dtype, shape, data: allocLike(dtype, 0) } as HostTensor;

  let contiguous = true;
  let expect = 1;
  for (let d = size.length - 1; d >= 0; d--) {
    if (size[d] !== 1 && stride[d] !== expect) contiguous = false;
    expect *= size[d]!;
  }
  if (contiguous) return { dtype, shape, data: decodeElements(storage.bytes, storage.dtype, offset, n, ctx.bigEndian) } as HostTensor;

  // Non-contiguous: gather element by element straight from the storage bytes, so the time is
  // linear in the elements produced whatever the span the strides cover.
  const out = allocLike(dtype, n) as Indexable;
  const read = elementReader(storage.bytes, storage.dtype, ctx.bigEndian, ctx.budget);
  const nd = size.length;
  const idx = new Array<number>(nd).fill(0);
  let pos = 0;
  for (let i = 0; i < n; i++) {
    out[i] = read(offset + pos);
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]!++;
      pos += stride[d]!;
      if (idx[d]! < size[d]!) break;
      pos -= stride[d]! * size[d]!;
      idx[d] = 0;
    }
  }
  return { dtype, shape, data: out as TensorData } as HostTensor;
}

// ---------------------------------------------------------------------------------------------
// Reader

const MAX_MEMO = 1 << 22;
const MAX_STACK = 1 << 22;
const MAX_MARKS = 1 << 16;
const MAX_DEPTH = 2000;
const MAX_LONG_BYTES = 4096;

/** Whether a value is a host tensor (as opposed to another checkpoint value). */
export function isHostTensor(v: unknown): v is HostTensor {
  return (
    typeof v === 'object' &&
    v !== null &&
    !(v instanceof Map) &&
    !Array.isArray(v) &&
    !ArrayBuffer.isView(v) &&
    'dtype' in v &&
    'shape' in v &&
    'data' in v &&
    ArrayBuffer.isView((v as { data: unknown }).data)
  );
}

class Unpickler {
  private pos: number;
  private stack: unknown[] = [];
  private readonly marks: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();
  private readonly storages = new Map<string, StorageRef>();
  private readonly ctx: TensorContext;
  private readonly view: DataView;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  /** Steps of work left: one per opcode plus one per element an opcode touches. */
  private workLeft: number;
  private readonly workLimit: number;
  /** Results of calls on the same (memoised) argument, shared rather than rebuilt. */
  private readonly sizes = new WeakMap<object, readonly number[]>();
  private readonly encoded = new Map<string, Uint8Array>();

  constructor(
    private readonly bytes: Uint8Array,
    start: number,
    private readonly opts: UnpickleOptions,
  ) {
    this.pos = start;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.ctx = {
      name: sanitize(opts.name),
      bigEndian: opts.bigEndian ?? false,
      tensorBytesLeft: opts.maxTensorBytes ?? Infinity,
      budget: opts.budget ?? new ReadBudget(opts.name, bytes.length),
    };
    this.workLimit = FIXED_WORK + WORK_PER_PICKLE_BYTE * Math.max(0, bytes.length - start);
    this.workLeft = this.workLimit;
  }

  /** Counts `n` steps of work; a pickle that needs more than its limit is refused. */
  private work(n: number): void {
    this.workLeft -= n;
    if (this.workLeft < 0) {
      this.fail(`pickle needs more than ${this.workLimit} steps of work for its ${this.bytes.length} bytes; the file is corrupt or was crafted to exhaust time`);
    }
  }

  /** Charges `n` bytes of objects built by the pickle to the memory budget. */
  private alloc(n: number): void {
    this.ctx.budget.charge(n, "the pickle's objects");
  }

  private fail(msg: string): never {
    throw new Error(`${this.ctx.name}: ${msg}`);
  }

  private need(n: number, what: string): void {
    if (n < 0 || this.pos + n > this.bytes.length) this.fail(`pickle truncated while reading ${what} at byte ${this.pos}`);
  }
  private u8(): number {
    this.need(1, 'an opcode argument');
    return this.bytes[this.pos++]!;
  }
  private u16(): number {
    this.need(2, 'an opcode argument');
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  private u32(): number {
    this.need(4, 'an opcode argument');
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private i32(): number {
    this.need(4, 'an opcode argument');
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private u64(): number {
    this.need(8, 'an opcode argument');
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(this.bytes.length)) this.fail(`pickle declares a ${v}-byte item, larger than the pickle`);
    return Number(v);
  }
  private take(n: number, what: string): Uint8Array {
    this.need(n, what);
    this.work(n >> 4);
    this.alloc(2 * n + 32);
    const b = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  private utf8(b: Uint8Array): string {
    try {
      return this.decoder.decode(b);
    } catch {
      return this.fail(`pickle holds a string that is not valid UTF-8 at byte ${this.pos}`);
    }
  }
  private line(): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0 || end - this.pos > 1024) this.fail(`pickle truncated or corrupt while reading a text argument at byte ${this.pos}`);
    const s = this.utf8(this.bytes.subarray(this.pos, end));
    this.pos = end + 1;
    return s;
  }

  private push(v: unknown): void {
    if (this.stack.length >= MAX_STACK) this.fail('pickle stack grew too large');
    // Every push may be a new object (a dict, a list, a number): charged at its typical size.
    this.alloc(48);
    this.stack.push(v);
  }
  private pop(): unknown {
    if (this.stack.length === 0) this.fail(`pickle stack underflow at byte ${this.pos - 1}`);
    return this.stack.pop();
  }
  private top(): unknown {
    if (this.stack.length === 0) this.fail(`pickle stack underflow at byte ${this.pos - 1}`);
    return this.stack[this.stack.length - 1];
  }
  private popMark(): unknown[] {
    const items = this.stack;
    this.work(items.length);
    this.alloc(16 * items.length + 64);
    const prev = this.marks.pop();
    if (!prev) this.fail(`pickle uses MARK items without a MARK at byte ${this.pos - 1}`);
    this.stack = prev;
    return items;
  }
  private memoPut(i: number, v: unknown): void {
    if (!this.memo.has(i) && this.memo.size >= MAX_MEMO) this.fail('pickle memo grew too large');
    this.memo.set(i, v);
  }
  private memoGet(i: number): unknown {
    if (!this.memo.has(i)) this.fail(`pickle refers to memo entry ${i}, which was never stored`);
    return this.memo.get(i);
  }

  private int(v: unknown, what: string): number {
    if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
    if (typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
    return this.fail(`expected an integer for ${what}, got ${describe(v)}`);
  }
  private dims(v: unknown, what: string): number[] {
    if (!Array.isArray(v)) return this.fail(`expected a tuple for ${what}, got ${describe(v)}`);
    if (v.length > 64) return this.fail(`${what} has ${v.length} dimensions (at most 64)`);
    return v.map((x, i) => {
      const n = this.int(x, `${what}[${i}]`);
      if (n < 0) this.fail(`${what}[${i}] is negative (${n})`);
      return n;
    });
  }

  private dictKey(k: unknown): string {
    if (typeof k === 'string') return k;
    if (typeof k === 'number' || typeof k === 'bigint') return String(k);
    if (typeof k === 'boolean') return k ? 'True' : 'False';
    if (k === null) return 'None';
    return this.fail(`unsupported dict key ${describe(k)}`);
  }
  private setItem(d: unknown, k: unknown, v: unknown): void {
    if (d instanceof Map) d.set(this.dictKey(k), v);
    else if (d instanceof PthOpaque) {
      /* dict subclass placeholder: items are dropped */
    } else this.fail(`SETITEM on ${describe(d)}, not a dict`);
  }
  private append(l: unknown, items: unknown[]): void {
    this.work(items.length);
    this.alloc(16 * items.length);
    if (Array.isArray(l) && !Object.isFrozen(l)) {
      if (l.length + items.length > MAX_STACK) this.fail('pickle list grew too large');
      for (const x of items) l.push(x);
    } else if (!(l instanceof PthOpaque)) this.fail(`APPEND on ${describe(l)}, not a list`);
  }

  private global(module: string, name: string): unknown {
    const g = resolveGlobal(module, name);
    if (g) return g;
    const full = sanitize(`${module}.${name}`);
    if (this.opts.allowOpaqueGlobals) return new GlobalRef(module, name, 'opaque');
    return this.fail(`refusing to load global '${full}' (only tensors and dicts are allowed)`);
  }

  private persistent(pid: unknown): StorageRef {
    if (!Array.isArray(pid) || pid.length < 5 || pid[0] !== 'storage') return this.fail(`unsupported persistent id ${describe(pid)}`);
    const [, type, keyV, locV, numelV, viewMeta] = pid as unknown[];
    if (!(type instanceof GlobalRef) || type.kind !== 'storage' || !type.storageDtype) return this.fail(`persistent id names ${describe(type)}, not a storage class`);
    if (typeof keyV !== 'string') return this.fail(`storage key ${describe(keyV)} is not a string`);
    const location = typeof locV === 'string' ? locV : 'cpu';
    const numel = this.int(numelV, `the size of storage '${sanitize(keyV)}'`);
    if (numel < 0) this.fail(`storage '${sanitize(keyV)}' has a negative size`);
    const dtype = type.storageDtype;
    const cacheKey = `${keyV}\u0000${dtype}`;
    let root = this.storages.get(cacheKey);
    if (!root) {
      if (!this.opts.loadStorage) this.fail(`pickle refers to storage '${sanitize(keyV)}' but no storages are available`);
      if (this.opts.dryRun) {
        this.opts.loadStorage(keyV, dtype, numel, location);
        root = new StorageRef(keyV, dtype, numel, new Uint8Array(0));
        this.storages.set(cacheKey, root);
        return root;
      }
      const es = STORAGE_ELEMENT_SIZE[dtype];
      const bytes = this.opts.loadStorage(keyV, dtype, numel, location);
      if (bytes.length < numel * es) {
        this.fail(`storage '${sanitize(keyV)}' declares ${numel} ${dtype} elements (${numel * es} bytes) but holds only ${bytes.length} bytes`);
      }
      root = new StorageRef(keyV, dtype, numel, bytes.subarray(0, numel * es));
      this.storages.set(cacheKey, root);
    } else if (root.numel !== numel) {
      this.fail(`storage '${sanitize(keyV)}' is declared with ${root.numel} and with ${numel} elements`);
    }
    if (this.opts.dryRun) return root;
    if (viewMeta === undefined || viewMeta === null) return root;
    // Legacy (pre-zip) format: (view_key, offset, view_size) of a view into the root storage.
    if (!Array.isArray(viewMeta) || viewMeta.length !== 3) return this.fail(`unsupported storage view ${describe(viewMeta)}`);
    const off = this.int(viewMeta[1], 'a storage view offset');
    const vsize = this.int(viewMeta[2], 'a storage view size');
    if (off < 0 || vsize < 0 || off + vsize > root.numel) this.fail(`storage view ${off}+${vsize} lies outside storage '${sanitize(keyV)}' of ${root.numel} elements`);
    const es = STORAGE_ELEMENT_SIZE[dtype];
    return new StorageRef(String(viewMeta[0]), dtype, vsize, root.bytes.subarray(off * es, (off + vsize) * es));
  }

  private tensorFrom(kind: GlobalKind, args: unknown[]): HostTensor {
    const [storage, offV, sizeV, strideV] = args;
    if (!(storage instanceof StorageRef)) return this.fail(`tensor rebuild got ${describe(storage)} instead of a storage`);
    if (this.opts.dryRun) return { dtype: 'float32', shape: [0], data: new Float32Array(0) };
    let s = storage;
    if (kind === 'rebuild_v3') {
      const dt = args[6];
      if (!(dt instanceof PthDtype)) return this.fail(`_rebuild_tensor_v3 got ${describe(dt)} instead of a dtype`);
      const target = DTYPE_NAMES[dt.name]!;
      const es = STORAGE_ELEMENT_SIZE[target];
      const total = s.numel * STORAGE_ELEMENT_SIZE[s.dtype];
      s = new StorageRef(s.key, target, Math.floor(total / es), s.bytes);
    }
    const min = kind === 'rebuild_v1' ? 4 : kind === 'rebuild_v3' ? 7 : 6;
    if (args.length < min) this.fail(`tensor rebuild got ${args.length} arguments, expected at least ${min}`);
    const offset = this.int(offV, 'a storage offset');
    if (offset < 0) this.fail(`negative storage offset ${offset}`);
    return rebuildTensor(this.ctx, s, offset, this.dims(sizeV, 'a tensor size'), this.dims(strideV, 'a tensor stride'));
  }

  private call(fn: unknown, argsV: unknown): unknown {
    if (fn instanceof PthDtype) return this.fail(`pickle calls dtype ${fn.toString()}`);
    if (!(fn instanceof GlobalRef)) return this.fail(`pickle calls ${describe(fn)}, which is not callable`);
    if (!Array.isArray(argsV)) return this.fail(`pickle calls ${fn.full} with ${describe(argsV)} instead of an argument tuple`);
    const args = argsV as unknown[];
    switch (fn.kind) {
      case 'ordereddict': {
        const m = new Map<string, unknown>();
        if (args.length > 0 && Array.isArray(args[0])) {
          // A new dict each call (it may be filled afterwards), so its size is charged each time.
          this.work(64 * args[0].length);
          this.alloc(48 * args[0].length + 64);
          for (const pair of args[0] as unknown[]) {
            if (!Array.isArray(pair) || pair.length !== 2) this.fail('OrderedDict built from something other than pairs');
            m.set(this.dictKey(pair[0]), pair[1]);
          }
        }
        return m;
      }
      case 'rebuild_v1':
      case 'rebuild_v2':
      case 'rebuild_v3':
        return this.tensorFrom(fn.kind, args);
      case 'parameter':
      case 'parameter_state': {
        if (!isHostTensor(args[0])) return this.fail(`${fn.full} got ${describe(args[0])} instead of a tensor`);
        return args[0];
      }
      case 'from_type_v2': {
        const [func, cls, inner] = args;
        if (!(cls instanceof GlobalRef) || cls.kind !== 'tensor_class') return this.fail(`${fn.full} asked for type ${describe(cls)}`);
        if (!(func instanceof GlobalRef) || !['rebuild_v1', 'rebuild_v2', 'rebuild_v3', 'parameter', 'parameter_state'].includes(func.kind)) {
          return this.fail(`${fn.full} asked to call ${describe(func)}`);
        }
        return this.call(func, inner);
      }
      case 'size': {
        // Immutable, so calls on one (memoised) tuple share one result.
        const src = args[0] ?? [];
        const known = typeof src === 'object' && src !== null ? this.sizes.get(src) : undefined;
        if (known) return known;
        const dims = Object.freeze(this.dims(src, 'torch.Size'));
        if (typeof src === 'object' && src !== null) this.sizes.set(src, dims);
        return dims;
      }
      case 'device': {
        const [type, index] = args;
        if (typeof type !== 'string' || type.length > 64 || (index !== undefined && index !== null && typeof index !== 'number')) {
          return this.fail(`torch.device called with ${describe(type)}, not a device name`);
        }
        return index !== undefined && index !== null ? `${type}:${index}` : type;
      }
      case 'codecs_encode': {
        const [s, enc] = args;
        if (typeof s !== 'string' || (enc !== 'latin1' && enc !== 'latin-1')) return this.fail('_codecs.encode is only accepted for latin1 bytes');
        // Bytes are never modified once loaded, so calls on one (memoised) string share one result.
        const known = this.encoded.get(s);
        if (known) return known;
        this.work(s.length);
        this.alloc(s.length + 64);
        const out = new Uint8Array(s.length);
        for (let i = 0; i < s.length; i++) {
          const c = s.charCodeAt(i);
          if (c > 255) this.fail('_codecs.encode got a non-latin1 string');
          out[i] = c;
        }
        this.encoded.set(s, out);
        return out;
      }
      case 'opaque':
        return new PthOpaque(fn.full, args as PthValue[]);
      case 'tensor_class':
      case 'storage':
        return this.fail(`pickle calls ${fn.full} directly, which is not supported`);
    }
  }

  run(): { value: unknown; end: number } {
    const b = this.bytes;
    for (;;) {
      if (this.pos >= b.length) this.fail(`pickle truncated (no STOP opcode) after ${b.length} bytes`);
      this.work(1);
      const at = this.pos;
      const op = b[this.pos++]!;
      switch (op) {
        case 0x80: // PROTO
          if (this.u8() > 5) this.fail('pickle protocol is newer than 5');
          break;
        case 0x95: // FRAME
          this.u64();
          break;
        case 0x2e: {
          // STOP
          const v = this.pop();
          return { value: v, end: this.pos };
        }
        case 0x28: // MARK
          if (this.marks.length >= MAX_MARKS) this.fail('pickle nests too deeply');
          this.marks.push(this.stack);
          this.stack = [];
          break;
        case 0x30: // POP
          this.pop();
          break;
        case 0x31: // POP_MARK
          this.popMark();
          break;
        case 0x32: // DUP
          this.push(this.top());
          break;
        case 0x4e: // NONE
          this.push(null);
          break;
        case 0x88: // NEWTRUE
          this.push(true);
          break;
        case 0x89: // NEWFALSE
          this.push(false);
          break;
        case 0x4a: // BININT
          this.push(this.i32());
          break;
        case 0x4b: // BININT1
          this.push(this.u8());
          break;
        case 0x4d: // BININT2
          this.push(this.u16());
          break;
        case 0x8a: // LONG1
          this.push(decodeLong(this.take(this.u8(), 'a long integer')));
          break;
        case 0x8b: {
          // LONG4
          const n = this.i32();
          if (n < 0 || n > MAX_LONG_BYTES) this.fail(`pickle holds an absurd ${n}-byte integer`);
          this.push(decodeLong(this.take(n, 'a long integer')));
          break;
        }
        case 0x49: {
          // INT (text)
          const s = this.line();
          if (s === '00') this.push(false);
          else if (s === '01') this.push(true);
          else this.push(this.parseIntText(s));
          break;
        }
        case 0x4c: // LONG (text)
          this.push(this.parseIntText(this.line().replace(/L$/, '')));
          break;
        case 0x46: {
          // FLOAT (text)
          const v = Number(this.line());
          if (Number.isNaN(v)) this.fail('pickle holds a malformed float');
          this.push(v);
          break;
        }
        case 0x47: // BINFLOAT
          this.need(8, 'a float');
          this.push(this.view.getFloat64(this.pos, false));
          this.pos += 8;
          break;
        case 0x58: // BINUNICODE
          this.push(this.utf8(this.take(this.u32(), 'a string')));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.push(this.utf8(this.take(this.u8(), 'a string')));
          break;
        case 0x8d: // BINUNICODE8
          this.push(this.utf8(this.take(this.u64(), 'a string')));
          break;
        case 0x54: {
          // BINSTRING (python 2 str)
          const n = this.i32();
          this.push(latin1(this.take(n, 'a string')));
          break;
        }
        case 0x55: // SHORT_BINSTRING
          this.push(latin1(this.take(this.u8(), 'a string')));
          break;
        case 0x42: // BINBYTES
          this.push(new Uint8Array(this.take(this.u32(), 'bytes')));
          break;
        case 0x43: // SHORT_BINBYTES
          this.push(new Uint8Array(this.take(this.u8(), 'bytes')));
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          this.push(new Uint8Array(this.take(this.u64(), 'bytes')));
          break;
        case 0x7d: // EMPTY_DICT
          this.push(new Map<string, unknown>());
          break;
        case 0x64: {
          // DICT
          const items = this.popMark();
          if (items.length % 2) this.fail('DICT with an odd number of items');
          this.work(4 * items.length);
          const m = new Map<string, unknown>();
          for (let i = 0; i < items.length; i += 2) m.set(this.dictKey(items[i]), items[i + 1]);
          this.push(m);
          break;
        }
        case 0x5d: // EMPTY_LIST
          this.push([]);
          break;
        case 0x6c: // LIST
          this.push(this.popMark());
          break;
        case 0x29: // EMPTY_TUPLE
          this.push(Object.freeze([]));
          break;
        case 0x74: // TUPLE
          this.push(Object.freeze(this.popMark()));
          break;
        case 0x85: // TUPLE1
          this.push(Object.freeze([this.pop()]));
          break;
        case 0x86: {
          // TUPLE2
          const y = this.pop();
          const x = this.pop();
          this.push(Object.freeze([x, y]));
          break;
        }
        case 0x87: {
          // TUPLE3
          const z = this.pop();
          const y = this.pop();
          const x = this.pop();
          this.push(Object.freeze([x, y, z]));
          break;
        }
        case 0x8f: // EMPTY_SET
          this.push([]);
          break;
        case 0x90: {
          // ADDITEMS
          const items = this.popMark();
          this.append(this.top(), items);
          break;
        }
        case 0x91: // FROZENSET
          this.push(Object.freeze(this.popMark()));
          break;
        case 0x73: {
          // SETITEM
          const v = this.pop();
          const k = this.pop();
          this.setItem(this.top(), k, v);
          break;
        }
        case 0x75: {
          // SETITEMS
          const items = this.popMark();
          if (items.length % 2) this.fail('SETITEMS with an odd number of items');
          this.work(4 * items.length);
          const d = this.top();
          for (let i = 0; i < items.length; i += 2) this.setItem(d, items[i], items[i + 1]);
          break;
        }
        case 0x61: {
          // APPEND
          const v = this.pop();
          this.append(this.top(), [v]);
          break;
        }
        case 0x65: {
          // APPENDS
          const items = this.popMark();
          this.append(this.top(), items);
          break;
        }
        case 0x71: // BINPUT
          this.memoPut(this.u8(), this.top());
          break;
        case 0x72: // LONG_BINPUT
          this.memoPut(this.u32(), this.top());
          break;
        case 0x94: // MEMOIZE
          this.memoPut(this.memo.size, this.top());
          break;
        case 0x70: // PUT (text)
          this.memoPut(this.parseIndex(this.line()), this.top());
          break;
        case 0x68: // BINGET
          this.push(this.memoGet(this.u8()));
          break;
        case 0x6a: // LONG_BINGET
          this.push(this.memoGet(this.u32()));
          break;
        case 0x67: // GET (text)
          this.push(this.memoGet(this.parseIndex(this.line())));
          break;
        case 0x63: {
          // GLOBAL
          const module = this.line();
          const name = this.line();
          this.push(this.global(module, name));
          break;
        }
        case 0x93: {
          // STACK_GLOBAL
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') this.fail('STACK_GLOBAL with non-string names');
          this.push(this.global(module, name));
          break;
        }
        case 0x52: {
          // REDUCE
          const args = this.pop();
          const fn = this.pop();
          this.push(this.call(fn, args));
          break;
        }
        case 0x81: {
          // NEWOBJ
          const args = this.pop();
          const cls = this.pop();
          this.push(this.newObj(cls, args));
          break;
        }
        case 0x92: {
          // NEWOBJ_EX
          this.pop(); // kwargs
          const args = this.pop();
          const cls = this.pop();
          this.push(this.newObj(cls, args));
          break;
        }
        case 0x62: {
          // BUILD
          const state = this.pop();
          const obj = this.top();
          if (obj instanceof PthOpaque) obj.state = state as PthValue;
          else if (!(obj instanceof Map) && !isHostTensor(obj)) this.fail(`BUILD on ${describe(obj)}`);
          // OrderedDict state (e.g. `_metadata`) and tensor state are not needed.
          break;
        }
        case 0x51: // BINPERSID
          this.push(this.persistent(this.pop()));
          break;
        default:
          this.fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${at}`);
      }
    }
  }

  private newObj(cls: unknown, args: unknown): unknown {
    if (cls instanceof GlobalRef && (cls.kind === 'ordereddict' || cls.kind === 'opaque')) return this.call(cls, args);
    return this.fail(`pickle instantiates ${describe(cls)}, which is not allowed`);
  }

  private parseIntText(s: string): number | bigint {
    if (!/^[+-]?\d{1,4000}$/.test(s)) this.fail('pickle holds a malformed integer');
    const v = BigInt(s);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
  private parseIndex(s: string): number {
    const v = Number(s);
    if (!Number.isSafeInteger(v) || v < 0) this.fail('pickle holds a malformed memo index');
    return v;
  }

  /** Checks that no internal objects (globals, storages) escaped into the result. */
  finalize(v: unknown): PthValue {
    const seen = new Set<object>();
    const walk = (x: unknown, depth: number): void => {
      this.work(1);
      if (x === null || typeof x !== 'object') {
        if (typeof x === 'function' || typeof x === 'symbol' || x === undefined) this.fail(`unexpected value ${describe(x)}`);
        return;
      }
      if (seen.has(x)) return;
      seen.add(x);
      if (depth > MAX_DEPTH) this.fail('checkpoint nests too deeply');
      if (x instanceof GlobalRef) this.fail(`checkpoint holds a bare reference to ${x.full}, not data`);
      if (x instanceof StorageRef) this.fail(`checkpoint holds a bare storage '${sanitize(x.key)}' outside a tensor`);
      if (x instanceof Map) for (const e of x.values()) walk(e, depth + 1);
      else if (Array.isArray(x)) for (const e of x) walk(e, depth + 1);
      else if (x instanceof PthOpaque) {
        for (const e of x.args) walk(e, depth + 1);
        walk(x.state ?? null, depth + 1);
      }
    };
    walk(v, 0);
    return v as PthValue;
  }
}

function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return s;
}

function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof GlobalRef) return `'${sanitize(v.full)}'`;
  if (v instanceof StorageRef) return `storage '${sanitize(v.key)}'`;
  if (v instanceof PthDtype) return v.toString();
  if (v instanceof PthOpaque) return `an object of '${sanitize(v.global)}'`;
  if (v instanceof Map) return 'a dict';
  if (Array.isArray(v)) return Object.isFrozen(v) ? `a tuple of ${v.length}` : `a list of ${v.length}`;
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (isHostTensor(v)) return 'a tensor';
  if (typeof v === 'string') return `'${sanitize(v.length > 40 ? v.slice(0, 40) + '…' : v)}'`;
  return typeof v === 'object' ? 'an object' : String(v);
}

/**
 * Unpickles one pickle starting at byte `start` (default 0) and returns the value and the
 * offset just past its STOP opcode. Throws a one-line Error naming `options.name` for
 * anything malformed, unsafe or absurd.
 */
export function unpickleAt(bytes: Uint8Array, start: number, options: UnpickleOptions): { value: PthValue; end: number } {
  const u = new Unpickler(bytes, start, options);
  const { value, end } = u.run();
  return { value: u.finalize(value), end };
}

/** Unpickles a whole pickle (see {@link unpickleAt}). */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): PthValue {
  return unpickleAt(bytes, 0, options).value;
}

/**
 * Finds the end of the pickle starting at `start` without interpreting it (used to step over
 * the main pickle of legacy checkpoints, whose storages follow it). Returns the offset past STOP.
 */
export function skipPickle(bytes: Uint8Array, start: number, name: string): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (msg: string): never => {
    throw new Error(`${sanitize(name)}: ${msg}`);
  };
  let p = start;
  const need = (n: number): void => {
    if (n < 0 || p + n > bytes.length) fail(`pickle truncated at byte ${p}`);
  };
  const lineEnd = (): void => {
    const e = bytes.indexOf(0x0a, p);
    if (e < 0) fail(`pickle truncated at byte ${p}`);
    p = e + 1;
  };
  for (;;) {
    need(1);
    const op = bytes[p++]!;
    switch (op) {
      case 0x2e:
        return p;
      case 0x28: case 0x30: case 0x31: case 0x32: case 0x4e: case 0x88: case 0x89: case 0x7d: case 0x64: case 0x5d:
      case 0x6c: case 0x29: case 0x74: case 0x85: case 0x86: case 0x87: case 0x8f: case 0x90: case 0x91: case 0x73:
      case 0x75: case 0x61: case 0x65: case 0x94: case 0x93: case 0x52: case 0x81: case 0x92: case 0x62: case 0x51:
        break;
      case 0x80: case 0x4b: case 0x71: case 0x68:
        need(1);
        p += 1;
        break;
      case 0x4d:
        need(2);
        p += 2;
        break;
      case 0x4a: case 0x72: case 0x6a:
        need(4);
        p += 4;
        break;
      case 0x47: case 0x95:
        need(8);
        p += 8;
        break;
      case 0x8a: case 0x8c: case 0x55: case 0x43: {
        need(1);
        const n = bytes[p++]!;
        need(n);
        p += n;
        break;
      }
      case 0x8b: case 0x58: case 0x54: case 0x42: {
        need(4);
        const n = view.getUint32(p, true);
        p += 4;
        need(n);
        p += n;
        break;
      }
      case 0x8d: case 0x8e: case 0x96: {
        need(8);
        const n = view.getBigUint64(p, true);
        p += 8;
        if (n > BigInt(bytes.length)) fail('pickle declares an item larger than the file');
        need(Number(n));
        p += Number(n);
        break;
      }
      case 0x49: case 0x4c: case 0x46: case 0x70: case 0x67:
        lineEnd();
        break;
      case 0x63:
        lineEnd();
        lineEnd();
        break;
      default:
        fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${p - 1}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Writer

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
