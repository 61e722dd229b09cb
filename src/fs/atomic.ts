/**
 * Atomic file writes: data goes to a temporary file beside the target
 * (`.<name>.<pid>.<random>.tmp`), is flushed, then moved into place, so that nobody ever
 * sees a half-written file and an interrupted write leaves the target as it was. Without
 * `overwrite`, the move is a hard link, which fails if the target appeared meanwhile, so an
 * existing file is never replaced.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { link, lstat, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { errCode, firstLine } from '../errors.js';

/** The temporary name used for writing `path` (see {@link isTempFor}). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/** True when `name` (a file name in the target's folder) is this process's temporary file for `path`. */
export function isTempFor(path: string, name: string): boolean {
  return name.startsWith(`.${basename(path)}.${process.pid}.`) && name.endsWith('.tmp');
}

/** A one-line error for a folder that cannot be written. */
export function folderError(dir: string, e: unknown): Error {
  switch (errCode(e)) {
    case 'ENOENT':
      return new Error(`${dir}: output folder does not exist`, { cause: e });
    case 'ENOTDIR':
      return new Error(`${dir}: output path is not a folder`, { cause: e });
    case 'EACCES':
    case 'EPERM':
      return new Error(`${dir}: output folder is not writable (permission denied)`, { cause: e });
    case 'EROFS':
      return new Error(`${dir}: output folder is not writable (read-only file system)`, { cause: e });
    case 'ENOSPC':
      return new Error(`${dir}: no space left on the device`, { cause: e });
    default:
      return new Error(`${dir}: cannot write to the output folder (${errCode(e) ?? firstLine(e)})`, { cause: e });
  }
}

/** The error for an existing output without --overwrite. */
export function existsError(path: string): Error {
  return new Error(`${path}: file already exists; pass --overwrite to replace it`);
}

/** True when something (file, folder, link) is at `path`. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (e) {
    if (errCode(e) === 'ENOENT') return false;
    throw e;
  }
}

/** Writes `data` to `path` atomically; without `overwrite` an existing `path` is an error and is left untouched. */
export async function writeFileAtomic(path: string, data: Uint8Array, overwrite: boolean): Promise<void> {
  const dir = dirname(path);
  const tmp = tempPathFor(path);
  let fh;
  try {
    fh = await open(tmp, 'wx', 0o666);
  } catch (e) {
    if (errCode(e) === 'ENOENT') throw new Error(`${dir}: output folder is not writable (cannot create files there)`, { cause: e });
    throw folderError(dir, e);
  }
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } catch (e) {
      throw errCode(e) === 'ENOSPC' ? folderError(dir, e) : new Error(`${path}: write failed (${errCode(e) ?? firstLine(e)})`, { cause: e });
    } finally {
      await fh.close();
    }
    if (overwrite) {
      try {
        await rename(tmp, path);
      } catch (e) {
        const code = errCode(e);
        if (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST') throw new Error(`${path}: is a folder, cannot replace it with a file`, { cause: e });
        throw new Error(`${path}: could not move the written file into place (${code ?? firstLine(e)})`, { cause: e });
      }
      return;
    }
    try {
      await link(tmp, path);
    } catch (e) {
      const code = errCode(e);
      if (code === 'EEXIST') throw existsError(path);
      // File systems without hard links: check, then rename (a small race).
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS' || code === 'EXDEV' || code === 'EMLINK') {
        if (await pathExists(path)) throw existsError(path);
        await rename(tmp, path);
        return;
      }
      throw new Error(`${path}: could not move the written file into place (${code ?? firstLine(e)})`, { cause: e });
    }
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Synchronous atomic write of `chunks` that replaces `path` (checkpoints, logs): the
 * temporary file is written and flushed, then renamed over `path`.
 */
export function writeFileAtomicSync(path: string, chunks: readonly Uint8Array[]): void {
  const tmp = tempPathFor(path);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx', 0o644);
    for (const c of chunks) {
      let off = 0;
      while (off < c.length) off += writeSync(fd, c, off, Math.min(c.length - off, 1 << 30));
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    try {
      unlinkSync(tmp);
    } catch {
      /* may not exist */
    }
    throw err;
  }
}
