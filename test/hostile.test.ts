/**
 * Regression tests for the hostile-file classes of issue 15, each built by code: amplifying
 * pickles, compressed zip entries that expand past any budget, strided tensors over huge
 * storages, truncated and oversized images, restore pre-flight (FIFO inputs, dangling symlink
 * outputs, output format limits), backtracking globs, unsafe characters in messages, ORT's own
 * log lines, and the safetensors overlap check around empty tensors.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import sharp, { type Sharp } from 'sharp';
import { escapeUnsafe, sanitize } from '../src/errors.js';
import { globMatch } from '../src/cli/inputs.js';
import { preflight, type PlannedFile } from '../src/cli/restore.js';
import { probeImage, decodePixels } from '../src/image/decode.js';
import { checkOutputSize } from '../src/image/io.js';
import { declaredSize, incompleteData } from '../src/image/structure.js';
import { decodeImage as webDecodeImage } from '../src/image/codec-web.js';
import { memoryAllowance } from '../src/weights/budget.js';
import { loadPth } from '../src/weights/pth.js';
import { readSafetensors, readSafetensorsWithMetadata, requireF32 } from '../src/weights/safetensors.js';
import { loadStateDict } from '../src/weights/statedict.js';
import { crc32 } from '../src/fs/crc32.js';
import { OP, cat, deflateZip, dictPickle, enc, f32bytes, legacyCheckpoint, safetensorsFile, tensorOps, type Part } from './helpers/pickles.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TMP = mkdtempSync(join(tmpdir(), 'diffir-hostile-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

/** Asserts `fn` throws (or rejects with) an Error whose message is one safe line matching `re`. */
async function refuses(fn: () => unknown, re: RegExp): Promise<void> {
  await assert.rejects(async () => fn(), (e: unknown) => {
    assert.ok(e instanceof Error, 'not an Error');
    assert.ok(!/[\n\r]/.test(e.message), `multi-line message: ${JSON.stringify(e.message)}`);
    assert.equal(escapeUnsafe(e.message), e.message, `unsafe characters in ${JSON.stringify(e.message)}`);
    assert.match(e.message, re);
    return true;
  });
}

const EVIL = 'w\u001b[2J\u001b]0;pwned\u0007\r\u202eexe.txt\u2066';

describe('messages', () => {
  test('sanitize escapes control, bidi and invisible characters and cuts long values', () => {
    assert.equal(sanitize('a\u001bb\u202ec\u200bd\r'), 'a\\u001bb\\u202ec\\u200bd\\u000d');
    assert.equal(sanitize('\ud800x'), '\\ud800x');
    assert.equal(sanitize('é😀 plain'), 'é😀 plain');
    const long = sanitize('x'.repeat(5000));
    assert.ok(long.length < 230 && long.endsWith('…(5000 chars)'), long);
  });

  test('names from a file are escaped in reader errors', async () => {
    const st = safetensorsFile({ [EVIL]: { dtype: 'F32', shape: [5], data_offsets: [0, 16] } }, f32bytes([1, 2, 3, 4]));
    await refuses(() => readSafetensors(st, 'evil.safetensors'), /^evil\.safetensors: tensor 'w\\u001b\[2J\\u001b\]0;pwned\\u0007\\u000d\\u202eexe\.txt\\u2066' of shape/);
    const ok = readSafetensors(safetensorsFile({ [EVIL]: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32bytes([1, 2, 3, 4])));
    await refuses(() => requireF32(ok, 'input', 'io.safetensors'), /^io\.safetensors: missing tensor 'input' \(has: w\\u001b/);
    const zip = deflateZip([{ name: 'archive/data.pkl', data: dictPickle([['w', tensorOps('FloatStorage', EVIL, 4, 0, [4], [1])]]), stored: true }]);
    await refuses(() => loadPth(zip, { name: 'evil.pth' }), /^evil\.pth: storage 'w\\u001b\[2J.*' is missing/);
    await refuses(() => loadPth(new Uint8Array(10), { name: `a${EVIL}.pth` }), /^aw\\u001b\[2J.*\.pth: not a zip archive/);
  });

  test("ONNX Runtime's own log line does not reach stderr beside our error", () => {
    const script = join(TMP, 'ort-log.mjs');
    const dist = (p: string): string => pathToFileURL(join(root, 'dist', p)).href;
    writeFileSync(
      script,
      `import { Graph } from '${dist('src/graph/ir.js')}';
import * as op from '${dist('src/graph/ops.js')}';
import { toOnnx } from '${dist('src/graph/onnx.js')}';
import { Session } from '${dist('src/runtime/session.js')}';
import { sym, dimMul } from '${dist('src/graph/dim.js')}';
const g = new Graph();
const n = sym('n');
g.output(op.reshape(g.input('a', [dimMul(n, 2)]), [2, n]), 'y');
const s = await Session.create(toOnnx(g, { params: 'initializers' }), { threads: 1 });
try { await s.run({ a: { dtype: 'float32', shape: [3], data: new Float32Array(3) } }); } catch (e) { console.log('refused'); }
`,
    );
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8' });
    assert.equal(r.stdout.trim(), 'refused');
    assert.equal(r.stderr, '', 'ORT printed its own log line');
  });
});

describe('safetensors', () => {
  test('an empty tensor between two overlapping ones does not hide the overlap', async () => {
    const header = {
      a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
      z: { dtype: 'F32', shape: [0], data_offsets: [4, 4] },
      b: { dtype: 'F32', shape: [3], data_offsets: [4, 16] },
    };
    await refuses(() => readSafetensors(safetensorsFile(header, f32bytes([1, 2, 3, 4])), 'ov.safetensors'), /^ov\.safetensors: tensors 'a' and 'b' overlap/);
    // Empty tensors anywhere, even inside another tensor's bytes, are fine.
    const fine = { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, z: { dtype: 'F32', shape: [0, 3], data_offsets: [8, 8] } };
    assert.deepEqual(readSafetensors(safetensorsFile(fine, f32bytes([1, 2, 3, 4]))).get('z')!.shape, [0, 3]);
  });

  test('JSON nesting is limited to 128 levels, checked before parsing (25 M levels took 100 s and 2.5 GB)', async () => {
    // Unknown fields may nest (the reference reader ignores them) up to serde_json's limit.
    const nested = (levels: number) => `{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":${'['.repeat(levels - 2)}${']'.repeat(levels - 2)}}}`;
    assert.deepEqual([...readSafetensors(safetensorsFile(nested(128), f32bytes([7]))).get('t')!.data], [7]);
    await refuses(() => readSafetensors(safetensorsFile(nested(129), f32bytes([7])), 'deep.safetensors'), /^deep\.safetensors: safetensors header nests deeper than 128 levels/);
    // Brackets inside strings (escaped quotes included) are text, not nesting.
    const text = { __metadata__: { note: `"\\"${'['.repeat(500)}` }, t: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } };
    assert.equal(readSafetensorsWithMetadata(safetensorsFile(text, f32bytes([7]))).metadata.get('note')!.length, 503);
    // 10 MB of '[': refused by the scan, not by JSON.parse's error after building the arrays.
    await refuses(() => readSafetensors(safetensorsFile(`{"__metadata__":${'['.repeat(10_000_000)}`, new Uint8Array(0)), 'bomb.safetensors'), /^bomb\.safetensors: safetensors header nests deeper/);
  });

  test('the header and every tensor are charged to the same read budget as a .pth, before allocation', async () => {
    const n = 1 << 20;
    const data = new Uint8Array(n).fill(1);
    const file = safetensorsFile({ b: { dtype: 'I8', shape: [n], data_offsets: [0, n] } }, data);
    assert.equal(readSafetensors(file).get('b')!.data.length, n); // default: 64 × size + 256 MiB
    // I8 becomes int32: 4 MiB of output, charged before it is allocated.
    await refuses(() => readSafetensors(file, 'i8.safetensors', { maxBytes: 4 * n }), new RegExp(`^i8\\.safetensors: tensor 'b' would need ${4 * n} bytes, more than a ${file.length}-byte file may use`));
    assert.equal(readSafetensors(file, 'i8.safetensors', { maxBytes: 4 * n + 4096 }).get('b')!.data.length, n);
    // A header of a million empty arrays: 128 bytes each to parse, refused under the budget of the
    // file's size + 64 MiB, before JSON.parse builds them.
    const arrays = `{"__metadata__":{},"x":[${Array(1_000_000).fill('[]').join(',')}]}`;
    const bomb = safetensorsFile(arrays, new Uint8Array(0));
    await refuses(() => readSafetensors(bomb, 'arrays.safetensors', { maxBytes: bomb.length + 2 ** 26 }), /^arrays\.safetensors: parsing the JSON header would need 1\d{8} bytes/);
    // 2²² + 1 of them (12.6 MB): refused by the scan whatever the budget (parsing took ~7 s per 10 M).
    const many = safetensorsFile(`{"x":[${Array(2 ** 22 + 1).fill('[]').join(',')}]}`, new Uint8Array(0));
    await refuses(() => readSafetensors(many, 'many.safetensors'), /^many\.safetensors: safetensors header has more than 4194304 JSON arrays and objects/);
    // loadStateDict passes its maxBytes on, as it does for .pth files.
    writeFileSync(join(TMP, 'i8.safetensors'), file);
    await refuses(() => loadStateDict(join(TMP, 'i8.safetensors'), { maxBytes: 4 * n }), /i8\.safetensors: tensor 'b' would need/);
  });
});

describe('zip inflation against a budget', () => {
  const pickle = dictPickle([['w', tensorOps('FloatStorage', '0', 4, 0, [4], [1])]]);

  test('a compressed checkpoint within its budget still loads', () => {
    const zip = deflateZip([{ name: 'archive/data.pkl', data: pickle }, { name: 'archive/data/0', data: f32bytes([1, 2, 3, 4]) }]);
    const d = loadPth(zip) as Map<string, { data: Float32Array }>;
    assert.deepEqual(Array.from(d.get('w')!.data), [1, 2, 3, 4]);
  });

  test('data.pkl declaring 630 MB in a small file is refused before inflating', async () => {
    const zip = deflateZip([{ name: 'archive/data.pkl', data: pickle, declaredSize: 630_000_000 }]);
    assert.ok(630_000_000 > memoryAllowance(zip.length));
    await refuses(() => loadPth(zip, { name: 'bomb.pth' }), /^bomb\.pth: inflating zip entry 'archive\/data\.pkl' would need 630000000 bytes, more than a \d+-byte file may use/);
  });

  test('an entry that inflates past its declared size stops at that size', async () => {
    const big = new Uint8Array(4 << 20); // 4 MiB of zeros compresses to ~4 kB
    const zip = deflateZip([{ name: 'archive/data.pkl', data: cat(OP.proto(2), OP.none, OP.stop), stored: true }, { name: 'archive/data/0', data: big, declaredSize: 16 }]);
    const lying = dictPickle([['w', tensorOps('FloatStorage', '0', 4, 0, [4], [1])]]);
    const z2 = deflateZip([{ name: 'archive/data.pkl', data: lying, stored: true }, { name: 'archive/data/0', data: big, declaredSize: 16 }]);
    assert.equal(loadPth(zip), null); // never read
    await refuses(() => loadPth(z2, { name: 'lie.pth' }), /^lie\.pth: zip entry 'archive\/data\/0' cannot be inflated to its declared 16 bytes/);
  });

  test('a compressed storage may not inflate past what its declared size needs', async () => {
    const big = new Uint8Array(4 << 20);
    const zip = deflateZip([{ name: 'archive/data.pkl', data: pickle, stored: true }, { name: 'archive/data/0', data: big }]);
    await refuses(() => loadPth(zip, { name: 's.pth' }), /^s\.pth: zip entry 'archive\/data\/0' declares 4194304 bytes once inflated, more than the 16 it can hold/);
    // The same 4 MiB storage, declared as such, loads only under a larger budget.
    const fits = deflateZip([{ name: 'archive/data.pkl', data: dictPickle([['w', tensorOps('ByteStorage', '0', 4 << 20, 0, [4], [1])]]), stored: true }, { name: 'archive/data/0', data: big }]);
    assert.equal((loadPth(fits) as Map<string, { data: Uint8Array }>).get('w')!.data.length, 4);
    await refuses(() => loadPth(fits, { name: 'f.pth', maxBytes: 1 << 20 }), /^f\.pth: inflating zip entry 'archive\/data\/0' would need 4194304 bytes/);
  });
});

describe('pickle VM budgets', () => {
  /** A zip checkpoint whose data.pkl is `body` inside a protocol-2 pickle, with raw storages. */
  const zipOf = (body: Part, storages: Record<string, Uint8Array> = {}): Uint8Array =>
    deflateZip([{ name: 'archive/data.pkl', data: cat(OP.proto(2), body, OP.stop), stored: true }, ...Object.entries(storages).map(([k, v]) => ({ name: `archive/data/${k}`, data: v, stored: true }))]);
  const pairs = (n: number): Part => [OP.emptyList, OP.put(0), OP.mark, Array.from({ length: n }, (_, i) => [OP.mark, OP.str(`k${i}`), [0x4b, 1], OP.tuple]), OP.appends];

  test('OrderedDict called again and again on one memoised list is refused by the work budget, quickly', async () => {
    const calls = Array.from({ length: 3000 }, () => [OP.global('collections', 'OrderedDict'), OP.get(0), OP.tuple1, OP.reduce, OP.pop]);
    const zip = zipOf([pairs(5000), OP.pop, calls, OP.none]);
    assert.ok(zip.length < 200_000);
    await refuses(() => loadPth(zip, { name: 'amp.pth' }), /^amp\.pth: pickle needs more than \d+ steps of work for its \d+ bytes/);
    // Under a tighter memory allowance, the objects it builds are refused first.
    await refuses(() => loadPth(zip, { name: 'amp.pth', maxBytes: 4 << 20 }), /^amp\.pth: the pickle's objects would need \d+ bytes, more than a \d+-byte file may use/);
  });

  test('torch.Size and _codecs.encode on one memoised argument share one result', () => {
    const big = '\u00e9'.repeat(1 << 16);
    const body: Part = [
      OP.emptyList,
      OP.put(1),
      OP.mark,
      [OP.global('_codecs', 'encode'), OP.str(big), OP.put(0), OP.str('latin1'), OP.tuple2, OP.reduce],
      Array.from({ length: 3000 }, () => [OP.global('_codecs', 'encode'), OP.get(0), OP.str('latin1'), OP.tuple2, OP.reduce]),
      OP.appends,
      OP.pop,
      OP.emptyList,
      OP.mark,
      [OP.global('torch', 'Size'), OP.ints([2, 3, 4]), OP.put(2), OP.tuple1, OP.reduce],
      Array.from({ length: 3000 }, () => [OP.global('torch', 'Size'), OP.get(2), OP.tuple1, OP.reduce]),
      OP.appends,
      OP.get(1),
      OP.tuple2,
    ];
    const [sizes, bytes] = loadPth(zipOf(body)) as unknown as [number[][], Uint8Array[]];
    assert.equal(bytes.length, 3001);
    assert.equal(bytes[0]!.length, 1 << 16);
    assert.equal(bytes[0]![5], 0xe9);
    assert.ok(bytes.every((b) => b === bytes[0]), '3001 copies instead of one shared result');
    assert.equal(sizes.length, 3001);
    assert.deepEqual([...sizes[3000]!], [2, 3, 4]);
    assert.ok(sizes.every((z) => z === sizes[0]));
  });

  test('torch.device accepts only a device name, not a container to stringify', async () => {
    const calls = [pairs(10), OP.pop, OP.global('torch', 'device'), OP.get(0), OP.tuple1, OP.reduce];
    await refuses(() => loadPth(zipOf(calls), { name: 'dev.pth' }), /^dev\.pth: torch\.device called with a list of 10, not a device name/);
    const ok = loadPth(zipOf([OP.global('torch', 'device'), OP.str('cuda'), OP.int(1), OP.tuple2, OP.reduce]));
    assert.equal(ok, 'cuda:1');
  });

  test('a strided tensor over a large storage is gathered in time linear in its elements', () => {
    const n = 2_000_000;
    const storage = new Uint8Array(5 * n);
    for (let i = 0; i < storage.length; i++) storage[i] = (i * 7) & 0xff;
    const d = loadPth(zipOf(dictPickle([['w', tensorOps('ByteStorage', '0', storage.length, 3, [n], [5])]]).subarray(2, -1), { '0': storage })) as Map<string, { data: Uint8Array }>;
    const w = d.get('w')!.data;
    assert.equal(w.length, n);
    for (const i of [0, 1, 12345, n - 1]) assert.equal(w[i], ((3 + 5 * i) * 7) & 0xff);
  });

  test('legacy checkpoints get the same budgets', async () => {
    const calls = Array.from({ length: 3000 }, () => [OP.global('collections', 'OrderedDict'), OP.get(0), OP.tuple1, OP.reduce, OP.pop]);
    const main = cat(OP.proto(2), pairs(5000), OP.pop, calls, OP.emptyDict, OP.stop);
    await refuses(() => loadPth(legacyCheckpoint(main, []), { name: 'old.pth' }), /^old\.pth: pickle needs more than \d+ steps of work/);
    const bomb = cat(OP.proto(2), dictPickle([['w', tensorOps('FloatStorage', 'r', 1, 0, [100000, 100000], [0, 0], OP.none)]]).subarray(2));
    await refuses(() => loadPth(legacyCheckpoint(bomb, [{ key: 'r', numel: 1, bytes: f32bytes([1]) }]), { name: 'old.pth' }), /^old\.pth: tensor of size \[100000, 100000\].* would need 40000000000 bytes/);
  });
});

async function jpegWithRows(rows: number): Promise<Uint8Array> {
  const w = 64;
  const px = Buffer.alloc(w * 64 * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37) & 255;
  const jpg = new Uint8Array(await sharp(px, { raw: { width: w, height: 64, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());
  for (let i = 2; i + 9 < jpg.length; i++) {
    if (jpg[i] === 0xff && (jpg[i + 1] === 0xc0 || jpg[i + 1] === 0xc2)) {
      new DataView(jpg.buffer).setUint16(i + 5, rows); // SOF height: the data still holds 64 rows
      return jpg;
    }
  }
  throw new Error('no SOF marker');
}

/** `jpg` with its SOF's size set to `w` × `h`. */
function claimJpegSize(jpg: Uint8Array, w: number, h: number): Uint8Array {
  const out = jpg.slice();
  for (let i = 2; i + 9 < out.length; i++) {
    if (out[i] === 0xff && (out[i + 1] === 0xc0 || out[i + 1] === 0xc2)) {
      new DataView(out.buffer).setUint16(i + 5, h);
      new DataView(out.buffer).setUint16(i + 7, w);
      return out;
    }
  }
  throw new Error('no SOF marker');
}

/** `jpg` with APP15 segments of `bytes` bytes in all inserted after SOI (the SOF moves that far). */
function withAppSegment(jpg: Uint8Array, bytes: number): Uint8Array {
  const parts: Uint8Array[] = [jpg.subarray(0, 2)];
  for (let left = bytes; left > 0; left -= 65535) {
    const seg = new Uint8Array(2 + Math.min(65535, left)).fill(0xaa);
    seg[0] = 0xff;
    seg[1] = 0xef;
    new DataView(seg.buffer).setUint16(2, seg.length - 2);
    parts.push(seg);
  }
  parts.push(jpg.subarray(2));
  return cat(...parts);
}

/** A flat-colour image of `w` × `h` (1 channel: gray). */
function flat(w: number, h: number, channels: 1 | 3): Sharp {
  const s = sharp({ create: { width: w, height: h, channels: 3, background: '#7f7f7f' } });
  return channels === 1 ? s.toColourspace('b-w') : s;
}

/** A real 8×8 PNG whose IHDR (CRC fixed) claims `w`×`h`: the header says big, the data is tiny. */
async function pngClaiming(w: number, h: number): Promise<Uint8Array> {
  const png = new Uint8Array(await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } }).png().toBuffer());
  const v = new DataView(png.buffer);
  v.setUint32(16, w);
  v.setUint32(20, h);
  v.setUint32(29, crc32(png.subarray(12, 29)));
  return png;
}

describe('images', () => {
  test('a JPEG whose header promises more rows than its data holds is refused', async () => {
    // 128 rows are plausible for the file's size, so the decoder runs and libjpeg's warning refuses it.
    const jpg = await jpegWithRows(128);
    assert.equal((await probeImage(jpg)).height, 128); // the header alone looks fine
    await refuses(() => decodePixels(jpg, { name: 'tall.jpg' }), /^tall\.jpg: truncated or damaged image data \(.*premature end/i);
    // A lenient caller can still read what is there, even rows no file of this size can hold.
    assert.equal((await decodePixels(jpg, { failOn: 'none' })).height, 128);
    assert.equal((await decodePixels(await jpegWithRows(65500), { failOn: 'none' })).height, 65500);
  });

  test('a small JPEG or PNG claiming a large size is refused from its header, before decoding', async () => {
    // 65500 rows × 64 columns of 4:2:0 baseline JPEG: 65504 + 2 × 16376 blocks of ≥ 2 bits each.
    const tall = await jpegWithRows(65500);
    await refuses(() => probeImage(tall, { name: 'tall.jpg' }), new RegExp(`^tall\\.jpg: truncated or crafted image: its header declares 64x65500 pixels, which a baseline Huffman JPEG cannot hold in fewer than ${(98256 * 2) / 8} bytes, but the file has ${tall.length}$`));
    // The fuzzer's worst case: a few hundred bytes of progressive JPEG claiming 10000 × 10000.
    const small = new Uint8Array(await sharp({ create: { width: 16, height: 16, channels: 3, background: '#3a7' } }).jpeg({ progressive: true }).toBuffer());
    const big = claimJpegSize(small, 10000, 10000);
    const blocks = 1250 * 1250 + 2 * 625 * 625; // Y, then Cb and Cr at 4:2:0; ≥ 1 bit each
    await refuses(() => decodePixels(big, { name: 'big.jpg' }), new RegExp(`^big\\.jpg: truncated or crafted image: its header declares 10000x10000 pixels, which a progressive Huffman JPEG cannot hold in fewer than ${Math.ceil(blocks / 8)} bytes, but the file has ${big.length}$`));
    // From a file too (the header is read with positional reads, past a 200 KB APP segment).
    const padded = withAppSegment(big, 200_000);
    writeFileSync(join(TMP, 'padded.jpg'), padded);
    await refuses(() => probeImage(join(TMP, 'padded.jpg')), /padded\.jpg: truncated or crafted image: its header declares 10000x10000 pixels/);
    // PNG: 9000 × 9000 RGB is 243 MB of samples; DEFLATE needs ≥ 1/1032 of that.
    const png = await pngClaiming(9000, 9000);
    await refuses(() => probeImage(png, { name: 'big.png' }), new RegExp(`^big\\.png: truncated or crafted image: .* fewer than ${Math.ceil(243e6 / 1032)} bytes`));
  });

  test('no valid image is refused by the size bound: flat-colour JPEGs and PNGs from sharp reach it', async () => {
    // A flat image with optimised Huffman tables codes each block in the minimum the bound assumes
    // (1-bit DC and EOB codes), so these files sit just above it: the bound cannot be tighter.
    const S = 1024;
    const blocks = (S / 8) ** 2;
    const cases: [string, 1 | 3, object, number][] = [
      ['gray baseline', 1, {}, blocks * 2],
      ['4:2:0 baseline', 3, {}, blocks * 1.5 * 2],
      ['4:4:4 baseline', 3, { chromaSubsampling: '4:4:4' }, blocks * 3 * 2],
      ['gray progressive (mozjpeg)', 1, { mozjpeg: true }, blocks],
      ['4:2:0 progressive (mozjpeg)', 3, { mozjpeg: true }, blocks * 1.5],
      ['4:4:4 progressive', 3, { progressive: true, chromaSubsampling: '4:4:4' }, blocks * 3],
    ];
    for (const [label, channels, opts, bits] of cases) {
      const jpg = new Uint8Array(await flat(S, S, channels).jpeg({ quality: 90, ...opts }).toBuffer());
      const d = declaredSize(jpg);
      assert.ok(d && d !== 'more', label);
      assert.equal(d.minBytes, bits / 8, label);
      assert.ok(jpg.length >= d.minBytes, `${label}: ${jpg.length} bytes < bound ${d.minBytes}`);
      if (!label.startsWith('4:4:4 progressive')) assert.ok(jpg.length - d.minBytes < 1500, `${label}: ${jpg.length} bytes, bound ${d.minBytes}: the coded data should sit at the bound`);
      assert.equal((await probeImage(jpg, { name: label })).width, S);
    }
    // Large: 4096 × 4096 (16.8 megapixels) of one colour, 98 KB.
    const large = new Uint8Array(await flat(4096, 4096, 3).jpeg({ quality: 95 }).toBuffer());
    assert.equal((await decodePixels(large, { name: 'large.jpg' })).height, 4096);
    for (const [label, opts, channels] of [['RGB', {}, 3], ['palette', { palette: true, colours: 2 }, 3], ['gray', {}, 1]] as const) {
      const png = new Uint8Array(await flat(2048, 2048, channels).png({ compressionLevel: 9, ...opts }).toBuffer());
      const d = declaredSize(png);
      assert.ok(d && d !== 'more' && png.length >= d.minBytes && png.length < 2 * d.minBytes, `${label} PNG: ${png.length} bytes, bound ${JSON.stringify(d)}`);
      assert.equal((await probeImage(png)).width, 2048);
    }
  });

  test('the browser decoder refuses truncated JPEG, PNG and WebP, and sizes a file cannot hold, before decoding', async () => {
    const src = sharp({ create: { width: 40, height: 30, channels: 3, background: '#c84' } });
    const files = {
      'cut.jpg': new Uint8Array(await src.clone().jpeg().toBuffer()),
      'cut-progressive.jpg': new Uint8Array(await src.clone().jpeg({ progressive: true }).withMetadata({ orientation: 6 }).toBuffer()),
      'cut.png': new Uint8Array(await src.clone().png().toBuffer()),
      'cut.webp': new Uint8Array(await src.clone().webp().toBuffer()),
    };
    for (const [name, bytes] of Object.entries(files)) {
      assert.equal(incompleteData(bytes), null, `${name} complete`);
      assert.equal(incompleteData(cat(bytes, new Uint8Array(50))), null, `${name} with bytes after its end`);
      // Every cut is seen, whether it falls in a header, the coded data or the end marker.
      for (let n = 12; n < bytes.length; n++) assert.notEqual(incompleteData(bytes.subarray(0, n)), null, `${name} cut to ${n} of ${bytes.length} bytes`);
      const kind = name.split('.')[1] === 'jpg' ? 'JPEG data stops before its end marker' : name.endsWith('png') ? 'PNG data stops before its IEND chunk' : 'WebP file has';
      // Through the page's decoder (the browser's createImageBitmap would show a partial image).
      await refuses(() => webDecodeImage(bytes.subarray(0, bytes.length - 7)), new RegExp(`^truncated image data \\(the ${kind}.*\\); the file is incomplete$`));
    }
    // Markers inside the coded data: a stuffed 0xFF 0x00 and restart markers do not end it early.
    const noisy = new Uint8Array(await sharp(Buffer.from(Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 7919) & 255)), { raw: { width: 64, height: 64, channels: 3 } }).jpeg({ quality: 100 }).toBuffer());
    assert.ok(noisy.some((v, i) => v === 0xff && noisy[i + 1] === 0), 'the coded data has stuffed bytes');
    assert.equal(incompleteData(noisy), null);
    assert.notEqual(incompleteData(noisy.subarray(0, noisy.length - 2)), null);
    const huge = claimJpegSize(files['cut.jpg'], 10000, 10000);
    await refuses(() => webDecodeImage(huge), /^truncated or crafted image: its header declares 10000x10000 pixels/);
  });

  test('the pixel limit is checked from the header, before any decoding', async () => {
    // 60000 × 60000 would be 10.8 GB of RGB; the header is all there is.
    const huge = await pngClaiming(60000, 60000);
    const edge = await pngClaiming(10000, 10000);
    await refuses(() => probeImage(huge, { name: 'huge.png' }), /^huge\.png: image too large \(60000x60000 = 3600000000 pixels; the limit is 100000000/);
    await refuses(() => decodePixels(edge, { name: 'edge.png', maxPixels: 99_999_999 }), /^edge\.png: image too large/);
  });

  test('output sizes are checked against the output format before any work', async () => {
    await refuses(async () => checkOutputSize('o.jpg', 'jpg', 256, 262000), /^o\.jpg: a 256×262000 result cannot be saved as JPEG \(at most 65535 pixels a side\); choose png or tiff/);
    await refuses(async () => checkOutputSize('o.webp', 'webp', 16384, 10), /at most 16383 pixels a side/);
    checkOutputSize('o.png', 'png', 100000, 10);
  });
});

describe('restore pre-flight', () => {
  const dir = join(TMP, 'pre');
  mkdirSync(join(dir, 'out'), { recursive: true });
  const plan = (name: string, output: string, format: PlannedFile['format'] = 'png'): PlannedFile => ({ input: { path: join(dir, name), explicit: true }, output: join(dir, 'out', output), format });
  const planner = { plan: (w: number, h: number) => (w * h > 1e6 ? (() => { throw new Error(`${w}×${h} needs about 9 GB even in tiles`); })() : 0) };

  test('FIFO inputs, dangling symlink outputs, format limits and the memory plan are decided before any model run', async () => {
    const small = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } }).png().toBuffer();
    writeFileSync(join(dir, 'a.png'), small);
    writeFileSync(join(dir, 'b.png'), small);
    // Real files (a header claiming more than the file holds is refused earlier, see 'images').
    writeFileSync(join(dir, 'tall.jpg'), await flat(8, 16400, 3).jpeg().toBuffer());
    writeFileSync(join(dir, 'big.png'), await flat(1001, 1000, 3).png().toBuffer());
    execFileSync('mkfifo', [join(dir, 'fifo.png')]);
    symlinkSync(join(dir, 'nowhere.png'), join(dir, 'out', 'b_x.png'));
    mkdirSync(join(dir, 'out', 'folder_x.png'));
    writeFileSync(join(dir, 'folder.png'), small);
    const files = [plan('a.png', 'a_x.png'), plan('fifo.png', 'fifo_x.png'), plan('b.png', 'b_x.png'), plan('tall.jpg', 'tall_x.jpg', 'jpg'), plan('big.png', 'big_x.png'), plan('folder.png', 'folder_x.png')];
    const v = await preflight(files, planner, 4, { overwrite: false });
    assert.deepEqual(v[0], { run: true, pixels: 64 });
    assert.match(String(!v[1]!.run && v[1]!.problem), /^not a regular file \(a FIFO/);
    assert.match(String(!v[2]!.run && v[2]!.skip), /b_x\.png exists \(a symbolic link to a missing file\)$/);
    assert.match(String(!v[3]!.run && v[3]!.problem), /a 32×65600 result cannot be saved as JPEG/);
    assert.match(String(!v[4]!.run && v[4]!.problem), /1001×1000 needs about 9 GB even in tiles/);
    assert.match(String(!v[5]!.run && v[5]!.problem), /folder_x\.png is a folder/);
    // With --overwrite a dangling link is replaced, not skipped.
    assert.deepEqual((await preflight([files[2]!], planner, 4, { overwrite: true }))[0], { run: true, pixels: 64 });
  });
});

describe('globs', () => {
  test('many stars against a long name do not backtrack', () => {
    const name = `${'a'.repeat(20000)}.png`;
    assert.equal(globMatch(`${'*a'.repeat(30)}*b.png`, name), false);
    assert.equal(globMatch(`${'*a'.repeat(30)}*.png`, name), true);
    assert.equal(globMatch('img?.jp*g', 'IMG1.JPEG', true), true);
    assert.equal(globMatch('img?.jp*g', 'IMG1.JPEG', false), false);
    assert.equal(globMatch('a*', 'a'), true);
    assert.equal(globMatch('*?', ''), false);
  });
});
