/**
 * Training end to end on a tiny configuration (the fixtures' architecture, 16–24 px patches):
 * stage 1 then stage 2 from its checkpoint, losses falling in each phase; a run stopped and
 * resumed gives bit-identical weights to an uninterrupted one; checkpoints hold exactly the
 * official state-dict keys (stage 2: buffers and storage-sharing aliases) and training states
 * what a resume needs; gradients of N simulated devices are averaged like DDP's, in phase A too.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readOptions, resolveOptions } from '../src/train/options.js';
import { Trainer, type TrainResult } from '../src/train/trainer.js';
import { loadTrainingState } from '../src/train/checkpoint.js';
import { loadPth } from '../src/weights/pth.js';
import { openZip } from '../src/weights/zip.js';
import type { TensorMap } from '../src/tensor.js';
import { makeTinyDataset, tinyDeblurOptions, writeOptions } from './train-helpers.js';
import { assertSameWeights } from './helpers/tensors.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const fixtures = resolve(root, '../shared/fixtures');
const tmp = mkdtempSync(join(tmpdir(), 'diffir-train-'));
let data = '';

async function train(file: string, o: { autoResume?: boolean; stopAfter?: number; overrides?: string[] } = {}): Promise<TrainResult> {
  const plan = resolveOptions(readOptions(file, o.overrides ?? []), { cwd: tmp });
  const t = await Trainer.create(plan, { threads: 1, log: null, history: true, ...(o.autoResume ? { autoResume: true } : {}), ...(o.stopAfter ? { stopAfter: o.stopAfter } : {}) });
  try {
    return await t.run();
  } finally {
    await t.release();
  }
}


const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const lossesOf = (r: TrainResult, key: string, from: number, to: number) => r.history.filter((h) => h.iter >= from && h.iter <= to && key in h.losses).map((h) => h.losses[key]!);

/** The state dict under `key` of a checkpoint. */
function stateDict(path: string, key: string): TensorMap {
  const v = loadPth(path) as unknown as Map<string, TensorMap>;
  return v.get(key)!;
}

/** The number of distinct storages of a torch zip checkpoint. */
function storages(path: string): number {
  const z = openZip(readFileSync(path), path);
  return z.names().filter((n) => /\/data\/\d+$/.test(n)).length;
}

describe('training a tiny DiffIR', () => {
  let s1: TrainResult;
  let s1File = '';
  before(async () => {
    data = await makeTinyDataset(join(tmp, 'data'), 4, 32);
    s1File = writeOptions(tmp, 's1', tinyDeblurOptions({ name: 's1', stage: 1, data, totalIter: 16, valFreq: 8, checkpointFreq: 4 }));
    s1 = await train(s1File);
  });

  test('stage 1: the L1 loss falls; checkpoints, states, log and report are written', () => {
    assert.equal(s1.iter, 16);
    assert.equal(s1.interrupted, false);
    const first = mean(lossesOf(s1, 'l_pix', 1, 4));
    const last = mean(lossesOf(s1, 'l_pix', 12, 16));
    assert.ok(last < 0.6 * first, `l_pix fell from ${first} to ${last}`);
    const exp = join(tmp, 'experiments', 's1');
    for (const f of ['models/net_g_4.pth', 'models/net_g_16.pth', 'models/net_g_latest.pth', 'models/net_g_best.pth', 'training_states/12.state', 'train_log.jsonl', 'report.html', 's1.yml']) {
      assert.ok(existsSync(join(exp, f)), `${f} exists`);
    }
    assert.deepEqual(s1.validations.map((v) => v.iter), [8, 16]);
    assert.ok(s1.validations.every((v) => Number.isFinite(v.metrics.psnr) && v.metrics.ssim! > 0 && v.metrics.ssim! <= 1));
    const log = readFileSync(join(exp, 'train_log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; iter: number });
    assert.deepEqual([...new Set(log.map((r) => r.event))].sort(), ['checkpoint', 'end', 'start', 'train', 'val']);
    const html = readFileSync(join(exp, 'report.html'), 'utf8');
    assert.match(html, /<svg/);
    assert.match(html, /data:image\/png;base64,/);
    const st = loadTrainingState(join(exp, 'training_states', '12.state'));
    assert.equal(st.iter, 12);
    assert.equal(st.optimizers.g!.step, 12);
  });

  test('stage-1 checkpoints are torch.save files with the official keys: params and params_ema', () => {
    const file = join(tmp, 'experiments', 's1', 'models', 'net_g_16.pth');
    assert.deepEqual([...(loadPth(file) as unknown as Map<string, unknown>).keys()], ['params', 'params_ema']);
    const want = stateDict(join(fixtures, 'deblur', 's1.pth'), 'params_ema');
    for (const k of ['params', 'params_ema']) {
      const sd = stateDict(file, k);
      assert.deepEqual([...sd.keys()].sort(), [...want.keys()].sort());
      for (const [n, t] of want) assert.deepEqual(sd.get(n)!.shape, t.shape, n);
    }
    const saved = stateDict(file, 'params');
    assertSameWeights(s1.params, new Map([...s1.params.keys()].map((k) => [k, saved.get(k)!])), 'params in the checkpoint');
  });

  test('stage 1: stopped after 5 iterations and resumed = uninterrupted, bit for bit', async () => {
    const f = writeOptions(tmp, 's1r', tinyDeblurOptions({ name: 's1r', stage: 1, data, totalIter: 16, valFreq: 8, checkpointFreq: 4 }));
    const a = await train(f, { stopAfter: 5 });
    assert.equal(a.interrupted, true);
    assert.equal(a.iter, 5);
    const b = await train(f, { autoResume: true });
    assert.equal(b.iter, 16);
    assertSameWeights(b.params, s1.params, 'params');
    assertSameWeights(b.ema!, s1.ema!, 'EMA');
    assert.deepEqual(b.history.map((h) => h.losses), s1.history.slice(5).map((h) => h.losses));
    assert.deepEqual(b.validations.map((v) => v.metrics), s1.validations.map((v) => v.metrics));
  });

  test('stage 2: phase A (CPEN_S2 + denoiser) then phase B (all) both learn; resumed across the phase change = uninterrupted', async () => {
    const pre = join(tmp, 'experiments', 's1', 'models', 'net_g_latest.pth');
    const f = writeOptions(tmp, 's2', tinyDeblurOptions({ name: 's2', stage: 2, data, totalIter: 14, pretrain: pre, encoderIter: 7, valFreq: 14, checkpointFreq: 3 }));
    const full = await train(f);
    const abs = lossesOf(full, 'l_abs_3', 1, 6);
    assert.ok(mean(abs.slice(-3)) < 0.6 * mean(abs.slice(0, 3)), `phase A KD loss fell: ${abs.map((x) => x.toFixed(4))}`);
    assert.ok(full.history.slice(0, 6).every((h) => !('l_pix' in h.losses) && 'l_kd_3' in h.losses), 'phase A logs KD terms only');
    assert.ok(full.history.slice(6).every((h) => 'l_pix' in h.losses), 'phase B has the pixel loss');
    const pix = lossesOf(full, 'l_pix', 7, 14);
    assert.ok(mean(pix.slice(-3)) < mean(pix.slice(0, 3)), `phase B pixel loss fell: ${pix.map((x) => x.toFixed(4))}`);
    // DIRformer is untouched in phase A: G.* equals the stage-1 EMA weights through iteration 6.
    const g6 = stateDict(join(tmp, 'experiments', 's2', 'models', 'net_g_6.pth'), 'params');
    for (const [k, t] of stateDict(pre, 'params_ema')) if (k.startsWith('G.')) assert.deepEqual([...(g6.get(k)!.data as Float32Array)], [...(t.data as Float32Array)], k);
    assert.equal(full.validations.length, 1);

    const r1 = await train(f, { stopAfter: 4, overrides: ['name=s2r', 'path:experiments_root=experiments/s2r'] });
    assert.equal(r1.iter, 4);
    const r2 = await train(f, { autoResume: true, overrides: ['name=s2r', 'path:experiments_root=experiments/s2r'] });
    assertSameWeights(r2.params, full.params, 'params');
    assertSameWeights(r2.ema!, full.ema!, 'EMA');
    const st = loadTrainingState(join(tmp, 'experiments', 's2', 'training_states', '12.state'));
    assert.equal(st.optimizers.e!.step, 6, 'optimizer_e stepped in phase A');
    assert.equal(st.optimizers.g!.step, 6, 'optimizer_g started fresh at phase B');

    // The stage-2 file: official keys, schedule buffers, aliases sharing storage with denoise.* / condition.*.
    const file = join(tmp, 'experiments', 's2', 'models', 'net_g_latest.pth');
    const ours = stateDict(file, 'params_ema');
    const official = stateDict(join(fixtures, 'deblur', 's2.pth'), 'params_ema');
    assert.deepEqual([...ours.keys()].sort(), [...official.keys()].sort());
    const aliases = [...ours.keys()].filter((k) => k.startsWith('diffusion.model.') || k.startsWith('diffusion.condition.')).length;
    assert.equal(storages(file), 2 * (ours.size - aliases), 'each alias shares its storage');
  });

  test('num_gpu: 2 averages the gradients of two micro-batches like one batch of two, in phase A and B', async () => {
    // Adam with a large eps makes the update proportional to the gradient, so the weight change
    // after iteration 1 (phase A) and 2 (phase B) compares the reduced gradients.
    const pre = join(tmp, 'experiments', 's1', 'models', 'net_g_latest.pth');
    const optim = '  optim_g: {type: Adam, lr: 1, eps: 1, weight_decay: 0, betas: [0.9, 0.999]}';
    const base = { stage: 2 as const, data, totalIter: 2, pretrain: pre, val: false, encoderIter: 2, optim };
    const one = await train(writeOptions(tmp, 'w1', tinyDeblurOptions({ ...base, name: 'w1', dataset: ['    batch_size_per_gpu: 2', '    gt_size: 16'] })));
    const two = await train(writeOptions(tmp, 'w2', tinyDeblurOptions({ ...base, name: 'w2', dataset: ['    batch_size_per_gpu: 1', '    gt_size: 16'] }).replace('num_gpu: auto', 'num_gpu: 2')));
    const start = stateDict(pre, 'params_ema');
    let worst = 0;
    let scale = 0;
    for (const [k, t] of one.params) {
      const a = t.data as Float32Array;
      const b = two.params.get(k)!.data as Float32Array;
      const s0 = start.get(k)?.data as Float32Array | undefined;
      for (let i = 0; i < a.length; i++) {
        worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
        if (s0) scale = Math.max(scale, Math.abs(a[i]! - s0[i]!));
      }
    }
    assert.ok(scale > 1e-4, `the weights moved (${scale})`);
    assert.ok(worst <= 1e-3 * scale, `weights differ by ${worst} for updates up to ${scale}`);
    for (const i of [0, 1]) for (const [k, v] of Object.entries(one.history[i]!.losses)) assert.ok(Math.abs(v - two.history[i]!.losses[k]!) < 1e-6, k);
  });

  test('gradient clipping scales the gradient to max_norm (clip_grad_norm_ semantics)', async () => {
    // Adam with a large eps moves the weights in proportion to the gradient: the clipped run's
    // first update is the unclipped one times max_norm / (‖g‖ + 1e-6).
    const optim = '  optim_g: {type: Adam, lr: 1, eps: 1000, weight_decay: 0, betas: [0.9, 0.999]}';
    const base = { stage: 1 as const, data, totalIter: 1, val: false, optim, dataset: ['    batch_size_per_gpu: 1', '    gt_size: 16'] };
    const free = await train(writeOptions(tmp, 'c0', tinyDeblurOptions({ ...base, name: 'c0' })));
    const clipped = await train(writeOptions(tmp, 'c1', tinyDeblurOptions({ ...base, name: 'c1', train: ['  grad_clip_norm: 0.01'] })));
    const log = readFileSync(join(tmp, 'experiments', 'c0', 'train_log.jsonl'), 'utf8');
    const norm = (JSON.parse(log.split('\n').find((l) => l.includes('"event":"train"'))!) as { grad_norm: number }).grad_norm;
    assert.ok(norm > 0.01, `gradient norm ${norm} is above the clip`);
    const init = await train(writeOptions(tmp, 'c2', tinyDeblurOptions({ ...base, name: 'c2', optim: '  optim_g: {type: Adam, lr: 0, weight_decay: 0}' })));
    const k = 0.01 / (norm + 1e-6);
    let worst = 0;
    let scale = 0;
    for (const [name, t] of init.params) {
      const p0 = t.data as Float32Array;
      const a = free.params.get(name)!.data as Float32Array;
      const b = clipped.params.get(name)!.data as Float32Array;
      for (let i = 0; i < p0.length; i++) {
        const want = (a[i]! - p0[i]!) * k;
        worst = Math.max(worst, Math.abs(b[i]! - p0[i]! - want));
        scale = Math.max(scale, Math.abs(want));
      }
    }
    assert.ok(worst <= 0.02 * scale + 1e-7, `clipped update off by ${worst} (updates up to ${scale})`);
  });
});
