/**
 * The parameters a DiffIR model declares, by official state_dict key: expected shapes for
 * strict checkpoint matching, parameter counts, and the checkpoint keys that are not
 * parameters of our graphs (the DDPM buffers and the `diffusion.model.*` /
 * `diffusion.condition.*` aliases of `denoise.*` / `condition.*`).
 */
import type { HostTensor, TensorMap } from '../tensor.js';
import { strictMatch } from '../weights/statedict.js';
import type { DiffIRConfig, Stage } from './config.js';
import { DDPM_BUFFERS } from './ddpm.js';
import { DiffIRS1, DiffIRS2 } from './diffir.js';

const cache = new Map<string, ReadonlyMap<string, readonly number[]>>();

/**
 * Expected shape of every learnable parameter of the stage-`stage` model, keyed by official
 * name, in declaration order. Read from the declared parameters of the built graph.
 */
export function expectedParamShapes(cfg: DiffIRConfig, stage: Stage): ReadonlyMap<string, readonly number[]> {
  const key = JSON.stringify([cfg, stage]);
  const hit = cache.get(key);
  if (hit) return hit;
  const g = stage === 1 ? DiffIRS1(cfg) : DiffIRS2(cfg);
  const shapes = new Map<string, readonly number[]>();
  for (const [name, p] of g.params) shapes.set(name, p.value.shape as readonly number[]);
  cache.set(key, shapes);
  return shapes;
}

/** Number of learnable scalars of the stage-`stage` model. */
export function parameterCount(cfg: DiffIRConfig, stage: Stage): number {
  let n = 0;
  for (const s of expectedParamShapes(cfg, stage).values()) n += s.reduce((p, d) => p * d, 1);
  return n;
}

/** Aliases the official DDPM module adds to S2 state dicts: `<alias prefix>` → `<own prefix>`. */
export const S2_ALIAS_PREFIXES: readonly (readonly [alias: string, target: string])[] = [
  ['diffusion.model.', 'denoise.'],
  ['diffusion.condition.', 'condition.'],
];

/**
 * Checkpoint keys that are not parameters of our graphs and are skipped when loading: for
 * stage 2 the 12 `diffusion.*` schedule buffers and the alias keys `diffusion.model.*` /
 * `diffusion.condition.*`; none for stage 1.
 */
export function ignoredCheckpointKeys(cfg: DiffIRConfig, stage: Stage): string[] {
  if (stage === 1) return [];
  const keys = Object.keys(DDPM_BUFFERS).map((b) => `diffusion.${b}`);
  for (const name of expectedParamShapes(cfg, stage).keys()) {
    for (const [alias, target] of S2_ALIAS_PREFIXES) if (name.startsWith(target)) keys.push(alias + name.slice(target.length));
  }
  return keys;
}

/** True for keys skipped by strict matching: everything under `diffusion.` (buffers and aliases). */
export function isIgnoredCheckpointKey(key: string): boolean {
  return key.startsWith('diffusion.');
}

/**
 * Checks a state dict strictly against the model (every parameter present with its shape, no
 * keys besides those and {@link ignoredCheckpointKeys}) and returns just the model's weights. Throws a
 * one-line error listing missing, unexpected and mismatched keys.
 */
export function selectWeights(sd: ReadonlyMap<string, HostTensor>, cfg: DiffIRConfig, stage: Stage, file = 'checkpoint'): TensorMap {
  const expected = expectedParamShapes(cfg, stage);
  const ignored = new Set(ignoredCheckpointKeys(cfg, stage));
  strictMatch(expected, sd, (k) => ignored.has(k), file);
  const out: TensorMap = new Map();
  for (const name of expected.keys()) {
    const t = sd.get(name)!;
    if (t.dtype !== 'float32') throw new Error(`${file}: parameter '${name}' has dtype ${t.dtype}, expected float32`);
    out.set(name, t);
  }
  return out;
}
