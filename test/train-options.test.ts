/**
 * BasicSR option files: every official DiffIR training file (our equivalents in options/) parses;
 * those we run resolve into the official recipe, the others are refused naming exactly the keys
 * we do not support; unknown, mistyped and contradictory options are errors naming the key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OptionError, parseOptions, readOptions, resolveOptions, type TrainPlan } from '../src/train/options.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const optionsDir = join(root, 'options');
const files = readdirSync(optionsDir, { recursive: true })
  .map(String)
  // Training files only: the test_*.yml files (BasicSR test.py) are checked by cli-test.test.ts.
  .filter((f) => f.endsWith('.yml') && f.startsWith('DiffIR-') && !/(^|\/)test_[^/]*$/.test(f))
  .sort();

/** Why each official file cannot run yet (the keys named in the error), or null when it runs. */
const EXPECTED: Record<string, string[] | null> = {
  'DiffIR-RealSR/train_DiffIRS1_x1.yml': null,
  'DiffIR-RealSR/train_DiffIRS1_x2.yml': null,
  'DiffIR-RealSR/train_DiffIRS1_x4.yml': null,
  'DiffIR-RealSR/train_DiffIRS2_x1.yml': ['scale'],
  'DiffIR-RealSR/train_DiffIRS2_x2.yml': null,
  'DiffIR-RealSR/train_DiffIRS2_x4.yml': null,
  'DiffIR-RealSR/train_DiffIRS2_GAN_x1_V2.yml': null,
  'DiffIR-RealSR/train_DiffIRS2_GAN_x2.yml': null,
  'DiffIR-RealSR/train_DiffIRS2_GAN_x2_V2.yml': null,
  'DiffIR-RealSR/train_DiffIRS2_GAN_x4.yml': null,
  'DiffIR-RealSR/train_DiffIRS2_GAN_x4_V2.yml': null,
  'DiffIR-RealSR/finetune_DiffIRS2_GAN_x1_V2.yml': null,
  'DiffIR-RealSR/finetune_DiffIRS2_GAN_x2_V2.yml': null,
  'DiffIR-RealSR/finetune_DiffIRS2_GAN_x4_V2.yml': null,
  'DiffIR-SRGAN/train_DiffIRS1_x2.yml': null,
  'DiffIR-SRGAN/train_DiffIRS1_x4.yml': null,
  'DiffIR-SRGAN/train_DiffIRS2_x2.yml': null,
  'DiffIR-SRGAN/train_DiffIRS2_x4.yml': null,
  'DiffIR-SRGAN/train_DiffIRS2_GAN_x2.yml': null,
  'DiffIR-SRGAN/train_DiffIRS2_GAN_x4.yml': null,
  'DiffIR-demotionblur/train_DiffIRS1.yml': null,
  'DiffIR-demotionblur/train_DiffIRS2.yml': null,
};

test('every official DiffIR training option file parses; the runnable ones resolve, the others name what is missing', () => {
  assert.deepEqual(files, Object.keys(EXPECTED).sort());
  for (const f of files) {
    const parsed = readOptions(join(optionsDir, f));
    const want = EXPECTED[f];
    if (want === null) {
      const plan = resolveOptions(parsed, { cwd: '/data' });
      assert.equal(plan.file, join(optionsDir, f));
      continue;
    }
    assert.throws(
      () => resolveOptions(parsed, { cwd: '/data' }),
      (e: unknown) => {
        assert.ok(e instanceof OptionError, String(e));
        assert.deepEqual(e.keys, want, `${f}: ${e.message}`);
        return true;
      },
    );
  }
});

function plan(f: string): TrainPlan {
  return resolveOptions(readOptions(join(optionsDir, f)), { cwd: '/data' });
}

test('the deblurring recipe: progressive patches, cyclic cosine schedule, Adam 0.9/0.999, EMA', () => {
  const p = plan('DiffIR-demotionblur/train_DiffIRS1.yml');
  assert.equal(p.stage, 1);
  assert.equal(p.config.task, 'deblur');
  assert.equal(p.config.dim, 48);
  assert.deepEqual(p.optim, { type: 'Adam', lr: 2e-4, betas: [0.9, 0.999], weightDecay: 0, eps: 1e-8 });
  assert.deepEqual(p.scheduler, { type: 'CosineAnnealingRestartCyclicLR', periods: [92000, 208000], restartWeights: [1, 1], etaMins: [0.000285, 0.000001] });
  assert.deepEqual(p.train.progressive, { iters: [92000, 80000, 38000, 33000, 33000, 24000], batchSizes: [8, 4, 2, 2, 1, 1], gtSizes: [192, 256, 320, 384, 464, 512] });
  assert.equal(p.train.geometricAugs, true);
  assert.equal(p.emaDecay, 0.999);
  assert.equal(p.train.gtRoot, '/root/motion_deblur/train_crops/target_crops');
  assert.deepEqual(p.metrics, [{ name: 'psnr', type: 'psnr', cropBorder: 0, testYChannel: false, better: 'higher' }]);
  assert.equal(p.experimentsRoot, '/data/experiments/train_DiffIRS1');
  const s2 = plan('DiffIR-demotionblur/train_DiffIRS2.yml');
  assert.equal(s2.lrRule, 'manual');
  assert.deepEqual(s2.manual, { encoderIter: 100000, lrEncoder: 2e-4, gammaEncoder: 0.1, lrDecayEncoder: 60000, lrSr: 2e-4, gammaSr: 0.5, lrDecaySr: 80000 });
  assert.equal(s2.pretrainS1, '/data/experiments/train_DiffIRS1/models/net_g_latest.pth');
  assert.equal(s2.strictLoadG, false);
  assert.equal(s2.paramKeyG, 'params_ema');
  assert.deepEqual(s2.kd, { weight: 1, temperature: 0.15 });
  assert.equal(s2.teacherConfig!.dim, 48);
});

test('the SRGAN recipes: paired DF2K with meta info, x2 scale from network_g, encoder_iter 0', () => {
  const p = plan('DiffIR-SRGAN/train_DiffIRS1_x2.yml');
  assert.equal(p.config.task, 'sr');
  assert.equal(p.config.scale, 2);
  assert.equal(p.train.metaInfoFile, '/data/datasets/meta_info/meta_info_DF2K_sub_pair.txt');
  assert.equal(p.train.useRot, true);
  assert.equal(p.train.enlargeRatio, 100);
  assert.deepEqual(p.val.map((v) => v.name), ['Urban100', 'DIV2K100']);
  const s2 = plan('DiffIR-SRGAN/train_DiffIRS2_x4.yml');
  assert.equal(s2.config.scale, 4);
  assert.equal(s2.manual!.encoderIter, 0);
  assert.deepEqual(s2.notices, ['logger.use_tb_logger: TensorBoard is not available; the JSONL log and report.html take its place']);
});

test('unknown keys are errors naming the key, its line and the closest known key', () => {
  const text = 'name: x\nmodel_type: DiffIRS1Model\ntrain:\n  total_iter: 10\n  ema_decy: 0.999\n';
  assert.throws(() => parseOptions(text, 'o.yml'), /^OptionError: o\.yml:5: unknown option 'train\.ema_decy'; did you mean 'ema_decay'\?$/);
  assert.throws(() => parseOptions('name: x\nfoo: 1\n', 'o.yml'), /o\.yml:2: unknown option 'foo'/);
  assert.throws(() => parseOptions('datasets:\n  test_1: {name: a}\n', 'o.yml'), /unknown option 'datasets\.test_1' \(dataset phases are 'train', 'val' and 'val_<n>'\)/);
  assert.throws(() => parseOptions('train:\n  total_iter: many\n', 'o.yml'), /o\.yml:2: 'train\.total_iter' must be an integer ≥ 1, got 'many'/);
  assert.throws(() => parseOptions('network_g:\n  num_blocks: [1, 2]\n', 'o.yml'), /'network_g\.num_blocks' must be a list of 4/);
  assert.throws(() => parseOptions('network_g:\n  LayerNorm_type: Other\n', 'o.yml'), /'network_g\.LayerNorm_type' must be one of 'WithBias', 'BiasFree'/);
  assert.throws(() => parseOptions('name: a\nname: b\n', 'o.yml'), /o\.yml:2: Map keys must be unique/);
  // PyYAML leaves '2e-4' a string; it is read as the number it means.
  assert.equal((parseOptions('train:\n  optim_g: {lr: 2e-4}\n').opt.train as { optim_g: { lr: number } }).optim_g.lr, 2e-4);
});

test('!!float reads any number as PyYAML does (BasicSR files write !!float 300), without a YAML warning', async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.message);
  process.on('warning', onWarning);
  try {
    const o = parseOptions('val:\n  val_freq: !!float 300\nlogger:\n  save_checkpoint_freq: !!float 1_000\n').opt as { val: { val_freq: unknown }; logger: { save_checkpoint_freq: unknown } };
    assert.equal(o.val.val_freq, 300);
    assert.equal(o.logger.save_checkpoint_freq, 1000);
    await new Promise((done) => setImmediate(done)); // process warnings are emitted on a later tick
  } finally {
    process.off('warning', onWarning);
  }
  assert.deepEqual(warnings, []);
  assert.throws(() => parseOptions('val:\n  val_freq: !!float many\n', 'o.yml'), /o\.yml:2: !!float many is not a number/);
});

const BASE = readOptions(join(optionsDir, 'DiffIR-demotionblur/train_DiffIRS1.yml'));

function resolveWith(overrides: string[]): TrainPlan {
  return resolveOptions(readOptions(BASE.file, overrides), { cwd: '/data' });
}

test('contradictory and unsupported options are errors naming the key', () => {
  const cases: [string[], RegExp][] = [
    [['datasets:train:gt_sizes=[192, 256]'], /'datasets\.train\.gt_sizes' iters \(6\), mini_batch_sizes \(6\) and gt_sizes \(2\) must have the same length/],
    [['datasets:train:mini_batch_sizes=[16, 4, 2, 2, 1, 1]'], /'datasets\.train\.mini_batch_sizes\[0\]' 16 is larger than batch_size_per_gpu 8/],
    [['datasets:train:gt_sizes=[190, 256, 320, 384, 464, 512]'], /'datasets\.train\.gt_sizes\[0\]' 190 gives LQ patches of 190 pixels; the model needs multiples of 8/],
    [['scale=2'], /'scale' 2 contradicts network_g\.scale 4 \(the default of DiffIR-RealSR \/ -SRGAN\)/],
    [['network_g:task=deblur', 'scale=2'], /'scale' 2 contradicts the deblur task \(scale 1\)/],
    [['train:use_grad_clip=false', 'train:grad_clip_norm=0.5'], /'train\.grad_clip_norm' contradicts use_grad_clip: false/],
    [['train:scheduler:gamma=0.5'], /'train\.scheduler\.gamma' is not an argument of CosineAnnealingRestartCyclicLR/],
    [['train:scheduler:periods=[1000, 1000]'], /'train\.scheduler\.periods' sum to 2000, fewer than total_iter 300000 needs/],
    [['train:optim_g:type=SGD'], /'train\.optim_g\.type' 'SGD' is not supported \(Adam or AdamW\)/],
    [['train:scheduler:type=TrueCosineAnnealingLR'], /'train\.scheduler\.type' 'TrueCosineAnnealingLR' is not supported/],
    [['train:pixel_opt:type=PerceptualLoss'], /'train\.pixel_opt\.type' 'PerceptualLoss' is not supported/],
    [['train:encoder_iter=10'], /'train\.encoder_iter' is a stage-2 option; DiffIRS1Model does not use it/],
    [['network_g:bias=true'], /'network_g\.bias' true is not supported/],
    [['datasets:train:io_backend:type=lmdb'], /'datasets\.train\.io_backend\.type' 'lmdb' is not supported/],
    [['val:metrics:psnr:type=calculate_niqe'], /'val\.metrics\.psnr\.type' 'calculate_niqe' is not supported/],
    [['model_type=DiffIRS2Model'], /'network_g\.type' 'DiffIRS1' where DiffIRS2 is needed; .*'network_S1' is required.*'path\.pretrain_network_S1' is required by DiffIRS2Model/],
  ];
  for (const [o, re] of cases) assert.throws(() => resolveWith(o), (e: unknown) => e instanceof OptionError && re.test(e.message), `${o.join(' ')} → ${re}`);
  assert.throws(() => readOptions(BASE.file, ['nothere:x=1']), /--force_yml 'nothere:x=1': 'nothere\.x' is not in/);
});

test('--force_yml overrides, BasicSR debug mode, extensions', () => {
  const p = resolveWith(['train:ema_decay=0', 'train:use_grad_clip=true', 'train:total_iter=!!float 2e5', 'num_gpu=4', 'name=debug_x']);
  assert.equal(p.emaDecay, 0);
  assert.equal(p.gradClip, 0.01);
  assert.equal(p.totalIter, 200000);
  assert.equal(p.worldSize, 4);
  assert.deepEqual([p.printFreq, p.checkpointFreq, p.valFreq], [1, 8, 8]);
  const d = resolveOptions(BASE, { cwd: '/data', debug: true });
  assert.equal(d.name, 'debug_train_DiffIRS1');
  const s2 = resolveOptions(readOptions(join(optionsDir, 'DiffIR-SRGAN/train_DiffIRS2_x4.yml'), ['train:lr_rule=scheduler']), { cwd: '/data' });
  assert.equal(s2.lrRule, 'scheduler');
});
