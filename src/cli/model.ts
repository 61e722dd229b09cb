/**
 * Loading the model for `restore` and `inpaint`: the --weights option (for `restore`,
 * the built-in default model when it is not given), the checkpoint with its detected task,
 * the checks that it is a stage-2 model for the right command, and the device.
 */
import type { ParsedOptions } from './args.js';
import { UserError, oneLine } from './errors.js';
import { DEFAULT_MODEL_NAME, defaultModelPath } from '../models/default-model.js';
import { deviceOption, memoryBudgetOption, positiveIntOption, seedOption, tileOption } from './options.js';
import { type DiffIRCheckpoint, loadCheckpoint } from '../models/checkpoint.js';
import { outputScale, padMultiple } from '../models/config.js';
import { Restorer } from '../restore/restore.js';
import { type Device, checkDevice } from '../runtime/session.js';

/** The --weights path; without it, `restore` uses the built-in default model and `inpaint` asks for weights. */
export function weightsOption(cmd: string, values: ParsedOptions): string {
  const w = values.weights;
  if (typeof w !== 'string' || w === '') {
    if (cmd === 'restore') {
      try {
        return defaultModelPath();
      } catch (e) {
        throw new UserError(`${cmd}: ${oneLine(e)}`, 2);
      }
    }
    throw new UserError(`${cmd}: no model given; pass --weights <net_g.pth|.safetensors> (an official DiffIR stage-2 inpainting checkpoint; the ${DEFAULT_MODEL_NAME} does not inpaint)`, 2);
  }
  return w;
}

/** What the model options resolve to. */
export interface ModelSetup {
  readonly weights: string;
  readonly device: Device;
  readonly threads?: number;
  readonly tile: number | 'auto';
  readonly memoryBudget?: number;
  readonly seed: number;
}

/** Parses the model options (before anything is loaded, so usage errors come first). */
export function modelSetup(cmd: string, values: ParsedOptions): ModelSetup {
  const weights = weightsOption(cmd, values);
  const threads = positiveIntOption(cmd, values, 'threads');
  const memoryBudget = memoryBudgetOption(cmd, values);
  return {
    weights,
    device: deviceOption(cmd, values),
    ...(threads !== undefined ? { threads } : {}),
    tile: tileOption(cmd, values),
    ...(memoryBudget !== undefined ? { memoryBudget } : {}),
    seed: seedOption(cmd, values),
  };
}

/** Human name of a checkpoint's task, e.g. `super-resolution ×4`. */
export function taskName(ck: DiffIRCheckpoint): string {
  const c = ck.config;
  return c.task === 'sr' ? `super-resolution ×${outputScale(c)}` : c.task === 'deblur' ? 'deblurring' : 'inpainting';
}

/**
 * Loads the checkpoint and makes the restorer, refusing stage-1 checkpoints and models of
 * the other command (inpainting weights in `restore`, the others in `inpaint`).
 */
export function loadModel(cmd: 'restore' | 'inpaint', s: ModelSetup): Restorer {
  checkDevice(s.device);
  const ck = loadCheckpoint(s.weights);
  const name = s.weights;
  if (ck.stage !== 2) {
    throw new UserError(`${name}: this is a stage-1 (DiffIRS1) checkpoint, which needs the ground truth to run; ${cmd} needs the stage-2 (DiffIRS2) checkpoint of the same model`);
  }
  if (cmd === 'restore' && ck.config.task === 'inpaint') {
    throw new UserError(`${name}: these are inpainting weights, which need a mask; use 'diffir inpaint <image> --mask <mask.png> -o <out.png> --weights ${s.weights}'`);
  }
  if (cmd === 'inpaint' && ck.config.task !== 'inpaint') {
    throw new UserError(`${name}: these are ${taskName(ck)} weights, not inpainting; use 'diffir restore <images> -o <folder> --weights ${s.weights}'`);
  }
  const m = padMultiple(ck.config);
  if (typeof s.tile === 'number' && s.tile !== 0 && s.tile % m !== 0) {
    const lo = Math.max(m, s.tile - (s.tile % m));
    throw new UserError(`${cmd}: --tile must be a multiple of ${m} for this model (${taskName(ck)}), got ${s.tile}; try ${lo} or ${lo + m}`, 2);
  }
  return Restorer.load(ck, { device: s.device, ...(s.threads !== undefined ? { threads: s.threads } : {}) });
}
