/**
 * Host tensors: plain typed arrays with a shape, the common currency between
 * checkpoint files, ONNX Runtime and image code.
 */

/** Element types a host tensor can hold. Half and bfloat16 are converted to float32 on load. */
export type DType = 'float32' | 'float16' | 'int64' | 'int32' | 'uint8' | 'bool';

/** Maps a dtype to the typed array that stores it (float16 is stored as raw uint16 bits). */
export interface DTypeArrayMap {
  float32: Float32Array;
  float16: Uint16Array;
  int64: BigInt64Array;
  int32: Int32Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}

/** A dense, row-major (C-contiguous) tensor in host memory. */
export interface HostTensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: DTypeArrayMap[D];
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Creates a float32 host tensor, checking that the data length matches the shape. */
export function f32(shape: readonly number[], data?: Float32Array | readonly number[]): HostTensor<'float32'> {
  const n = numel(shape);
  const arr = data === undefined ? new Float32Array(n) : data instanceof Float32Array ? data : Float32Array.from(data);
  if (arr.length !== n) throw new Error(`f32: data has ${arr.length} elements but shape [${shape.join(',')}] needs ${n}`);
  return { dtype: 'float32', shape: [...shape], data: arr };
}

/** A named collection of host tensors, e.g. a state dict keyed by official parameter names. */
export type TensorMap = Map<string, HostTensor>;

/** Converts IEEE half-precision bits to a float. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Converts a float to IEEE half-precision bits (round to nearest even). */
export function floatToHalf(v: number): number {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  f[0] = v;
  const x = u[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let r = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = mant >> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

/** Converts bfloat16 bits to a float. */
export function bf16ToFloat(b: number): number {
  const u = new Uint32Array([b << 16]);
  return new Float32Array(u.buffer)[0]!;
}
