/**
 * `diffir train` from the command line on a tiny SR ×4 set (PairedImageDataset, Y-channel
 * metrics with a crop border): progress lines, Ctrl-C finishes the step and saves a checkpoint,
 * --auto_resume finishes the run; option errors are one line naming the key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTinyDataset, tinyNetwork, writeOptions } from './train-helpers.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = join(root, 'dist/src/cli/main.js');

function srOptions(data: string): string {
  return [
    'name: tiny_sr',
    'model_type: DiffIRS1Model',
    'scale: 4',
    'num_gpu: auto',
    'manual_seed: 3',
    'datasets:',
    '  train:',
    '    name: tiny',
    '    type: PairedImageDataset',
    `    dataroot_gt: ${data}/gt`,
    `    dataroot_lq: ${data}/lqx4`,
    "    filename_tmpl: '{}'",
    '    io_backend: {type: disk}',
    '    gt_size: 32',
    '    use_hflip: true',
    '    use_rot: true',
    '    batch_size_per_gpu: 1',
    '    dataset_enlarge_ratio: 2',
    '  val_1:',
    '    name: tinyval',
    '    type: PairedImageDataset',
    `    dataroot_gt: ${data}/gt`,
    `    dataroot_lq: ${data}/lqx4`,
    '    io_backend: {type: disk}',
    'network_g:',
    ...tinyNetwork('DiffIRS1', ['  scale: 4']),
    'path: {pretrain_network_g: ~, strict_load_g: true, resume_state: ~}',
    'train:',
    '  ema_decay: 0.999',
    '  optim_g: {type: Adam, lr: !!float 1e-3, weight_decay: 0, betas: [0.9, 0.99]}',
    '  scheduler: {type: MultiStepLR, milestones: [100], gamma: 0.5}',
    '  total_iter: 40',
    '  warmup_iter: -1',
    '  pixel_opt: {type: L1Loss, loss_weight: 1.0, reduction: mean}',
    'val:',
    '  window_size: 8',
    '  val_freq: 40',
    '  save_img: true',
    '  metrics:',
    '    psnr: {type: calculate_psnr, crop_border: 4, test_y_channel: true}',
    'logger: {print_freq: 1, save_checkpoint_freq: 100, use_tb_logger: false}',
    '',
  ].join('\n');
}

test('diffir train: Ctrl-C saves a checkpoint after the current step; --auto_resume finishes the run', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'diffir-train-cli-'));
  const data = await makeTinyDataset(join(tmp, 'data'), 3, 32);
  const opt = writeOptions(tmp, 'sr', srOptions(data));
  const check = spawnSync(process.execPath, [bin, 'train', '-opt', opt, '--check'], { cwd: tmp, encoding: 'utf8' });
  assert.equal(check.status, 0, check.stderr);
  assert.match(check.stdout, /model: DiffIRS1Model, sr x4 dim 8/);

  const child = spawn(process.execPath, [bin, 'train', '-opt', opt, '--threads', '1'], { cwd: tmp });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((done) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (/iter 3\/40/.test(out) && !child.killed) child.kill('SIGINT');
    });
    child.on('exit', (c) => done(c));
  });
  assert.equal(code, 130, `exit code; stderr: ${err}`);
  assert.match(err, /interrupt: finishing the current step and saving a checkpoint/);
  const stopped = /stopped after iteration (\d+); continue with --auto_resume/.exec(out);
  assert.ok(stopped, out);
  const exp = join(tmp, 'experiments', 'tiny_sr');
  assert.ok(existsSync(join(exp, 'training_states', `${stopped[1]}.state`)));
  assert.match(out, /\[tiny_sr\]\[epoch 0, iter 1\/40, lr 1\.000e-3\] \[[\d.]+ s\/it, [\d.]+ it\/s, eta \d\d:\d\d:\d\d\] l_pix: /);

  const r = spawnSync(process.execPath, [bin, 'train', '-opt', opt, '--auto_resume', '--threads', '1'], { cwd: tmp, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`resuming tiny_sr from iteration ${stopped[1]}`));
  assert.match(r.stdout, /validation tinyval @ 40: psnr \d+\.\d{4}/);
  assert.ok(existsSync(join(exp, 'models', 'net_g_latest.pth')));
  assert.ok(existsSync(join(exp, 'visualization', 'tinyval', 'im00_40.png')));
  const log = readFileSync(join(exp, 'train_log.jsonl'), 'utf8');
  assert.match(log, /"event":"resume"/);
});

test('diffir train: option errors are one line naming the key', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'diffir-train-cli-'));
  const bad = writeOptions(tmp, 'bad', 'name: x\nmodel_type: DiffIRS1Model\ntrain:\n  totl_iter: 5\n');
  const r = spawnSync(process.execPath, [bin, 'train', '-opt', bad], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, /^diffir: .*bad\.yml:4: unknown option 'train\.totl_iter'; did you mean 'total_iter'\?/);
  const none = spawnSync(process.execPath, [bin, 'train'], { encoding: 'utf8' });
  assert.equal(none.status, 2);
  assert.match(none.stderr, /train: -opt is required/);
});
