/**
 * Feature maps kept in a temporary file instead of host memory, for tiled runs whose
 * full-resolution maps do not fit the memory budget (a 12 MP deblur needs ~9 GB of them).
 *
 * A map is stored row-major by image row, each row holding all channels: (H, C, W). The
 * tiled executor produces and consumes tiles row of tiles by row of tiles, so a band of
 * rows is one contiguous read or write whatever the tile width. Plain positioned reads and
 * writes (not mmap): the file's pages then stay in the OS cache, outside the process's RSS.
 * Each file is unlinked as soon as it is opened: it has no name while in use, and the OS frees
 * its space when the descriptor closes, also when the process is killed or crashes.
 */
import { freeDiskBytes, openScratchFile, tempDir, uniqueTag, type ScratchFile } from '#host';
import { sanitize } from '../errors.js';
import { fmtBytes } from './memory.js';

/** A (C, H, W) feature map in a spill file, read and written by bands of whole rows. */
export class SpilledMap {
  private file: ScratchFile | null;
  /** Floats of one image row (all channels). */
  readonly rowFloats: number;

  constructor(
    readonly c: number,
    readonly h: number,
    readonly w: number,
    file: ScratchFile,
    private readonly name: string,
  ) {
    this.file = file;
    this.rowFloats = c * w;
  }

  /** Bytes of the map. */
  get bytes(): number {
    return 4 * this.c * this.h * this.w;
  }

  /** Writes rows [y0, y0 + rows) from `band` ((rows, C, W), row-major). */
  writeRows(y0: number, rows: number, band: Float32Array): void {
    this.open().write(new Uint8Array(band.buffer, band.byteOffset, rows * this.rowFloats * 4), y0 * this.rowFloats * 4);
  }

  /** Reads rows [y0, y0 + rows) into `band` ((rows, C, W), row-major). */
  readRows(y0: number, rows: number, band: Float32Array): void {
    const bytes = new Uint8Array(band.buffer, band.byteOffset, rows * this.rowFloats * 4);
    let at = 0;
    while (at < bytes.length) {
      const n = this.open().read(bytes.subarray(at), y0 * this.rowFloats * 4 + at);
      if (n === 0) throw new Error(`spill file ${this.name}: rows ${y0}–${y0 + rows} were never written`);
      at += n;
    }
  }

  /** Closes the (already unlinked) file: its disk space is freed. */
  delete(): void {
    this.file?.close();
    this.file = null;
  }

  /** Gives up the file without closing it (for the next map); this map cannot be used afterwards. */
  release(): ScratchFile {
    const f = this.open();
    this.file = null;
    return f;
  }

  private open(): ScratchFile {
    if (this.file === null) throw new Error(`spill file ${this.name} was already deleted`);
    return this.file;
  }
}

/**
 * The spill files of one run, in `dir`. `close` closes them all (call it in a `finally`: after
 * an error or a cancel too); files a killed process leaves open are freed by the OS.
 *
 * A dropped map's file is kept for the next map, cut to its size: writing over pages the OS
 * already caches is several times faster than into a new file, whose every page the kernel
 * must first allocate (measured, 1.5 GiB in 64 MiB writes: 0.23 s over cached pages, 0.65 s
 * into a new file, 4.0 s the first time the machine's memory was touched).
 */
export class SpillStore {
  private readonly maps = new Set<SpilledMap>();
  /** Files of dropped maps, with their sizes in bytes. */
  private free: { file: ScratchFile; bytes: number }[] = [];
  private readonly prefix = `diffir-spill-${uniqueTag()}`;
  private n = 0;

  private constructor(readonly dir: string) {}

  /**
   * Spill files in `dir` (default: the OS temp folder), after checking that its file system
   * has `bytes` free; throws a one-line error naming the fix when not.
   */
  static open(bytes: number, dir = tempDir()): SpillStore {
    const free = freeDiskBytes(dir);
    // A margin for the rest of the system: filling the disk would hurt more than the refusal.
    if (bytes + 256 * 2 ** 20 > free) {
      throw new Error(`tiled restore needs ${fmtBytes(bytes)} of temporary disk space in ${sanitize(dir)} to stay within the memory budget, but only ${fmtBytes(free)} is free; free some space, set TMPDIR to a larger disk, or raise --memory-budget`);
    }
    return new SpillStore(dir);
  }

  /**
   * A spill file for a (c, h, w) map: the smallest kept file that holds it, cut to its size, else
   * a new one. The other kept files are closed, so that between two maps the files hold no more
   * than the maps alive before the last drops (the disk the plan counts).
   */
  map(c: number, h: number, w: number): SpilledMap {
    const bytes = 4 * c * h * w;
    let best: { file: ScratchFile; bytes: number } | null = null;
    for (const f of this.free) if (f.bytes >= bytes && (!best || f.bytes < best.bytes)) best = f;
    for (const f of this.free) if (f !== best) f.file.close();
    this.free = [];
    if (best && best.bytes > bytes) best.file.truncate(bytes);
    const name = `${this.prefix}-${this.n++}.f32`;
    const m = new SpilledMap(c, h, w, best?.file ?? openScratchFile(this.dir, name), name);
    this.maps.add(m);
    return m;
  }

  /** Drops a map: its file is kept for the next map. */
  drop(m: SpilledMap): void {
    this.maps.delete(m);
    this.free.push({ file: m.release(), bytes: m.bytes });
  }

  /** Closes every file. */
  close(): void {
    for (const m of this.maps) m.delete();
    this.maps.clear();
    for (const f of this.free) f.file.close();
    this.free = [];
  }
}
