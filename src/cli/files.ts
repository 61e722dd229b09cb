/**
 * Output files of the commands: making sure an output folder exists and can be written
 * (before any work is done), and writing a file atomically (temporary file beside it,
 * flushed, then moved into place), for outputs that are not images.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { link, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { UserError } from './errors.js';

function errCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null ? (e as { code?: string }).code : undefined;
}

function why(e: unknown): string {
  switch (errCode(e)) {
    case 'ENOTDIR':
    case 'EEXIST':
      return 'a file is in the way (it or a parent is not a folder)';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOSPC':
      return 'no space left on the device';
    default:
      return errCode(e) ?? (e instanceof Error ? e.message.split('\n')[0]! : String(e));
  }
}

/**
 * Creates `dir` (and parents) when missing and checks that files can be created in it by
 * creating and removing a probe file. Throws a one-line error naming the folder.
 */
export async function prepareOutputFolder(dir: string): Promise<void> {
  const st = await stat(dir).catch(() => null);
  if (st && !st.isDirectory()) throw new UserError(`${dir}: output folder is a file, not a folder`);
  if (!st) {
    try {
      await mkdir(dir, { recursive: true });
    } catch (e) {
      throw new UserError(`${dir}: cannot create the output folder: ${why(e)}`);
    }
  }
  const probe = join(dir, `.diffir-probe.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await open(probe, 'wx');
    await fh.close();
  } catch (e) {
    throw new UserError(`${dir}: output folder is not writable: ${why(e)}`);
  } finally {
    await rm(probe, { force: true }).catch(() => undefined);
  }
}

/** Temporary files being written now, removed by {@link removeTempFiles} when the process must exit at once. */
const pending = new Set<string>();

/**
 * Removes, synchronously, the temporary files this process is writing: its own atomic
 * writes, and those `saveImage` makes beside `outputs` (named `.<name>.<pid>.<random>.tmp`).
 * For a forced exit, where `finally` blocks will not run.
 */
export function removeTempFiles(outputs: Iterable<string> = []): void {
  for (const p of pending) rmSync(p, { force: true });
  for (const out of outputs) {
    const prefix = `.${basename(out)}.${process.pid}.`;
    let names: string[] = [];
    try {
      names = readdirSync(dirname(out));
    } catch {
      continue;
    }
    for (const n of names) if (n.startsWith(prefix) && n.endsWith('.tmp')) rmSync(join(dirname(out), n), { force: true });
  }
}

/**
 * Writes `data` to `path` atomically: a temporary file in the same folder, flushed, then
 * linked into place (which fails if `path` appeared meanwhile) or, with `overwrite`,
 * renamed over it. The temporary file never outlives the call.
 */
export async function writeFileAtomic(path: string, data: Uint8Array, overwrite: boolean): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  pending.add(tmp);
  try {
    let fh;
    try {
      fh = await open(tmp, 'wx', 0o666);
    } catch (e) {
      throw new UserError(`${dir}: cannot write to this folder (${why(e)})`);
    }
    try {
      await fh.writeFile(data);
      await fh.sync();
    } catch (e) {
      throw new UserError(`${path}: write failed (${why(e)})`);
    } finally {
      await fh.close();
    }
    if (overwrite) {
      try {
        await rename(tmp, path);
      } catch (e) {
        throw new UserError(`${path}: could not move the written file into place (${errCode(e) === 'EISDIR' ? 'it is a folder' : why(e)})`);
      }
      return;
    }
    try {
      await link(tmp, path);
    } catch (e) {
      const code = errCode(e);
      if (code === 'EEXIST') throw new UserError(`${path}: file already exists; pass --overwrite to replace it`);
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS' || code === 'EXDEV' || code === 'EMLINK') {
        // File systems without hard links: check, then rename.
        if (await stat(path).then(() => true, () => false)) throw new UserError(`${path}: file already exists; pass --overwrite to replace it`);
        await rename(tmp, path);
        return;
      }
      throw new UserError(`${path}: could not move the written file into place (${why(e)})`);
    }
  } finally {
    await rm(tmp, { force: true }).catch(() => undefined);
    pending.delete(tmp);
  }
}
