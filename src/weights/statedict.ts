/**
 * State dicts from checkpoints: picking the right dict out of a BasicSR / Lightning / plain
 * checkpoint, normalising key prefixes, and strict key / shape matching against a model.
 */
import { extName, readFile } from '#host';
import type { HostTensor, TensorMap } from '../tensor.js';
import { isHostTensor } from './pickle.js';
import type { PthValue } from './pickle.js';
import { loadPth } from './pth.js';
import type { LoadPthOptions } from './pth.js';
import { parseSafetensors } from './safetensors.js';
import { isZip } from './zip.js';
import { sanitize } from '../errors.js';

/** Top-level keys tried in order when unwrapping a checkpoint. */
export const STATE_DICT_KEYS: readonly string[] = ['params_ema', 'params', 'state_dict'];

/** Options for {@link extractStateDict}. */
export interface ExtractStateDictOptions {
  /** Use this top-level key instead of the automatic choice (e.g. 'params' to skip the EMA weights). */
  readonly key?: string;
}

function listKeys(keys: Iterable<string>, max = 8): string {
  const all = [...keys];
  const shown = all.slice(0, max).map((k) => `'${sanitize(k)}'`);
  return all.length > max ? `${shown.join(', ')}, … and ${all.length - max} more` : shown.join(', ') || '(none)';
}

function stripModule(k: string): string {
  while (k.startsWith('module.')) k = k.slice('module.'.length);
  return k;
}

/**
 * Normalises state dict keys: strips DataParallel `module.` prefixes, and, when any key is under
 * `generator.` (Lightning inpainting checkpoints, which also hold a discriminator and losses),
 * keeps only the `generator.*` keys with that prefix removed. Throws if two keys collide.
 */
export function normalizeStateDictKeys(sd: ReadonlyMap<string, HostTensor>, file = 'checkpoint'): TensorMap {
  const name = sanitize(file);
  const hasGenerator = [...sd.keys()].some((k) => stripModule(k).startsWith('generator.'));
  const out: TensorMap = new Map();
  for (const [k, t] of sd) {
    let s = stripModule(k);
    if (hasGenerator) {
      if (!s.startsWith('generator.')) continue;
      s = stripModule(s.slice('generator.'.length));
    }
    if (out.has(s)) throw new Error(`${name}: keys collide on '${sanitize(s)}' after removing module./generator. prefixes`);
    out.set(s, t);
  }
  return out;
}

/**
 * Finds the model weights in a loaded checkpoint: `params_ema` if present, else `params`, else
 * `state_dict`, else the top-level dict itself when all its values are tensors; then
 * normalises key prefixes (see {@link normalizeStateDictKeys}). Throws a one-line Error naming
 * `file` when no state dict can be found or it holds something other than tensors.
 */
export function extractStateDict(obj: PthValue, file: string, options: ExtractStateDictOptions = {}): TensorMap {
  const name = sanitize(file);
  if (!(obj instanceof Map)) throw new Error(`${name}: checkpoint holds ${isHostTensor(obj) ? 'a single tensor' : 'no dict'}, so it has no state dict`);
  let where: string;
  let sd: PthValue | undefined;
  if (options.key !== undefined) {
    where = `'${sanitize(options.key)}'`;
    sd = obj.get(options.key);
    if (sd === undefined) throw new Error(`${name}: checkpoint has no key '${sanitize(options.key)}' (top-level keys: ${listKeys(obj.keys())})`);
  } else {
    const key = STATE_DICT_KEYS.find((k) => obj.get(k) instanceof Map);
    if (key !== undefined) {
      where = `'${key}'`;
      sd = obj.get(key);
    } else {
      where = 'the top-level dict';
      sd = obj;
      const bad = [...obj.entries()].find(([, v]) => !isHostTensor(v));
      if (bad || obj.size === 0) {
        throw new Error(
          `${name}: no state dict found (no ${STATE_DICT_KEYS.join('/')} key, and the top-level values are not all tensors; top-level keys: ${listKeys(obj.keys())})`,
        );
      }
    }
  }
  if (!(sd instanceof Map)) throw new Error(`${name}: ${where} is not a dict of tensors`);
  const tensors = new Map<string, HostTensor>();
  for (const [k, v] of sd) {
    if (!isHostTensor(v)) throw new Error(`${name}: ${where} entry '${sanitize(k)}' is not a tensor`);
    tensors.set(k, v);
  }
  return normalizeStateDictKeys(tensors, file);
}

/** Options for {@link loadStateDict}. */
export interface LoadStateDictOptions extends LoadPthOptions, ExtractStateDictOptions {}

function looksLikeTorch(bytes: Uint8Array): boolean {
  return isZip(bytes) || (bytes.length >= 3 && bytes[0] === 0x80 && bytes[1] === 0x02 && bytes[2] === 0x8a);
}

/**
 * Loads model weights from a checkpoint file: `.safetensors` directly, `.pth` / `.pt` / `.ckpt`
 * (and other names, by content) through the torch reader and {@link extractStateDict}.
 */
export function loadStateDict(path: string, options: LoadStateDictOptions = {}): TensorMap {
  const name = options.name ?? path;
  let bytes: Uint8Array;
  try {
    bytes = readFile(path);
  } catch (err) {
    throw new Error(`${sanitize(name)}: cannot read checkpoint (${sanitize(err instanceof Error ? err.message : String(err))})`);
  }
  return parseStateDict(bytes, path, options);
}

/**
 * Model weights from the bytes of a checkpoint file (e.g. one dropped into a web page): the
 * format comes from `fileName`'s extension, else from the content, as {@link loadStateDict}.
 */
export function parseStateDict(bytes: Uint8Array, fileName: string, options: LoadStateDictOptions = {}): TensorMap {
  const name = options.name ?? fileName;
  const ext = extName(fileName).toLowerCase();
  const torchExt = ['.pth', '.pt', '.ckpt', '.bin', '.pkl', '.tar'].includes(ext);
  if (ext === '.safetensors' || (!torchExt && !looksLikeTorch(bytes))) {
    const { tensors } = parseSafetensors(bytes, name, options.maxBytes !== undefined ? { maxBytes: options.maxBytes } : {});
    if (options.key !== undefined) {
      const prefix = `${options.key}.`;
      const sub: TensorMap = new Map();
      for (const [k, t] of tensors) if (k.startsWith(prefix)) sub.set(k.slice(prefix.length), t);
      if (sub.size === 0) throw new Error(`${sanitize(name)}: no tensors under '${sanitize(prefix)}'`);
      return normalizeStateDictKeys(sub, name);
    }
    return normalizeStateDictKeys(tensors, name);
  }
  return extractStateDict(loadPth(bytes, { ...options, name }), name, options);
}

/** Differences between the parameters a model expects and those a checkpoint provides. */
export interface StateDictDiff {
  readonly missing: readonly string[];
  readonly unexpected: readonly string[];
  readonly mismatched: readonly { readonly key: string; readonly expected: readonly number[]; readonly got: readonly number[] }[];
}

/** Compares expected shapes with a state dict; keys for which `ignore` returns true are skipped. */
export function diffStateDict(
  expected: ReadonlyMap<string, readonly number[]>,
  got: ReadonlyMap<string, HostTensor>,
  ignore?: (key: string) => boolean,
): StateDictDiff {
  const skip = ignore ?? (() => false);
  const missing: string[] = [];
  const mismatched: { key: string; expected: readonly number[]; got: readonly number[] }[] = [];
  for (const [k, shape] of expected) {
    if (skip(k)) continue;
    const t = got.get(k);
    if (!t) missing.push(k);
    else if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) mismatched.push({ key: k, expected: shape, got: t.shape });
  }
  const unexpected = [...got.keys()].filter((k) => !expected.has(k) && !skip(k));
  return { missing, unexpected, mismatched };
}

/** Formats a non-empty diff as one line (long lists truncated), e.g. for an error message. */
export function formatStateDictDiff(diff: StateDictDiff, file = 'checkpoint'): string {
  const parts: string[] = [];
  if (diff.missing.length) parts.push(`${diff.missing.length} missing key(s): ${listKeys(diff.missing)}`);
  if (diff.unexpected.length) parts.push(`${diff.unexpected.length} unexpected key(s): ${listKeys(diff.unexpected)}`);
  if (diff.mismatched.length) {
    const shown = diff.mismatched
      .slice(0, 8)
      .map((m) => `'${sanitize(m.key)}' model [${m.expected.join(', ')}] vs checkpoint [${m.got.join(', ')}]`);
    const more = diff.mismatched.length > 8 ? `, … and ${diff.mismatched.length - 8} more` : '';
    parts.push(`${diff.mismatched.length} shape mismatch(es): ${shown.join(', ')}${more}`);
  }
  return `${sanitize(file)}: state dict does not match the model: ${parts.join('; ') || 'no differences'}`;
}

/**
 * Checks that a state dict has exactly the expected keys with the expected shapes; throws a
 * one-line Error listing missing keys, unexpected keys and shape mismatches otherwise.
 */
export function strictMatch(
  expected: ReadonlyMap<string, readonly number[]>,
  got: ReadonlyMap<string, HostTensor>,
  ignore?: (key: string) => boolean,
  file = 'checkpoint',
): void {
  const diff = diffStateDict(expected, got, ignore);
  if (diff.missing.length || diff.unexpected.length || diff.mismatched.length) throw new Error(formatStateDictDiff(diff, file));
}
