/**
 * Minimal ZIP container support for PyTorch checkpoints.
 *
 * `torch.save` writes an uncompressed (STORED) zip whose entry data is aligned to 64 bytes by
 * padding the local header's extra field, and whose local headers carry no sizes (bit 3 data
 * descriptors), so the reader trusts the central directory and uses local headers only to find
 * where each entry's data starts. Zip64 records and DEFLATE entries are accepted too.
 *
 * The writer produces the same layout as torch (STORED, 64-byte aligned data, `FB` padding
 * field) with sizes and CRCs in the local headers, and zip64 records only where needed.
 */
import { inflateRaw } from '#host';
import { crc32 } from '../fs/crc32.js';
import { sanitize } from '../errors.js';
import { ReadBudget } from './budget.js';


/** Formats the first bytes of a buffer as hex, for "wrong magic" messages. */
export function hexPrefix(bytes: Uint8Array, n = 8): string {
  return Array.from(bytes.subarray(0, n), (b) => b.toString(16).padStart(2, '0')).join(' ') || '(empty)';
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_LOCATOR64 = 0x07064b50;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;

/** One entry of a zip archive, as described by its central directory record. */
export interface ZipEntry {
  readonly name: string;
  /** 0 = STORED, 8 = DEFLATE. */
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly crc32: number;
  readonly localHeaderOffset: number;
  /** Absolute offset of the entry's (possibly compressed) data in the archive. */
  readonly dataOffset: number;
}

/** Options for {@link openZip}. */
export interface OpenZipOptions {
  /** Check each entry's CRC-32 when it is read (default true). */
  readonly verifyCrc?: boolean;
  /** Memory allowance that inflated entries are charged to (default: a new one for the archive's size). */
  readonly budget?: ReadBudget;
}

export { crc32 };

function readU64(view: DataView, pos: number, file: string, what: string): number {
  const v = view.getBigUint64(pos, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${file}: zip ${what} ${v} is too large`);
  return Number(v);
}

/** A zip archive held in memory; entry data is returned without copying when STORED. */
export class ZipArchive {
  /** Entries keyed by name, in central directory order. */
  readonly entries: ReadonlyMap<string, ZipEntry>;
  /** Inflated DEFLATE entries, so that reading one twice neither inflates nor charges it twice. */
  private readonly inflated = new Map<string, Uint8Array>();

  constructor(
    private readonly bytes: Uint8Array,
    /** Name used in error messages (usually the file path). */
    readonly file: string,
    entries: Map<string, ZipEntry>,
    private readonly verifyCrc: boolean,
    /** What inflated entries are charged to. */
    readonly budget: ReadBudget = new ReadBudget(file, bytes.length),
  ) {
    this.entries = entries;
  }

  /** Entry names in central directory order. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  /** Whether an entry of that name exists. */
  has(name: string): boolean {
    return this.entries.has(name);
  }

  /**
   * Returns an entry's bytes (a view into the archive for STORED entries, so do not modify
   * them); throws if missing or corrupt. A DEFLATE entry is inflated at most once, and only
   * after its declared size has been charged to the budget and checked against `maxBytes` (what
   * the caller can use, e.g. a storage's declared size); inflation stops at the declared size,
   * so an entry that lies about it cannot expand further.
   */
  read(name: string, maxBytes = Infinity): Uint8Array {
    const e = this.entries.get(name);
    if (!e) throw new Error(`${this.file}: zip entry '${sanitize(name)}' not found`);
    const raw = this.bytes.subarray(e.dataOffset, e.dataOffset + e.compressedSize);
    let data: Uint8Array;
    if (e.method === 0) {
      if (e.compressedSize !== e.size) {
        throw new Error(`${this.file}: zip entry '${sanitize(name)}' is stored but declares ${e.compressedSize} stored and ${e.size} real bytes`);
      }
      data = raw;
    } else if (e.method === 8) {
      const done = this.inflated.get(name);
      if (done) return done;
      if (e.size > maxBytes) {
        throw new Error(`${this.file}: zip entry '${sanitize(name)}' declares ${e.size} bytes once inflated, more than the ${maxBytes} it can hold`);
      }
      this.budget.charge(e.size, `inflating zip entry '${sanitize(name)}'`);
      try {
        data = inflateRaw(raw, e.size);
      } catch (err) {
        throw new Error(`${this.file}: zip entry '${sanitize(name)}' cannot be inflated to its declared ${e.size} bytes (${sanitize(err instanceof Error ? err.message : String(err))})`);
      }
      if (data.length !== e.size) throw new Error(`${this.file}: zip entry '${sanitize(name)}' inflates to ${data.length} bytes, not the declared ${e.size}`);
    } else {
      throw new Error(`${this.file}: zip entry '${sanitize(name)}' uses unsupported compression method ${e.method}`);
    }
    if (this.verifyCrc) {
      const c = crc32(data);
      if (c !== e.crc32) {
        throw new Error(`${this.file}: zip entry '${sanitize(name)}' is corrupt (CRC-32 ${c.toString(16)} instead of ${e.crc32.toString(16)})`);
      }
    }
    // A plain Uint8Array view, even when the archive (or inflate's result) is a Buffer.
    const out = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (e.method === 8) this.inflated.set(name, out);
    return out;
  }
}

/** Whether the bytes start like a zip archive (local file header or empty-archive magic). */
export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && ((bytes[2] === 3 && bytes[3] === 4) || (bytes[2] === 5 && bytes[3] === 6));
}

/**
 * Parses a zip archive's central directory (zip64 aware) and validates every entry's local
 * header and data range against the file size. Throws a one-line Error naming `file` for a
 * wrong magic, a truncated archive or entries that point outside the file.
 */
export function openZip(bytes: Uint8Array, file: string, options: OpenZipOptions = {}): ZipArchive {
  file = sanitize(file);
  const len = bytes.length;
  if (!isZip(bytes)) throw new Error(`${file}: not a zip archive (starts with ${hexPrefix(bytes)}; expected 50 4b 03 04)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  // End of central directory: the last one whose comment reaches exactly to the end of the file.
  let eocd = -1;
  let fallback = -1;
  for (let p = len - 22; p >= 0 && p >= len - 22 - U16_MAX; p--) {
    if (view.getUint32(p, true) !== SIG_EOCD) continue;
    if (fallback < 0) fallback = p;
    if (p + 22 + view.getUint16(p + 20, true) === len) {
      eocd = p;
      break;
    }
  }
  if (eocd < 0) eocd = fallback;
  if (eocd < 0) throw new Error(`${file}: truncated zip archive (no end-of-central-directory record in its ${len} bytes)`);

  let count = view.getUint16(eocd + 10, true);
  let cdSize = view.getUint32(eocd + 12, true);
  let cdOffset = view.getUint32(eocd + 16, true);
  const loc = eocd - 20;
  if (loc >= 0 && view.getUint32(loc, true) === SIG_LOCATOR64) {
    const e64 = readU64(view, loc + 8, file, 'zip64 end-of-central-directory offset');
    if (e64 + 56 > loc || view.getUint32(e64, true) !== SIG_EOCD64) {
      throw new Error(`${file}: corrupt zip archive (zip64 end-of-central-directory record at ${e64} is missing or truncated)`);
    }
    count = readU64(view, e64 + 32, file, 'entry count');
    cdSize = readU64(view, e64 + 40, file, 'central directory size');
    cdOffset = readU64(view, e64 + 48, file, 'central directory offset');
  } else if (count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) {
    throw new Error(`${file}: corrupt zip archive (zip64 values without a zip64 locator)`);
  }
  if (cdOffset + cdSize > eocd) {
    throw new Error(`${file}: truncated or corrupt zip archive (central directory at ${cdOffset}+${cdSize} lies beyond the end record at ${eocd})`);
  }
  if (count * 46 > cdSize) throw new Error(`${file}: corrupt zip archive (${count} entries cannot fit in a ${cdSize}-byte central directory)`);

  const decoder = new TextDecoder('utf-8');
  const entries = new Map<string, ZipEntry>();
  let p = cdOffset;
  const cdEnd = cdOffset + cdSize;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdEnd || view.getUint32(p, true) !== SIG_CENTRAL) {
      throw new Error(`${file}: corrupt zip archive (central directory record ${i} at ${p} is missing)`);
    }
    const flags = view.getUint16(p + 8, true);
    const method = view.getUint16(p + 10, true);
    const crc = view.getUint32(p + 16, true);
    let csize = view.getUint32(p + 20, true);
    let usize = view.getUint32(p + 24, true);
    const nameLen = view.getUint16(p + 28, true);
    const extraLen = view.getUint16(p + 30, true);
    const commentLen = view.getUint16(p + 32, true);
    const diskStart = view.getUint16(p + 34, true);
    let localOffset = view.getUint32(p + 42, true);
    const next = p + 46 + nameLen + extraLen + commentLen;
    if (next > cdEnd) throw new Error(`${file}: corrupt zip archive (central directory record ${i} runs past the directory)`);
    const name = decoder.decode(bytes.subarray(p + 46, p + 46 + nameLen));
    const shown = sanitize(name);
    if (flags & 1) throw new Error(`${file}: zip entry '${shown}' is encrypted`);
    if (diskStart !== 0 && diskStart !== U16_MAX) throw new Error(`${file}: multi-disk zip archives are not supported`);
    // Zip64 extended information: only the fields whose 32-bit value is saturated, in this order.
    if (usize === U32_MAX || csize === U32_MAX || localOffset === U32_MAX) {
      let q = p + 46 + nameLen;
      const extraEnd = q + extraLen;
      let found = false;
      while (q + 4 <= extraEnd) {
        const id = view.getUint16(q, true);
        const size = view.getUint16(q + 2, true);
        if (q + 4 + size > extraEnd) break;
        if (id === 1) {
          let r = q + 4;
          const end = r + size;
          const take = (what: string): number => {
            if (r + 8 > end) throw new Error(`${file}: zip entry '${shown}' has a truncated zip64 extra field`);
            const v = readU64(view, r, file, what);
            r += 8;
            return v;
          };
          if (usize === U32_MAX) usize = take('entry size');
          if (csize === U32_MAX) csize = take('entry compressed size');
          if (localOffset === U32_MAX) localOffset = take('entry offset');
          found = true;
          break;
        }
        q += 4 + size;
      }
      if (!found) throw new Error(`${file}: zip entry '${shown}' needs a zip64 extra field but has none`);
    }
    if (localOffset + 30 > len) {
      throw new Error(`${file}: zip entry '${shown}' header offset ${localOffset} is past the end of the file (${len} bytes)`);
    }
    if (view.getUint32(localOffset, true) !== SIG_LOCAL) {
      throw new Error(`${file}: zip entry '${shown}' has no local header at offset ${localOffset}`);
    }
    const dataOffset = localOffset + 30 + view.getUint16(localOffset + 26, true) + view.getUint16(localOffset + 28, true);
    if (dataOffset + csize > len) {
      throw new Error(`${file}: zip entry '${shown}' data (${csize} bytes at offset ${dataOffset}) extends past the end of the file (${len} bytes)`);
    }
    if (entries.has(name)) throw new Error(`${file}: zip archive has two entries named '${shown}'`);
    entries.set(name, { name, method, compressedSize: csize, size: usize, crc32: crc, localHeaderOffset: localOffset, dataOffset });
    p = next;
  }
  return new ZipArchive(bytes, file, entries, options.verifyCrc ?? true, options.budget ?? new ReadBudget(file, len));
}

/** One file to put in a zip archive. */
export interface ZipInput {
  readonly name: string;
  readonly data: Uint8Array;
}

/** Options for {@link encodeZip}. */
export interface EncodeZipOptions {
  /** Align each entry's data to this many bytes via an `FB` padding extra field, as torch does (default 64; 0 or 1 = none). */
  readonly alignment?: number;
  /** Write zip64 fields and end records even when not needed (for tests). */
  readonly forceZip64?: boolean;
}

/**
 * Lays out a STORED zip archive. Returns the archive as a list of chunks (entry data is
 * referenced, not copied) so large checkpoints can be written without one big buffer.
 */
export function encodeZip(inputs: readonly ZipInput[], options: EncodeZipOptions = {}): Uint8Array[] {
  const align = options.alignment ?? 64;
  const force = options.forceZip64 ?? false;
  const encoder = new TextEncoder();
  const chunks: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  const seen = new Set<string>();
  let cursor = 0;
  let anyZip64 = force;

  for (const input of inputs) {
    if (seen.has(input.name)) throw new Error(`zip writer: duplicate entry '${sanitize(input.name)}'`);
    seen.add(input.name);
    const name = encoder.encode(input.name);
    if (name.length > U16_MAX) throw new Error(`zip writer: entry name too long`);
    const size = input.data.length;
    const crc = crc32(input.data);
    const utf8Flag = /^[\x20-\x7e]*$/.test(input.name) ? 0 : 0x0800;
    const bigSize = force || size >= U32_MAX;
    const bigOffset = force || cursor >= U32_MAX;
    if (bigSize || bigOffset) anyZip64 = true;

    const zip64Local = bigSize ? 20 : 0;
    let pad = 0;
    let padField = 0;
    if (align > 1) {
      const start = cursor + 30 + name.length + zip64Local + 4;
      pad = (align - (start % align)) % align;
      padField = 4 + pad;
    }
    const local = new Uint8Array(30 + name.length + zip64Local + padField);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, SIG_LOCAL, true);
    lv.setUint16(4, bigSize ? 45 : 20, true);
    lv.setUint16(6, utf8Flag, true);
    lv.setUint16(8, 0, true);
    lv.setUint16(10, 0, true);
    lv.setUint16(12, 0x21, true); // 1980-01-01
    lv.setUint32(14, crc, true);
    lv.setUint32(18, bigSize ? U32_MAX : size, true);
    lv.setUint32(22, bigSize ? U32_MAX : size, true);
    lv.setUint16(26, name.length, true);
    lv.setUint16(28, zip64Local + padField, true);
    local.set(name, 30);
    let q = 30 + name.length;
    if (bigSize) {
      lv.setUint16(q, 1, true);
      lv.setUint16(q + 2, 16, true);
      lv.setBigUint64(q + 4, BigInt(size), true);
      lv.setBigUint64(q + 12, BigInt(size), true);
      q += 20;
    }
    if (padField) {
      local[q] = 0x46; // 'F'
      local[q + 1] = 0x42; // 'B'
      lv.setUint16(q + 2, pad, true);
      local.fill(0x5a, q + 4, q + 4 + pad); // 'Z'
    }

    const zip64Central = (bigSize ? 16 : 0) + (bigOffset ? 8 : 0);
    const cext = zip64Central ? 4 + zip64Central : 0;
    const cen = new Uint8Array(46 + name.length + cext);
    const cv = new DataView(cen.buffer);
    cv.setUint32(0, SIG_CENTRAL, true);
    cv.setUint16(4, bigSize || bigOffset ? 45 : 20, true);
    cv.setUint16(6, bigSize || bigOffset ? 45 : 20, true);
    cv.setUint16(8, utf8Flag, true);
    cv.setUint16(10, 0, true);
    cv.setUint16(12, 0, true);
    cv.setUint16(14, 0x21, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, bigSize ? U32_MAX : size, true);
    cv.setUint32(24, bigSize ? U32_MAX : size, true);
    cv.setUint16(28, name.length, true);
    cv.setUint16(30, cext, true);
    cv.setUint32(42, bigOffset ? U32_MAX : cursor, true);
    cen.set(name, 46);
    if (cext) {
      let r = 46 + name.length;
      cv.setUint16(r, 1, true);
      cv.setUint16(r + 2, zip64Central, true);
      r += 4;
      if (bigSize) {
        cv.setBigUint64(r, BigInt(size), true);
        cv.setBigUint64(r + 8, BigInt(size), true);
        r += 16;
      }
      if (bigOffset) cv.setBigUint64(r, BigInt(cursor), true);
    }
    chunks.push(local, input.data);
    central.push(cen);
    cursor += local.length + size;
  }

  const cdOffset = cursor;
  let cdSize = 0;
  for (const c of central) {
    chunks.push(c);
    cdSize += c.length;
  }
  const n = inputs.length;
  if (n >= U16_MAX || cdOffset >= U32_MAX || cdSize >= U32_MAX) anyZip64 = true;
  if (anyZip64) {
    const rec = new Uint8Array(56 + 20);
    const rv = new DataView(rec.buffer);
    rv.setUint32(0, SIG_EOCD64, true);
    rv.setBigUint64(4, 44n, true);
    rv.setUint16(12, 45, true);
    rv.setUint16(14, 45, true);
    rv.setBigUint64(24, BigInt(n), true);
    rv.setBigUint64(32, BigInt(n), true);
    rv.setBigUint64(40, BigInt(cdSize), true);
    rv.setBigUint64(48, BigInt(cdOffset), true);
    rv.setUint32(56, SIG_LOCATOR64, true);
    rv.setBigUint64(56 + 8, BigInt(cdOffset + cdSize), true);
    rv.setUint32(56 + 16, 1, true);
    chunks.push(rec);
  }
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, SIG_EOCD, true);
  ev.setUint16(8, anyZip64 ? U16_MAX : n, true);
  ev.setUint16(10, anyZip64 ? U16_MAX : n, true);
  ev.setUint32(12, anyZip64 ? U32_MAX : cdSize, true);
  ev.setUint32(16, anyZip64 ? U32_MAX : cdOffset, true);
  chunks.push(end);
  return chunks;
}

/** Concatenates chunks into one buffer. */
export function concatChunks(chunks: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const c of chunks) total += c.length;
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

