/**
 * Builders for hand-made (and hostile) checkpoints and tensor files: a tiny pickle assembler,
 * torch zip and legacy containers, zips with DEFLATE entries whose declared sizes can lie, and
 * safetensors files with any header. Shared by the weights tests, the hostile-file regression
 * tests and the fuzzing harness.
 */
import { deflateRawSync } from 'node:zlib';
import { concatChunks, crc32, encodeZip } from '../../src/weights/zip.js';

export const enc = new TextEncoder();

/** Bytes, or nested lists of bytes, concatenated by {@link cat}. */
export type Part = number | Uint8Array | readonly Part[];

/** Concatenates bytes given as numbers, arrays and nested lists. */
export function cat(...parts: Part[]): Uint8Array {
  let n = 0;
  const size = (p: Part): void => {
    if (typeof p === 'number') n++;
    else if (p instanceof Uint8Array) n += p.length;
    else for (const q of p) size(q);
  };
  parts.forEach(size);
  const out = new Uint8Array(n);
  let o = 0;
  const add = (p: Part): void => {
    if (typeof p === 'number') out[o++] = p;
    else if (p instanceof Uint8Array) {
      out.set(p, o);
      o += p.length;
    } else for (const q of p) add(q);
  };
  parts.forEach(add);
  return out;
}

/** `v` as `n` little-endian bytes. */
export const le = (v: number, n: number): number[] => Array.from({ length: n }, (_, i) => Math.floor(v / 2 ** (8 * i)) & 0xff);

/** Pickle opcodes (protocol 2–4) as bytes. */
export const OP = {
  proto: (n: number) => [0x80, n],
  mark: 0x28,
  stop: 0x2e,
  pop: 0x30,
  dup: 0x32,
  tuple: 0x74,
  tuple1: 0x85,
  tuple2: 0x86,
  tuple3: 0x87,
  emptyTuple: 0x29,
  emptyDict: 0x7d,
  emptyList: 0x5d,
  list: 0x6c,
  setitem: 0x73,
  setitems: 0x75,
  append: 0x61,
  appends: 0x65,
  reduce: 0x52,
  build: 0x62,
  persid: 0x51,
  newFalse: 0x89,
  newTrue: 0x88,
  none: 0x4e,
  stackGlobal: 0x93,
  memoize: 0x94,
  put: (i: number) => (i < 256 ? [0x71, i] : [0x72, ...le(i, 4)]),
  get: (i: number) => (i < 256 ? [0x68, i] : [0x6a, ...le(i, 4)]),
  str: (s: string) => {
    const b = enc.encode(s);
    return [0x58, ...le(b.length, 4), ...b];
  },
  sstr: (s: string) => {
    const b = enc.encode(s);
    return [0x8c, b.length, ...b];
  },
  int: (v: number) => [0x4a, ...le(v >>> 0, 4)],
  global: (m: string, n: string) => [0x63, ...enc.encode(`${m}\n${n}\n`)],
  ints: (xs: readonly number[]): number[] => [0x28, ...xs.flatMap((x) => [0x4a, ...le(x >>> 0, 4)]), 0x74],
};

/** Ops that rebuild a tensor view with `_rebuild_tensor_v2` on storage `key`. */
export function tensorOps(storageClass: string, key: string, numel: number, offset: number, size: number[], stride: number[], viewMeta?: Part): Part {
  return [
    OP.global('torch._utils', '_rebuild_tensor_v2'),
    OP.mark,
    OP.mark,
    OP.str('storage'),
    OP.global('torch', storageClass),
    OP.str(key),
    OP.str('cpu'),
    OP.int(numel),
    viewMeta ?? [],
    OP.tuple,
    OP.persid,
    OP.int(offset),
    OP.ints(size),
    OP.ints(stride),
    OP.newFalse,
    OP.global('collections', 'OrderedDict'),
    OP.emptyTuple,
    OP.reduce,
    OP.tuple,
    OP.reduce,
  ];
}

/** A protocol-2 pickle of a dict {name: value ops}. */
export function dictPickle(items: [string, Part][]): Uint8Array {
  return cat(OP.proto(2), OP.emptyDict, OP.mark, items.map(([k, v]) => [OP.str(k), v]), OP.setitems, OP.stop);
}

/** A torch-style zip checkpoint around a pickle and raw storages. */
export function torchZip(pickle: Uint8Array, storages: Record<string, Uint8Array>, extra: Record<string, string> = {}): Uint8Array {
  const entries = [
    { name: 'archive/data.pkl', data: pickle },
    ...Object.entries(extra).map(([k, v]) => ({ name: `archive/${k}`, data: enc.encode(v) })),
    ...Object.entries(storages).map(([k, v]) => ({ name: `archive/data/${k}`, data: v })),
    { name: 'archive/version', data: enc.encode('3\n') },
  ];
  return concatChunks(encodeZip(entries));
}

/** One entry of {@link deflateZip}: DEFLATE-compressed unless `stored`; `declaredSize` may lie. */
export interface RawZipEntry {
  readonly name: string;
  readonly data: Uint8Array;
  readonly stored?: boolean;
  readonly declaredSize?: number;
}

/** A zip whose entries may be DEFLATE-compressed and declare any inflated size (torch never writes these). */
export function deflateZip(entries: readonly RawZipEntry[]): Uint8Array {
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = enc.encode(e.name);
    const body = e.stored ? e.data : new Uint8Array(deflateRawSync(e.data));
    const size = e.declaredSize ?? e.data.length;
    const crc = crc32(e.data);
    const local = new Uint8Array(30 + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(8, e.stored ? 0 : 8, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, body.length, true);
    lv.setUint32(22, size, true);
    lv.setUint16(26, name.length, true);
    local.set(name, 30);
    const cen = new Uint8Array(46 + name.length);
    const cv = new DataView(cen.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(10, e.stored ? 0 : 8, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, body.length, true);
    cv.setUint32(24, size, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, offset, true);
    cen.set(name, 46);
    locals.push(local, body);
    centrals.push(cen);
    offset += local.length + body.length;
  }
  const cdSize = centrals.reduce((n, c) => n + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  return cat(...locals, ...centrals, end);
}

/** A legacy (torch < 1.6) checkpoint: magic, protocol, sys_info, the main pickle, the storage keys, then each storage (element count + bytes). */
export function legacyCheckpoint(main: Uint8Array, storages: readonly { key: string; numel: number; bytes: Uint8Array }[]): Uint8Array {
  const magic = cat(OP.proto(2), [0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19], OP.stop);
  const proto = cat(OP.proto(2), [0x4d, ...le(1001, 2)], OP.stop);
  const sys = cat(OP.proto(2), OP.emptyDict, OP.str('little_endian'), OP.newTrue, OP.setitem, OP.stop);
  const keys = cat(OP.proto(2), OP.emptyList, OP.mark, storages.map((s) => OP.str(s.key)), OP.appends, OP.stop);
  return cat(magic, proto, sys, main, keys, storages.map((s) => [le(s.numel, 8), s.bytes]));
}

/** A safetensors file with any header (JSON-encoded, or JSON text as is) and data; the length field can be overridden. */
export function safetensorsFile(header: unknown, data: Uint8Array, lengthOverride?: bigint): Uint8Array {
  const json = enc.encode(typeof header === 'string' ? header : JSON.stringify(header));
  const head = new Uint8Array(8);
  new DataView(head.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true);
  return cat(head, json, data);
}

/** Float32 values as little-endian bytes. */
export const f32bytes = (xs: readonly number[]): Uint8Array => new Uint8Array(Float32Array.from(xs).buffer);
