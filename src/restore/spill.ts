/**
 * Feature maps kept in a temporary file instead of host memory, for tiled runs whose
 * full-resolution maps do not fit the memory budget (a 12 MP deblur needs ~9 GB of them).
 *
 * A map is stored row-major by image row, each row holding all channels: (H, C, W). The
 * tiled executor produces and consumes tiles row of tiles by row of tiles, so a band of
 * rows is one contiguous read or write whatever the tile width. Plain positioned reads and
 * writes (not mmap): the file's pages then stay in the OS cache, outside the process's RSS.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmtBytes } from './memory.js';

/** A (C, H, W) feature map in a spill file, read and written by bands of whole rows. */
export class SpilledMap {
  private fd: number | null;
  /** Floats of one image row (all channels). */
  readonly rowFloats: number;

  constructor(
    readonly c: number,
    readonly h: number,
    readonly w: number,
    private readonly file: string,
  ) {
    this.fd = openSync(file, 'w+', 0o600);
    this.rowFloats = c * w;
  }

  /** Writes rows [y0, y0 + rows) from `band` ((rows, C, W), row-major). */
  writeRows(y0: number, rows: number, band: Float32Array): void {
    const bytes = new Uint8Array(band.buffer, band.byteOffset, rows * this.rowFloats * 4);
    let at = 0;
    while (at < bytes.length) at += writeSync(this.open(), bytes, at, bytes.length - at, y0 * this.rowFloats * 4 + at);
  }

  /** Reads rows [y0, y0 + rows) into `band` ((rows, C, W), row-major). */
  readRows(y0: number, rows: number, band: Float32Array): void {
    const bytes = new Uint8Array(band.buffer, band.byteOffset, rows * this.rowFloats * 4);
    let at = 0;
    while (at < bytes.length) {
      const n = readSync(this.open(), bytes, at, bytes.length - at, y0 * this.rowFloats * 4 + at);
      if (n === 0) throw new Error(`spill file ${this.file}: rows ${y0}–${y0 + rows} were never written`);
      at += n;
    }
  }

  /** Closes and deletes the file (its disk space is freed at once). */
  delete(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
    rmSync(this.file, { force: true });
  }

  private open(): number {
    if (this.fd === null) throw new Error(`spill file ${this.file} was already deleted`);
    return this.fd;
  }
}

/**
 * A temporary folder of spill files for one run. `close` deletes it (call it in a `finally`:
 * after an error or a cancel too); a process that exits without closing it still removes it.
 */
export class SpillStore {
  private readonly maps = new Set<SpilledMap>();
  private n = 0;
  private readonly onExit = () => this.close();

  private constructor(readonly dir: string) {
    process.once('exit', this.onExit);
  }

  /**
   * Creates the folder under `parent` (default: the OS temp folder) after checking that the
   * file system has `bytes` free; throws a one-line error naming the fix when not.
   */
  static open(bytes: number, parent = tmpdir()): SpillStore {
    const fs = statfsSync(parent);
    const free = fs.bavail * fs.bsize;
    // A margin for the rest of the system: filling the disk would hurt more than the refusal.
    if (bytes + 256 * 2 ** 20 > free) {
      throw new Error(`tiled restore needs ${fmtBytes(bytes)} of temporary disk space in ${parent} to stay within the memory budget, but only ${fmtBytes(free)} is free; free some space, set TMPDIR to a larger disk, or raise --memory-budget`);
    }
    return new SpillStore(mkdtempSync(join(parent, 'diffir-spill-')));
  }

  /** A new spill file for a (c, h, w) map. */
  map(c: number, h: number, w: number): SpilledMap {
    const m = new SpilledMap(c, h, w, join(this.dir, `map${this.n++}.f32`));
    this.maps.add(m);
    return m;
  }

  /** Deletes one map's file. */
  drop(m: SpilledMap): void {
    m.delete();
    this.maps.delete(m);
  }

  /** Deletes every file and the folder. */
  close(): void {
    process.removeListener('exit', this.onExit);
    for (const m of this.maps) {
      try {
        m.delete();
      } catch {
        // The folder is removed below anyway.
      }
    }
    this.maps.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
