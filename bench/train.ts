/**
 * Seconds per training step and peak memory of stage-1 training at the released sizes, through
 * the real trainer (data loading, forward + backward in one ORT run, Adam, EMA), on a synthetic
 * paired dataset written to a temporary folder:
 *
 * - deblur-gopro stage 1: batch 1, 128×128 patches (DeblurPairedDataset)
 * - realsr-x4 stage 1: batch 1, LQ 64×64 (GT 256×256, PairedImageDataset)
 * - realsr-x4 GAN stage (DiffIRGANS2Model, `train_DiffIRS2_GAN_x4.yml`'s losses and widths): batch 1,
 *   GT 256×256, net_g / network_S1 fresh at the official widths, UNetDiscriminatorSN num_feat 64,
 *   VGG19 perceptual loss to conv5_4 (synthesised weights from ../shared/fixtures when the real
 *   torchvision file is not in experiments/pretrained_models or $TORCH_HOME: the time does not
 *   depend on the values)
 * - inpainting (place2 widths) stage 1 and stage 2: batch 1, 256×256, one official LaMa-style
 *   iteration (G step with ResNetPL, D step with the R1 penalty, both Adams; no data loading),
 *   random weights (the ResNet50 encoder too: the time does not depend on its values)
 *
 *   npm run build && node dist/bench/train.js [--steps 10] [--warmup 3] [--threads 2] [--only deblur|realsr] [--low-memory]
 *
 * Each configuration runs in its own process so that its peak RSS is its own. Reported: median
 * and mean s/step over the timed steps (after the warm-up steps, which include session creation),
 * and the process's peak RSS.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveImage } from '../src/image/io.js';
import { f32 } from '../src/tensor.js';
import { readOptions, resolveOptions } from '../src/train/options.js';
import { Trainer } from '../src/train/trainer.js';
import { flag, machine, median, rand } from './util.js';
import { PRESETS } from '../src/models/config.js';
import { DiffIRS1, DiffIRS2 } from '../src/models/diffir.js';
import { initParams } from '../src/nn/init.js';
import { ade20kEncoderShapes } from '../src/models/ade20k-resnet.js';
import { InpaintIteration, initDiscriminator } from '../src/train/inpaint-step.js';
import { IPR_DIM } from '../src/nn/ipr.js';
import type { TensorMap } from '../src/tensor.js';

const steps = Number(flag('steps', '10'));
const warmup = Number(flag('warmup', '3'));
const threads = Number(flag('threads', '2'));
const only = flag('only', '');
const lowMemory = process.argv.includes('--low-memory');
/** Per-step time of the official PyTorch 2.13 CPU code on this machine kind (2 threads), from the issue. */
const PYTORCH_S = 7.8;

interface Case {
  readonly key: string;
  readonly label: string;
  readonly gt: number;
  readonly scale: number;
  readonly network: string;
  readonly type: string;
  /** GAN stage instead of stage 1. */
  readonly gan?: boolean;
}

const CASES: Case[] = [
  {
    key: 'deblur',
    label: 'deblur-gopro stage 1, batch 1, 128×128',
    gt: 128,
    scale: 1,
    type: 'DeblurPairedDataset',
    network: 'n_encoder_res: 5, dim: 48, num_blocks: [3, 5, 6, 6], num_refinement_blocks: 4, heads: [1, 2, 4, 8], ffn_expansion_factor: 2, bias: false, LayerNorm_type: WithBias',
  },
  {
    key: 'realsr',
    label: 'realsr-x4 stage 1, batch 1, LQ 64×64',
    gt: 256,
    scale: 4,
    type: 'PairedImageDataset',
    network: 'n_encoder_res: 9, dim: 64, num_blocks: [13, 1, 1, 1], num_refinement_blocks: 13, heads: [1, 2, 4, 8], ffn_expansion_factor: 2.2, bias: false, LayerNorm_type: BiasFree',
  },
  {
    key: 'gan',
    label: 'realsr-x4 GAN stage, batch 1, GT 256×256',
    gt: 256,
    scale: 4,
    type: 'PairedImageDataset',
    network: 'n_encoder_res: 9, dim: 64, num_blocks: [13, 1, 1, 1], num_refinement_blocks: 13, heads: [1, 2, 4, 8], ffn_expansion_factor: 2.2, bias: false, LayerNorm_type: BiasFree',
    gan: true,
  },
];

/** The GAN case's extra files and option lines: a fresh stage-1 teacher, the VGG19 weights. */
async function ganSetup(tmp: string, c: Case): Promise<string[]> {
  const { DiffIRS1 } = await import('../src/models/diffir.js');
  const { initParams } = await import('../src/nn/init.js');
  const { experimentDirs, makeExperimentDirs, saveNetwork } = await import('../src/train/checkpoint.js');
  const plan = resolveOptions(readOptions(join(root(), 'options/DiffIR-RealSR/train_DiffIRS1_x4.yml')), { cwd: tmp });
  const dirs = experimentDirs(join(tmp, 's1'));
  makeExperimentDirs(dirs);
  const w = initParams(DiffIRS1(plan.config), 0);
  const s1 = saveNetwork(dirs, 0, plan.config, 1, w, w);
  const { vggSearchPaths } = await import('../src/train/vgg-weights.js');
  const manifest = join(root(), '../shared/fixtures/gan_x4/vgg19.manifest.json');
  if (!vggSearchPaths(tmp).slice(1).some((p) => existsSync(p)) && existsSync(manifest)) {
    mkdirSync(join(tmp, 'experiments/pretrained_models'), { recursive: true });
    spawnSync(process.execPath, [join(root(), '../shared/fixtures/tools/synth-weights.mjs'), manifest, join(tmp, 'experiments/pretrained_models/vgg19-dcbb9e9d.pth')], { stdio: 'inherit' });
  }
  return [
    `network_S1: {type: DiffIRS1, ${c.network}, scale: ${c.scale}}`,
    'network_d: {type: UNetDiscriminatorSN, num_in_ch: 3, num_feat: 64, skip_connection: true}',
    `path: {pretrain_network_g: ~, pretrain_network_S1: ${s1}, param_key_g: params_ema, experiments_root: ${tmp}/exp}`,
    'l1_gt_usm: true',
    'percep_gt_usm: true',
    'gan_gt_usm: false',
    'train:',
    '  ema_decay: 0.999',
    '  optim_g: {type: Adam, lr: !!float 1e-4, weight_decay: 0, betas: [0.9, 0.99]}',
    '  optim_d: {type: Adam, lr: !!float 1e-4, weight_decay: 0, betas: [0.9, 0.99]}',
    '  scheduler: {type: MultiStepLR, milestones: [400000], gamma: 0.5}',
    `  total_iter: ${warmup + steps}`,
    '  encoder_iter: 100000',
    '  lr_encoder: !!float 2e-4',
    '  lr_sr: !!float 1e-4',
    '  gamma_encoder: 0.1',
    '  gamma_sr: 0.5',
    '  lr_decay_encoder: 60000',
    '  lr_decay_sr: 300000',
    '  pixel_opt: {type: L1Loss, loss_weight: 1.0, reduction: mean}',
    '  perceptual_opt: {type: PerceptualLoss, layer_weights: {conv1_2: 0.1, conv2_2: 0.1, conv3_4: 1, conv4_4: 1, conv5_4: 1}, vgg_type: vgg19, use_input_norm: true, perceptual_weight: 1.0, style_weight: 0, range_norm: false, criterion: l1}',
    '  gan_opt: {type: GANLoss, gan_type: vanilla, real_label_val: 1.0, fake_label_val: 0.0, loss_weight: !!float 1.0}',
    '  kd_opt: {type: KDLoss, loss_weight: 1, temperature: 0.15}',
  ];
}

function root(): string {
  return fileURLToPath(new URL('../..', import.meta.url));
}

function smooth(seed: number, h: number, w: number): Float32Array {
  const d = new Float32Array(3 * h * w);
  for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) d[(c * h + y) * w + x] = 0.5 + 0.3 * Math.sin(0.05 * (x + 3 * c) + seed) * Math.cos(0.07 * y + c);
  return d;
}

async function runCase(c: Case): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'diffir-bench-train-'));
  try {
    const size = c.gt + 32;
    for (const d of ['gt', 'lq']) await import('node:fs').then((fs) => fs.mkdirSync(join(tmp, d)));
    for (let i = 0; i < 4; i++) {
      const gt = smooth(i, size, size);
      await saveImage(join(tmp, 'gt', `${i}.png`), { rgb: f32([1, 3, size, size], gt) });
      const s = size / c.scale;
      await saveImage(join(tmp, 'lq', `${i}.png`), { rgb: f32([1, 3, s, s], smooth(i + 0.5, s, s)) });
    }
    const common = [
      `name: bench_${c.key}`,
      `model_type: ${c.gan ? 'DiffIRGANS2Model' : 'DiffIRS1Model'}`,
      `scale: ${c.scale}`,
      'manual_seed: 0',
      'datasets:',
      `  train: {name: synth, type: ${c.type}, dataroot_gt: ${tmp}/gt, dataroot_lq: ${tmp}/lq, io_backend: {type: disk}, gt_size: ${c.gt}, use_hflip: true, use_rot: false, geometric_augs: true, batch_size_per_gpu: 1}`,
      `network_g: {type: ${c.gan ? 'DiffIRS2' : 'DiffIRS1'}, ${c.network}${c.scale > 1 ? `, scale: ${c.scale}` : ''}}`,
      'logger: {print_freq: 1, save_checkpoint_freq: 1000000}',
    ];
    const opt = [
      ...common,
      ...(c.gan
        ? await ganSetup(tmp, c)
        : [
      `path: {pretrain_network_g: ~, experiments_root: ${tmp}/exp}`,
      'train:',
      '  ema_decay: 0.999',
      `  optim_g: {type: Adam, lr: !!float 2e-4, weight_decay: 0, betas: [0.9, ${c.scale > 1 ? '0.99' : '0.999'}]}`,
      '  scheduler: {type: MultiStepLR, milestones: [500000], gamma: 0.5}',
      `  total_iter: ${warmup + steps}`,
      '  pixel_opt: {type: L1Loss, loss_weight: 1.0, reduction: mean}',
          ]),
      '',
    ].join('\n');
    writeFileSync(join(tmp, 'opt.yml'), opt);
    const plan = resolveOptions(readOptions(join(tmp, 'opt.yml')), { cwd: tmp });
    const trainer = await Trainer.create(plan, { threads, log: null, report: false, lowMemory });
    await trainer.run();
    await trainer.release();
    const rec = readFileSync(join(tmp, 'exp', 'train_log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; iter: number; sec_per_iter?: number })
      .filter((r) => r.event === 'train' && r.iter > warmup)
      .map((r) => r.sec_per_iter!);
    const med = median(rec);
    const mean = rec.reduce((a, b) => a + b, 0) / rec.length;
    const rss = process.resourceUsage().maxRSS / 1024;
    console.log(JSON.stringify({ key: c.key, label: c.label, params: plan.config.dim, median: med, mean, min: Math.min(...rec), max: Math.max(...rec), peakRssMiB: rss, steps: rec.length }));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** One official inpainting iteration at the place2 widths, batch 1, 256×256. */
async function runInpaint(stage: 1 | 2): Promise<void> {
  const cfg = PRESETS['inpaint-places2'];
  const disc = { inputNc: 3, ndf: 64, nLayers: 4 };
  const encoder: TensorMap = new Map();
  let seed = 1;
  for (const [k, shape] of ade20kEncoderShapes()) {
    const t = rand(shape, seed++);
    if (k.endsWith('running_var')) t.data.fill(1);
    else if (/bn\d\.weight$|downsample\.1\.weight$/.test(k)) t.data.forEach((v, i) => (t.data[i] = 0.25 + 0.1 * v));
    encoder.set(k, t);
  }
  const s1 = initParams(DiffIRS1(cfg), 1);
  const it = await InpaintIteration.create(
    {
      stage,
      generator: cfg,
      ...(stage === 2 ? { teacher: cfg } : {}),
      discriminator: disc,
      losses: { l1: { weightKnown: 10, weightMissing: 0 }, adversarial: { weight: 10, gpCoef: 0.001, maskAsFakeTarget: true, allowScaleMask: true }, featureMatching: 100, resnetPl: 30, ...(stage === 2 ? { kd: { weight: 1, temperature: 0.15 } } : {}) },
      batch: 1,
      height: 256,
      width: 256,
      lrG: 2e-4,
      lrD: 1e-4,
      gradientClipVal: 1,
    },
    { generator: stage === 1 ? s1 : initParams(DiffIRS2(cfg), 2), discriminator: initDiscriminator(disc, 3), ...(stage === 2 ? { teacher: s1 } : {}), encoder },
    { threads },
  );
  const image = rand([1, 3, 256, 256], 7);
  image.data.forEach((v, i) => (image.data[i] = 0.5 + 0.5 * v));
  const mask = rand([1, 1, 256, 256], 8);
  mask.data.forEach((v, i) => (mask.data[i] = v > 0.3 ? 1 : 0));
  const times: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const t0 = performance.now();
    await it.run({ image, mask, ...(stage === 2 ? { gEps: rand([1, IPR_DIM], 10 + i), dEps: rand([1, IPR_DIM], 100 + i) } : {}) });
    if (i >= warmup) times.push((performance.now() - t0) / 1000);
  }
  await it.release();
  const rss = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify({ key: `inpaint${stage}`, median: median(times), mean: times.reduce((a, b) => a + b, 0) / times.length, min: Math.min(...times), max: Math.max(...times), peakRssMiB: rss, steps: times.length }));
}

const INPAINT_CASES = [
  { key: 'inpaint1', label: 'inpainting place2 stage 1 (G + D + ResNetPL + R1), batch 1, 256×256', stage: 1 as const },
  { key: 'inpaint2', label: 'inpainting place2 stage 2 (G + D + ResNetPL + R1 + KD), batch 1, 256×256', stage: 2 as const },
];

async function main(): Promise<void> {
  if (only) {
    const ic = INPAINT_CASES.find((c) => c.key === only);
    if (ic) await runInpaint(ic.stage);
    else await runCase(CASES.find((c) => c.key === only)!);
    return;
  }
  console.log(`# training step benchmark — ${machine()}, ORT threads ${threads}, ${steps} timed steps after ${warmup} warm-up steps${lowMemory ? ', --low-memory (no ORT arena)' : ''}`);
  console.log('| configuration | median s/step | min–max s/step | peak RSS | PyTorch 2.13 CPU | ratio (median / PyTorch) |');
  console.log('|---|---|---|---|---|---|');
  const self = fileURLToPath(import.meta.url);
  for (const c of CASES) {
    const r = spawnSync(process.execPath, [self, '--only', c.key, '--steps', String(steps), '--warmup', String(warmup), '--threads', String(threads), ...(lowMemory ? ['--low-memory'] : [])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    if (r.status !== 0 || !line.startsWith('{')) {
      console.log(`| ${c.label} | failed (exit ${r.status}) | | | | |`);
      continue;
    }
    const x = JSON.parse(line) as { median: number; min: number; max: number; peakRssMiB: number };
    // PyTorch is not installed here: the stage-1 figure is the issue's; the GAN stage has none.
    const torch = c.gan ? null : PYTORCH_S;
    console.log(`| ${c.label} | ${x.median.toFixed(2)} | ${x.min.toFixed(2)}–${x.max.toFixed(2)} | ${(x.peakRssMiB / 1024).toFixed(2)} GiB | ${torch ? `${torch} s` : 'not measured'} | ${torch ? (x.median / torch).toFixed(2) : '–'} |`);
  }
  for (const c of INPAINT_CASES) {
    const r = spawnSync(process.execPath, [self, '--only', c.key, '--steps', String(steps), '--warmup', String(warmup), '--threads', String(threads)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    if (r.status !== 0 || !line.startsWith('{')) {
      console.log(`| ${c.label} | failed (exit ${r.status}) | | | | |`);
      continue;
    }
    const x = JSON.parse(line) as { median: number; min: number; max: number; peakRssMiB: number };
    console.log(`| ${c.label} | ${x.median.toFixed(2)} | ${x.min.toFixed(2)}–${x.max.toFixed(2)} | ${(x.peakRssMiB / 1024).toFixed(2)} GiB | not measured | |`);
  }
}

await main();
