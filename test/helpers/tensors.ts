/** Small tensor helpers shared by the tests. */
import assert from 'node:assert/strict';
import { f32, type HostTensor, type TensorMap } from '../../src/tensor.js';

/** Largest absolute difference of two float tensors of the same shape. */
export function maxAbs(a: HostTensor, b: HostTensor): number {
  assert.deepEqual(a.shape, b.shape);
  let m = 0;
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

/** A [n,c,h,w] tensor from f(n, c, y, x). */
export function image(n: number, c: number, h: number, w: number, f: (b: number, ch: number, y: number, x: number) => number): HostTensor<'float32'> {
  const d = new Float32Array(n * c * h * w);
  let i = 0;
  for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) d[i++] = f(b, ch, y, x);
  return f32([n, c, h, w], d);
}

/** Asserts that two weight sets are bit-identical, naming the first difference. */
export function assertSameWeights(a: TensorMap, b: TensorMap, what: string): void {
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [k, t] of a) {
    const x = t.data as Float32Array;
    const y = b.get(k)!.data as Float32Array;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`${what}: '${k}'[${i}] ${x[i]} vs ${y[i]}`);
  }
}
