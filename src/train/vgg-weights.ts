/**
 * The torchvision VGG19 weights of the perceptual loss, found where BasicSR and torchvision find
 * them, never downloaded: `perceptual_opt.vgg_weights` when given, else
 * `experiments/pretrained_models/vgg19-dcbb9e9d.pth` under the working directory (BasicSR's
 * VGG_PRETRAIN_PATH), else `$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth` (torchvision's cache;
 * TORCH_HOME defaults to `$XDG_CACHE_HOME/torch`, i.e. `~/.cache/torch`). Only the `features.*`
 * the loss uses are read; a real file's `classifier.*` keys are ignored.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { vggWeightShapes, type VggType } from '../models/vgg.js';
import type { TensorMap } from '../tensor.js';
import { loadStateDict } from '../weights/statedict.js';
import { DataError } from './data.js';

/** torchvision's file name of the ImageNet VGG19 weights. */
export const VGG19_FILE = 'vgg19-dcbb9e9d.pth';
/** Where torchvision downloads it from (for the error message; nothing is downloaded here). */
export const VGG19_URL = 'https://download.pytorch.org/models/vgg19-dcbb9e9d.pth';

/** The two places looked in, in order. */
export function vggSearchPaths(cwd: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const torchHome = env.TORCH_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'torch');
  return [resolve(cwd, 'experiments/pretrained_models', VGG19_FILE), resolve(torchHome, 'hub/checkpoints', VGG19_FILE)];
}

/** The VGG19 file to use, or a one-line error naming the file, both places and where to get it. */
export function findVggWeights(explicit: string | null, cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) {
    if (!existsSync(explicit)) throw new DataError(`train.perceptual_opt.vgg_weights: ${explicit} does not exist`, 'train.perceptual_opt.vgg_weights');
    return explicit;
  }
  const places = vggSearchPaths(cwd, env);
  const hit = places.find((p) => existsSync(p));
  if (hit) return hit;
  throw new DataError(
    `the perceptual loss needs torchvision's ImageNet VGG19 weights ${VGG19_FILE}, found in neither ${places[0]} nor ${places[1]}; ` +
      `get it from ${VGG19_URL} (what torchvision downloads) and put it in one of those places, or name it with train.perceptual_opt.vgg_weights`,
    'train.perceptual_opt',
  );
}

/** Loads the `features.*` weights up to `lastLayer`, checking their shapes. */
export function loadVggFeatures(file: string, type: VggType, lastLayer: string): TensorMap {
  const sd = loadStateDict(file);
  const out: TensorMap = new Map();
  for (const [k, shape] of vggWeightShapes(type, lastLayer)) {
    const t = sd.get(k);
    if (!t) throw new DataError(`${file}: not a torchvision ${type} file (no '${k}')`, 'train.perceptual_opt');
    if (t.dtype !== 'float32' || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new DataError(`${file}: '${k}' has shape [${t.shape.join(', ')}] (${t.dtype}), a torchvision ${type} has [${shape.join(', ')}] (float32)`, 'train.perceptual_opt');
    }
    out.set(k, t);
  }
  return out;
}
