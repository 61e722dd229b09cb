/**
 * Turning the command line's files, folders and globs into the list of images to process.
 *
 * - a file is taken as is (whatever its extension: a non-image fails when it is decoded);
 * - a folder gives the image files directly inside it (not recursive; other files and
 *   hidden files are skipped), in natural order (img2 before img10);
 * - a glob (`*` and `?` in the last path component, e.g. `'photos/*.jpg'`, for shells that
 *   do not expand it) gives the matching image files in its folder. Node 20 has no
 *   `fs.glob`, so the matching is done here; wildcards in folder names are refused.
 * The same file reached twice is kept once.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { UserError } from './errors.js';
import { errCode } from '../errors.js';

/** Extensions of the files a folder or glob expands to (what the decoder reads). */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.tif', '.tiff', '.gif', '.avif'] as const;

/** Whether `name` has an image extension (case-insensitive). */
export function isImageName(name: string): boolean {
  return (IMAGE_EXTENSIONS as readonly string[]).includes(extname(name).toLowerCase());
}

/** One image to process. */
export interface InputFile {
  /** The path as the user will recognise it (the argument, or folder/glob + name). */
  readonly path: string;
  /** Named on the command line itself, rather than found in a folder or by a glob. */
  readonly explicit: boolean;
}

/** An argument that gave nothing to process, with the reason. */
export interface InputProblem {
  readonly arg: string;
  readonly reason: string;
}

/** Whether an argument has glob wildcards. */
export function hasWildcard(s: string): boolean {
  return /[*?]/.test(s);
}

/**
 * Whether `name` matches the basename pattern: `*` any run of characters, `?` one character,
 * anything else itself; a leading dot must be matched explicitly, as in shells. Matched in
 * O(pattern × name) time at worst by the two-pointer method (backtracking only to the last
 * `*`), never by a regular expression that can backtrack exponentially on long names.
 */
export function globMatch(pattern: string, name: string, caseInsensitive = process.platform === 'win32' || process.platform === 'darwin'): boolean {
  if (name.startsWith('.') && !pattern.startsWith('.')) return false;
  const fold = (s: string): string[] => Array.from(caseInsensitive ? s.toLowerCase() : s);
  const p = fold(pattern);
  const n = fold(name);
  let i = 0;
  let j = 0;
  let star = -1;
  let resume = 0;
  while (j < n.length) {
    if (i < p.length && p[i] !== '*' && (p[i] === '?' || p[i] === n[j])) {
      i++;
      j++;
    } else if (i < p.length && p[i] === '*') {
      star = i++;
      resume = j;
    } else if (star >= 0) {
      i = star + 1;
      j = ++resume;
    } else {
      return false;
    }
  }
  while (i < p.length && p[i] === '*') i++;
  return i === p.length;
}

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });

async function imageFilesIn(dir: string, keep: (name: string) => boolean): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names: string[] = [];
  for (const e of entries) {
    if (!keep(e.name) || !isImageName(e.name)) continue;
    let file = e.isFile();
    if (e.isSymbolicLink()) file = (await stat(join(dir, e.name)).catch(() => null))?.isFile() ?? false;
    if (file) names.push(e.name);
  }
  return names.sort(collator.compare).map((n) => (dir === '.' ? n : join(dir, n)));
}

function folderReason(e: unknown): string {
  switch (errCode(e)) {
    case 'ENOENT':
      return 'folder not found';
    case 'ENOTDIR':
      return 'not a folder';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    default:
      return `cannot list the folder (${errCode(e) ?? (e instanceof Error ? e.message.split('\n')[0] : String(e))})`;
  }
}

const EXT_LIST = IMAGE_EXTENSIONS.join(' ');

/** Expands the command line's arguments into the images to process, and the arguments that gave none. */
export async function expandInputs(args: readonly string[]): Promise<{ files: InputFile[]; problems: InputProblem[] }> {
  const files: InputFile[] = [];
  const problems: InputProblem[] = [];
  const seen = new Set<string>();
  const add = (path: string, explicit: boolean) => {
    const key = resolve(path);
    if (seen.has(key)) return;
    seen.add(key);
    files.push({ path, explicit });
  };
  for (const arg of args) {
    const st = await stat(arg).catch(() => null);
    if (st?.isDirectory()) {
      try {
        const found = await imageFilesIn(arg, (n) => !n.startsWith('.'));
        if (found.length === 0) problems.push({ arg, reason: `no image files in this folder (it is not searched recursively; image extensions: ${EXT_LIST})` });
        for (const f of found) add(f, false);
      } catch (e) {
        problems.push({ arg, reason: folderReason(e) });
      }
    } else if (!st && hasWildcard(basename(arg))) {
      const dir = dirname(arg);
      if (hasWildcard(dir)) throw new UserError(`'${arg}': wildcards are supported in file names only, not in folder names`, 2);
      const pattern = basename(arg);
      try {
        const found = await imageFilesIn(dir, (n) => globMatch(pattern, n));
        if (found.length === 0) problems.push({ arg, reason: `no image files match (image extensions: ${EXT_LIST})` });
        for (const f of found) add(f, false);
      } catch (e) {
        problems.push({ arg, reason: `${dir}: ${folderReason(e)}` });
      }
    } else {
      // A file, or a missing path: decoding reports what is wrong with it.
      add(arg, true);
    }
  }
  return { files, problems };
}
