/**
 * safetensors files: an 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}}`, then
 * the raw little-endian tensor bytes (offsets are relative to the end of the header).
 */
import { readFile, writeFileAtomic } from '#host';
import type { DType, HostTensor, TensorMap } from '../tensor.js';
import { halfToFloat } from '../tensor.js';
import { concatChunks } from './zip.js';
import { ReadBudget } from './budget.js';
import { sanitize } from '../errors.js';

/** Largest JSON header accepted (same limit as the reference implementation). */
const MAX_HEADER = 100_000_000;
/** Deepest JSON nesting accepted (serde_json's recursion limit, which the reference reader has). */
const MAX_DEPTH = 128;
/**
 * Most JSON arrays and objects accepted in a header: 3 a tensor, so over a million tensors, while
 * parsing 2²² of them takes a few seconds (100 MB of empty arrays would take half a minute).
 */
const MAX_CONTAINERS = 2 ** 22;

/** Options of the safetensors readers. */
export interface SafetensorsReadOptions {
  /** Memory the reader may allocate for this file (default 64 × its size + 256 MiB, as for `.pth`; see README). */
  readonly maxBytes?: number;
}

interface FileDtype {
  readonly size: number;
  readonly host: DType;
}

const FILE_DTYPES: Readonly<Record<string, FileDtype>> = {
  F64: { size: 8, host: 'float32' },
  F32: { size: 4, host: 'float32' },
  F16: { size: 2, host: 'float32' },
  BF16: { size: 2, host: 'float32' },
  I64: { size: 8, host: 'int64' },
  I32: { size: 4, host: 'int32' },
  I16: { size: 2, host: 'int32' },
  I8: { size: 1, host: 'int32' },
  U8: { size: 1, host: 'uint8' },
  BOOL: { size: 1, host: 'bool' },
};

const DTYPE_TAG: Readonly<Record<DType, string>> = {
  float32: 'F32',
  float16: 'F16',
  int64: 'I64',
  int32: 'I32',
  uint8: 'U8',
  bool: 'BOOL',
};

const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A parsed safetensors file: its tensors and its optional `__metadata__` strings. */
export interface SafetensorsContents {
  readonly tensors: TensorMap;
  readonly metadata: ReadonlyMap<string, string>;
}

/** The host typed array of a tensor's little-endian bytes: one allocation of the output, no intermediate copy. */
function decode(bytes: Uint8Array, tag: string, count: number): HostTensor['data'] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (tag) {
    case 'F32':
    case 'I32':
    case 'I64': {
      const copy = new Uint8Array(bytes); // aligned and owned (Buffer's slice would share the file's memory)
      if (!HOST_LE) for (let i = 0; i < copy.length; i += FILE_DTYPES[tag]!.size) copy.subarray(i, i + FILE_DTYPES[tag]!.size).reverse();
      return tag === 'F32' ? new Float32Array(copy.buffer) : tag === 'I32' ? new Int32Array(copy.buffer) : new BigInt64Array(copy.buffer);
    }
    case 'F64': {
      const f = new Float32Array(count);
      for (let i = 0; i < count; i++) f[i] = dv.getFloat64(8 * i, true);
      return f;
    }
    case 'F16': {
      const f = new Float32Array(count);
      for (let i = 0; i < count; i++) f[i] = halfToFloat(dv.getUint16(2 * i, true));
      return f;
    }
    case 'BF16': {
      const w = new Uint32Array(count);
      for (let i = 0; i < count; i++) w[i] = dv.getUint16(2 * i, true) << 16;
      return new Float32Array(w.buffer);
    }
    case 'I16': {
      const r = new Int32Array(count);
      for (let i = 0; i < count; i++) r[i] = dv.getInt16(2 * i, true);
      return r;
    }
    case 'I8':
      return new Int32Array(new Int8Array(bytes.buffer, bytes.byteOffset, count));
    case 'BOOL': {
      const r = new Uint8Array(count);
      for (let i = 0; i < count; i++) r[i] = bytes[i] ? 1 : 0;
      return r;
    }
    default:
      return new Uint8Array(bytes);
  }
}

/** Bytes the host array of `count` elements of file dtype `tag` takes. */
function hostBytes(tag: string, count: number): number {
  const host = FILE_DTYPES[tag]!.host;
  return count * (host === 'float32' || host === 'int32' ? 4 : host === 'int64' ? 8 : 1);
}

/**
 * Checks the JSON header's nesting (at most {@link MAX_DEPTH}: deeper headers made `JSON.parse`
 * take minutes and gigabytes) and size (at most {@link MAX_CONTAINERS} arrays and objects) and estimates what parsing it allocates, from one pass over the
 * bytes: 2 bytes a character for the decoded text, 128 bytes a container, 48 a value (measured
 * upper bounds of V8's objects, arrays and numbers). UTF-8 continuation bytes are never ASCII,
 * so the scan can work on bytes.
 */
function headerCost(h: Uint8Array, name: string): number {
  let depth = 0;
  let containers = 0;
  let values = 0;
  for (let i = 0; i < h.length; i++) {
    const c = h[i]!;
    if (c === 0x22) {
      // a string: skip to its closing quote, over escaped characters
      for (i++; i < h.length && h[i] !== 0x22; i++) if (h[i] === 0x5c) i++;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_DEPTH) throw new Error(`${name}: safetensors header nests deeper than ${MAX_DEPTH} levels; not a safetensors file (or a crafted one)`);
      if (++containers > MAX_CONTAINERS) throw new Error(`${name}: safetensors header has more than ${MAX_CONTAINERS} JSON arrays and objects; not a safetensors file (or a crafted one)`);
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    } else if (c === 0x2c || c === 0x3a) {
      values++;
    }
  }
  return 2 * h.length + 128 * containers + 48 * (values + 1);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parses a safetensors file held in memory. F16 / BF16 / F64 become float32, I16 / I8 int32.
 * Throws a one-line Error naming `name` for a bad header length, malformed or too deeply nested
 * JSON, unknown dtypes, offsets outside the data or overlapping tensors, sizes that do not match
 * shapes, or more memory than the file's {@link ReadBudget} allows (charged before the header is
 * parsed and before each tensor is allocated; every tensor is checked against the file first).
 */
export function parseSafetensors(bytes: Uint8Array, name = '<bytes>', options: SafetensorsReadOptions = {}): SafetensorsContents {
  const budget = new ReadBudget(name, bytes.length, options.maxBytes);
  name = budget.name;
  if (bytes.length < 8) throw new Error(`${name}: truncated safetensors file (${bytes.length} bytes, no header length)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER)) throw new Error(`${name}: safetensors header length ${n} is absurd (limit ${MAX_HEADER}); not a safetensors file?`);
  if (n > BigInt(bytes.length - 8)) throw new Error(`${name}: safetensors header length ${n} exceeds the file (${bytes.length} bytes); truncated or not a safetensors file`);
  const headerLen = Number(n);
  budget.charge(headerCost(bytes.subarray(8, 8 + headerLen), name), 'parsing the JSON header');
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch (err) {
    throw new Error(`${name}: safetensors header is not valid JSON (${sanitize(err instanceof Error ? err.message : String(err))})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new Error(`${name}: safetensors header is not a JSON object`);
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const metadata = new Map<string, string>();
  const spans: { key: string; begin: number; end: number; tag: string; shape: number[] }[] = [];
  for (const [key, value] of Object.entries(header as Record<string, unknown>)) {
    const shown = sanitize(key);
    if (key === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${name}: safetensors __metadata__ is not an object`);
      for (const [mk, mv] of Object.entries(value as Record<string, unknown>)) {
        if (typeof mv !== 'string') throw new Error(`${name}: safetensors __metadata__ value for '${sanitize(mk)}' is not a string`);
        metadata.set(mk, mv);
      }
      continue;
    }
    if (typeof value !== 'object' || value === null) throw new Error(`${name}: tensor '${shown}' has a malformed header entry`);
    const { dtype, shape, data_offsets: offsets } = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== 'string' || !Object.prototype.hasOwnProperty.call(FILE_DTYPES, dtype)) {
      throw new Error(`${name}: tensor '${shown}' has unsupported dtype ${sanitize(JSON.stringify(dtype) ?? 'undefined')}`);
    }
    if (!Array.isArray(shape) || shape.length > 64 || !shape.every(isCount)) throw new Error(`${name}: tensor '${shown}' has a malformed shape`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !isCount(offsets[0]) || !isCount(offsets[1]) || offsets[0] > offsets[1]) {
      throw new Error(`${name}: tensor '${shown}' has malformed data_offsets`);
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataLen) {
      throw new Error(`${name}: tensor '${shown}' data [${begin}, ${end}) lies past the end of the data (${dataLen} bytes); truncated file?`);
    }
    let count = 1;
    for (const d of shape as number[]) count *= d;
    const want = count * FILE_DTYPES[dtype]!.size;
    if (want !== end - begin) {
      throw new Error(`${name}: tensor '${shown}' of shape [${(shape as number[]).join(', ')}] ${dtype} needs ${want} bytes but its data_offsets span ${end - begin}`);
    }
    spans.push({ key, begin, end, tag: dtype, shape: shape as number[] });
  }
  // Empty tensors occupy no bytes, so they take no part in the overlap check (compared only with
  // their sorted neighbour, one placed between two overlapping tensors used to hide the overlap).
  const sorted = spans.filter((s) => s.end > s.begin).sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (b.begin < a.end) throw new Error(`${name}: tensors '${sanitize(a.key)}' and '${sanitize(b.key)}' overlap in the data`);
  }
  const tensors: TensorMap = new Map();
  for (const s of spans) {
    const count = (s.end - s.begin) / FILE_DTYPES[s.tag]!.size;
    budget.charge(hostBytes(s.tag, count), `tensor '${sanitize(s.key)}'`);
    const data = decode(bytes.subarray(dataStart + s.begin, dataStart + s.end), s.tag, count);
    tensors.set(s.key, { dtype: FILE_DTYPES[s.tag]!.host, shape: s.shape, data } as HostTensor);
  }
  return { tensors, metadata };
}

/** Reads a safetensors file (path or bytes) into a TensorMap (see {@link parseSafetensors}). */
export function readSafetensors(source: string | Uint8Array, name?: string, options?: SafetensorsReadOptions): TensorMap {
  return readSafetensorsWithMetadata(source, name, options).tensors;
}

/** Reads a safetensors file (path or bytes) with its `__metadata__`. */
export function readSafetensorsWithMetadata(source: string | Uint8Array, name?: string, options?: SafetensorsReadOptions): SafetensorsContents {
  const shown = name ?? (typeof source === 'string' ? source : '<bytes>');
  if (typeof source !== 'string') return parseSafetensors(source, shown, options);
  let bytes: Uint8Array;
  try {
    bytes = readFile(source);
  } catch (err) {
    throw new Error(`${sanitize(shown)}: cannot read safetensors file (${sanitize(err instanceof Error ? err.message : String(err))})`);
  }
  return parseSafetensors(bytes, shown, options);
}

function tensorBytes(key: string, t: HostTensor): Uint8Array {
  const tag = DTYPE_TAG[t.dtype];
  if (!tag) throw new Error(`safetensors writer: tensor '${sanitize(key)}' has unsupported dtype '${sanitize(String(t.dtype))}'`);
  let n = 1;
  for (const d of t.shape) {
    if (!isCount(d)) throw new Error(`safetensors writer: tensor '${sanitize(key)}' has a bad shape [${t.shape.join(', ')}]`);
    n *= d;
  }
  if (n !== t.data.length) throw new Error(`safetensors writer: tensor '${sanitize(key)}' of shape [${t.shape.join(', ')}] holds ${t.data.length} elements, not ${n}`);
  const want = { F32: Float32Array, F16: Uint16Array, I64: BigInt64Array, I32: Int32Array, U8: Uint8Array, BOOL: Uint8Array }[tag];
  if (!want || !(t.data instanceof want)) throw new Error(`safetensors writer: tensor '${sanitize(key)}' (${t.dtype}) holds a ${t.data.constructor.name}`);
  let b = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const es = t.data.BYTES_PER_ELEMENT;
  if (!HOST_LE && es > 1) {
    b = new Uint8Array(b);
    for (let i = 0; i < b.length; i += es) b.subarray(i, i + es).reverse();
  }
  return b;
}

/**
 * Serialises tensors as safetensors chunks (tensor data referenced, not copied). Tensors are
 * laid out by decreasing element size so each is aligned; the header is space-padded to 8 bytes.
 */
export function encodeSafetensorsChunks(tensors: TensorMap, metadata?: ReadonlyMap<string, string> | Readonly<Record<string, string>>): Uint8Array[] {
  const items = [...tensors.entries()].map(([key, t]) => ({ key, t, bytes: tensorBytes(key, t) }));
  const order = items
    .map((x, i) => ({ x, i }))
    .sort((a, b) => b.x.t.data.BYTES_PER_ELEMENT - a.x.t.data.BYTES_PER_ELEMENT || a.i - b.i)
    .map((e) => e.x);
  const header: Record<string, unknown> = {};
  if (metadata) {
    const md: Record<string, string> = {};
    for (const [k, v] of metadata instanceof Map ? metadata.entries() : Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`safetensors writer: metadata value for '${sanitize(k)}' is not a string`);
      md[k] = v;
    }
    header['__metadata__'] = md;
  }
  let offset = 0;
  for (const { key, t, bytes } of order) {
    if (key === '__metadata__') throw new Error(`safetensors writer: '__metadata__' cannot be a tensor name`);
    header[key] = { dtype: DTYPE_TAG[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  return [head, ...order.map((o) => o.bytes)];
}

/** Serialises tensors as one safetensors buffer. */
export function encodeSafetensors(tensors: TensorMap, metadata?: ReadonlyMap<string, string> | Readonly<Record<string, string>>): Uint8Array {
  return concatChunks(encodeSafetensorsChunks(tensors, metadata));
}

/** Writes tensors to a safetensors file atomically (temporary file, then rename). */
export function writeSafetensors(path: string, tensors: TensorMap, metadata?: ReadonlyMap<string, string> | Readonly<Record<string, string>>): void {
  writeFileAtomic(path, encodeSafetensorsChunks(tensors, metadata));
}

/** The float32 tensor `name` of a tensor file's contents, or a one-line error naming the file and what it has. */
export function requireF32(tensors: ReadonlyMap<string, HostTensor>, name: string, file: string): HostTensor<'float32'> {
  const t = tensors.get(name);
  const keys = [...tensors.keys()];
  const has = keys.slice(0, 8).map((k) => sanitize(k)).join(', ') + (keys.length > 8 ? `, … and ${keys.length - 8} more` : '');
  if (!t) throw new Error(`${sanitize(file)}: missing tensor '${sanitize(name)}' (has: ${has || 'none'})`);
  if (t.dtype !== 'float32') throw new Error(`${sanitize(file)}: tensor '${sanitize(name)}' is ${t.dtype}, expected float32`);
  return t as HostTensor<'float32'>;
}
