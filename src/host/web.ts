/**
 * The browser side of `#host` (see `node.ts`): there is no file system, so reading or
 * writing a path is an error that says to pass bytes instead; zlib comes from fflate;
 * memory and cores from what the browser reports.
 */
import { inflateSync, zlibSync } from 'fflate';

/** Which host this is. */
export const HOST: 'node' | 'browser' = 'browser';

function noFiles(what: string, path: string): Error {
  return new Error(`${path}: ${what} files by path is not possible in a browser; pass the file's bytes (Uint8Array) instead`);
}

/** Always an error in a browser (there are no paths): pass bytes. */
export function readFile(path: string): Uint8Array {
  throw noFiles('reading', path);
}

/** Always an error in a browser (there are no paths): keep the bytes instead. */
export function writeFileAtomic(path: string, _chunks: readonly Uint8Array[]): void {
  throw noFiles('writing', path);
}

/** The last component of a path ('/' or '\' separated). */
export function baseName(path: string): string {
  const parts = path.split(/[/\\]/).filter((p) => p !== '');
  return parts[parts.length - 1] ?? '';
}

/** The extension of a path's last component, with its dot ('' when none or a dotfile). */
export function extName(path: string): string {
  const b = baseName(path);
  const dot = b.lastIndexOf('.');
  return dot > 0 ? b.slice(dot) : '';
}

/**
 * Memory a tab can reasonably use, in bytes: the device memory the browser reports (it
 * rounds and caps it at 8 GB; 4 GB when it does not say), at most 4 GB, the most a
 * 32-bit WebAssembly heap can hold.
 */
export function freeMemory(): number {
  const gb = (globalThis.navigator as { deviceMemory?: number } | undefined)?.deviceMemory ?? 4;
  return Math.min(gb, 4) * 2 ** 30;
}

/** Number of logical cores the browser reports. */
export function cpuCount(): number {
  return Math.max(1, globalThis.navigator?.hardwareConcurrency ?? 1);
}

/** Runs a full garbage collection where the page can ask for one: it cannot, so this does nothing. */
export function collectGarbage(): void {}

/** Inflates raw DEFLATE data of a known size (zip entries). */
export function inflateRaw(data: Uint8Array, size: number): Uint8Array {
  return inflateSync(data, { out: new Uint8Array(size) });
}

/** zlib-wrapped DEFLATE (PNG image data). */
export function deflate(data: Uint8Array): Uint8Array {
  return zlibSync(data, { level: 6 });
}

/** No native CRC-32 in browsers: `src/fs/crc32.ts` uses its table. */
export const nativeCrc32: ((data: Uint8Array, seed: number) => number) | undefined = undefined;

/** Not available in browsers (SubtleCrypto is asynchronous); only writing `.pth` files needs it. */
export function sha256(_parts: readonly (Uint8Array | string)[]): Uint8Array {
  throw new Error('writing .pth checkpoints is not available in a browser; use Node, or write safetensors');
}

import type { ScratchFile } from './scratch.js';
export type { ScratchFile };

function noScratch(): Error {
  return new Error('spilling feature maps to temporary files is not possible in a browser; raise the memory budget or use smaller images');
}

/** There is no temporary folder in a browser ('' so that callers fail at the first use). */
export function tempDir(): string {
  return '';
}

/** Always an error in a browser (no file system). */
export function freeDiskBytes(_dir: string): number {
  throw noScratch();
}

/** A name unique to this page and call. */
export function uniqueTag(): string {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

/** Always an error in a browser (no file system). */
export function openScratchFile(_dir: string, _name: string): ScratchFile {
  throw noScratch();
}
