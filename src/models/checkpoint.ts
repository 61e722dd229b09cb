/**
 * Loading a DiffIR checkpoint as users have it: read the file (official `.pth` or
 * safetensors), detect the architecture from the weights alone, and keep exactly
 * the model's parameters (strict: missing, unexpected or mis-shaped keys are errors).
 */
import { baseName } from '#host';
import { loadStateDict, parseStateDict } from '../weights/statedict.js';
import type { TensorMap } from '../tensor.js';
import type { DiffIRConfig, PresetName, Stage } from './config.js';
import { detectArchitecture } from './detect.js';
import { parameterCount, selectWeights } from './params.js';

/** A loaded checkpoint: configuration, stage and weights keyed by official names. */
export interface DiffIRCheckpoint {
  readonly file: string;
  readonly config: DiffIRConfig;
  readonly stage: Stage;
  readonly presets: readonly PresetName[];
  readonly weights: TensorMap;
  readonly parameterCount: number;
}

/** Loads and validates a DiffIR checkpoint. Errors are one line naming the file. */
export function loadCheckpoint(path: string): DiffIRCheckpoint {
  const name = baseName(path);
  return checkpointFrom(loadStateDict(path, { name }), path, name);
}

/** A checkpoint from the bytes of a `.pth` or `.safetensors` file named `fileName` (browsers, uploads). */
export function parseCheckpoint(bytes: Uint8Array, fileName: string): DiffIRCheckpoint {
  const name = baseName(fileName);
  return checkpointFrom(parseStateDict(bytes, fileName, { name }), fileName, name);
}

function checkpointFrom(sd: TensorMap, file: string, name: string): DiffIRCheckpoint {
  const { config, stage, presets } = detectArchitecture(sd, name);
  const weights = selectWeights(sd, config, stage, name);
  return { file, config, stage, presets, weights, parameterCount: parameterCount(config, stage) };
}
