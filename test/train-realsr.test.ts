/**
 * The official DiffIR RealSR option files (`options/DiffIR-RealSR/train_DiffIRS{1,2}_x4.yml`,
 * RealESRGANDataset) run with only their data paths changed, on a tiny network (--force_yml):
 * GT images degraded on the fly with the file's Real-ESRGAN keys, batches through the
 * training-pair pool (`queue_size`), stage 2 from the stage-1 checkpoint just made; a run
 * stopped and resumed equals an uninterrupted one bit for bit, the pool rebuilt from the plans
 * in the training state (including pairs older than the last queue_size / batch batches).
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DIFFIR_REALSR_OPTIONS } from '../src/data/degrade/realesrgan.js';
import { saveImage } from '../src/image/io.js';
import { f32, type TensorMap } from '../src/tensor.js';
import { loadTrainingState } from '../src/train/checkpoint.js';
import { type Batch, TrainLoader } from '../src/train/data.js';
import { OptionError, readOptions, resolveOptions, type TrainPlan } from '../src/train/options.js';
import { RealESRGANTrainDataset } from '../src/train/realesrgan-data.js';
import { Trainer, type TrainResult } from '../src/train/trainer.js';
import { makeTinyDataset, synthImage } from './train-helpers.js';
import { assertSameWeights } from './helpers/tensors.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const S1 = join(root, 'options', 'DiffIR-RealSR', 'train_DiffIRS1_x4.yml');
const S2 = join(root, 'options', 'DiffIR-RealSR', 'train_DiffIRS2_x4.yml');
const tmp = mkdtempSync(join(tmpdir(), 'diffir-realsr-'));

/** GT images of several sizes (smaller than the 400-pixel crop: reflect-padded; larger: cropped) and a meta_info file. */
async function makeGtFolder(dir: string): Promise<{ gt: string; meta: string }> {
  const gt = join(dir, 'gt');
  mkdirSync(join(gt, 'sub'), { recursive: true });
  const names: string[] = [];
  for (const [i, size] of [96, 128, 80, 416].entries()) {
    const name = i === 3 ? 'sub/big.png' : `im${i}.png`;
    await saveImage(join(gt, name), { rgb: f32([1, 3, size, size], synthImage(i + 1, size)) }, { overwrite: true });
    names.push(name);
  }
  const meta = join(dir, 'meta_info.txt');
  writeFileSync(meta, names.map((n) => `${n} (96,96,3)`).join('\n') + '\n');
  return { gt, meta };
}

const TINY = ['dim=8', 'num_blocks=[1, 1, 1, 1]', 'num_refinement_blocks=1', 'n_encoder_res=1'];

/** The --force_yml overrides of a test run: data paths, a tiny network, 64-pixel patches, batch 2. */
function overrides(o: { gt: string; meta: string; val: string; totalIter: number; queue?: number; checkpointFreq?: number; stage2?: string; extra?: string[] }): string[] {
  return [
    `datasets:train:dataroot_gt=${o.gt}`,
    `datasets:train:meta_info=${o.meta}`,
    `datasets:val_1:dataroot_gt=${o.val}/gt`,
    `datasets:val_1:dataroot_lq=${o.val}/lqx4`,
    ...TINY.map((t) => `network_g:${t}`),
    ...(o.stage2 ? [...TINY.map((t) => `network_S1:${t}`), `path:pretrain_network_g=${o.stage2}`, `path:pretrain_network_S1=${o.stage2}`] : []),
    'gt_size=64',
    'datasets:train:gt_size=64',
    'datasets:train:batch_size_per_gpu=2',
    `queue_size=${o.queue ?? 4}`,
    `train:total_iter=${o.totalIter}`,
    `val:val_freq=${o.totalIter}`,
    'logger:print_freq=1',
    `logger:save_checkpoint_freq=${o.checkpointFreq ?? 100}`,
    ...(o.extra ?? []),
  ];
}

async function train(file: string, over: string[], o: { autoResume?: boolean; stopAfter?: number; log?: string[] } = {}): Promise<TrainResult> {
  const plan = resolveOptions(readOptions(file, over), { cwd: tmp });
  const t = await Trainer.create(plan, { threads: 1, log: o.log ? (l) => o.log!.push(l) : null, history: true, report: false, ...(o.autoResume ? { autoResume: true } : {}), ...(o.stopAfter ? { stopAfter: o.stopAfter } : {}) });
  try {
    return await t.run();
  } finally {
    await t.release();
  }
}


describe('the official RealSR recipe (RealESRGANDataset)', () => {
  let data: { gt: string; meta: string };
  let val = '';
  before(async () => {
    data = await makeGtFolder(join(tmp, 'train'));
    val = await makeTinyDataset(join(tmp, 'val'), 2, 32);
  });

  test('the option file resolves into the Real-ESRGAN degradation of the file, the pool and the 400-pixel crop', () => {
    const p = resolveOptions(readOptions(S1, [`datasets:train:dataroot_gt=${data.gt}`]), { cwd: tmp });
    assert.equal(p.train.type, 'RealESRGANDataset');
    assert.deepEqual({ ...p.train.realesrgan!.degradation }, { ...DIFFIR_REALSR_OPTIONS });
    assert.equal(p.train.realesrgan!.queueSize, 180);
    assert.equal(p.train.realesrgan!.cropPadSize, 400);
    assert.equal(p.train.realesrgan!.metaInfo, join(tmp, 'datasets/meta_info/meta_info_DF2Kmultiscale+OST_sub.txt'));
    assert.deepEqual([p.train.batchSize, p.train.gtSize, p.train.useHflip, p.train.useRot], [9, 256, true, false]);
    const q = resolveOptions(readOptions(S1, ['gt_usm=true', 'jpeg_range2=[50, 90]', 'datasets:train:sinc_prob=0.3', 'datasets:train:crop_pad_size=320']), { cwd: tmp });
    const d = q.train.realesrgan!;
    assert.deepEqual([d.degradation.gtUsm, d.degradation.jpegRange2, d.degradation.sincProb, d.cropPadSize], [true, [50, 90], 0.3, 320]);
  });

  test('Real-ESRGAN options are checked strictly, errors naming the key', () => {
    const cases: [string[], RegExp][] = [
      [['datasets:train:crop_pad_siz=3'], /unknown option 'datasets\.train\.crop_pad_siz'; did you mean 'crop_pad_size'\?/],
      [['queue_sise=10'], /unknown option 'queue_sise'; did you mean 'queue_size'\?/],
      [['queue_size=100'], /'queue_size' 100 should be divisible by batch_size_per_gpu 9/],
      [['high_order_degradation=false'], /'high_order_degradation' false trains on paired LQ images/],
      [["datasets:train:kernel_list=['iso', 'skew', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']"], /'datasets\.train\.kernel_list' has unknown kernel types skew/],
      [['datasets:train:final_sinc_prob=1.5'], /'datasets\.train\.final_sinc_prob' must be in \[0,1\], got 1\.5/],
      [['second_blur_prob=2'], /'second_blur_prob' must be in \[0,1\]/],
      [['noise_range=[30, 1]'], /'noise_range' \[30, 1\] is not a \[low, high\] range/],
      [['resize_prob=[0, 0, 0]'], /'resize_prob' needs a positive probability/],
      [['gt_size=64', 'datasets:train:gt_size=64', 'datasets:train:crop_pad_size=64'], /'datasets\.train\.crop_pad_size' 64 is too small for these ranges: the image can shrink to 9 pixels/],
      [['datasets:train:crop_pad_size=200'], /'datasets\.train\.crop_pad_size' gt_size 256 is larger than the 200-pixel GT crop/],
      [['datasets:train:kernel_prob=[0.5, 0.5]'], /'datasets\.train\.kernel_list' has 6 types but its probabilities 2/],
      [['datasets:train:crop_pad_size=202'], /'datasets\.train\.crop_pad_size' 202 is not a multiple of the scale 4/],
      [['datasets:train:meta_info_file=m.txt'], /'datasets\.train\.meta_info_file' is not read by RealESRGANDataset/],
      [['datasets:train:iters=[10]', 'datasets:train:mini_batch_sizes=[9]', 'datasets:train:gt_sizes=[256]'], /'datasets\.train\.iters' progressive patches are not supported with RealESRGANDataset/],
      [['datasets:val_1:type=RealESRGANDataset'], /'datasets\.val_1\.type' 'RealESRGANDataset' synthesises training pairs/],
      [['datasets:train:gt_size=128'], /'gt_size' 256 contradicts datasets\.train\.gt_size 128/],
    ];
    for (const [o, re] of cases) {
      assert.throws(() => resolveOptions(readOptions(S1, o), { cwd: tmp }), (e: unknown) => e instanceof OptionError && re.test(e.message), `${o.join(' ')} → ${re}`);
    }
    const p = resolveOptions(readOptions(S1, ['l1_gt_usm=true', 'datasets:train:dataroot_lq=/x']), { cwd: tmp });
    assert.ok(p.notices.some((n) => /l1_gt_usm: GAN-stage options; DiffIRS1Model does not use them/.test(n)), p.notices.join('\n'));
    assert.ok(p.notices.some((n) => /dataroot_lq: ignored by RealESRGANDataset/.test(n)));
    assert.equal(p.train.realesrgan!.degradation.usmTarget, false);
  });

  test('the training-pair pool (one per device): batches pass through while it fills, then come from it; its state rebuilds it exactly', async () => {
    const plan: TrainPlan = resolveOptions(readOptions(S1, overrides({ ...data, val, totalIter: 10, queue: 4, extra: ['datasets:train:crop_pad_size=128', 'num_gpu=2'] })), { cwd: tmp });
    const ds = new RealESRGANTrainDataset(plan.train);
    assert.deepEqual(ds.files, ['im0.png', 'im1.png', 'im2.png', 'sub/big.png']);
    const mk = () => new TrainLoader(ds, plan.train, { seed: 3, worldSize: 2, mixup: null });
    const a = mk();
    const seen: Float32Array[][] = [[], []];
    const pair = (b: Batch, k: number) => b.gt.data.subarray(k * 3 * 64 * 64, (k + 1) * 3 * 64 * 64);
    const same = (x: Float32Array, y: Float32Array) => x.every((v, i) => v === y[i]);
    const outs: Batch[][] = [];
    let saved = null;
    let before = null;
    for (let iter = 1; iter <= 6; iter++) {
      const p = a.plan(iter);
      const loaded = await a.load(p);
      assert.equal(loaded.length, 2);
      assert.deepEqual(loaded[0]!.lq.shape, [2, 3, 16, 16]);
      assert.deepEqual(loaded[0]!.gt.shape, [2, 3, 64, 64]);
      const out = a.take(p, loaded);
      for (const r of [0, 1]) {
        if (iter <= 2) assert.equal(out[r], loaded[r], 'while the pool fills, the batch itself is trained on');
        else {
          // Every pair handed out went into this device's pool earlier; never the incoming batch's.
          for (const k of [0, 1]) {
            const g = pair(out[r]!, k);
            assert.ok(seen[r]!.some((x) => same(x, g)), `iteration ${iter}, device ${r}: pair ${k} comes from its pool`);
            for (const j of [0, 1]) assert.ok(!same(pair(loaded[r]!, j), g));
          }
        }
        for (const k of [0, 1]) seen[r]!.push(pair(loaded[r]!, k).slice());
      }
      outs.push(out);
      if (iter === 4) {
        saved = a.poolState();
        before = a.state();
      }
    }
    assert.equal(saved!.slots.length, 2);
    // A fresh loader with the saved loader and pool states continues identically.
    const b = mk();
    b.setState(before!);
    await b.restorePools(saved!);
    for (let iter = 5; iter <= 6; iter++) {
      const p = b.plan(iter);
      const out = b.take(p, await b.load(p));
      for (const r of [0, 1]) {
        assert.deepEqual(out[r]!.gt.data, outs[iter - 1]![r]!.gt.data);
        assert.deepEqual(out[r]!.lq.data, outs[iter - 1]![r]!.lq.data);
      }
    }
    // LQ values are 8-bit (the pipeline rounds).
    assert.ok(outs[5]![0]!.lq.data.every((v) => Math.abs(v * 255 - Math.round(v * 255)) < 1e-3));
  });

  let s1Latest = '';
  test('train_DiffIRS1_x4.yml then train_DiffIRS2_x4.yml (from the stage-1 weights) run end to end', async () => {
    const log: string[] = [];
    const s1 = await train(S1, overrides({ ...data, val, totalIter: 6 }), { log });
    assert.equal(s1.iter, 6);
    assert.ok(s1.history.every((h) => Number.isFinite(h.losses.l_pix!)), 'finite L1 losses');
    assert.deepEqual(s1.validations.map((v) => v.iter), [6]);
    assert.ok(Number.isFinite(s1.validations[0]!.metrics.psnr));
    assert.ok(log.some((l) => /training train_DiffIRS1: DiffIRS1Model, sr x4 dim 8/.test(l)), log.join('\n'));
    s1Latest = join(tmp, 'experiments', 'train_DiffIRS1', 'models', 'net_g_latest.pth');
    assert.ok(existsSync(s1Latest));

    const s2 = await train(S2, overrides({ ...data, val, totalIter: 6, stage2: s1Latest, extra: ['train:encoder_iter=4'] }));
    assert.equal(s2.iter, 6);
    assert.ok(s2.history.slice(0, 3).every((h) => 'l_abs_3' in h.losses && !('l_pix' in h.losses)), 'phase A: KD only');
    assert.ok(s2.history.slice(3).every((h) => Number.isFinite(h.losses.l_pix!)), 'phase B: pixel loss');
    assert.equal(s2.validations.length, 1);
    assert.ok(existsSync(join(tmp, 'experiments', 'train_DiffIRS2', 'models', 'net_g_latest.pth')));
  });

  test('stopped and resumed = uninterrupted, bit for bit, training-pair pool included', async () => {
    // queue 8, batch 2: the pool is full after 4 iterations and hands out pairs from then on.
    const base = { ...data, val, totalIter: 10, queue: 8, checkpointFreq: 100 };
    const full = await train(S1, overrides({ ...base, extra: ['name=rs_full'] }));
    const over = overrides({ ...base, extra: ['name=rs_resumed'] });
    const a = await train(S1, over, { stopAfter: 7 });
    assert.equal(a.iter, 7);
    const st = loadTrainingState(join(tmp, 'experiments', 'rs_resumed', 'training_states', '7.state'));
    assert.ok(st.pool, 'the training state holds the pool');
    assert.equal(st.pool.slots.length, 1);
    assert.equal(st.pool.slots[0]!.length, 2 * 8, 'eight pairs, each (batch, index)');
    const iters = st.pool.batches.map((b) => b.iter);
    assert.ok(Math.min(...iters) <= 7 - 8 / 2, `some pairs outlived the last queue_size/batch batches (batches of iterations ${iters.join(', ')})`);
    const log: string[] = [];
    const b = await train(S1, over, { autoResume: true, log });
    assert.ok(log.some((l) => /training-pair pool rebuilt from \d+ batch plan/.test(l)), log.join('\n'));
    assert.equal(b.iter, 10);
    assertSameWeights(b.params, full.params, 'params');
    assertSameWeights(b.ema!, full.ema!, 'EMA');
    assert.deepEqual(b.history.map((h) => h.losses), full.history.slice(7).map((h) => h.losses));
    assert.deepEqual(b.validations.map((v) => v.metrics), full.validations.map((v) => v.metrics));
    assert.match(readFileSync(join(tmp, 'experiments', 'rs_resumed', 'train_log.jsonl'), 'utf8'), /"event":"resume"/);
  });
});
