/**
 * NumPy `.npy` arrays and `.npz` archives, enough for metric statistics (pytorch-fid's
 * `mu`/`sigma` files, BasicSR's `niqe_pris_params.npz`): little-endian float64 / float32 /
 * integer arrays in C order, npy format 1.0–3.0, zip entries stored or deflated. Arrays are
 * returned as float64, the precision the metrics compute in. Writing gives npy 1.0 `<f8`
 * arrays in a stored zip, which `np.load` reads.
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../fs/atomic.js';
import { firstLine } from '../errors.js';
import { concatChunks, encodeZip, isZip, openZip } from '../weights/zip.js';

/** An n-dimensional float64 array in C order. */
export interface NdArray {
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Parses one `.npy` file; `name` is used in error messages. */
export function parseNpy(bytes: Uint8Array, name: string): NdArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw new Error(`${name}: not a .npy array (bad magic)`);
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new Error(`${name}: truncated .npy header`);
    headerLen = view.getUint32(8, true);
    start = 12;
  } else throw new Error(`${name}: unsupported .npy format version ${major}`);
  if (start + headerLen > bytes.length) throw new Error(`${name}: truncated .npy header`);
  const header = new TextDecoder().decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw new Error(`${name}: malformed .npy header '${firstLine(header)}'`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      const n = Number(s.replace(/L$/, ''));
      if (!Number.isInteger(n) || n < 0) throw new Error(`${name}: bad .npy shape (${shapeText})`);
      return n;
    });
  const count = shape.reduce((a, b) => a * b, 1);
  const readers: Record<string, [number, (o: number) => number]> = {
    '<f8': [8, (o) => view.getFloat64(o, true)],
    '<f4': [4, (o) => view.getFloat32(o, true)],
    '<f2': [2, (o) => halfAt(view, o)],
    '<i8': [8, (o) => Number(view.getBigInt64(o, true))],
    '<i4': [4, (o) => view.getInt32(o, true)],
    '<i2': [2, (o) => view.getInt16(o, true)],
    '|i1': [1, (o) => view.getInt8(o)],
    '|u1': [1, (o) => view.getUint8(o)],
    '<u2': [2, (o) => view.getUint16(o, true)],
    '<u4': [4, (o) => view.getUint32(o, true)],
    '|b1': [1, (o) => view.getUint8(o)],
  };
  const r = readers[descr === '=f8' ? '<f8' : descr === '=f4' ? '<f4' : descr];
  if (!r) throw new Error(`${name}: unsupported .npy dtype '${descr}' (need little-endian float or integer)`);
  const [size, get] = r;
  const dataStart = start + headerLen;
  if (dataStart + count * size > bytes.length) throw new Error(`${name}: truncated .npy data (${count} elements of ${size} bytes declared)`);
  const flat = new Float64Array(count);
  for (let i = 0; i < count; i++) flat[i] = get(dataStart + i * size);
  if (fortran === 'False' || shape.length < 2) return { shape, data: flat };
  // Fortran order: reverse the axis order of the strides.
  const out = new Float64Array(count);
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  for (let f = 0; f < count; f++) {
    let c = 0;
    for (let a = 0; a < rank; a++) c = c * shape[a]! + idx[a]!;
    out[c] = flat[f]!;
    for (let a = 0; a < rank; a++) {
      if (++idx[a]! < shape[a]!) break;
      idx[a] = 0;
    }
  }
  return { shape, data: out };
}

function halfAt(view: DataView, o: number): number {
  const h = view.getUint16(o, true);
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  const s = h & 0x8000 ? -1 : 1;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Encodes a float64 array as an npy 1.0 `<f8` C-order file. */
export function encodeNpy(a: NdArray): Uint8Array {
  const shape = a.shape.length === 1 ? `(${a.shape[0]},)` : `(${a.shape.join(', ')})`;
  let header = `{'descr': '<f8', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const hb = new TextEncoder().encode(header);
  const out = new Uint8Array(10 + hb.length + a.data.length * 8);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, hb.length, true);
  out.set(hb, 10);
  const view = new DataView(out.buffer, 10 + hb.length);
  for (let i = 0; i < a.data.length; i++) view.setFloat64(i * 8, a.data[i]!, true);
  return out;
}

/** Reads the arrays of an `.npz` archive (or a single `.npy` file, as `arr_0`), keyed by name without `.npy`. */
export function readNpz(path: string): Map<string, NdArray> {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`${path}: cannot read (${firstLine(e)})`);
  }
  return parseNpz(bytes, path);
}

/** Parses `.npz` bytes (see {@link readNpz}). */
export function parseNpz(bytes: Uint8Array, name: string): Map<string, NdArray> {
  const out = new Map<string, NdArray>();
  if (!isZip(bytes)) {
    out.set('arr_0', parseNpy(bytes, name));
    return out;
  }
  const zip = openZip(bytes, name);
  for (const entry of zip.names()) {
    if (!entry.endsWith('.npy')) continue;
    out.set(entry.slice(0, -4), parseNpy(zip.read(entry), `${name}:${entry}`));
  }
  return out;
}

/** Writes arrays as an `.npz` archive (stored entries) atomically; refuses to replace an existing file unless `overwrite`. */
export async function writeNpz(path: string, arrays: ReadonlyMap<string, NdArray>, overwrite = false): Promise<void> {
  const inputs = [...arrays].map(([k, a]) => ({ name: `${k}.npy`, data: encodeNpy(a) }));
  await writeFileAtomic(path, concatChunks(encodeZip(inputs, { alignment: 0 })), overwrite);
}

/** The array `key` of an npz, checked for its rank; one-line error naming the file otherwise. */
export function npzArray(arrays: ReadonlyMap<string, NdArray>, key: string, file: string, rank?: number): NdArray {
  const a = arrays.get(key);
  if (!a) throw new Error(`${file}: no array '${key}' (has: ${[...arrays.keys()].join(', ') || 'none'})`);
  if (rank !== undefined && a.shape.length !== rank) throw new Error(`${file}: '${key}' has shape (${a.shape.join(', ')}), expected ${rank} dimensions`);
  return a;
}
