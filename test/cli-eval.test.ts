/**
 * `diffir eval` end to end on ../shared/fixtures/metrics: the JSON the fixture README specifies
 * (all six metrics, values within its tolerances), `--crop 4 --y`, CSV output, FID statistics
 * saved to and read from `.npz`, and the one-line errors (unmatched names, size mismatch,
 * missing weights).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { METRICS_DIR, metricWeightsDir } from './helpers/metric-weights.js';
import { assertOneLineError, runDiffir, type CliRun } from './helpers/cli.js';

const expected = JSON.parse(readFileSync(join(METRICS_DIR, 'expected.json'), 'utf8'));
const restored = join(METRICS_DIR, 'images/restored');
const reference = join(METRICS_DIR, 'images/reference');
const tmp = mkdtempSync(join(tmpdir(), 'diffir-eval-'));

function diffir(...args: string[]): CliRun {
  return runDiffir(args, { env: { TORCH_HOME: join(tmp, 'no-torch-home') } });
}

const oneLineError = (r: CliRun, pattern: RegExp): void => assertOneLineError(r, pattern, /^diffir: eval: /);

test('diffir eval --json gives every metric of the fixture within its tolerances, and saves FID statistics', () => {
  const w = metricWeightsDir('legacy');
  const stats = join(tmp, 'reference-stats.npz');
  const r = diffir('eval', restored, reference, '--metrics', 'psnr,ssim,lpips-alex,lpips-vgg,niqe,fid', '--weights-dir', w, '--json', '--threads', '2', '--save-stats', stats);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(out), ['images', 'mean', 'fid']);
  assert.deepEqual(out.images.map((i: { name: string }) => i.name), expected.images.map((i: { name: string }) => i.name));
  out.images.forEach((img: Record<string, number>, k: number) => {
    const e = expected.images[k];
    assert.deepEqual(Object.keys(img), ['name', 'psnr', 'ssim', 'lpips-alex', 'lpips-vgg', 'niqe']);
    for (const m of ['psnr', 'ssim', 'lpips-alex', 'lpips-vgg']) assert.ok(Math.abs(img[m]! - e[m]) <= 1e-6, `${e.name} ${m}: ${img[m]} vs ${e[m]}`);
    assert.ok(Math.abs(img.niqe! - e.niqe) <= e.niqe_tol, `${e.name} niqe`);
  });
  for (const m of ['psnr', 'ssim', 'lpips-alex', 'lpips-vgg']) assert.ok(Math.abs(out.mean[m] - expected.mean[m]) <= 1e-6, `mean ${m}`);
  assert.ok(Math.abs(out.mean.niqe - expected.mean.niqe) <= 2e-3);
  assert.ok(Math.abs(out.fid - expected.fid) <= 1e-3 * expected.fid, `fid ${out.fid} vs ${expected.fid}`);

  // The saved reference statistics give the same FID without the reference images.
  const r2 = diffir('eval', restored, stats, '--metrics', 'fid', '--weights-dir', w, '--json', '--threads', '2');
  assert.equal(r2.code, 0, r2.stderr);
  assert.ok(Math.abs(JSON.parse(r2.stdout).fid - out.fid) <= 1e-9 * out.fid);
});

test('diffir eval --crop 4 --y gives BasicSR crop-border Y-channel PSNR/SSIM; CSV output with a mean row', () => {
  const r = diffir('eval', restored, reference, '--crop', '4', '--y');
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines[0], 'name,psnr,ssim');
  assert.equal(lines.length, expected.images.length + 2);
  expected.images.forEach((e: Record<string, number>, k: number) => {
    const [name, p, s] = lines[k + 1]!.split(',');
    assert.equal(name, e.name);
    assert.ok(Math.abs(Number(p) - e.psnr_crop4_y!) <= 1e-6);
    assert.ok(Math.abs(Number(s) - e.ssim_crop4_y!) <= 1e-6);
  });
  const [label, mp] = lines.at(-1)!.split(',');
  assert.equal(label, 'mean');
  assert.ok(Math.abs(Number(mp) - expected.mean.psnr_crop4_y) <= 1e-6);
});

test('diffir eval errors: unmatched names, size mismatch, missing weights, missing reference', () => {
  const a = join(tmp, 'a');
  const b = join(tmp, 'b');
  mkdirSync(a);
  mkdirSync(b);
  copyFileSync(join(restored, 'p01_blur.png'), join(a, 'p01_blur.png'));
  copyFileSync(join(restored, 'p02_noise.png'), join(a, 'p02_noise.png'));
  copyFileSync(join(reference, 'p01_blur.png'), join(b, 'p01_blur.png'));
  oneLineError(diffir('eval', a, b), /1 file\(s\) without a partner in .*: p02_noise\.png/);
  copyFileSync(join(reference, 'p06_bicubic.png'), join(b, 'p02_noise.png'));
  oneLineError(diffir('eval', a, b), /p02_noise\.png: the restored image is 200×200 but the reference is \d+×\d+/);
  oneLineError(diffir('eval', a, b, '--metrics', 'lpips-alex', '--weights-dir', join(tmp, 'empty')), /alexnet-owt-7be5be79\.pth not found .*torchvision/);
  oneLineError(diffir('eval', a, '--metrics', 'psnr'), /psnr need reference images/);
  oneLineError(diffir('eval', a, b, '--metrics', 'psnr,bogus'), /unknown metric 'bogus'/);
});
