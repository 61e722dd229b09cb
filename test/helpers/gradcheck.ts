/**
 * Gradient checking against central finite differences. The scalar loss is
 * Σ out·R for a fixed random R; for each input, the analytic directional
 * derivative ⟨∇, v⟩ is compared with (L(x+εv) − L(x−εv)) / 2ε along random v.
 */
import assert from 'node:assert/strict';
import { Graph, Value } from '../../src/graph/ir.js';
import * as op from '../../src/graph/ops.js';
import { grad } from '../../src/graph/autodiff.js';
import { compile } from '../../src/runtime/compile.js';
import { f32, type HostTensor } from '../../src/tensor.js';
import { Rng } from '../../src/random.js';


/** Standard normal samples (seeded, so tests are deterministic). */
export function randn(shape: readonly number[], seed: number, scale = 1): HostTensor<'float32'> {
  const n = shape.reduce((a, b) => a * b, 1);
  return f32(shape, new Rng(seed).normals(n).map((v) => v * scale));
}

/** Uniform samples in [lo, hi). */
export function randu(shape: readonly number[], seed: number, lo: number, hi: number): HostTensor<'float32'> {
  const r = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return f32(shape, Float32Array.from({ length: n }, () => lo + (hi - lo) * r.uniform()));
}

/** Samples with |x| ≥ margin, for ops with a kink at 0. */
export function randAway(shape: readonly number[], seed: number, margin = 0.1): HostTensor<'float32'> {
  const t = randn(shape, seed);
  const d = t.data;
  for (let i = 0; i < d.length; i++) d[i] = Math.sign(d[i]! || 1) * (Math.abs(d[i]!) + margin);
  return t;
}

export interface GradCheckOptions {
  eps?: number;
  rtol?: number;
  directions?: number;
}

/**
 * Builds `f` on fresh graph inputs with the given values, and asserts that its
 * gradients agree with finite differences.
 */
export async function checkGrad(
  name: string,
  inputs: readonly HostTensor<'float32'>[],
  f: (g: Graph, xs: Value[]) => Value,
  o: GradCheckOptions = {},
): Promise<void> {
  const eps = o.eps ?? 1e-3;
  const rtol = o.rtol ?? 5e-3;
  const g = new Graph(name);
  const xs = inputs.map((t, i) => g.input(`x${i}`, t.shape));
  const out = f(g, xs);
  const rOut = randn(out.shape as number[], 999);
  const loss = op.reduceSum(op.mul(out, op.constF32(g, rOut.shape, rOut.data)), out.shape.map((_, i) => i), false);
  const grads = grad(loss, xs);
  g.output(loss, 'loss');
  grads.forEach((gr, i) => g.output(gr, `grad${i}`));
  const s = await compile(g, { params: 'initializers' }, { threads: 1 });
  try {
    const feeds = (vals: readonly HostTensor[]) => Object.fromEntries(vals.map((t, i) => [`x${i}`, t]));
    const base = await s.run(feeds(inputs));
    for (let i = 0; i < inputs.length; i++) {
      const gi = base[`grad${i}`]!.data as Float32Array;
      assert.deepEqual(base[`grad${i}`]!.shape, [...inputs[i]!.shape], `${name}: gradient ${i} shape`);
      for (let k = 0; k < (o.directions ?? 2); k++) {
        const v = randn(inputs[i]!.shape, 17 + 31 * i + k).data;
        const shifted = (sgn: number) => {
          const d = Float32Array.from(inputs[i]!.data, (x, j) => x + sgn * eps * v[j]!);
          return inputs.map((t, j) => (j === i ? f32(t.shape, d) : t));
        };
        const lp = ((await s.run(feeds(shifted(1)))).loss!.data as Float32Array)[0]!;
        const lm = ((await s.run(feeds(shifted(-1)))).loss!.data as Float32Array)[0]!;
        const fd = (lp - lm) / (2 * eps);
        let an = 0;
        for (let j = 0; j < gi.length; j++) an += gi[j]! * v[j]!;
        let gnorm = 0;
        for (let j = 0; j < gi.length; j++) gnorm += gi[j]! * gi[j]!;
        const scale = Math.sqrt(gnorm) + 1e-3;
        assert.ok(
          Math.abs(fd - an) <= rtol * scale + 1e-3,
          `${name}: input ${i} direction ${k}: finite difference ${fd} vs analytic ${an} (scale ${scale.toFixed(3)})`,
        );
      }
    }
  } finally {
    await s.release();
  }
}

/**
 * Second-order check: `checkGrad` of the first-order gradient ∂⟨f(x), R⟩/∂x₀ (R fixed random),
 * so that the VJP of the VJP graph is compared with finite differences of the first-order
 * gradient, with respect to every input.
 */
export async function checkGrad2(
  name: string,
  inputs: readonly HostTensor<'float32'>[],
  f: (g: Graph, xs: Value[]) => Value,
  o: GradCheckOptions = {},
): Promise<void> {
  await checkGrad(
    name,
    inputs,
    (g, xs) => {
      const y = f(g, xs);
      const r = randn(y.shape as number[], 555);
      const l = op.reduceSum(op.mul(y, op.constF32(g, r.shape, r.data)), y.shape.map((_, i) => i), false);
      return grad(l, [xs[0]!])[0]!;
    },
    o,
  );
}
