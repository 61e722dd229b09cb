/**
 * `diffir train` on the GAN stage (DiffIRGANS2Model): every official GAN option file runs with
 * only its data and weight paths changed, on the tiny networks of the realsr_x<scale> / gan_x4
 * fixtures (--force_yml; perceptual loss off: the fixture test covers it); net_g / net_d start
 * from the given weights, checkpoints have the official keys and shapes; training states hold
 * both optimizers; --auto_resume continues bit for bit (net_g, its EMA, net_d and D's
 * spectral-norm buffers); an interrupt saves.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveImage } from '../src/image/io.js';
import { f32, type TensorMap } from '../src/tensor.js';
import { readOptions, resolveOptions } from '../src/train/options.js';
import { loadNetworkStateDict, loadTrainingState } from '../src/train/checkpoint.js';
import { Trainer, type TrainResult } from '../src/train/trainer.js';
import { loadStateDict } from '../src/weights/statedict.js';
import { makeTinyDataset, synthImage } from './train-helpers.js';
import { assertSameWeights, maxAbs } from './helpers/tensors.js';
import { FIXTURES_DIR, synthWeights } from './helpers/synth.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const opts = (f: string) => join(root, 'options', f);
const tmp = mkdtempSync(join(tmpdir(), 'diffir-gan-train-'));
/** The official GAN-stage training files (DiffIR-RealSR and DiffIR-SRGAN); the first one has its own test below. */
const GAN_FILES = ['DiffIR-RealSR', 'DiffIR-SRGAN'].flatMap((d) =>
  readdirSync(join(root, 'options', d))
    .filter((f) => /^(train|finetune)_DiffIRS2_GAN_.*\.yml$/.test(f))
    .map((f) => `${d}/${f}`),
);
const OTHER_GAN_FILES = GAN_FILES.filter((f) => f !== 'DiffIR-RealSR/finetune_DiffIRS2_GAN_x4_V2.yml');
const TINY = ['dim=8', 'num_blocks=[1, 1, 1, 1]', 'num_refinement_blocks=1', 'n_encoder_res=1'];

async function makeGt(dir: string): Promise<{ gt: string; meta: string }> {
  mkdirSync(join(dir, 'gt'), { recursive: true });
  const names: string[] = [];
  for (const [i, size] of [96, 128, 80].entries()) {
    await saveImage(join(dir, 'gt', `im${i}.png`), { rgb: f32([1, 3, size, size], synthImage(i + 1, size)) }, { overwrite: true });
    names.push(`im${i}.png`);
  }
  const meta = join(dir, 'meta.txt');
  writeFileSync(meta, names.join('\n') + '\n');
  return { gt: join(dir, 'gt'), meta };
}

/**
 * Overrides of a test run: data paths (every val set), the tiny networks of the realsr_x<scale>
 * fixtures and their checkpoints, the gan_x4 fixture's net_d, 64-pixel patches, batch 2.
 */
function overrides(file: string, o: { gt: string; meta: string; val: string; paired: string; totalIter: number; name: string; extra?: string[] }): string[] {
  const opt = readOptions(opts(file)).opt as Record<string, Record<string, unknown>>;
  const scale = (opt.scale as unknown as number) ?? 4;
  const lq = (dir: string) => (scale === 1 ? `${dir}/lq` : `${dir}/lqx${scale}`);
  const realsr = (opt.datasets!.train as Record<string, unknown>).type === 'RealESRGANDataset';
  const fx = join(FIXTURES_DIR, `realsr_x${scale}`);
  return [
    `name=${o.name}`,
    ...(realsr
      ? [`datasets:train:dataroot_gt=${o.gt}`, `datasets:train:meta_info=${o.meta}`, 'queue_size=4']
      : [`datasets:train:dataroot_gt=${o.paired}/gt`, `datasets:train:dataroot_lq=${lq(o.paired)}`, 'datasets:train:meta_info_file=~', 'datasets:train:dataset_enlarge_ratio=1']),
    ...(opt.gt_size !== undefined ? ['gt_size=64'] : []),
    'datasets:train:gt_size=64',
    'datasets:train:batch_size_per_gpu=2',
    ...Object.keys(opt.datasets!).filter((k) => k.startsWith('val')).flatMap((k) => [`datasets:${k}:dataroot_gt=${o.val}/gt`, `datasets:${k}:dataroot_lq=${lq(o.val)}`]),
    ...TINY.flatMap((t) => [`network_g:${t}`, `network_S1:${t}`]),
    'network_d:num_feat=8',
    `path:pretrain_network_g=${join(fx, 's2.pth')}`,
    `path:pretrain_network_S1=${join(fx, 's1.pth')}`,
    ...(opt.path!.pretrain_network_d !== undefined ? [`path:pretrain_network_d=${join(FIXTURES_DIR, 'gan_x4/net_d.pth')}`] : []),
    `train:total_iter=${o.totalIter}`,
    `val:val_freq=${o.totalIter}`,
    'logger:print_freq=1',
    'logger:save_checkpoint_freq=100',
    ...(o.extra ?? []),
  ];
}

async function train(file: string, over: string[], o: { autoResume?: boolean; stopAfter?: number } = {}): Promise<TrainResult> {
  const plan = resolveOptions(readOptions(opts(file), over), { cwd: tmp });
  const t = await Trainer.create(plan, { threads: 2, log: null, history: true, report: false, ...(o.autoResume ? { autoResume: true } : {}), ...(o.stopAfter ? { stopAfter: o.stopAfter } : {}) });
  try {
    return await t.run();
  } finally {
    await t.release();
  }
}

describe('the GAN stage trains from the official option files', () => {
  let data: { gt: string; meta: string };
  let val = '';
  let paired = '';
  before(async () => {
    data = await makeGt(join(tmp, 'train'));
    val = await makeTinyDataset(join(tmp, 'val'), 2, 32);
    paired = await makeTinyDataset(join(tmp, 'paired'), 3, 64);
    mkdirSync(join(tmp, 'experiments/pretrained_models'), { recursive: true });
    copyFileSync(synthWeights('gan_x4/vgg19.manifest.json', { format: 'legacy' }), join(tmp, 'experiments/pretrained_models/vgg19-dcbb9e9d.pth'));
  });

  test('finetune x4 V2: checkpoints load as the official classes, both optimizers are saved, --auto_resume is bit-exact', async () => {
    const file = 'DiffIR-RealSR/finetune_DiffIRS2_GAN_x4_V2.yml';
    const base = { ...data, val, paired, totalIter: 4 };
    // Perceptual loss off here (the fixture test covers it): VGG19 up to conv5_4 would triple the compile time.
    const noVgg = ['train:perceptual_opt:perceptual_weight=0'];
    const full = await train(file, overrides(file, { ...base, name: 'gan_full', extra: noVgg }));
    assert.equal(full.iter, 4);
    for (const h of full.history) for (const k of ['l_g_pix', 'l_abs_3', 'l_g_gan', 'l_d_real', 'l_d_fake', 'out_d_real', 'out_d_fake']) assert.ok(Number.isFinite(h.losses[k]), `${k} at ${h.iter}`);
    const over = overrides(file, { ...base, name: 'gan_resumed', extra: noVgg });
    const part = await train(file, over, { stopAfter: 2 });
    assert.equal(part.interrupted, true);
    const models = join(part.experimentsRoot, 'models');
    assert.ok(existsSync(join(models, 'net_g_2.pth')) && existsSync(join(models, 'net_d_2.pth')), 'an interrupt saves net_g and net_d');
    const state = loadTrainingState(join(part.experimentsRoot, 'training_states/2.state'));
    assert.deepEqual(Object.keys(state.optimizers).sort(), ['d', 'g']);
    const resumed = await train(file, over, { autoResume: true });
    assert.equal(resumed.iter, 4);
    assertSameWeights(resumed.params, full.params, 'params');
    assertSameWeights(resumed.ema!, full.ema!, 'params_ema');
    const dFull = loadNetworkStateDict(join(full.experimentsRoot, 'models/net_d_latest.pth'), 'params');
    const dRes = loadNetworkStateDict(join(resumed.experimentsRoot, 'models/net_d_latest.pth'), 'params');
    assertSameWeights(dRes, dFull, 'net_d (with weight_u / weight_v)');
    // Official layout: net_d as the fixture's (torch.save of UNetDiscriminatorSN), net_g as the official DiffIRS2's.
    const refD = loadNetworkStateDict(join(FIXTURES_DIR, 'gan_x4/net_d.pth'), 'params');
    assert.deepEqual([...dFull.keys()], [...refD.keys()]);
    for (const [k, t] of refD) assert.deepEqual(dFull.get(k)!.shape, t.shape, k);
    const refG = loadNetworkStateDict(join(FIXTURES_DIR, 'realsr_x4/s2.pth'), 'params_ema');
    const g = loadStateDict(join(full.experimentsRoot, 'models/net_g_latest.pth'));
    for (const key of ['params', 'params_ema']) {
      const sd = loadNetworkStateDict(join(full.experimentsRoot, 'models/net_g_latest.pth'), key);
      assert.deepEqual([...sd.keys()].sort(), [...refG.keys()].sort(), key);
      for (const [k, t] of refG) assert.deepEqual(sd.get(k)!.shape, t.shape, k);
    }
    assert.ok(g.size > 0);
  });

  test('the official GAN training files are all found (RealSR x1/x2/x4, V2, finetune V2; SRGAN x2/x4)', () => {
    assert.equal(GAN_FILES.length, 10, GAN_FILES.join(', '));
    assert.ok(GAN_FILES.includes('DiffIR-RealSR/finetune_DiffIRS2_GAN_x4_V2.yml') && OTHER_GAN_FILES.length === 9);
  });

  // Every other official GAN option file, one iteration each: its own recipe (scale, dataset kind,
  // USM flags, learning rates, pretrain_network_d) with only data/weight paths and sizes changed.
  for (const file of OTHER_GAN_FILES) {
    test(`${file} runs; net_g / net_d start from the given weights and keep the official keys and shapes`, async () => {
      const opt = readOptions(opts(file)).opt as Record<string, Record<string, unknown>>;
      const scale = (opt.scale as unknown as number) ?? 4;
      const r = await train(file, overrides(file, { ...data, val, paired, totalIter: 1, name: file.replace(/\W/g, '_'), extra: ['train:perceptual_opt:perceptual_weight=0'] }));
      assert.equal(r.iter, 1);
      const losses = r.history[0]!.losses;
      for (const k of ['l_g_pix', 'l_g_gan', 'l_g_total', 'l_d_real', 'l_d_fake', 'out_d_real', 'out_d_fake']) assert.ok(Number.isFinite(losses[k]), `${k}: ${losses[k]}`);
      const models = join(r.experimentsRoot, 'models');
      // One Adam step moves each weight by at most lr (first step: m̂/√v̂ = ±1), the EMA (0.999) by lr/1000.
      const lrG = (opt.train!.optim_g as { lr: number }).lr;
      const g0 = loadNetworkStateDict(join(FIXTURES_DIR, `realsr_x${scale}/s2.pth`), (opt.path!.param_key_g as string | undefined) ?? 'params');
      const moved = (sd: TensorMap, ref: TensorMap, what: string, keys = [...ref.keys()]): number => {
        let m = 0;
        for (const k of keys) {
          assert.ok(sd.has(k), `${what}: ${k} missing`);
          m = Math.max(m, maxAbs(sd.get(k)!, ref.get(k)!));
        }
        return m;
      };
      const gP = loadNetworkStateDict(join(models, 'net_g_latest.pth'), 'params');
      const gE = loadNetworkStateDict(join(models, 'net_g_latest.pth'), 'params_ema');
      assert.deepEqual([...gP.keys()].sort(), [...g0.keys()].sort());
      assert.deepEqual([...gE.keys()].sort(), [...g0.keys()].sort());
      const dG = moved(gP, g0, 'net_g params');
      assert.ok(dG > 0.5 * lrG && dG <= lrG * 1.001 + 1e-7, `net_g moved ${dG} from the pretrained weights (lr ${lrG})`);
      assert.ok(moved(gE, g0, 'net_g params_ema') <= lrG * 1e-3 + 1e-7, 'params_ema');
      // net_d: the official UNetDiscriminatorSN layout (the fixture's torch.save); a finetune file's
      // pretrain_network_d is where D starts.
      const d = loadNetworkStateDict(join(models, 'net_d_latest.pth'), 'params');
      const d0 = loadNetworkStateDict(join(FIXTURES_DIR, 'gan_x4/net_d.pth'), 'params');
      assert.deepEqual([...d.keys()], [...d0.keys()]);
      const dd = moved(d, d0, 'net_d', [...d0.keys()].filter((k) => !k.endsWith('_u') && !k.endsWith('_v')));
      const lrD = (opt.train!.optim_d as { lr: number }).lr;
      if (opt.path!.pretrain_network_d !== undefined) assert.ok(dd > 0.5 * lrD && dd <= lrD * 1.001 + 1e-7, `net_d moved ${dd} from pretrain_network_d`);
      else assert.ok(dd > 10 * lrD, 'net_d starts fresh');
    });
  }
});
