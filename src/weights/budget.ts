/**
 * The memory and work a reader may spend on one file, charged where bytes and objects are
 * created (inflated zip entries, pickle objects, materialised tensors) rather than checked
 * afterwards, so that no file can make a reader use more than a small multiple of its own size.
 *
 * The bound (documented in the README): at most {@link BYTES_PER_FILE_BYTE} × the file size +
 * {@link FIXED_ALLOWANCE} bytes, which keeps every file under 10 MB below 1 GB. Files whose
 * tensors really are that large stay readable: stored (uncompressed) tensor data costs at most
 * 4 × its own size once converted (int8 → int32), far inside the allowance.
 */
import { sanitize } from '../errors.js';

/** Bytes a reader may allocate per byte of the file it reads. */
export const BYTES_PER_FILE_BYTE = 64;
/** Bytes a reader may allocate whatever the file's size (256 MiB). */
export const FIXED_ALLOWANCE = 256 * 2 ** 20;
/**
 * Pickle VM steps allowed per byte of pickle, on top of {@link FIXED_WORK}. A step is an opcode
 * or an element an opcode touches (a dict insertion counts 8, one from a list of pairs 64); real pickles need 1 to 4 a byte.
 */
export const WORK_PER_PICKLE_BYTE = 16;
/** Pickle VM steps allowed whatever the pickle's size (a fraction of a second). */
export const FIXED_WORK = 2 ** 24;

/** The default memory allowance for a file of `fileBytes` bytes: 64 × its size + 256 MiB. */
export function memoryAllowance(fileBytes: number): number {
  return BYTES_PER_FILE_BYTE * fileBytes + FIXED_ALLOWANCE;
}

/** The memory a reader may still allocate for one file; shared by every stage that reads it. */
export class ReadBudget {
  /** Bytes still allowed. */
  private left: number;
  /** The file's name as shown in messages. */
  readonly name: string;

  constructor(
    /** The file's name in messages (already sanitised or not: it is sanitised here). */
    name: string,
    /** Size of the file, in bytes. */
    readonly fileBytes: number,
    /** Bytes allowed in all (default {@link memoryAllowance}). */
    readonly limit = memoryAllowance(fileBytes),
  ) {
    this.name = sanitize(name);
    this.left = limit;
  }

  /** Bytes still allowed. */
  get remaining(): number {
    return this.left;
  }

  /**
   * Records that `bytes` are about to be allocated for `what`; throws a one-line error naming
   * the file, before anything is allocated, when that would exceed the allowance.
   */
  charge(bytes: number, what: string): void {
    if (!(bytes <= this.left)) {
      throw new Error(
        `${this.name}: ${what} would need ${bytes} bytes, more than a ${this.fileBytes}-byte file may use ` +
          `(${Math.max(0, this.left)} of ${this.limit} bytes left); the file is corrupt or was crafted to exhaust memory`,
      );
    }
    this.left -= bytes;
  }
}
