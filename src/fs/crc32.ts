/**
 * CRC-32 (IEEE 802.3), as zip entries and PNG chunks use it: zlib's native implementation
 * when Node has it, else a table-driven fallback.
 */
import { nativeCrc32 } from '#host';

let table: Uint32Array | undefined;

/** CRC-32 of some bytes, continuing from `seed` (0 to start). */
export function crc32(data: Uint8Array, seed = 0): number {
  if (nativeCrc32) return nativeCrc32(data, seed);
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = ~seed >>> 0;
  for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
