/**
 * The one place that routes `-opt <file>` of `diffir grad` / `diffir train` by the kind of file:
 * LaMa-style inpainting configs (with `training_model`, the DiffIR-inpainting trainers) go to
 * the inpainting commands; anything else is a BasicSR option file.
 */
import { isLamaConfig } from '../train/lama-config.js';

/** The `-opt` / `--opt` value of `argv` when it names a LaMa-style config, else null. */
export function lamaConfigOf(argv: readonly string[]): string | null {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if ((a === '-opt' || a === '--opt') && argv[i + 1]) return isLamaConfig(argv[i + 1]!) ? argv[i + 1]! : null;
    if (a.startsWith('--opt=')) return isLamaConfig(a.slice(6)) ? a.slice(6) : null;
  }
  return null;
}
