/**
 * Seeds for data sampling. Every sample draws from its own generator derived from
 * (seed, stream, position), so what a sample looks like depends only on the seed and
 * its place in the stream — not on which worker thread made it or in what order.
 */
import { Rng } from '../random.js';

/** Independent streams derived from one seed. */
export const STREAM = { sample: 1, batch: 2, epoch: 3, pool: 4, mask: 5 } as const;

function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * A generator whose 128-bit state is a hash of `seed` and `keys` (non-negative integers
 * below 2^53). Equal arguments give equal sequences; changing any argument gives an
 * unrelated one.
 */
export function deriveRng(seed: number, ...keys: number[]): Rng {
  const words: number[] = [];
  for (const k of [seed, ...keys]) {
    if (!Number.isSafeInteger(k) || k < 0) throw new Error(`deriveRng: seeds and keys must be non-negative integers, got ${k}`);
    words.push(k >>> 0, Math.floor(k / 4294967296) >>> 0);
  }
  const state = new Uint32Array(4);
  for (let lane = 0; lane < 4; lane++) {
    let h = fmix32((0x9e3779b9 * (lane + 1)) >>> 0);
    for (const w of words) h = fmix32((h ^ fmix32((w + Math.imul(lane + 1, 0x632be5ab)) >>> 0)) + 0x7f4a7c15 >>> 0);
    state[lane] = h;
  }
  if (state.every((v) => v === 0)) state[0] = 1;
  return new Rng(state);
}

/** Uniform in [lo, hi). */
export function uniform(rng: Rng, lo: number, hi: number): number {
  return lo + (hi - lo) * rng.uniform();
}

/** An integer in [lo, hi] (both ends included, like Python's random.randint). */
export function randint(rng: Rng, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

/** One element of `xs`, uniformly. */
export function choice<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)]!;
}

/** One element of `xs` with probabilities proportional to `weights` (like random.choices). */
export function weightedChoice<T>(rng: Rng, xs: readonly T[], weights: readonly number[]): T {
  if (xs.length !== weights.length || xs.length === 0) throw new Error('weightedChoice: need one weight per choice');
  const total = weights.reduce((a, b) => a + b, 0);
  if (!(total > 0)) throw new Error('weightedChoice: weights must sum to a positive number');
  let u = rng.uniform() * total;
  for (let i = 0; i < xs.length; i++) {
    u -= weights[i]!;
    if (u < 0) return xs[i]!;
  }
  return xs[xs.length - 1]!;
}

/** A uniformly random permutation of 0..n-1 (Fisher–Yates). */
export function permutation(rng: Rng, n: number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}
