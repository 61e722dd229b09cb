/**
 * `diffir test -opt`: the official DiffIR test option files (options/<repo>/test_<name>.yml) with only
 * their paths changed, on a tiny set cut from ../shared/data/images. Deblurring (paired,
 * val.metrics psnr) with the deblur fixture checkpoint: visuals named as BasicSR's test.py names
 * them, equal to what `diffir restore` gives for the same image and seed, and PSNR in the JSON
 * equal to BasicSR's PSNR of those saved files. RealSR ×4 (SingleImageDataset ×3) with the
 * built-in default model. Every official test file parses. Errors are one line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { readImage8 } from '../src/metrics/color.js';
import { psnr } from '../src/metrics/psnr-ssim.js';
import { parseOptions, readOptions, TEST_OPTIONS_SCHEMA } from '../src/train/options.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = join(root, 'dist/src/cli/main.js');
const shared = resolve(root, '../shared');
const tmp = mkdtempSync(join(tmpdir(), 'diffir-test-cmd-'));

function diffir(cwd: string, ...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', env: { ...process.env, DIFFIR_DEBUG: '' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** gt/ (64×64 crops), lq/ (blurred), lqx4/ (16×16) from two shared photos. */
async function tinySet(): Promise<string> {
  const dir = join(tmp, 'data');
  for (const d of ['gt', 'lq', 'lqx4']) mkdirSync(join(dir, d), { recursive: true });
  for (const n of ['astronaut', 'chelsea']) {
    const gt = join(dir, 'gt', `${n}.png`);
    await sharp(join(shared, 'data/images', `${n}.png`)).removeAlpha().resize(64, 64, { fit: 'cover' }).png().toFile(gt);
    await sharp(gt).blur(1.2).png().toFile(join(dir, 'lq', `${n}.png`));
    await sharp(gt).resize(16, 16).png().toFile(join(dir, 'lqx4', `${n}.png`));
  }
  return dir;
}

/** An official test file with its data and checkpoint paths replaced, written into `cwd`. */
function withPaths(official: string, cwd: string, replace: [RegExp, string][]): string {
  let text = readFileSync(join(root, 'options', official), 'utf8');
  for (const [a, b] of replace) text = text.replace(a, b);
  const out = join(cwd, official.split('/').pop()!);
  writeFileSync(out, text);
  return out;
}

test('every official test option file parses; ours take calculate_lpips net and InpaintingDataset img_suffix', () => {
  for (const f of ['DiffIR-inpainting/test_DiffIRS2_inpainting.yml']) assert.equal(readOptions(join(root, 'options', f), [], TEST_OPTIONS_SCHEMA).opt.name, 'test_DiffIRS2_inpainting');
  assert.equal((parseOptions('val:\n  metrics:\n    lp: {type: calculate_lpips, net: vgg}\n', 't.yml', [], TEST_OPTIONS_SCHEMA).opt.val as { metrics: { lp: { net: string } } }).metrics.lp.net, 'vgg');
  assert.throws(() => parseOptions('val:\n  metrics:\n    lp: {type: calculate_lpips, net: squeeze}\n', 't.yml', [], TEST_OPTIONS_SCHEMA), /val\.metrics\.lp\.net/);
  for (const f of ['DiffIR-RealSR/test_DiffIRS2_GAN_x1.yml', 'DiffIR-RealSR/test_DiffIRS2_GAN_x2.yml', 'DiffIR-RealSR/test_DiffIRS2_GAN_x4.yml', 'DiffIR-SRGAN/test_DiffIRS2_GAN_x4.yml', 'DiffIR-demotionblur/test_DiffIRS2.yml']) {
    const o = readOptions(join(root, 'options', f), [], TEST_OPTIONS_SCHEMA).opt;
    assert.ok(Object.keys(o.datasets as object).length > 0, f);
  }
});

test('deblur test_DiffIRS2.yml: BasicSR visuals, the same pixels as diffir restore, PSNR of the saved files, a log and a JSON', async () => {
  const data = await tinySet();
  const cwd = join(tmp, 'deblur');
  mkdirSync(cwd);
  const opt = withPaths('DiffIR-demotionblur/test_DiffIRS2.yml', cwd, [
    [/\/root\/motion_deblur\/test\/(GoPro|HIDE)\/target/g, join(data, 'gt')],
    [/\/root\/motion_deblur\/test\/(GoPro|HIDE)\/input/g, join(data, 'lq')],
    [/experiments\/train_DiffIRS2\/models\/net_g_latest\.pth/, join(shared, 'fixtures/deblur/s2.pth')],
  ]);
  const r = diffir(cwd, 'test', '-opt', opt, '--threads', '2', '-q');
  assert.equal(r.code, 0, r.stderr);
  const res = join(cwd, 'results/test_DiffIRS2');
  const report = JSON.parse(readFileSync(join(res, 'metrics.json'), 'utf8'));
  assert.deepEqual(report.datasets.map((d: { name: string }) => d.name), ['GoPro', 'HIDE']);
  assert.ok(readdirSync(res).some((f) => /^test_test_DiffIRS2_\d{8}_\d{6}\.log$/.test(f)));
  const restored = join(cwd, 'restored');
  const rr = diffir(cwd, 'restore', join(data, 'lq'), '-o', restored, '--weights', join(shared, 'fixtures/deblur/s2.pth'), '--seed', '0', '--threads', '2', '-q');
  assert.equal(rr.code, 0, rr.stderr);
  for (const ds of report.datasets) {
    let sum = 0;
    for (const img of ds.images) {
      const vis = join(res, 'visualization', ds.name, `${img.name}_test_DiffIRS2.png`);
      const a = await readImage8(vis);
      const b = await readImage8(join(restored, `${img.name}_diffir.png`));
      assert.deepEqual(a.data, b.data, `${vis} differs from diffir restore`);
      const p = psnr(a, await readImage8(join(data, 'gt', `${img.name}.png`)));
      assert.ok(Math.abs(img.psnr - p) < 1e-9, `${ds.name} ${img.name}: ${img.psnr} vs ${p}`);
      sum += p;
    }
    assert.ok(Math.abs(ds.mean.psnr - sum / ds.images.length) < 1e-9);
  }
  // A second run keeps the first one's results (renamed aside, as BasicSR does).
  assert.equal(diffir(cwd, 'test', '-opt', opt, '--threads', '2', '-q').code, 0);
  assert.ok(readdirSync(join(cwd, 'results')).some((f) => f.startsWith('test_DiffIRS2_archived_')));
});

test('RealSR test_DiffIRS2_GAN_x4.yml (three SingleImageDatasets) runs with the built-in ×4 model', async () => {
  const data = join(tmp, 'data');
  if (!existsSync(data)) await tinySet();
  const cwd = join(tmp, 'realsr');
  mkdirSync(cwd);
  const opt = withPaths('DiffIR-RealSR/test_DiffIRS2_GAN_x4.yml', cwd, [
    [/\/mnt\/bn\/xiabinpaint\/dataset\/\S+/g, join(data, 'lqx4')],
    [/experiments\/DiffIRS2-GAN\.pth/, join(root, 'models/default-realsr-x4.safetensors')],
  ]);
  const r = diffir(cwd, 'test', '-opt', opt, '--threads', '2', '-q');
  assert.equal(r.code, 0, r.stderr);
  for (const ds of ['NTIRE2020-Track1', 'AIM2019-Track2', 'RealSR']) {
    const meta = await sharp(join(cwd, 'results/test_DiffIRGANS2/visualization', ds, 'chelsea_test_DiffIRGANS2.png')).metadata();
    assert.deepEqual([meta.width, meta.height, meta.channels], [64, 64, 3]);
  }
  // The ×2 file with the ×4 model, and psnr on a dataset without ground truth, are one-line errors.
  const x2 = withPaths('DiffIR-RealSR/test_DiffIRS2_GAN_x2.yml', cwd, [
    [/\/mnt\/bn\/xiabinpaint\/dataset\/\S+/g, join(data, 'lqx4')],
    [/\.\/experiments\/DiffIRS2-GANx2\.pth/, join(root, 'models/default-realsr-x4.safetensors')],
  ]);
  const e1 = diffir(cwd, 'test', '-opt', x2);
  assert.notEqual(e1.code, 0);
  assert.match(e1.stderr.trim(), /^diffir: .*scale 2 but default-realsr-x4\.safetensors is a ×4 model$/);
  writeFileSync(join(cwd, 'bad.yml'), readFileSync(opt, 'utf8').replace('  suffix: ~', '  suffix: ~\n  metrics:\n    psnr:\n      type: calculate_psnr\n      crop_border: 4'));
  const e2 = diffir(cwd, 'test', '-opt', 'bad.yml');
  assert.notEqual(e2.code, 0);
  assert.equal(e2.stderr.trim().split('\n').length, 1);
  assert.match(e2.stderr, /SingleImageDataset has no ground truth, so val\.metrics psnr cannot be computed/);
});
