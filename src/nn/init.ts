/**
 * Initial parameter values following PyTorch's defaults for the layers DiffIR uses, chosen
 * from each parameter's official name and shape: Conv2d / Linear weights and biases
 * U(−1/√fan_in, 1/√fan_in) (kaiming_uniform with a = √5), LayerNorm weights 1 and biases 0,
 * attention temperatures 1. Deterministic for a given seed.
 */
import type { Graph } from '../graph/ir.js';
import { type TensorMap, f32, numel } from '../tensor.js';
import { Rng } from '../random.js';

/** A seeded uniform [0, 1) generator. */
export function seededRandom(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.uniform();
}

function fanIn(shape: readonly number[]): number {
  return shape.slice(1).reduce((p, d) => p * d, 1);
}

/**
 * PyTorch-default initial values for every parameter declared in `g` (by official name).
 * Parameters are visited in declaration order, so the values depend only on the graph and seed.
 */
export function initParams(g: Graph, seed = 0): TensorMap {
  const rand = seededRandom(seed);
  const shapes = new Map<string, readonly number[]>();
  for (const [name, p] of g.params) shapes.set(name, p.value.shape as readonly number[]);
  const out: TensorMap = new Map();
  for (const [name, shape] of shapes) {
    const n = numel(shape);
    const data = new Float32Array(n);
    const stem = name.slice(0, name.lastIndexOf('.'));
    const leaf = name.slice(name.lastIndexOf('.') + 1);
    const weight = shapes.get(`${stem}.weight`);
    const isNorm = weight !== undefined && weight.length === 1;
    if (leaf === 'temperature' || (leaf === 'weight' && isNorm)) data.fill(1);
    else if (leaf === 'bias' && isNorm) data.fill(0);
    else {
      const fan = leaf === 'bias' ? (weight ? fanIn(weight) : n) : fanIn(shape);
      const bound = 1 / Math.sqrt(Math.max(fan, 1));
      for (let i = 0; i < n; i++) data[i] = (2 * rand() - 1) * bound;
    }
    out.set(name, f32(shape, data));
  }
  return out;
}
