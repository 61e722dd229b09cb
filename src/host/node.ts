/**
 * What the library needs from its host, in Node: files, paths, memory and core counts,
 * zlib and SHA-256. Modules below the CLI import these through `#host` (package.json
 * `imports`), which resolves to this file in Node and to `web.ts` in browser bundles, so
 * the graph builder, models, checkpoint readers and restore pipeline run in both.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, readFileSync, readSync, statfsSync, unlinkSync, writeSync } from 'node:fs';
import { availableParallelism, freemem, tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as zlib from 'node:zlib';
import { writeFileAtomicSync } from '../fs/atomic.js';

/** Which host this is. */
export const HOST: 'node' | 'browser' = 'node';

/** The bytes of a file. */
export function readFile(path: string): Uint8Array {
  return readFileSync(path);
}

/** Writes a file atomically (temporary file, then rename): see `src/fs/atomic.ts`. */
export function writeFileAtomic(path: string, chunks: readonly Uint8Array[]): void {
  writeFileAtomicSync(path, chunks);
}

/** The last component of a path. */
export function baseName(path: string): string {
  return basename(path);
}

/** The extension of a path's last component, with its dot ('' when none). */
export function extName(path: string): string {
  return extname(path);
}

/** Memory the OS reports as available, in bytes. */
export function freeMemory(): number {
  return freemem();
}

/** Number of CPU cores this process may use. */
export function cpuCount(): number {
  return availableParallelism();
}

let fullGc: (() => void) | null | undefined;

/**
 * Runs a full garbage collection now. V8 frees large buffers held only by dead objects late
 * (onnxruntime-node's output copies piled up to 0.5 GB in a tiled run); where the collector
 * cannot be reached this does nothing.
 */
export function collectGarbage(): void {
  if (fullGc === undefined) {
    try {
      // `--expose-gc` set at run time gives `gc` to contexts created afterwards, not to this one.
      setFlagsFromString('--expose-gc');
      // By default dead ArrayBuffers are swept on a background thread, long after the collection
      // (measured: 1 GB of dead Float32Arrays, 0.4 GB still held 100 ms after a full gc); swept at
      // the collection, they are freed by the time it returns, here and in every later one.
      setFlagsFromString('--no-concurrent-array-buffer-sweeping');
      const f: unknown = runInNewContext('gc');
      fullGc = typeof f === 'function' ? (f as () => void) : null;
    } catch {
      fullGc = null;
    }
  }
  fullGc?.();
}

/** Inflates raw DEFLATE data of a known size (zip entries). */
export function inflateRaw(data: Uint8Array, size: number): Uint8Array {
  return zlib.inflateRawSync(data, { maxOutputLength: Math.max(1, size) });
}

/** zlib-wrapped DEFLATE (PNG image data). */
export function deflate(data: Uint8Array): Uint8Array {
  return zlib.deflateSync(data);
}

/** zlib's native CRC-32 when this Node has it (faster than the table fallback in `src/fs/crc32.ts`). */
export const nativeCrc32: ((data: Uint8Array, seed: number) => number) | undefined = (() => {
  const f = (zlib as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
  return typeof f === 'function' ? (d: Uint8Array, seed: number) => f(d, seed) >>> 0 : undefined;
})();

/** SHA-256 of the concatenation of some bytes and strings. */
export function sha256(parts: readonly (Uint8Array | string)[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

import type { ScratchFile } from './scratch.js';
export type { ScratchFile };

/** The OS temporary folder (TMPDIR). */
export function tempDir(): string {
  return tmpdir();
}

/** Bytes free for this user on the file system of `dir`. */
export function freeDiskBytes(dir: string): number {
  const fs = statfsSync(dir);
  return fs.bavail * fs.bsize;
}

/** A name unique to this process and call, for scratch files. */
export function uniqueTag(): string {
  return `${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Opens a new scratch file `name` in `dir` (exclusively, owner-only) and unlinks it at once. */
export function openScratchFile(dir: string, name: string): ScratchFile {
  const path = join(dir, name);
  let fd: number | null = openSync(path, 'wx+', 0o600);
  unlinkSync(path);
  const open = (): number => {
    if (fd === null) throw new Error(`scratch file ${path} is already closed`);
    return fd;
  };
  return {
    write(bytes, position) {
      let at = 0;
      while (at < bytes.length) at += writeSync(open(), bytes, at, bytes.length - at, position + at);
    },
    read(bytes, position) {
      return readSync(open(), bytes, 0, bytes.length, position);
    },
    truncate(bytes) {
      ftruncateSync(open(), bytes);
    },
    close() {
      if (fd === null) return;
      closeSync(fd);
      fd = null;
    },
  };
}
