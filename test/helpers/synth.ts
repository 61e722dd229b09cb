/**
 * Synthesized fixture weights: the big frozen networks of the training-stage and metric
 * fixtures (VGG, AlexNet, Inception, ResNet50, the GAN generators) are stored in ../shared as
 * manifests, and `tools/synth-weights.mjs` writes the real `.pth` files from them. Tests call
 * {@link synthWeights}, which writes each variant once into a cache folder (never into the repo
 * or ../shared, which is read-only in CI) and returns its path.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** `../shared/fixtures` beside the repository (dist/test/helpers → repo root is three levels up). */
export const FIXTURES_DIR = fileURLToPath(new URL('../../../../shared/fixtures/', import.meta.url));

/** The generator script shipped with the fixtures. */
export const SYNTH_SCRIPT = join(FIXTURES_DIR, 'tools', 'synth-weights.mjs');

/** Options of one synthesized file; unset ones default to the manifest's own (`format`, `shared_storage`, `seed`). */
export interface SynthOptions {
  readonly format?: 'zip' | 'legacy';
  readonly sharedStorage?: boolean;
  readonly seed?: number;
  /** File name inside the returned file's folder (default: the manifest's name with `.pth`). */
  readonly fileName?: string;
}

/** Cache root: `$DIFFIR_TEST_CACHE`, else `<tmpdir>/diffir-test-cache`. */
export function synthCacheDir(): string {
  return process.env.DIFFIR_TEST_CACHE ?? join(tmpdir(), 'diffir-test-cache');
}

/**
 * Writes the `.pth` that a manifest describes (once per manifest content and options) and
 * returns its path. `manifest` is a path, absolute or relative to `../shared/fixtures`.
 */
export function synthWeights(manifest: string, options: SynthOptions = {}): string {
  const path = resolve(FIXTURES_DIR, manifest);
  const args: string[] = [];
  if (options.format !== undefined) args.push('--format', options.format);
  if (options.sharedStorage === true) args.push('--shared-storage');
  if (options.seed !== undefined) args.push('--seed', String(options.seed));
  const key = createHash('sha256').update(readFileSync(path)).update(readFileSync(SYNTH_SCRIPT)).update(args.join(' ')).digest('hex').slice(0, 16);
  const dir = join(synthCacheDir(), key);
  const out = join(dir, options.fileName ?? basename(path).replace(/\.manifest\.json$/, '.pth'));
  if (!existsSync(out)) {
    mkdirSync(dir, { recursive: true });
    // The script writes atomically, so concurrent test processes never see a partial file.
    execFileSync(process.execPath, [SYNTH_SCRIPT, path, out, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  }
  return out;
}

/** One tensor entry of a manifest. */
export interface ManifestTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly init?: unknown;
  readonly alias_of?: string;
}

/** Reads a manifest's JSON (path absolute or relative to `../shared/fixtures`). */
export function readManifest(manifest: string): { seed?: number; format?: string; shared_storage?: boolean; checkpoint?: Record<string, number>; tensors: ManifestTensor[] } {
  return JSON.parse(readFileSync(resolve(FIXTURES_DIR, manifest), 'utf8'));
}
