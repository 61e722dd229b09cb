/**
 * Image folders: listing image files in a stable order, and matching files of two
 * folders by name with one-line errors for files that have no partner.
 */
import { readdir, stat } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';

/** File extensions read as images. */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(['.png', '.jpg', '.jpeg', '.webp', '.tif', '.tiff', '.gif', '.avif', '.heic', '.heif']);

/** Options of {@link listImages}. */
export interface ListOptions {
  /** Descend into sub-folders (default true). */
  recursive?: boolean;
}

/**
 * Image files under `dir`, as paths relative to it with '/' separators, sorted by code
 * point (the same order on every platform). Hidden files and folders are skipped.
 * @throws one-line error when `dir` is missing, not a folder, or holds no images
 */
export async function listImages(dir: string, opts: ListOptions = {}): Promise<string[]> {
  let st;
  try {
    st = await stat(dir);
  } catch {
    throw new Error(`${dir}: folder not found`);
  }
  if (!st.isDirectory()) throw new Error(`${dir}: not a folder`);
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true });
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (opts.recursive ?? true) await walk(p);
      } else if ((e.isFile() || e.isSymbolicLink()) && IMAGE_EXTENSIONS.has(extname(e.name).toLowerCase())) {
        out.push(relative(dir, p).split(sep).join('/'));
      }
    }
  };
  await walk(dir);
  if (out.length === 0) throw new Error(`${dir}: no images found (looked for ${[...IMAGE_EXTENSIONS].join(' ')})`);
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A relative path without its extension: the name two folders are matched by. */
export function stem(rel: string): string {
  const e = extname(rel);
  return e ? rel.slice(0, -e.length) : rel;
}

function listSome(names: readonly string[]): string {
  const shown = names.slice(0, 3).join(', ');
  return names.length > 3 ? `${shown} and ${names.length - 3} more` : shown;
}

/**
 * Pairs every image of `a` with the image of `b` of the same name (extension ignored;
 * `alias` may map a `b` name to the name it stands for). Every file must have exactly
 * one partner.
 * @throws one-line error naming the orphans on either side, or names that are ambiguous
 */
export function matchByName(
  a: readonly string[],
  b: readonly string[],
  what: { a: string; b: string },
  alias: (bStem: string) => string = (s) => s,
): Map<string, string> {
  const byStem = new Map<string, string>();
  const dup: string[] = [];
  for (const f of b) {
    const k = alias(stem(f));
    if (byStem.has(k)) dup.push(f);
    else byStem.set(k, f);
  }
  if (dup.length) throw new Error(`${what.b}: more than one file for the same name (${listSome(dup)}); keep one per image`);
  const out = new Map<string, string>();
  const missing: string[] = [];
  for (const f of a) {
    const m = byStem.get(stem(f));
    if (m === undefined) missing.push(f);
    else {
      out.set(f, m);
      byStem.delete(stem(f));
    }
  }
  if (missing.length) throw new Error(`${what.a}: ${missing.length} file(s) without a partner in ${what.b}: ${listSome(missing)}`);
  if (byStem.size) throw new Error(`${what.b}: ${byStem.size} file(s) without a partner in ${what.a}: ${listSome([...byStem.values()])}`);
  return out;
}
