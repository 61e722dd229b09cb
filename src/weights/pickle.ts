/**
 * Reading torch pickles: the allow-list of what a checkpoint's pickle may refer to, on top of
 * the restricted pickle VM (`pickle-vm.ts`). GLOBAL / STACK_GLOBAL resolve only a fixed list
 * (OrderedDict, torch's tensor rebuild functions, storage classes and dtypes, torch.Size,
 * torch.device, _codecs.encode); any other global is refused before anything else happens.
 * Tensors are materialised into fresh, contiguous host arrays with every size checked against
 * the real storage bytes and charged to the file's memory allowance before it is allocated.
 * The writer is `pickle-writer.ts`.
 */
import type { DType, HostTensor } from '../tensor.js';
import { halfToFloat } from '../tensor.js';
import { sanitize } from '../errors.js';
import { ReadBudget } from './budget.js';
import { MAX_DEPTH, PickleVM, type PickleHooks } from './pickle-vm.js';

export { skipPickle } from './pickle-vm.js';

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

/** The data array of a host tensor. */
export type TensorData = HostTensor['data'];
type Indexable = { [index: number]: number | bigint; readonly length: number };

/** Whether this machine is little-endian. */
export const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
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

/** The torch allow-list as the VM's hooks: globals, calls, storages and tensor rebuilds. */
class TorchObjects implements PickleHooks {
  /** The VM running the pickle (set right after both are made). */
  vm!: PickleVM;
  private readonly storages = new Map<string, StorageRef>();
  /** Results of calls on the same (memoised) argument, shared rather than rebuilt. */
  private readonly sizes = new WeakMap<object, readonly number[]>();
  private readonly encoded = new Map<string, Uint8Array>();

  constructor(
    private readonly opts: UnpickleOptions,
    private readonly ctx: TensorContext,
  ) {}

  private fail(msg: string): never {
    return this.vm.fail(msg);
  }
  private int(v: unknown, what: string): number {
    return this.vm.int(v, what);
  }
  private dims(v: unknown, what: string): number[] {
    return this.vm.dims(v, what);
  }
  private dictKey(k: unknown): string {
    return this.vm.dictKey(k);
  }
  private work(n: number): void {
    this.vm.work(n);
  }
  private alloc(n: number): void {
    this.vm.alloc(n);
  }
  private describeAny(v: unknown): string {
    return this.vm.describe(v);
  }

  global(module: string, name: string): unknown {
    const g = resolveGlobal(module, name);
    if (g) return g;
    const full = sanitize(`${module}.${name}`);
    if (this.opts.allowOpaqueGlobals) return new GlobalRef(module, name, 'opaque');
    return this.fail(`refusing to load global '${full}' (only tensors and dicts are allowed)`);
  }

  persistent(pid: unknown): StorageRef {
    if (!Array.isArray(pid) || pid.length < 5 || pid[0] !== 'storage') return this.fail(`unsupported persistent id ${this.describeAny(pid)}`);
    const [, type, keyV, locV, numelV, viewMeta] = pid as unknown[];
    if (!(type instanceof GlobalRef) || type.kind !== 'storage' || !type.storageDtype) return this.fail(`persistent id names ${this.describeAny(type)}, not a storage class`);
    if (typeof keyV !== 'string') return this.fail(`storage key ${this.describeAny(keyV)} is not a string`);
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
    if (!Array.isArray(viewMeta) || viewMeta.length !== 3) return this.fail(`unsupported storage view ${this.describeAny(viewMeta)}`);
    const off = this.int(viewMeta[1], 'a storage view offset');
    const vsize = this.int(viewMeta[2], 'a storage view size');
    if (off < 0 || vsize < 0 || off + vsize > root.numel) this.fail(`storage view ${off}+${vsize} lies outside storage '${sanitize(keyV)}' of ${root.numel} elements`);
    const es = STORAGE_ELEMENT_SIZE[dtype];
    return new StorageRef(String(viewMeta[0]), dtype, vsize, root.bytes.subarray(off * es, (off + vsize) * es));
  }

  private tensorFrom(kind: GlobalKind, args: unknown[]): HostTensor {
    const [storage, offV, sizeV, strideV] = args;
    if (!(storage instanceof StorageRef)) return this.fail(`tensor rebuild got ${this.describeAny(storage)} instead of a storage`);
    if (this.opts.dryRun) return { dtype: 'float32', shape: [0], data: new Float32Array(0) };
    let s = storage;
    if (kind === 'rebuild_v3') {
      const dt = args[6];
      if (!(dt instanceof PthDtype)) return this.fail(`_rebuild_tensor_v3 got ${this.describeAny(dt)} instead of a dtype`);
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

  call(fn: unknown, argsV: unknown): unknown {
    if (fn instanceof PthDtype) return this.fail(`pickle calls dtype ${fn.toString()}`);
    if (!(fn instanceof GlobalRef)) return this.fail(`pickle calls ${this.describeAny(fn)}, which is not callable`);
    if (!Array.isArray(argsV)) return this.fail(`pickle calls ${fn.full} with ${this.describeAny(argsV)} instead of an argument tuple`);
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
        if (!isHostTensor(args[0])) return this.fail(`${fn.full} got ${this.describeAny(args[0])} instead of a tensor`);
        return args[0];
      }
      case 'from_type_v2': {
        const [func, cls, inner] = args;
        if (!(cls instanceof GlobalRef) || cls.kind !== 'tensor_class') return this.fail(`${fn.full} asked for type ${this.describeAny(cls)}`);
        if (!(func instanceof GlobalRef) || !['rebuild_v1', 'rebuild_v2', 'rebuild_v3', 'parameter', 'parameter_state'].includes(func.kind)) {
          return this.fail(`${fn.full} asked to call ${this.describeAny(func)}`);
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
          return this.fail(`torch.device called with ${this.describeAny(type)}, not a device name`);
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

  newObj(cls: unknown, args: unknown): unknown {
    if (cls instanceof GlobalRef && (cls.kind === 'ordereddict' || cls.kind === 'opaque')) return this.call(cls, args);
    return this.fail(`pickle instantiates ${this.describeAny(cls)}, which is not allowed`);
  }

  build(obj: unknown, state: unknown): void {
    if (obj instanceof PthOpaque) obj.state = state as PthValue;
    else if (!(obj instanceof Map) && !isHostTensor(obj)) this.fail(`BUILD on ${this.describeAny(obj)}`);
    // OrderedDict state (e.g. `_metadata`) and tensor state are not needed.
  }

  absorbs(obj: unknown): boolean {
    // Placeholders of dict or list subclasses: their items are dropped.
    return obj instanceof PthOpaque;
  }

  describe(v: unknown): string | undefined {
    if (v instanceof GlobalRef) return `'${sanitize(v.full)}'`;
    if (v instanceof StorageRef) return `storage '${sanitize(v.key)}'`;
    if (v instanceof PthDtype) return v.toString();
    if (v instanceof PthOpaque) return `an object of '${sanitize(v.global)}'`;
    if (isHostTensor(v)) return 'a tensor';
    return undefined;
  }

  /** Checks that no internal objects (globals, storages) escaped into the result. */
  finalize(v: unknown): PthValue {
    const seen = new Set<object>();
    const walk = (x: unknown, depth: number): void => {
      this.work(1);
      if (x === null || typeof x !== 'object') {
        if (typeof x === 'function' || typeof x === 'symbol' || x === undefined) this.fail(`unexpected value ${this.describeAny(x)}`);
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

/**
 * Unpickles one pickle starting at byte `start` (default 0) and returns the value and the
 * offset just past its STOP opcode. Throws a one-line Error naming `options.name` for
 * anything malformed, unsafe or absurd.
 */
export function unpickleAt(bytes: Uint8Array, start: number, options: UnpickleOptions): { value: PthValue; end: number } {
  const name = sanitize(options.name);
  const budget = options.budget ?? new ReadBudget(options.name, bytes.length);
  const torch = new TorchObjects(options, { name, bigEndian: options.bigEndian ?? false, tensorBytesLeft: options.maxTensorBytes ?? Infinity, budget });
  const vm = new PickleVM(bytes, start, name, budget, torch);
  torch.vm = vm;
  const { value, end } = vm.run();
  return { value: torch.finalize(value), end };
}

/** Unpickles a whole pickle (see {@link unpickleAt}). */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): PthValue {
  return unpickleAt(bytes, 0, options).value;
}

