/**
 * Output files of the commands: making sure an output folder exists and can be written
 * (before any work is done), and writing a file atomically (temporary file beside it,
 * flushed, then moved into place), for outputs that are not images.
 */
import { readdirSync, rmSync } from 'node:fs';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { UserError } from './errors.js';
import { isTempFor, tempPathFor } from '../fs/atomic.js';
import { errCode } from '../errors.js';

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
  const probe = tempPathFor(join(dir, 'diffir-probe'));
  try {
    const fh = await open(probe, 'wx');
    await fh.close();
  } catch (e) {
    throw new UserError(`${dir}: output folder is not writable: ${why(e)}`);
  } finally {
    await rm(probe, { force: true }).catch(() => undefined);
  }
}

/**
 * Removes, synchronously, the temporary files this process is writing: its own atomic
 * writes, and those `saveImage` makes beside `outputs` (named `.<name>.<pid>.<random>.tmp`).
 * For a forced exit, where `finally` blocks will not run.
 */
export function removeTempFiles(outputs: Iterable<string>): void {
  for (const out of outputs) {
    let names: string[] = [];
    try {
      names = readdirSync(dirname(out));
    } catch {
      continue;
    }
    for (const n of names) if (isTempFor(out, n)) rmSync(join(dirname(out), n), { force: true });
  }
}

export { writeFileAtomic } from '../fs/atomic.js';
