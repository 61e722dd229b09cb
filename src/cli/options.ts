/**
 * Option values shared by `restore`, `inpaint` and `export-onnx`: tile sizes, memory
 * budgets, devices, thread counts, output formats and quality, each parsed with a
 * one-line usage error that names the option.
 */
import { type OptionSpec, type ParsedOptions, intOption } from './args.js';
import { UserError } from './errors.js';
import type { Device } from '../runtime/session.js';

/** The options every image command takes, for the --help text. */
export function modelOptions(): Record<string, OptionSpec> {
  return {
    weights: { type: 'string', short: 'w', arg: 'file', help: 'stage-2 DiffIR checkpoint (.pth or .safetensors); task and scale are detected from it (restore: default is the built-in small real-world ×4 model)' },
    tile: { type: 'string', arg: 'n|auto', default: 'auto', help: 'tile side in pixels (exact tiled run, a multiple of 8, 16 or 32 by model); auto tiles only when the memory budget needs it; 0 never tiles' },
    'memory-budget': { type: 'string', arg: 'size', help: 'memory the tiled run may plan for, e.g. 4G, 512M; feature maps beyond it go to temporary files (TMPDIR) (default: half the available memory)' },
    seed: { type: 'string', arg: 'n', default: '0', help: "seed of the diffusion's initial noise (same seed, same result)" },
    threads: { type: 'string', arg: 'n', help: 'ONNX Runtime threads (default: all cores)' },
    device: { type: 'string', arg: 'cpu|cuda|webgpu', default: 'cpu', help: 'ONNX Runtime execution provider' },
  };
}

/** `--tile`: 'auto' or a non-negative integer (0 = never tile). */
export function tileOption(cmd: string, values: ParsedOptions): number | 'auto' {
  const v = values.tile;
  if (v === undefined || v === 'auto') return 'auto';
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isInteger(n) || n < 0) {
    throw new UserError(`${cmd}: --tile must be 'auto', 0 (never tile) or a tile side in pixels, got '${String(v)}'`, 2);
  }
  return n;
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** Parses a size like `4G`, `512M`, `1.5GB`, `800MiB` or a plain byte count (binary units). */
export function parseBytes(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) return null;
  const n = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : null;
}

/** `--memory-budget`, in bytes. */
export function memoryBudgetOption(cmd: string, values: ParsedOptions): number | undefined {
  const v = values['memory-budget'];
  if (v === undefined) return undefined;
  const n = typeof v === 'string' ? parseBytes(v) : null;
  if (n === null) throw new UserError(`${cmd}: --memory-budget must be a size like 4G, 512M or 1.5GB, got '${String(v)}'`, 2);
  return n;
}

/** A positive integer option (`--threads`, `--quality`), optionally bounded. */
export function positiveIntOption(cmd: string, values: ParsedOptions, name: string, max?: number): number | undefined {
  const n = intOption(cmd, values, name);
  if (n === undefined) return undefined;
  if (n < 1 || (max !== undefined && n > max)) {
    throw new UserError(`${cmd}: --${name} must be an integer from 1${max !== undefined ? ` to ${max}` : ' up'}, got '${String(values[name])}'`, 2);
  }
  return n;
}

/** `--seed`: a non-negative integer (default 0). */
export function seedOption(cmd: string, values: ParsedOptions): number {
  const n = intOption(cmd, values, 'seed') ?? 0;
  if (!Number.isSafeInteger(n)) throw new UserError(`${cmd}: --seed must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}`, 2);
  return n;
}

/** `--device`. Availability in this onnxruntime-node build is checked when the model loads. */
export function deviceOption(cmd: string, values: ParsedOptions): Device {
  const v = values.device ?? 'cpu';
  if (v !== 'cpu' && v !== 'cuda' && v !== 'webgpu') throw new UserError(`${cmd}: --device must be cpu, cuda or webgpu, got '${String(v)}'`, 2);
  return v;
}

/** Output formats the commands write, with the extension each gets. */
export const FORMAT_EXT = { png: '.png', jpg: '.jpg', webp: '.webp', tiff: '.tif' } as const;
export type OutputFormat = keyof typeof FORMAT_EXT;

/** The format saveImage writes for an extension (case-insensitive), or undefined. */
export function formatOfExtension(ext: string): OutputFormat | undefined {
  switch (ext.toLowerCase()) {
    case '.png':
      return 'png';
    case '.jpg':
    case '.jpeg':
      return 'jpg';
    case '.webp':
      return 'webp';
    case '.tif':
    case '.tiff':
      return 'tiff';
    default:
      return undefined;
  }
}

/** `--format`: an output format or 'same' (the input's, PNG for inputs that cannot be written back). */
export function formatOption(cmd: string, values: ParsedOptions): OutputFormat | 'same' {
  const v = typeof values.format === 'string' ? values.format.toLowerCase() : values.format;
  if (v === undefined || v === 'same') return 'same';
  if (v === 'jpeg') return 'jpg';
  if (v === 'tif') return 'tiff';
  if (v === 'png' || v === 'jpg' || v === 'webp' || v === 'tiff') return v;
  throw new UserError(`${cmd}: --format must be png, jpg, webp, tiff or same, got '${String(values.format)}'`, 2);
}
