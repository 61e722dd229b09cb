/**
 * The built-in default model: a small real-world ×4 super-resolution DiffIR (stage 2,
 * dim 32, v4) trained by this project's own trainer on free photographs
 * (options/default/, scripts/default-model/). `diffir restore` uses it when no weights
 * are given.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Path of the bundled weights (safetensors, official key names). */
export const DEFAULT_MODEL_PATH = fileURLToPath(new URL('../../../models/default-realsr-x4.safetensors', import.meta.url));

/** One line describing the default model, for messages. */
export const DEFAULT_MODEL_NAME = 'built-in default model (small real-world ×4 super-resolution)';

/** The default model's path, or an error saying how to get weights when it is missing. */
export function defaultModelPath(): string {
  if (!existsSync(DEFAULT_MODEL_PATH)) throw new Error(`the ${DEFAULT_MODEL_NAME} is missing from this installation (${DEFAULT_MODEL_PATH}); pass --weights <net_g.pth>`);
  return DEFAULT_MODEL_PATH;
}
