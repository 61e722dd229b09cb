/** Shared helpers of the benchmark scripts: timing, medians, machine description. */
import { cpus, totalmem } from 'node:os';
import { f32, type HostTensor } from '../src/tensor.js';
import { Rng } from '../src/random.js';

/** Median of a list of numbers. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs `fn` `warmup` times untimed, then `runs` times; returns the per-run milliseconds. */
export async function timeIt(fn: () => Promise<unknown>, runs: number, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return times;
}

/** Deterministic pseudo-random tensor in [−1, 1). */
export function rand(shape: readonly number[], seed = 1): HostTensor<'float32'> {
  const r = new Rng(seed);
  const n = shape.reduce((p, d) => p * d, 1);
  return f32(shape, Float32Array.from({ length: n }, () => 2 * r.uniform() - 1));
}

/** One line describing this machine, for benchmark reports. */
export function machine(): string {
  const c = cpus();
  return `${c[0]?.model ?? 'unknown CPU'} × ${c.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
}

/** Reads `--name value` style flags. */
export function flag(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}
