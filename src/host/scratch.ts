/** Types shared by both sides of `#host` (`node.ts`, `web.ts`). */

/**
 * A temporary file without a name, for positioned reads and writes of scratch data (tiled
 * restore's spilled feature maps): it is unlinked as soon as it is opened, so the OS frees its
 * space when it is closed, also when the process is killed.
 */
export interface ScratchFile {
  /** Writes all of `bytes` at byte `position`. */
  write(bytes: Uint8Array, position: number): void;
  /** Reads into `bytes` from byte `position`; the number of bytes read (0 at the end of the file). */
  read(bytes: Uint8Array, position: number): number;
  /** Cuts the file to `bytes` (frees the space beyond). */
  truncate(bytes: number): void;
  /** Closes the file (frees its space); later reads and writes throw. */
  close(): void;
}
