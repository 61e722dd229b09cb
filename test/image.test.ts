import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { f32 } from '../src/tensor.js';
import { DEFAULT_MAX_PIXELS, loadImage, quantize, saveImage } from '../src/image/io.js';
import { loadMask } from '../src/image/mask.js';
import { resizeAlpha, resizeRgb } from '../src/image/resize.js';
import { exifOrientation, iccColourSpace, readPngChunks, resetExifOrientation } from '../src/image/metadata.js';

// dist/test/image.test.js → repo root is two levels up; sample photos live beside the repo.
const IMAGES = fileURLToPath(new URL('../../../shared/data/images/', import.meta.url));
const TMP = mkdtempSync(join(tmpdir(), 'diffir-image-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

let seq = 0;
/** A fresh folder under TMP. */
function freshDir(): string {
  const d = join(TMP, `d${seq++}`);
  mkdirSync(d);
  return d;
}

/** Deterministic pseudo-random samples. */
function samples(n: number, max: number, seed = 1): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(s % (max + 1));
  }
  return out;
}

type Space = 'srgb' | 'b-w' | 'rgb16' | 'grey16';

/** Writes interleaved samples with sharp (8-bit when `data` is Uint8Array, 16-bit for Uint16Array). */
async function writeRaw(path: string, data: Uint8Array | Uint16Array, w: number, h: number, channels: 1 | 2 | 3 | 4, space: Space): Promise<void> {
  await sharp(data, { raw: { width: w, height: h, channels } }).toColourspace(space).toFile(path);
}

/** Reads a file's samples as encoded (no ICC transform, no rotation), in its own colour space. */
async function readRaw(path: string, space: Space): Promise<{ data: number[]; channels: number; width: number; height: number }> {
  const deep = space === 'rgb16' || space === 'grey16';
  const r = await sharp(path, { ignoreIcc: true }).toColourspace(space).raw(deep ? { depth: 'ushort' } : {}).toBuffer({ resolveWithObject: true });
  const buf = Buffer.from(r.data);
  const data = deep ? Array.from(new Uint16Array(buf.buffer, buf.byteOffset, buf.byteLength / 2)) : Array.from(buf);
  return { data, channels: r.info.channels, width: r.info.width, height: r.info.height };
}

/** Asserts that `fn` rejects with a one-line Error whose message matches every pattern. */
async function rejectsOneLine(fn: () => Promise<unknown>, ...res: RegExp[]): Promise<string> {
  let msg = '';
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof Error, 'not an Error');
    msg = e.message;
    assert.ok(!e.message.includes('\n'), `multi-line message: ${JSON.stringify(e.message)}`);
    for (const re of res) assert.match(e.message, re);
    return true;
  });
  return msg;
}

function noTempFiles(dir: string): void {
  const left = readdirSync(dir).filter((f) => f.endsWith('.tmp') || f.startsWith('.'));
  assert.deepEqual(left, [], `temporary files left behind: ${left.join(', ')}`);
}

/** Float32 values x with fround(x*max) exactly k + 0.5, for ties-to-even checks. */
function ties(max: number, count: number): { x: number; k: number }[] {
  const out: { x: number; k: number }[] = [];
  for (let k = 0; k < max && out.length < count; k++) {
    const x = Math.fround((k + 0.5) / max);
    if (Math.fround(x * max) === k + 0.5) out.push({ x, k });
  }
  return out;
}

describe('loadImage / saveImage round trips', () => {
  test('8-bit RGB PNG round trip is exact', async () => {
    const dir = freshDir();
    const w = 7, h = 5;
    const src = Uint8Array.from(samples(w * h * 3, 255, 7));
    await writeRaw(join(dir, 'in.png'), src, w, h, 3, 'srgb');
    const img = await loadImage(join(dir, 'in.png'));
    assert.deepEqual(img.rgb.shape, [1, 3, h, w]);
    assert.equal(img.alpha, null);
    assert.equal(img.gray, false);
    assert.equal(img.bitDepth, 8);
    assert.equal(img.format, 'png');
    assert.equal(img.width, w);
    assert.equal(img.height, h);
    assert.equal(img.orientationApplied, false);
    // planar layout: channel c of pixel p at c*H*W + p, value v/255 in float32
    for (let p = 0; p < w * h; p++) {
      for (let c = 0; c < 3; c++) assert.equal(img.rgb.data[c * w * h + p], Math.fround(src[p * 3 + c]! / 255));
    }
    const res = await saveImage(join(dir, 'out.png'), img);
    assert.equal(res.format, 'png');
    assert.deepEqual(res.warnings, []);
    const back = await readRaw(join(dir, 'out.png'), 'srgb');
    assert.equal(back.channels, 3);
    assert.deepEqual(back.data, Array.from(src));
    noTempFiles(dir);
  });

  test('16-bit PNG keeps 16-bit precision', async () => {
    const dir = freshDir();
    const w = 6, h = 4;
    const src = Uint16Array.from(samples(w * h * 3, 65535, 3));
    assert.ok(Array.from(src).some((v) => v % 257 !== 0), 'fixture must hold values 8 bits cannot express');
    await writeRaw(join(dir, 'in16.png'), src, w, h, 3, 'rgb16');
    const img = await loadImage(join(dir, 'in16.png'));
    assert.equal(img.bitDepth, 16);
    for (let p = 0; p < w * h; p++) {
      for (let c = 0; c < 3; c++) assert.equal(img.rgb.data[c * w * h + p], Math.fround(src[p * 3 + c]! / 65535));
    }
    await saveImage(join(dir, 'out16.png'), img);
    const meta = await sharp(join(dir, 'out16.png')).metadata();
    assert.equal(meta.depth, 'ushort');
    const back = await readRaw(join(dir, 'out16.png'), 'rgb16');
    assert.deepEqual(back.data, Array.from(src));
  });

  test('16-bit TIFF keeps 16-bit precision', async () => {
    const dir = freshDir();
    const w = 5, h = 3;
    const src = Uint16Array.from(samples(w * h * 3, 65535, 11));
    await sharp(src, { raw: { width: w, height: h, channels: 3 } }).toColourspace('rgb16').tiff({ compression: 'lzw' }).toFile(join(dir, 'in.tif'));
    const img = await loadImage(join(dir, 'in.tif'));
    assert.equal(img.format, 'tiff');
    assert.equal(img.bitDepth, 16);
    await saveImage(join(dir, 'out.tiff'), img);
    assert.deepEqual((await readRaw(join(dir, 'out.tiff'), 'rgb16')).data, Array.from(src));
  });

  test('RGBA keeps alpha (PNG, lossless WebP); JPEG drops it with a warning', async () => {
    const dir = freshDir();
    const w = 6, h = 5;
    const src = Uint8Array.from(samples(w * h * 4, 255, 5));
    await writeRaw(join(dir, 'rgba.png'), src, w, h, 4, 'srgb');
    const img = await loadImage(join(dir, 'rgba.png'));
    assert.ok(img.alpha);
    assert.deepEqual(img.alpha.shape, [1, 1, h, w]);
    for (let p = 0; p < w * h; p++) assert.equal(img.alpha.data[p], Math.fround(src[p * 4 + 3]! / 255));
    await saveImage(join(dir, 'out.png'), img);
    const back = await readRaw(join(dir, 'out.png'), 'srgb');
    assert.equal(back.channels, 4);
    assert.deepEqual(back.data, Array.from(src));
    await saveImage(join(dir, 'out.webp'), img);
    const webp = await readRaw(join(dir, 'out.webp'), 'srgb');
    assert.equal(webp.channels, 4);
    assert.deepEqual(webp.data, Array.from(src));
    const res = await saveImage(join(dir, 'out.jpg'), img);
    assert.equal(res.format, 'jpeg');
    assert.equal(res.warnings.length, 1);
    assert.match(res.warnings[0]!, /alpha/);
    assert.equal((await sharp(join(dir, 'out.jpg')).metadata()).channels, 3);
  });

  test('grayscale in → gray flag → saved as 1-channel PNG', async () => {
    const dir = freshDir();
    const w = 9, h = 4;
    const src = Uint8Array.from(samples(w * h, 255, 9));
    await writeRaw(join(dir, 'g.png'), src, w, h, 1, 'b-w');
    const img = await loadImage(join(dir, 'g.png'));
    assert.equal(img.gray, true);
    assert.deepEqual(img.rgb.shape, [1, 3, h, w]);
    const hw = w * h;
    for (let p = 0; p < hw; p++) {
      assert.equal(img.rgb.data[p], Math.fround(src[p]! / 255));
      assert.equal(img.rgb.data[hw + p], img.rgb.data[p]);
      assert.equal(img.rgb.data[2 * hw + p], img.rgb.data[p]);
    }
    await saveImage(join(dir, 'out.png'), img);
    const meta = await sharp(join(dir, 'out.png')).metadata();
    assert.equal(meta.channels, 1);
    assert.equal(meta.space, 'b-w');
    assert.deepEqual((await readRaw(join(dir, 'out.png'), 'b-w')).data, Array.from(src));
  });

  test('16-bit gray + alpha round trip', async () => {
    const dir = freshDir();
    const w = 4, h = 3;
    const src = Uint16Array.from(samples(w * h * 2, 65535, 13));
    await writeRaw(join(dir, 'ga16.png'), src, w, h, 2, 'grey16');
    const img = await loadImage(join(dir, 'ga16.png'));
    assert.equal(img.gray, true);
    assert.equal(img.bitDepth, 16);
    assert.ok(img.alpha);
    await saveImage(join(dir, 'out.png'), img);
    const meta = await sharp(join(dir, 'out.png')).metadata();
    assert.equal(meta.channels, 2);
    assert.equal(meta.depth, 'ushort');
    const back = await readRaw(join(dir, 'out.png'), 'grey16');
    assert.equal(back.channels, 2);
    assert.deepEqual(back.data, Array.from(src));
  });

  test('palette PNG with transparency loads as RGBA', async () => {
    const dir = freshDir();
    const w = 8, h = 2;
    const src = new Uint8Array(w * h * 4);
    for (let p = 0; p < w * h; p++) src.set(p % 2 ? [255, 0, 0, 255] : [0, 0, 255, 0], p * 4);
    await sharp(src, { raw: { width: w, height: h, channels: 4 } }).png({ palette: true }).toFile(join(dir, 'pal.png'));
    assert.equal((await sharp(join(dir, 'pal.png')).metadata()).isPalette, true);
    const img = await loadImage(join(dir, 'pal.png'));
    assert.equal(img.gray, false);
    assert.ok(img.alpha);
    assert.equal(img.rgb.data[1], 1); // pixel 1 red
    assert.equal(img.alpha.data[0], 0);
    assert.equal(img.alpha.data[1], 1);
  });

  test('EXIF orientation 6 JPEG loads upright with swapped size; saved EXIF says 1', async () => {
    const dir = freshDir();
    const w = 32, h = 16;
    const src = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) src.set(x < 16 ? [255, 0, 0] : [0, 0, 255], (y * w + x) * 3);
    await sharp(src, { raw: { width: w, height: h, channels: 3 } })
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .withExifMerge({ IFD0: { Make: 'DiffirTestCam' } })
      .toFile(join(dir, 'rot.jpg'));
    assert.equal((await sharp(join(dir, 'rot.jpg')).metadata()).orientation, 6);
    const img = await loadImage(join(dir, 'rot.jpg'));
    assert.equal(img.width, h);
    assert.equal(img.height, w);
    assert.deepEqual(img.rgb.shape, [1, 3, w, h]);
    assert.equal(img.orientationApplied, true);
    assert.ok(img.exif);
    assert.equal(exifOrientation(img.exif), 6);
    // 90° clockwise: the left (red) half of the stored image becomes the top half.
    const hw = w * h;
    const at = (c: number, x: number, y: number): number => img.rgb.data[c * hw + y * h + x]!;
    assert.ok(at(0, 8, 4) > 0.9 && at(2, 8, 4) < 0.1, 'top should be red');
    assert.ok(at(0, 8, 28) < 0.1 && at(2, 8, 28) > 0.9, 'bottom should be blue');
    await saveImage(join(dir, 'out.jpg'), img);
    const meta = await sharp(join(dir, 'out.jpg')).metadata();
    assert.equal(meta.width, h);
    assert.equal(meta.height, w);
    assert.ok((meta.orientation ?? 1) === 1, `orientation ${meta.orientation}`);
    assert.ok(meta.exif && meta.exif.includes(Buffer.from('DiffirTestCam')), 'EXIF kept');
    const again = await loadImage(join(dir, 'out.jpg'));
    assert.equal(again.width, h);
    assert.equal(again.orientationApplied, false);
    await saveImage(join(dir, 'out.png'), img);
    const pmeta = await sharp(join(dir, 'out.png')).metadata();
    assert.ok((pmeta.orientation ?? 1) === 1);
    assert.ok(pmeta.exif && pmeta.exif.includes(Buffer.from('DiffirTestCam')), 'EXIF kept in PNG');
  });

  test('ICC profile is kept byte for byte, pixels untransformed (PNG, JPEG, WebP, TIFF)', async () => {
    const dir = freshDir();
    const w = 8, h = 6;
    const base = Uint8Array.from(samples(w * h * 3, 255, 21));
    // sharp attaches a Display P3 profile (converting the pixels once); the file is the fixture.
    await sharp(base, { raw: { width: w, height: h, channels: 3 } }).withIccProfile('p3').png().toFile(join(dir, 'p3.png'));
    const encoded = await readRaw(join(dir, 'p3.png'), 'srgb');
    const img = await loadImage(join(dir, 'p3.png'));
    assert.ok(img.icc && img.icc.length > 128);
    assert.equal(iccColourSpace(img.icc), 'RGB');
    for (let p = 0; p < w * h; p++) assert.equal(img.rgb.data[p], Math.fround(encoded.data[p * 3]! / 255));
    const r = await saveImage(join(dir, 'out.png'), img);
    assert.deepEqual(r.warnings, []);
    const chunks = readPngChunks(readFileSync(join(dir, 'out.png'))).map((c) => c.type);
    assert.ok(chunks.includes('iCCP') && !chunks.includes('sRGB'));
    const meta = await sharp(join(dir, 'out.png')).metadata();
    assert.ok(meta.icc && Buffer.compare(meta.icc, Buffer.from(img.icc)) === 0, 'PNG ICC differs');
    assert.deepEqual((await readRaw(join(dir, 'out.png'), 'srgb')).data, encoded.data);
    for (const name of ['out.jpg', 'out.webp', 'out.tif']) {
      const res = await saveImage(join(dir, name), img, { quality: name === 'out.jpg' ? 100 : undefined });
      assert.deepEqual(res.warnings, [], name);
      const m = await sharp(join(dir, name)).metadata();
      assert.ok(m.icc && Buffer.compare(m.icc, Buffer.from(img.icc)) === 0, `${name}: ICC differs`);
    }
    assert.deepEqual((await readRaw(join(dir, 'out.tif'), 'srgb')).data, encoded.data, 'TIFF pixels');
    assert.deepEqual((await readRaw(join(dir, 'out.webp'), 'srgb')).data, encoded.data, 'WebP pixels');
    const jpg = await readRaw(join(dir, 'out.jpg'), 'srgb');
    const maxErr = Math.max(...jpg.data.map((v, i) => Math.abs(v - encoded.data[i]!)));
    assert.ok(maxErr < 40, `JPEG pixels moved by ${maxErr}: profile applied?`);
  });

  test('CMYK JPEG loads as RGB and its profile is not carried over', async () => {
    const dir = freshDir();
    await sharp({ create: { width: 16, height: 8, channels: 3, background: '#c03060' } }).toColourspace('cmyk').jpeg().toFile(join(dir, 'cmyk.jpg'));
    const img = await loadImage(join(dir, 'cmyk.jpg'));
    assert.deepEqual(img.rgb.shape, [1, 3, 8, 16]);
    assert.equal(img.icc, undefined);
    assert.ok(Math.abs(img.rgb.data[0]! - 0xc0 / 255) < 0.05, `red ${img.rgb.data[0]}`);
  });

  test('gray sources save gray to JPEG and TIFF, RGB to WebP; EXIF dropped for TIFF with a warning', async () => {
    const dir = freshDir();
    const g = await sharp(new Uint8Array(64).map((_, i) => i * 4), { raw: { width: 8, height: 8, channels: 1 } })
      .toColourspace('b-w')
      .withExif({ IFD0: { Make: 'GrayCam' } })
      .jpeg()
      .toBuffer();
    const img = await loadImage(g);
    assert.equal(img.gray, true);
    assert.ok(img.exif);
    for (const [name, channels] of [['g.jpg', 1], ['g.tif', 1], ['g.webp', 3]] as const) {
      const r = await saveImage(join(dir, name), img);
      const m = await sharp(join(dir, name)).metadata();
      assert.equal(m.channels, channels, name);
      if (name === 'g.tif') assert.match(r.warnings.join(' '), /EXIF/);
      else {
        assert.deepEqual(r.warnings, [], name);
        assert.ok(m.exif?.includes(Buffer.from('GrayCam')), `${name}: EXIF lost`);
      }
    }
    const r16 = await saveImage(join(dir, 'x.jpg'), { rgb: img.rgb, bitDepth: 16 });
    assert.match(r16.warnings.join(' '), /8-bit/);
  });

  test('loads from an encoded buffer', async () => {
    const png = await sharp(Uint8Array.from([1, 2, 3, 4, 5, 6]), { raw: { width: 2, height: 1, channels: 3 } }).png().toBuffer();
    const img = await loadImage(new Uint8Array(png));
    assert.equal(img.width, 2);
    assert.equal(img.rgb.data[1], Math.fround(4 / 255));
  });
});

describe('quantisation', () => {
  test('round half to even on crafted ties, clamping, NaN', () => {
    const t8 = ties(255, 40);
    assert.ok(t8.length >= 10, `only ${t8.length} ties found`);
    assert.ok(t8.some((t) => t.k % 2 === 0) && t8.some((t) => t.k % 2 === 1), 'need both parities');
    for (const { x, k } of t8) assert.equal(quantize(x, 255), k % 2 === 0 ? k : k + 1, `x=${x} (${k}.5)`);
    const t16 = ties(65535, 20);
    for (const { x, k } of t16) assert.equal(quantize(x, 65535), k % 2 === 0 ? k : k + 1);
    assert.equal(quantize(-0.3, 255), 0);
    assert.equal(quantize(1.7, 255), 255);
    assert.equal(quantize(Number.NaN, 255), 0);
    assert.equal(quantize(1, 65535), 65535);
    assert.equal(quantize(0.2, 255), 51);
  });

  test('saveImage writes ties rounded half to even', async () => {
    const dir = freshDir();
    const t = ties(255, 12);
    const vals = [...t.map((v) => v.x), -0.5, 1.5];
    const want = [...t.map((v) => (v.k % 2 === 0 ? v.k : v.k + 1)), 0, 255];
    const w = vals.length;
    const rgb = f32([1, 3, 1, w], [...vals, ...vals, ...vals]);
    await saveImage(join(dir, 'ties.png'), { rgb });
    const back = await readRaw(join(dir, 'ties.png'), 'srgb');
    assert.deepEqual(back.data.filter((_, i) => i % 3 === 0), want);
    // Math.round would round every .5 up: check the test would notice.
    assert.notDeepEqual(t.map((v) => Math.round(v.k + 0.5)), t.map((v) => (v.k % 2 === 0 ? v.k : v.k + 1)));
  });
});

describe('safe writing', () => {
  const rgb = f32([1, 3, 2, 2], new Array(12).fill(0.5));

  test('refuses to overwrite unless asked; no temp files left', async () => {
    const dir = freshDir();
    const out = join(dir, 'x.png');
    await saveImage(out, { rgb });
    const first = readFileSync(out);
    const msg = await rejectsOneLine(() => saveImage(out, { rgb: f32([1, 3, 2, 2]) }), /x\.png/, /already exists/, /--overwrite/);
    assert.ok(msg.includes(out));
    assert.deepEqual(readFileSync(out), first, 'file changed although overwrite was refused');
    await saveImage(out, { rgb: f32([1, 3, 2, 2]) }, { overwrite: true });
    assert.notDeepEqual(readFileSync(out), first);
    noTempFiles(dir);
    assert.deepEqual(readdirSync(dir), ['x.png']);
  });

  test('concurrent writers to one path: exactly one wins, the other is refused', async () => {
    const dir = freshDir();
    const out = join(dir, 'race.png');
    const results = await Promise.allSettled([0.2, 0.8].map((v) => saveImage(out, { rgb: f32([1, 3, 2, 2], new Array(12).fill(v)) })));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    const failed = results.find((r) => r.status === 'rejected');
    assert.ok(failed && failed.status === 'rejected');
    assert.match(String((failed.reason as Error).message), /already exists/);
    noTempFiles(dir);
  });

  test('format from the extension, explicit format, unknown extension', async () => {
    const dir = freshDir();
    const r = await saveImage(join(dir, 'a.JPEG'), { rgb });
    assert.equal(r.format, 'jpeg');
    assert.equal((await sharp(join(dir, 'a.JPEG')).metadata()).format, 'jpeg');
    const r2 = await saveImage(join(dir, 'b.img'), { rgb }, { format: 'webp' });
    assert.equal((await sharp(join(dir, 'b.img')).metadata()).format, 'webp');
    assert.equal(r2.format, 'webp');
    await rejectsOneLine(() => saveImage(join(dir, 'c.bmp'), { rgb }), /c\.bmp/, /\.bmp/);
    await rejectsOneLine(() => saveImage(join(dir, 'd.png'), { rgb }, { quality: 0 }), /quality/);
    await rejectsOneLine(() => saveImage(join(dir, 'e.png'), { rgb: f32([3, 2, 2]) }), /\[1,3,H,W\]/);
    await rejectsOneLine(() => saveImage(join(dir, 'e.png'), { rgb, alpha: f32([1, 1, 3, 2]) }), /alpha/);
    noTempFiles(dir);
  });

  test('missing or unusable output folder gives a one-line error naming it', async () => {
    const dir = freshDir();
    const missing = join(dir, 'nope');
    await rejectsOneLine(() => saveImage(join(missing, 'x.png'), { rgb }), new RegExp(`${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: output folder does not exist`));
    writeFileSync(join(dir, 'file'), 'x');
    await rejectsOneLine(() => saveImage(join(dir, 'file', 'x.png'), { rgb }), /file: output path is not a folder/);
    await saveImage(join(missing, 'deep', 'x.png'), { rgb }, { createFolder: true });
    assert.ok(existsSync(join(missing, 'deep', 'x.png')));
  });

  test('read-only folder gives a one-line error naming it', { skip: process.getuid?.() === 0 ? 'running as root: permissions are not enforced' : false }, async () => {
    const dir = freshDir();
    const ro = join(dir, 'ro');
    mkdirSync(ro);
    chmodSync(ro, 0o555);
    try {
      await rejectsOneLine(() => saveImage(join(ro, 'x.png'), { rgb }), /ro: output folder is not writable/);
    } finally {
      chmodSync(ro, 0o755);
    }
  });
});

describe('load errors are one line and name the file', () => {
  test('missing file, directory, empty file', async () => {
    const dir = freshDir();
    await rejectsOneLine(() => loadImage(join(dir, 'missing.png')), /missing\.png: file not found/);
    await rejectsOneLine(() => loadImage(dir), /is a directory/);
    writeFileSync(join(dir, 'empty.png'), '');
    await rejectsOneLine(() => loadImage(join(dir, 'empty.png')), /empty\.png: empty file/);
  });

  test('text file, corrupt PNG, truncated JPEG', async () => {
    const dir = freshDir();
    writeFileSync(join(dir, 'notes.png'), 'this is not an image\nsecond line\n');
    await rejectsOneLine(() => loadImage(join(dir, 'notes.png')), /notes\.png: not a readable image \(corrupt or unsupported format/);
    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } }).png().toBuffer();
    const bad = Buffer.from(png);
    for (let i = 40; i < bad.length - 12; i++) bad[i] = (bad[i]! * 31 + i) & 0xff;
    writeFileSync(join(dir, 'corrupt.png'), bad);
    await rejectsOneLine(() => loadImage(join(dir, 'corrupt.png')), /corrupt\.png: not a readable image/);
    const jpg = await sharp(Uint8Array.from(samples(128 * 128 * 3, 255, 4)), { raw: { width: 128, height: 128, channels: 3 } }).jpeg().toBuffer();
    writeFileSync(join(dir, 'photo.jpg'), jpg.subarray(0, Math.floor(jpg.length * 0.6)));
    await rejectsOneLine(() => loadImage(join(dir, 'photo.jpg')), /photo\.jpg: not a readable image/);
    await rejectsOneLine(() => loadImage(new Uint8Array([1, 2, 3]), { name: 'upload' }), /^upload: not a readable image/);
  });

  test('pixel limit', async () => {
    const dir = freshDir();
    await writeRaw(join(dir, 'big.png'), new Uint8Array(20 * 10 * 3), 20, 10, 3, 'srgb');
    await rejectsOneLine(() => loadImage(join(dir, 'big.png'), { maxPixels: 199 }), /big\.png: image too large \(20x10 = 200 pixels; the limit is 199/);
    assert.equal((await loadImage(join(dir, 'big.png'), { maxPixels: 200 })).width, 20);
    assert.ok(DEFAULT_MAX_PIXELS >= 4096 * 4096);
  });
});

describe('masks', () => {
  test('white = hole, black = keep, thresholded at 0.5', async () => {
    const dir = freshDir();
    const w = 6, h = 4;
    const vals = [0, 100, 127, 128, 200, 255];
    const g = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) g[y * w + x] = vals[x]!;
    await writeRaw(join(dir, 'm.png'), g, w, h, 1, 'b-w');
    const m = await loadMask(join(dir, 'm.png'), w, h);
    assert.deepEqual(m.shape, [1, 1, h, w]);
    assert.deepEqual(Array.from(m.data.subarray(0, w)), [0, 0, 0, 1, 1, 1]);
    const m2 = await loadMask(join(dir, 'm.png'), w, h, { threshold: 0 });
    assert.deepEqual(Array.from(m2.data.subarray(0, w)), [0, 1, 1, 1, 1, 1]);
  });

  test('alpha-only mask and RGBA strokes', async () => {
    const dir = freshDir();
    const w = 4, h = 1;
    // constant white colour, alpha carries the mask
    await writeRaw(join(dir, 'a.png'), Uint8Array.from([255, 255, 255, 0, 255, 255, 255, 255, 255, 255, 255, 10, 255, 255, 255, 250]), w, h, 4, 'srgb');
    assert.deepEqual(Array.from((await loadMask(join(dir, 'a.png'), w, h)).data), [0, 1, 0, 1]);
    // white strokes opaque, transparent elsewhere with arbitrary colour
    await writeRaw(join(dir, 'b.png'), Uint8Array.from([255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 255, 0, 0, 0, 0]), w, h, 4, 'srgb');
    assert.deepEqual(Array.from((await loadMask(join(dir, 'b.png'), w, h)).data), [1, 0, 0, 0]);
  });

  test('wrong size names the file and both sizes', async () => {
    const dir = freshDir();
    await writeRaw(join(dir, 'mask.png'), new Uint8Array(5 * 3), 5, 3, 1, 'b-w');
    await rejectsOneLine(() => loadMask(join(dir, 'mask.png'), 10, 6), /mask\.png/, /5x3/, /10x6/);
    await rejectsOneLine(() => loadMask(join(dir, 'nomask.png'), 10, 6), /nomask\.png: file not found/);
  });
});

describe('resize', () => {
  test('resizeAlpha / resizeRgb give the target shape and keep constants', async () => {
    const a = f32([1, 1, 3, 5], new Array(15).fill(0.25));
    const ra = await resizeAlpha(a, 20, 12);
    assert.deepEqual(ra.shape, [1, 1, 12, 20]);
    for (const v of ra.data) assert.ok(Math.abs(v - 0.25) < 1e-4, `${v}`);
    const rgb = f32([1, 3, 4, 4], [...new Array(16).fill(0.1), ...new Array(16).fill(0.5), ...new Array(16).fill(0.9)]);
    const rr = await resizeRgb(rgb, 8, 8);
    assert.deepEqual(rr.shape, [1, 3, 8, 8]);
    for (let c = 0; c < 3; c++) for (let p = 0; p < 64; p++) assert.ok(Math.abs(rr.data[c * 64 + p]! - [0.1, 0.5, 0.9][c]!) < 1e-4);
    const down = await resizeRgb(rr, 2, 3, { kernel: 'lanczos3' });
    assert.deepEqual(down.shape, [1, 3, 3, 2]);
    await assert.rejects(() => resizeAlpha(rgb, 4, 4), /\[1,1,H,W\]/);
    await assert.rejects(() => resizeRgb(rgb, 0, 4), /positive/);
  });

  test('alpha resized to a super-resolved size re-attaches and saves', async () => {
    const dir = freshDir();
    const alpha = f32([1, 1, 2, 2], [0, 1, 1, 0]);
    const big = await resizeAlpha(alpha, 8, 8);
    for (const v of big.data) assert.ok(v >= 0 && v <= 1);
    await saveImage(join(dir, 'sr.png'), { rgb: f32([1, 3, 8, 8], new Array(192).fill(0.5)), alpha: big });
    assert.equal((await sharp(join(dir, 'sr.png')).metadata()).channels, 4);
  });
});

describe('metadata helpers', () => {
  test('resetExifOrientation sets the tag to 1 in both byte orders', () => {
    for (const little of [true, false]) {
      const b = new Uint8Array(8 + 2 + 12 + 4);
      const dv = new DataView(b.buffer);
      b.set(little ? [0x49, 0x49] : [0x4d, 0x4d]);
      dv.setUint16(2, 42, little);
      dv.setUint32(4, 8, little);
      dv.setUint16(8, 1, little);
      dv.setUint16(10, 0x0112, little);
      dv.setUint16(12, 3, little);
      dv.setUint32(14, 1, little);
      dv.setUint16(18, 8, little);
      assert.equal(exifOrientation(b), 8);
      const r = resetExifOrientation(b);
      assert.equal(exifOrientation(r), 1);
      assert.equal(exifOrientation(b), 8, 'input must not be modified');
    }
    assert.deepEqual(resetExifOrientation(Uint8Array.from([1, 2, 3])), Uint8Array.from([1, 2, 3]));
  });
});

describe('sample photos', () => {
  const expected: Record<string, [number, number, string]> = {
    'astronaut.png': [512, 512, 'png'],
    'chelsea.png': [451, 300, 'png'],
    'coffee.png': [600, 400, 'png'],
    'rocket.jpg': [640, 427, 'jpeg'],
    'hubble_deep_field.jpg': [1000, 872, 'jpeg'],
  };
  for (const [name, [w, h, fmt]] of Object.entries(expected)) {
    test(name, { skip: existsSync(join(IMAGES, name)) ? false : `missing ${IMAGES}${name}` }, async () => {
      const img = await loadImage(join(IMAGES, name));
      assert.equal(img.width, w);
      assert.equal(img.height, h);
      assert.equal(img.format, fmt);
      assert.deepEqual(img.rgb.shape, [1, 3, h, w]);
      assert.equal(img.gray, false);
      assert.equal(img.bitDepth, 8);
      let lo = 1, hi = 0;
      for (const v of img.rgb.data) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      assert.ok(lo >= 0 && hi <= 1 && hi > lo);
    });
  }

  test('astronaut.png saves back to identical pixels with its metadata', { skip: existsSync(join(IMAGES, 'astronaut.png')) ? false : 'missing' }, async () => {
    const dir = freshDir();
    const img = await loadImage(join(IMAGES, 'astronaut.png'));
    await saveImage(join(dir, 'a.png'), img);
    const a = await readRaw(join(IMAGES, 'astronaut.png'), 'srgb');
    const b = await readRaw(join(dir, 'a.png'), 'srgb');
    assert.deepEqual(b.data.length, a.data.length);
    assert.ok(b.data.every((v, i) => v === a.data[i]), 'pixels differ');
    if (img.icc) {
      const m = await sharp(join(dir, 'a.png')).metadata();
      assert.ok(m.icc && Buffer.compare(m.icc, Buffer.from(img.icc)) === 0);
    }
  });
});
