/**
 * Checks of an encoded image's container that need no decoder (so they run the same in Node and
 * in browsers): whether the file is long enough for the pixels its header declares, and whether
 * its data reaches the end marker. Decoders allocate the whole image from the header before
 * they find out that the data is missing (libjpeg fills the rest with grey, a browser shows a
 * partial image), so a tiny file claiming a huge size is refused here first.
 */
/** What an image header declares, and the fewest bytes any valid file with that header can have. */
export interface DeclaredSize {
  /** `jpeg` or `png`. */
  readonly format: string;
  readonly width: number;
  readonly height: number;
  /** A sound lower bound on the file size for these pixels (see {@link declaredSize}). */
  readonly minBytes: number;
  /** The coding the bound is for, for messages (e.g. "baseline Huffman JPEG"). */
  readonly coding: string;
}

/**
 * Largest expansion of DEFLATE: a length-258 match coded in 2 bits (one bit each for the length
 * and the distance code: Huffman codes are at least 1 bit), i.e. 1032 bytes out per byte in.
 */
export const DEFLATE_MAX_RATIO = 1032;

/** The eight bytes every PNG starts with. */
export const PNG_SIGNATURE: readonly number[] = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
// Channels per PNG colour type (0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA).
const PNG_CHANNELS: Readonly<Record<number, number>> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

function be16(b: Uint8Array, p: number): number {
  return (b[p]! << 8) | b[p + 1]!;
}

function be32(b: Uint8Array, p: number): number {
  return ((b[p]! << 24) >>> 0) + (b[p + 1]! << 16) + (b[p + 2]! << 8) + b[p + 3]!;
}

/** Whether the bytes start with the PNG signature. */
export function isPng(b: Uint8Array): boolean {
  return b.length >= 8 && PNG_SIGNATURE.every((v, i) => b[i] === v);
}

function isJpeg(b: Uint8Array): boolean {
  return b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
}

/** Markers that stand alone (no length): TEM, RST0-7, SOI, EOI. */
function standalone(m: number): boolean {
  return m === 0x01 || (m >= 0xd0 && m <= 0xd9);
}

/**
 * The JPEG frame (SOF) a file's header declares and the least number of bits its entropy-coded
 * data can take: every 8×8 block of every component is coded in each sequential scan as a DC
 * Huffman code and at least one AC code (an EOB), each at least 1 bit, so sequential Huffman
 * (SOF0/1) needs ≥ 2 bits a block; progressive Huffman (SOF2) must code every block's DC in the
 * component's first scan, ≥ 1 bit a block (AC scans can skip 32767 blocks with one EOB run);
 * lossless Huffman (SOF3) codes every sample, ≥ 1 bit. Arithmetic coding can approach 0 bits a
 * block, so it gets no bound (nor do the hierarchical frames libjpeg does not read).
 * 'more': the SOF lies past the end of `b` (a prefix of the file); null: no SOF found.
 */
function jpegSize(b: Uint8Array): DeclaredSize | 'more' | null {
  let p = 2;
  for (;;) {
    while (p < b.length && b[p] === 0xff && b[p + 1] === 0xff) p++; // fill bytes
    if (p + 4 > b.length) return 'more';
    if (b[p] !== 0xff) return null;
    const m = b[p + 1]!;
    if (standalone(m)) {
      if (m === 0xd9) return null;
      p += 2;
      continue;
    }
    if (m === 0xda) return null; // a scan before any frame: the decoder refuses it
    const len = be16(b, p + 2);
    if (len < 2) return null;
    const sof = m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;
    if (!sof) {
      p += 2 + len;
      continue;
    }
    if (p + 2 + len > b.length) return 'more';
    const height = be16(b, p + 5);
    const width = be16(b, p + 7);
    const nf = b[p + 9]!;
    if (len < 8 + 3 * nf || nf === 0 || width === 0 || height === 0) return null; // malformed, or height from DNL
    const comps: [number, number][] = [];
    for (let i = 0; i < nf; i++) comps.push([b[p + 11 + 3 * i]! >> 4, b[p + 11 + 3 * i]! & 15]);
    if (comps.some(([h, v]) => h === 0 || v === 0)) return null;
    const hmax = Math.max(...comps.map((c) => c[0]));
    const vmax = Math.max(...comps.map((c) => c[1]));
    const bitsPerUnit = m === 0xc0 || m === 0xc1 ? 2 : m === 0xc2 || m === 0xc3 ? 1 : 0;
    const coding = m === 0xc0 ? 'baseline Huffman JPEG' : m === 0xc1 ? 'sequential Huffman JPEG' : m === 0xc2 ? 'progressive Huffman JPEG' : m === 0xc3 ? 'lossless Huffman JPEG' : 'arithmetic or hierarchical JPEG';
    let units = 0;
    for (const [h, v] of comps) {
      // Blocks (or, lossless, samples) of this component: libjpeg's width_in_blocks × height_in_blocks.
      const side = m === 0xc3 ? 1 : 8;
      units += Math.ceil((width * h) / (hmax * side)) * Math.ceil((height * v) / (vmax * side));
    }
    return { format: 'jpeg', width, height, minBytes: Math.ceil((units * bitsPerUnit) / 8), coding };
  }
}

/**
 * The PNG's IHDR and the least number of bytes its image data can take: the filtered rows hold at
 * least width × height × bits per pixel / 8 bytes, and DEFLATE expands at most
 * {@link DEFLATE_MAX_RATIO} times.
 */
function pngSize(b: Uint8Array): DeclaredSize | 'more' | null {
  if (b.length < 29) return 'more';
  if (String.fromCharCode(b[12]!, b[13]!, b[14]!, b[15]!) !== 'IHDR') return null;
  const width = be32(b, 16);
  const height = be32(b, 20);
  const channels = PNG_CHANNELS[b[25]!];
  const depth = b[24]!;
  if (channels === undefined || ![1, 2, 4, 8, 16].includes(depth) || width === 0 || height === 0) return null;
  const rawBytes = (width * height * channels * depth) / 8;
  return { format: 'png', width, height, minBytes: Math.ceil(rawBytes / DEFLATE_MAX_RATIO), coding: 'PNG (DEFLATE expands at most 1032:1)' };
}

/**
 * The size an image header declares and the fewest bytes a valid file of that size can have,
 * for the formats where such a bound exists (JPEG with Huffman coding, PNG). WebP lossless, GIF
 * (a tiny frame on a large screen is valid) and TIFF have no useful bound. `head` may be a
 * prefix of the file: 'more' asks for a longer one. null: no bound (format without one, or a
 * header the decoder will refuse anyway).
 */
export function declaredSize(head: Uint8Array): DeclaredSize | 'more' | null {
  if (isJpeg(head)) return jpegSize(head);
  if (isPng(head)) return pngSize(head);
  return null;
}

/**
 * Why a file is too short for the pixels its header declares, or null when it is not (or the
 * format has no bound): checked before anything is decoded. `readPrefix(n)` gives the file's
 * first `n` bytes (fewer at its end); `fileBytes` is its size.
 */
export async function implausibleSize(readPrefix: (n: number) => Promise<Uint8Array> | Uint8Array, fileBytes: number): Promise<string | null> {
  let n = Math.min(fileBytes, 1 << 16);
  for (;;) {
    const head = await readPrefix(n);
    const d = declaredSize(head);
    if (d === 'more' && head.length < fileBytes && n < fileBytes) {
      n = Math.min(fileBytes, n * 4);
      continue;
    }
    if (d === null || d === 'more' || fileBytes >= d.minBytes) return null;
    return `truncated or crafted image: its header declares ${d.width}x${d.height} pixels, which a ${d.coding} cannot hold in fewer than ${d.minBytes} bytes, but the file has ${fileBytes}`;
  }
}

/** Where a JPEG's data ends: just past its EOI marker, or -1 when the data stops before one. */
function jpegEnd(b: Uint8Array): number {
  let p = 2;
  let inScan = false;
  while (p + 1 < b.length) {
    if (inScan) {
      // Entropy-coded data: 0xFF is followed by 0 (a stuffed byte), RSTn, fill or a marker.
      const q = b.indexOf(0xff, p);
      if (q < 0 || q + 1 >= b.length) return -1;
      const m = b[q + 1]!;
      if (m === 0 || m === 0xff || (m >= 0xd0 && m <= 0xd7)) {
        p = q + (m === 0xff ? 1 : 2);
        continue;
      }
      inScan = false;
      p = q;
      continue;
    }
    if (b[p] !== 0xff) return -1;
    const m = b[p + 1]!;
    if (m === 0xff) {
      p++;
      continue;
    }
    if (m === 0xd9) return p + 2;
    if (standalone(m)) {
      p += 2;
      continue;
    }
    if (p + 4 > b.length) return -1;
    p += 2 + be16(b, p + 2);
    if (m === 0xda) inScan = true;
  }
  return -1;
}

/** Where a PNG's chunks end: just past IEND, or -1 when a chunk runs past the data or IEND is missing. */
function pngEnd(b: Uint8Array): number {
  let p = 8;
  while (p + 12 <= b.length) {
    const len = be32(b, p);
    if (p + 12 + len > b.length) return -1;
    const type = String.fromCharCode(b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!);
    p += 12 + len;
    if (type === 'IEND') return p;
  }
  return -1;
}

/**
 * Why an encoded JPEG, PNG or WebP is incomplete (no JPEG EOI marker, a PNG chunk cut short or
 * no IEND, a WebP shorter than its RIFF size), or null: for decoders that show what they have
 * (browsers) instead of failing, as libjpeg's "premature end" warning does in Node. Other
 * formats pass unchecked.
 */
export function incompleteData(b: Uint8Array): string | null {
  if (isJpeg(b)) return jpegEnd(b) < 0 ? 'the JPEG data stops before its end marker' : null;
  if (isPng(b)) return pngEnd(b) < 0 ? 'the PNG data stops before its IEND chunk' : null;
  if (b.length >= 12 && String.fromCharCode(...b.subarray(0, 4)) === 'RIFF' && String.fromCharCode(...b.subarray(8, 12)) === 'WEBP') {
    const riff = (b[4]! | (b[5]! << 8) | (b[6]! << 16) | (b[7]! << 24)) >>> 0;
    if (b.length < 8 + riff) return `the WebP file has ${b.length} bytes, its RIFF header says ${8 + riff}`;
  }
  return null;
}
