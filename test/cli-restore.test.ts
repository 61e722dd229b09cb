/**
 * `diffir restore`, `diffir inpaint` and `diffir export-onnx` end to end, on the tiny
 * official-format fixtures and small images: outputs (size, channels, bit depth, gray,
 * orientation), batches with skips and failures, JSON progress, exact tiling, inpainting
 * keeping the known pixels, the exported model against the library, one-line errors, and
 * Ctrl-C during a batch.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp, { type Metadata } from 'sharp';
import { Restorer } from '../src/restore/restore.js';
import { Session } from '../src/runtime/session.js';
import { loadImage } from '../src/image/io.js';
import { loadMask } from '../src/image/mask.js';
import { parseBytes } from '../src/cli/options.js';
import { globMatch } from '../src/cli/inputs.js';
import { planOutputs } from '../src/cli/restore.js';
import { fmtDuration } from '../src/cli/progress.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const fixtures = resolve(root, '../shared/fixtures');
const photos = resolve(root, '../shared/data/images');
const bin = join(root, 'dist/src/cli/main.js');
const W = { sr: join(fixtures, 'realsr_x4/s2.pth'), deblur: join(fixtures, 'deblur/s2.pth'), inpaint: join(fixtures, 'inpaint/s2.pth'), s1: join(fixtures, 'deblur/s1.pth') };
const tmp = mkdtempSync(join(tmpdir(), 'diffir-restore-'));
const env = { ...process.env, DIFFIR_DEBUG: '' };

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function diffir(...args: string[]): Run {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function assertOneLineError(r: Run, pattern: RegExp): void {
  assert.notEqual(r.code, 0, 'expected a failure');
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one stderr line, got: ${r.stderr}`);
  assert.match(lines[0]!, /^diffir: /);
  assert.match(lines[0]!, pattern);
}

/** A deterministic RGB pattern, `channels` per pixel, 8 or 16 bits. */
function pattern(w: number, h: number, channels: number, deep = false): Uint8Array | Uint16Array {
  const n = w * h * channels;
  const d = deep ? new Uint16Array(n) : new Uint8Array(n);
  const max = deep ? 65535 : 255;
  for (let i = 0; i < n; i++) d[i] = Math.round(max * (0.5 + 0.4 * Math.sin(i * 0.37 + (i % channels))));
  return d;
}

function raw(data: Uint8Array | Uint16Array, width: number, height: number, channels: 1 | 2 | 3 | 4) {
  return sharp(data, { raw: { width, height, channels } });
}

/** Pixels of an image file as decoded (upright). */
async function pixels(path: string): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The inpainting test mask for 24×30 images: 255 in a 10×12 hole. */
function holeMask(): Uint8Array {
  const m = new Uint8Array(24 * 30);
  for (let y = 8; y < 20; y++) for (let x = 6; x < 16; x++) m[y * 24 + x] = 255;
  return m;
}

const batch = join(tmp, 'batch');
const mixed = join(tmp, 'mixed');

before(async () => {
  mkdirSync(batch);
  await raw(pattern(24, 30, 3), 24, 30, 3).png().toFile(join(batch, 'photo.png'));
  await raw(pattern(24, 30, 3), 24, 30, 3).jpeg({ quality: 90 }).toFile(join(batch, 'photo_q.jpg'));
  await raw(pattern(24, 30, 4), 24, 30, 4).png().toFile(join(batch, 'rgba.png'));
  await raw(pattern(24, 30, 3, true), 24, 30, 3).toColourspace('rgb16').png().toFile(join(batch, 'deep.png'));
  await raw(pattern(24, 30, 1), 24, 30, 1).toColourspace('b-w').png().toFile(join(batch, 'gray.png'));
  // Stored 30 wide × 24 high with EXIF orientation 6 (rotate 90° clockwise to view): upright it is 24 × 30.
  await raw(pattern(30, 24, 3), 30, 24, 3).jpeg({ quality: 90 }).withMetadata({ orientation: 6 }).toFile(join(batch, 'rotated.jpg'));
  await sharp(join(photos, 'chelsea.png')).resize(40).png().toFile(join(batch, 'cat.png'));
  writeFileSync(join(batch, 'notes.txt'), 'not an image');
  await raw(holeMask(), 24, 30, 1).png().toFile(join(tmp, 'mask.png'));

  mkdirSync(mixed);
  copyFileSync(join(batch, 'photo.png'), join(mixed, 'a.png'));
  writeFileSync(join(mixed, 'b.png'), Buffer.from('89504e470d0a1a0a0000000d4948445200000010', 'hex'));
  copyFileSync(join(batch, 'photo_q.jpg'), join(mixed, 'c.jpg'));
});

after(() => rmSync(tmp, { recursive: true, force: true }));

describe('diffir restore', () => {
  const out = join(tmp, 'out-sr');

  test('restores a folder: sizes ×4, alpha, 16-bit, gray and orientation kept; non-images skipped', async () => {
    const r = diffir('restore', batch, '-o', out, '--weights', W.sr, '--threads', '2');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /done: 7 restored, 0 failed, 0 skipped/);
    assert.deepEqual(readdirSync(out).sort(), ['cat_diffir.png', 'deep_diffir.png', 'gray_diffir.png', 'photo_diffir.png', 'photo_q_diffir.jpg', 'rgba_diffir.png', 'rotated_diffir.jpg']);
    const meta = async (name: string) => sharp(join(out, name)).metadata();
    const expect = async (name: string, want: Partial<Metadata>) => {
      const m = await meta(name);
      for (const [k, v] of Object.entries(want)) assert.equal((m as unknown as Record<string, unknown>)[k], v, `${name}: ${k}`);
    };
    await expect('photo_diffir.png', { format: 'png', width: 96, height: 120, channels: 3, hasAlpha: false, depth: 'uchar' });
    await expect('photo_q_diffir.jpg', { format: 'jpeg', width: 96, height: 120, channels: 3 });
    await expect('rgba_diffir.png', { format: 'png', width: 96, height: 120, channels: 4, hasAlpha: true });
    await expect('deep_diffir.png', { format: 'png', width: 96, height: 120, depth: 'ushort' });
    await expect('gray_diffir.png', { format: 'png', width: 96, height: 120, channels: 1 });
    await expect('cat_diffir.png', { width: 160, height: 108 });
    const rot = await meta('rotated_diffir.jpg');
    assert.equal(rot.width, 96);
    assert.equal(rot.height, 120);
    assert.ok(rot.orientation === undefined || rot.orientation === 1, `orientation ${rot.orientation}`);
    // Upright content: the output of the rotated JPEG is the output of its upright pixels.
    const upright = join(tmp, 'upright');
    mkdirSync(upright);
    await sharp(join(batch, 'rotated.jpg')).rotate().png().toFile(join(upright, 'rotated.png'));
    assert.equal(diffir('restore', join(upright, 'rotated.png'), '-o', upright, '--weights', W.sr, '-q').code, 0);
    const a = await pixels(join(out, 'rotated_diffir.jpg'));
    const b = await pixels(join(upright, 'rotated_diffir.png'));
    let sum = 0;
    for (let i = 0; i < a.data.length; i++) sum += Math.abs(a.data[i]! - b.data[i]!);
    assert.ok(sum / a.data.length < 4, `mean difference ${sum / a.data.length} levels`);
    // The alpha channel is carried over (upscaled), not invented.
    const alpha = (await sharp(join(out, 'rgba_diffir.png')).stats()).channels[3]!;
    const srcAlpha = (await sharp(join(batch, 'rgba.png')).stats()).channels[3]!;
    assert.ok(Math.abs(alpha.mean - srcAlpha.mean) < 1, `alpha mean ${alpha.mean} vs ${srcAlpha.mean}`);
  });

  test('existing outputs are skipped without --overwrite and replaced with it', async () => {
    const before = statSync(join(out, 'photo_diffir.png')).mtimeMs;
    const r = diffir('restore', batch, '-o', out, '--weights', W.sr);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /photo\.png: skipped, .*photo_diffir\.png exists/);
    assert.match(r.stdout, /done: 0 restored, 0 failed, 7 skipped/);
    assert.equal(statSync(join(out, 'photo_diffir.png')).mtimeMs, before);
    assert.equal(diffir('restore', batch, '-o', out, '--weights', W.sr, '--quiet').stdout, '');
    writeFileSync(join(out, 'photo_diffir.png'), 'stale');
    const o = diffir('restore', join(batch, 'photo.png'), '-o', out, '--weights', W.sr, '--overwrite');
    assert.equal(o.code, 0, o.stderr);
    assert.match(o.stdout, /done: 1 restored/);
    assert.equal((await sharp(join(out, 'photo_diffir.png')).metadata()).width, 96);
  });

  test('a corrupt file fails, the others are restored, the exit status is 1', () => {
    const o = join(tmp, 'out-mixed');
    const r = diffir('restore', mixed, '-o', o, '--weights', W.deblur);
    assert.equal(r.code, 1);
    const errs = r.stderr.trim().split('\n').filter((l) => l.startsWith('diffir:'));
    assert.equal(errs.length, 1, r.stderr);
    assert.match(errs[0]!, /^diffir: .*b\.png: not a readable image/);
    assert.match(r.stdout, /done: 2 restored, 1 failed, 0 skipped/);
    assert.deepEqual(readdirSync(o).sort(), ['a_diffir.png', 'c_diffir.jpg']);
  });

  test('--json: one event per line on stdout, ending with the summary; globs expand', () => {
    const o = join(tmp, 'out-json');
    const r = diffir('restore', join(mixed, '*.png'), '-o', o, '--weights', W.deblur, '--json', '--format', 'webp', '--suffix', '.x');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, '');
    const ev = jsonLines(r.stdout);
    assert.equal(ev[0]!.event, 'start');
    assert.equal(ev[0]!.files, 2);
    assert.equal(ev[0]!.task, 'deblur');
    const done = ev.filter((e) => e.event === 'file_done');
    assert.equal(done.length, 1);
    assert.equal(done[0]!.output, join(o, 'a.x.webp'));
    assert.equal(done[0]!.output_width, 24);
    assert.ok(ev.some((e) => e.event === 'progress' && e.phase === 'network'));
    assert.ok(ev.some((e) => e.event === 'file_failed' && String(e.file).endsWith('b.png') && /not a readable image/.test(String(e.error))));
    assert.deepEqual(ev.at(-1), { event: 'summary', restored: 1, failed: 1, skipped: 0, not_processed: 0, seconds: ev.at(-1)!.seconds, interrupted: null });
    assert.ok(existsSync(join(o, 'a.x.webp')));
  });

  test('--tile 8 (exact tiles) gives the --tile 0 result', async () => {
    const t0 = diffir('restore', join(batch, 'photo.png'), '-o', join(tmp, 'tile0'), '--weights', W.deblur, '--tile', '0', '--json');
    const t8 = diffir('restore', join(batch, 'photo.png'), '-o', join(tmp, 'tile8'), '--weights', W.deblur, '--tile', '8', '--json');
    assert.equal(t0.code, 0, t0.stderr);
    assert.equal(t8.code, 0, t8.stderr);
    assert.equal(jsonLines(t0.stdout).find((e) => e.event === 'file_done')!.tile, 0);
    assert.equal(jsonLines(t8.stdout).find((e) => e.event === 'file_done')!.tile, 8);
    assert.ok(jsonLines(t8.stdout).some((e) => e.event === 'progress' && e.phase === 'tiles'));
    const a = await pixels(join(tmp, 'tile0', 'photo_diffir.png'));
    const b = await pixels(join(tmp, 'tile8', 'photo_diffir.png'));
    assert.equal(a.data.length, b.data.length);
    let worst = 0;
    for (let i = 0; i < a.data.length; i++) worst = Math.max(worst, Math.abs(a.data[i]! - b.data[i]!));
    assert.ok(worst <= 1, `max difference ${worst} levels`);
    assertOneLineError(diffir('restore', join(batch, 'cat.png'), '-o', join(tmp, 'tile12'), '--weights', W.deblur, '--tile', '12'), /--tile must be a multiple of 8/);
  });

  test('without --weights, restore uses the built-in default model (×4 super-resolution)', () => {
    const o = join(tmp, 'default-model');
    const r = diffir('restore', join(root, 'samples', 'cat.jpg'), '-o', o, '--json', '--threads', '2');
    assert.equal(r.code, 0, r.stderr);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const start = events.find((e) => e.event === 'start')!;
    assert.equal(start.task, 'sr');
    assert.equal(start.scale, 4);
    const done = events.find((e) => e.event === 'file_done')!;
    assert.deepEqual([done.output_width, done.output_height], [600, 400]);
  });

  test('errors are one line starting with diffir:', () => {
    const o = join(tmp, 'out-err');
    assertOneLineError(diffir('restore', batch, '-o', o, '--weights', W.s1), /stage-1 .*needs the stage-2/);
    assertOneLineError(diffir('inpaint', join(batch, 'photo.png'), '--mask', join(batch, 'photo.png'), '-o', join(o, 'x.png')), /pass --weights/);
    assertOneLineError(diffir('restore', batch, '-o', o, '--weights', W.inpaint), /inpainting weights.*diffir inpaint/);
    // A path under a regular file cannot be a folder, even for root.
    assertOneLineError(diffir('restore', batch, '-o', join(batch, 'photo.png', 'sub'), '--weights', W.deblur), /photo\.png\/sub: cannot create the output folder/);
    if (process.getuid?.() !== 0) {
      const ro = join(tmp, 'read-only');
      mkdirSync(ro, { mode: 0o555 });
      assertOneLineError(diffir('restore', batch, '-o', ro, '--weights', W.deblur), /read-only: output folder is not writable/);
    }
    assertOneLineError(diffir('restore', join(batch, 'notes.txt'), '-o', o, '--weights', W.deblur), /notes\.txt: not a readable image/);
    assertOneLineError(diffir('restore', join(tmp, 'nothing-here'), '-o', o, '--weights', W.deblur), /nothing-here: file not found/);
    assertOneLineError(diffir('restore', join(tmp, '*.tiff'), '-o', o, '--weights', W.deblur), /no image files match/);
    assertOneLineError(diffir('restore', batch, '-o', o, '--weights', W.deblur, '--memory-budget', 'lots'), /--memory-budget must be a size/);
    assertOneLineError(diffir('restore', batch, '-o', o, '--weights', W.deblur, '--format', 'bmp'), /--format must be/);
  });

  test('Ctrl-C during a batch stops after cleaning up: complete files only, exit status 130', async () => {
    const src = join(tmp, 'many');
    const o = join(tmp, 'out-many');
    mkdirSync(src);
    for (let i = 0; i < 30; i++) copyFileSync(join(batch, 'cat.png'), join(src, `img${i}.png`));
    const child = spawn(process.execPath, [bin, 'restore', src, '-o', o, '--weights', W.deblur, '--tile', '8', '--json', '--threads', '1'], { env });
    let stdout = '';
    let sent = false;
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      if (!sent && stdout.includes('"event":"file_done"')) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
    assert.ok(sent, 'no file finished');
    assert.equal(code, 130);
    const ev = jsonLines(stdout);
    const summary = ev.at(-1)!;
    assert.equal(summary.event, 'summary');
    assert.equal(summary.interrupted, 'SIGINT');
    assert.ok(ev.some((e) => e.event === 'interrupted'));
    const restored = summary.restored as number;
    assert.ok(restored >= 1 && restored < 30, `restored ${restored}`);
    assert.equal((summary.not_processed as number) + restored, 30);
    const files = readdirSync(o);
    assert.equal(files.filter((f) => f.startsWith('.') || f.endsWith('.tmp')).length, 0, `temporary files left: ${files.join(', ')}`);
    assert.equal(files.length, restored);
    for (const f of files) assert.equal((await sharp(join(o, f)).metadata()).width, 40);
  });
});

describe('diffir inpaint', () => {
  test('fills the hole and keeps every other pixel exactly', async () => {
    const img = join(batch, 'photo.png');
    const mask = join(tmp, 'mask.png');
    const m = holeMask();
    const out = join(tmp, 'inpaint', 'filled.png');
    const r = diffir('inpaint', img, '--mask', mask, '-o', out, '--weights', W.inpaint, '--seed', '7');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const a = await pixels(img);
    const b = await pixels(out);
    assert.equal(b.width, 24);
    assert.equal(b.height, 30);
    let changed = 0;
    for (let p = 0; p < 24 * 30; p++) {
      for (let c = 0; c < 3; c++) {
        if (m[p] === 0) assert.equal(b.data[p * 3 + c], a.data[p * 3 + c], `pixel ${p} outside the hole changed`);
        else if (b.data[p * 3 + c] !== a.data[p * 3 + c]) changed++;
      }
    }
    assert.ok(changed > 0, 'nothing inside the hole changed');
    assertOneLineError(diffir('inpaint', img, '--mask', mask, '-o', out, '--weights', W.inpaint), /filled\.png: file already exists; pass --overwrite/);
    const bad = join(tmp, 'mask_small.png');
    await raw(new Uint8Array(20 * 30), 20, 30, 1).png().toFile(bad);
    assertOneLineError(diffir('inpaint', img, '--mask', bad, '-o', join(tmp, 'inpaint', 'x.png'), '--weights', W.inpaint), /mask_small\.png: mask is 20x30 but the image is 24x30/);
    assertOneLineError(diffir('inpaint', img, '--mask', mask, '-o', join(tmp, 'inpaint', 'y.png'), '--weights', W.deblur), /deblurring weights, not inpainting/);
    assertOneLineError(diffir('inpaint', img, '--mask', mask, '-o', join(tmp, 'inpaint', 'y.bmp'), '--weights', W.inpaint), /output format/);
  });
});

describe('diffir export-onnx', () => {
  test('the exported model gives what restore gives (within 1/255), for SR, deblur and inpainting', async () => {
    const img = await loadImage(join(batch, 'cat.png'));
    const mask = await loadMask(join(tmp, 'mask.png'), 24, 30);
    for (const [name, weights] of Object.entries({ sr: W.sr, deblur: W.deblur, inpaint: W.inpaint })) {
      const file = join(tmp, 'onnx', `${name}.onnx`);
      const r = diffir('export-onnx', '--weights', weights, '-o', file, '--seed', '3');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /opset 17/);
      assert.match(r.stdout, /input +image +float32 \[1, 3, height, width\]/);
      assert.match(r.stdout, /output +output +float32/);
      const src = name === 'inpaint' ? await loadImage(join(batch, 'photo.png')) : img;
      const m = name === 'inpaint' ? mask : undefined;
      const session = await Session.create(readFileSync(file), { threads: 2 });
      const restorer = Restorer.load(weights, { threads: 2 });
      try {
        const got = (await session.run({ image: src.rgb, ...(m ? { mask: m } : {}) })).output!;
        const want = await restorer.restore(src, { seed: 3, tile: 0, ...(m ? { mask: m } : {}) });
        assert.deepEqual(got.shape, want.rgb.shape);
        const x = got.data as Float32Array;
        const y = want.rgb.data;
        let worst = 0;
        for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
        assert.ok(worst < 1 / 255, `${name}: max difference ${worst}`);
      } finally {
        await session.release();
        await restorer.release();
      }
    }
    const file = join(tmp, 'onnx', 'deblur.onnx');
    const bytes = statSync(file).size;
    assertOneLineError(diffir('export-onnx', '--weights', W.deblur, '-o', file), /deblur\.onnx: file already exists; pass --overwrite/);
    assert.equal(diffir('export-onnx', '--weights', W.deblur, '-o', file, '--overwrite', '--seed', '4').code, 0);
    assert.equal(statSync(file).size, bytes);
    assert.deepEqual(readdirSync(join(tmp, 'onnx')).sort(), ['deblur.onnx', 'inpaint.onnx', 'sr.onnx']);
    assertOneLineError(diffir('export-onnx', '--weights', W.s1, '-o', join(tmp, 'onnx', 's1.onnx')), /stage-1/);
  });
});

describe('restore command helpers', () => {
  test('memory sizes, globs, durations', () => {
    assert.equal(parseBytes('4G'), 4 * 2 ** 30);
    assert.equal(parseBytes('512M'), 512 * 2 ** 20);
    assert.equal(parseBytes('1.5GB'), 1.5 * 2 ** 30);
    assert.equal(parseBytes('800MiB'), 800 * 2 ** 20);
    assert.equal(parseBytes('1000'), 1000);
    assert.equal(parseBytes('0'), null);
    assert.equal(parseBytes('4X'), null);
    assert.ok(globMatch('*.png', 'a.png'));
    assert.ok(globMatch('img?.jp*g', 'img1.jpeg'));
    assert.ok(!globMatch('*.png', '.hidden.png'));
    assert.ok(!globMatch('*.png', 'a.png.txt'));
    assert.ok(globMatch('a+b(1).png', 'a+b(1).png'));
    assert.equal(fmtDuration(3.21), '3.2 s');
    assert.equal(fmtDuration(125), '2:05');
    assert.equal(fmtDuration(3723), '1:02:03');
  });
  test('output names: suffix, format, re-runs into the input folder, clashes', () => {
    const plan = planOutputs(
      [
        { path: 'in/a.png', explicit: false },
        { path: 'in/a_diffir.png', explicit: false },
        { path: 'in/b.JPG', explicit: false },
        { path: 'in/c.gif', explicit: false },
        { path: 'other/a.png', explicit: true },
      ],
      'in',
      '_diffir',
      'same',
    );
    assert.deepEqual(plan.map((p) => [p.input.path, p.output, p.format, p.problem !== undefined]), [
      ['in/a.png', join('in', 'a_diffir.png'), 'png', false],
      ['in/b.JPG', join('in', 'b_diffir.JPG'), 'jpg', false],
      ['in/c.gif', join('in', 'c_diffir.png'), 'png', false],
      ['other/a.png', join('in', 'a_diffir.png'), 'png', true],
    ]);
    const same = planOutputs([{ path: 'in/a.png', explicit: true }], 'in', '', 'same');
    assert.match(same[0]!.problem!, /replace the input/);
    assert.equal(planOutputs([{ path: 'a.jpeg', explicit: true }], 'o', '_x', 'webp')[0]!.output, join('o', 'a_x.webp'));
  });
});
