/**
 * The tiled executor's program: DIRformer's steps, with each run of local steps that hands its
 * maps only to itself fused into one chain. A chain runs as one ORT run per tile and keeps none
 * of its inner maps: the decoder's Upsample conv, PixelShuffle and skip concatenation (and the
 * 1×1 reduction after it) become one step, where the step-by-step program wrote and read back
 * three full maps (at 12 MP the level-1 ones are 2.3 GB each). Both the executor and the memory
 * plan follow this program, so they agree on which maps exist.
 */
import type { DiffIRConfig } from '../models/config.js';
import { dirformerProgram, PROGRAM_OUTPUT, stepInputs, type DIRformerStep } from '../models/dirformer.js';

/** A step of the program other than a transformer block. */
export type LocalStep = Exclude<DIRformerStep, { kind: 'block' }>;

/**
 * Local steps run as one: each inner output is read only by later steps of the chain. Only steps
 * that read maps from outside the chain may have a halo (a 3×3 conv), so every other step maps
 * its output tile to its inputs' tiles exactly and the chain needs no inner padding.
 */
export interface ChainStep {
  readonly kind: 'chain';
  readonly steps: readonly LocalStep[];
  /** Maps the chain reads from outside, each read by one of its steps. */
  readonly inputs: readonly string[];
  readonly output: string;
}

/** A step of the tiled program. */
export type TiledStep = DIRformerStep | ChainStep;

/** The maps a step of the tiled program reads. */
export function tiledInputs(s: TiledStep): readonly string[] {
  return s.kind === 'chain' ? s.inputs : stepInputs(s);
}

/**
 * Runs chain `s` over values of any kind (channel counts, graph values): `inputs` are its external
 * inputs' values in order, `apply` one step on its inputs' values; returns the chain's output value.
 */
export function foldChain<T>(s: ChainStep, inputs: readonly T[], apply: (t: LocalStep, ins: T[]) => T): T {
  const vals = new Map<string, T>(s.inputs.map((n, k) => [n, inputs[k] as T]));
  for (const t of s.steps) vals.set(t.output, apply(t, stepInputs(t).map((n) => vals.get(n)!)));
  return vals.get(s.output)!;
}

/** Pixels of halo a local step needs around its output tile on each side (a conv's k − 1 over 2). */
export function localHalo(s: LocalStep): number {
  return s.kind === 'conv' ? (s.k - 1) / 2 : 0;
}

/** Halo of input `k` of step `s` around its tile (in that input's pixels): a block's 2, a chain's from the step that reads it. */
export function inputHalo(s: TiledStep, k: number): number {
  if (s.kind === 'block') return 2;
  if (s.kind !== 'chain') return localHalo(s);
  const name = s.inputs[k]!;
  return localHalo(s.steps.find((t) => stepInputs(t).includes(name))!);
}

/** The chain of `steps[i..j]` (its external inputs in order of first use), or null when those steps cannot run as one. */
function chainOf(steps: readonly DIRformerStep[], i: number, j: number): ChainStep | null {
  const inner = new Set<string>();
  const inputs: string[] = [];
  const part: LocalStep[] = [];
  for (let m = i; m <= j; m++) {
    const s = steps[m]!;
    if (s.kind === 'block') return null;
    const ins = stepInputs(s);
    // A step with a halo reads only maps from outside, each one only it reads.
    if (localHalo(s) > 0 && ins.some((n) => inner.has(n))) return null;
    for (const n of ins) {
      if (inner.has(n)) continue;
      if (inputs.includes(n)) return null;
      inputs.push(n);
    }
    part.push(s);
    inner.add(s.output);
  }
  // Every inner map is read inside the chain only.
  for (let m = i; m < j; m++) {
    const out = steps[m]!.output;
    if (out === PROGRAM_OUTPUT || steps.some((t, k) => k > j && stepInputs(t).includes(out))) return null;
  }
  return { kind: 'chain', steps: part, inputs, output: steps[j]!.output };
}

/** DIRformer's program for the tiled executor: blocks as they are, runs of local steps fused where they can be. */
export function tiledProgram(cfg: DiffIRConfig): TiledStep[] {
  const steps = dirformerProgram(cfg);
  const out: TiledStep[] = [];
  for (let i = 0; i < steps.length; ) {
    const s = steps[i]!;
    // The longest run of local steps from i that forms a chain.
    let chain: ChainStep | null = null;
    if (s.kind !== 'block') for (let j = i + 1; j < steps.length && steps[j]!.kind !== 'block'; j++) chain = chainOf(steps, i, j) ?? chain;
    out.push(chain ?? s);
    i += chain ? chain.steps.length : 1;
  }
  return out;
}

/**
 * Whether step `s` can take map `name` from tile windows of its own grid (tile plus a 2-pixel
 * halo): a block, or a local step or chain that reads it at its own resolution with a halo of at
 * most 2 (deblur's head conv after the last refinement block).
 */
export function readsWindows(s: TiledStep, name: string, scale: (map: string) => number): boolean {
  if (s.kind === 'block') return s.input === name;
  const k = tiledInputs(s).indexOf(name);
  return k >= 0 && scale(name) === scale(s.output) && inputHalo(s, k) <= 2;
}
