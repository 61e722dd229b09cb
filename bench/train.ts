/**
 * Seconds per training step and peak memory at the released widths, through the real trainer
 * (data loading, forward + backward in one ORT run, Adam, EMA), on a synthetic paired dataset
 * written to a temporary folder, at batch 1 and batch 4:
 *
 * - deblur-gopro stage 1: 128×128 patches (DeblurPairedDataset)
 * - realsr-x4 stage 1: LQ 64×64 (GT 256×256, PairedImageDataset)
 * - realsr-x4 stage 2, joint phase (encoder_iter 0): LQ 64×64, the frozen stage-1 CPEN as
 *   teacher from a random stage-1 checkpoint
 * - realsr-x4 GAN stage (DiffIRGANS2Model, `train_DiffIRS2_GAN_x4.yml`'s losses and widths): GT
 *   256×256, net_g / network_S1 fresh at the official widths, UNetDiscriminatorSN num_feat 64,
 *   VGG19 perceptual loss to conv5_4 (synthesised weights from ../shared/fixtures when the real
 *   torchvision file is not in experiments/pretrained_models or $TORCH_HOME: the time does not
 *   depend on the values)
 * - inpainting (place2 widths) stage 1 and stage 2, batch 1 only, 256×256: one official LaMa-style
 *   iteration (bench/train-inpaint.ts)
 *
 *   npm run build && node dist/bench/train.js [--steps 10] [--warmup 3] [--threads 2] [--batch 1,4]
 *        [--only deblur|realsr|realsr-s2|gan|inpaint1|inpaint2] [--low-memory]
 *        [--pytorch <python with torch> --official <clone of github.com/Zj-BinXia/DiffIR>]
 *
 * Each configuration runs in its own process so that its peak RSS is its own. Reported: median
 * and min–max s/step over the timed steps (after the warm-up steps, which include session
 * creation, as PyTorch's first steps do), and the process's peak RSS.
 *
 * With `--pytorch` and `--official`, each configuration that has an official counterpart (all but
 * inpainting) is followed, in the same window, by `bench/pytorch/train_step.py` in its own Python
 * process: the official networks imported from that clone, the same iteration, batch, threads,
 * warm-up and timed steps, on CPU. The table then gives PyTorch's median s/step and peak RSS and
 * the ratios ours / PyTorch (median time, peak memory). The stage-2 and GAN cases need numpy in
 * that Python (the official DDPM's noise schedule). Without the options those columns read
 * "not measured".
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveImage } from '../src/image/io.js';
import { f32 } from '../src/tensor.js';
import { preset } from '../src/models/config.js';
import { DiffIRS1 } from '../src/models/diffir.js';
import { initParams } from '../src/nn/init.js';
import { officialStateDict } from '../src/train/checkpoint.js';
import { writePth } from '../src/weights/pth.js';
import { vggSearchPaths } from '../src/train/vgg-weights.js';
import { readOptions, resolveOptions } from '../src/train/options.js';
import { Trainer } from '../src/train/trainer.js';
import { flag, machine, median } from './util.js';
import { runInpaint } from './train-inpaint.js';

const steps = Number(flag('steps', '10'));
const warmup = Number(flag('warmup', '3'));
const threads = Number(flag('threads', '2'));
const only = flag('only', '');
const batches = flag('batch', '1,4').split(',').map(Number);
const lowMemory = process.argv.includes('--low-memory');
const pytorch = flag('pytorch', '');
const official = flag('official', '');

interface Case {
  readonly key: string;
  readonly label: string;
  readonly gt: number;
  readonly scale: number;
  readonly network: string;
  readonly type: string;
  /** 1, 2: DiffIRS1/S2Model; 'gan': DiffIRGANS2Model; 'inpaint': the LaMa-style iteration (batch 1). */
  readonly stage: 1 | 2 | 'gan' | 'inpaint';
  /** For 'inpaint': which inpainting stage. */
  readonly inpaintStage?: 1 | 2;
  /** Whether bench/pytorch/train_step.py has this case (`--case <key>`). */
  readonly pytorch: boolean;
}

const S2_EXTRA = 'n_denoise_res: 1, linear_start: 0.1, linear_end: 0.99, timesteps: 4';

const CASES: Case[] = [
  {
    key: 'deblur',
    pytorch: true,
    label: 'deblur-gopro stage 1, 128×128',
    stage: 1,
    gt: 128,
    scale: 1,
    type: 'DeblurPairedDataset',
    network: 'n_encoder_res: 5, dim: 48, num_blocks: [3, 5, 6, 6], num_refinement_blocks: 4, heads: [1, 2, 4, 8], ffn_expansion_factor: 2, bias: false, LayerNorm_type: WithBias',
  },
  {
    key: 'realsr',
    pytorch: true,
    label: 'realsr-x4 stage 1, LQ 64×64',
    stage: 1,
    gt: 256,
    scale: 4,
    type: 'PairedImageDataset',
    network: 'n_encoder_res: 9, dim: 64, num_blocks: [13, 1, 1, 1], num_refinement_blocks: 13, heads: [1, 2, 4, 8], ffn_expansion_factor: 2.2, bias: false, LayerNorm_type: BiasFree',
  },
  {
    key: 'realsr-s2',
    pytorch: true,
    label: 'realsr-x4 stage 2 joint, LQ 64×64',
    gt: 256,
    scale: 4,
    type: 'PairedImageDataset',
    stage: 2,
    network: 'n_encoder_res: 9, dim: 64, num_blocks: [13, 1, 1, 1], num_refinement_blocks: 13, heads: [1, 2, 4, 8], ffn_expansion_factor: 2.2, bias: false, LayerNorm_type: BiasFree',
  },
  {
    key: 'gan',
    pytorch: true,
    label: 'realsr-x4 GAN stage, GT 256×256',
    stage: 'gan',
    gt: 256,
    scale: 4,
    type: 'PairedImageDataset',
    network: 'n_encoder_res: 9, dim: 64, num_blocks: [13, 1, 1, 1], num_refinement_blocks: 13, heads: [1, 2, 4, 8], ffn_expansion_factor: 2.2, bias: false, LayerNorm_type: BiasFree',
  },
  { key: 'inpaint1', label: 'inpainting place2 stage 1 (G + D + ResNetPL + R1), 256×256', stage: 'inpaint', inpaintStage: 1, pytorch: false, gt: 256, scale: 1, type: '', network: '' },
  { key: 'inpaint2', label: 'inpainting place2 stage 2 (G + D + ResNetPL + R1 + KD), 256×256', stage: 'inpaint', inpaintStage: 2, pytorch: false, gt: 256, scale: 1, type: '', network: '' },
];

function smooth(seed: number, h: number, w: number): Float32Array {
  const d = new Float32Array(3 * h * w);
  for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) d[(c * h + y) * w + x] = 0.5 + 0.3 * Math.sin(0.05 * (x + 3 * c) + seed) * Math.cos(0.07 * y + c);
  return d;
}

/** The GAN case's option lines and VGG19 weights; `s1` is the random stage-1 teacher of {@link runCase}. */
function ganSetup(tmp: string, c: Case, s1: string): string[] {
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

async function runCase(c: Case, batch: number): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'diffir-bench-train-'));
  try {
    const size = c.gt + 32;
    for (const d of ['gt', 'lq']) mkdirSync(join(tmp, d));
    for (let i = 0; i < Math.max(4, batch); i++) {
      const gt = smooth(i, size, size);
      await saveImage(join(tmp, 'gt', `${i}.png`), { rgb: f32([1, 3, size, size], gt) });
      const s = size / c.scale;
      await saveImage(join(tmp, 'lq', `${i}.png`), { rgb: f32([1, 3, s, s], smooth(i + 0.5, s, s)) });
    }
    let s1 = '';
    if (c.stage === 2 || c.stage === 'gan') {
      // A random stage-1 checkpoint (official realsr-x4 widths): DIRformer initialisation and the frozen teacher CPEN.
      const cfg = preset('realsr-x4');
      s1 = join(tmp, 's1.pth');
      const sd = officialStateDict(initParams(DiffIRS1(cfg), 1), cfg, 1);
      writePth(s1, new Map([['params', sd], ['params_ema', sd]]));
    }
    const net = (type: string, extra = '') => `{type: ${type}, ${c.network}${extra}${c.scale > 1 ? `, scale: ${c.scale}` : ''}}`;
    const head = [`name: bench_${c.key}`, `scale: ${c.scale}`, 'manual_seed: 0', 'datasets:',
      `  train: {name: synth, type: ${c.type}, dataroot_gt: ${tmp}/gt, dataroot_lq: ${tmp}/lq, io_backend: {type: disk}, gt_size: ${c.gt}, use_hflip: true, use_rot: false, geometric_augs: true, batch_size_per_gpu: ${batch}}`];
    const tail = ['logger: {print_freq: 1, save_checkpoint_freq: 1000000}', ''];
    const opt = (c.stage === 'gan'
      ? [...head, 'model_type: DiffIRGANS2Model', `network_g: ${net('DiffIRS2', `, ${S2_EXTRA}`)}`, ...ganSetup(tmp, c, s1), ...tail]
      : [
      ...head,
      `model_type: DiffIRS${c.stage}Model`,
      c.stage === 1 ? `network_g: ${net('DiffIRS1')}` : `network_g: ${net('DiffIRS2', `, ${S2_EXTRA}`)}\nnetwork_S1: ${net('DiffIRS1')}`,
      c.stage === 1 ? `path: {pretrain_network_g: ~, experiments_root: ${tmp}/exp}` : `path: {pretrain_network_g: ${s1}, pretrain_network_S1: ${s1}, param_key_g: params, strict_load_g: false, experiments_root: ${tmp}/exp}`,
      'train:',
      '  ema_decay: 0.999',
      `  optim_g: {type: Adam, lr: !!float 2e-4, weight_decay: 0, betas: [0.9, ${c.scale > 1 ? '0.99' : '0.999'}]}`,
      '  scheduler: {type: MultiStepLR, milestones: [500000], gamma: 0.5}',
      `  total_iter: ${warmup + steps}`,
      '  pixel_opt: {type: L1Loss, loss_weight: 1.0, reduction: mean}',
      ...(c.stage === 2
        ? ['  encoder_iter: 0', '  lr_encoder: !!float 2e-4', '  lr_sr: !!float 2e-4', '  gamma_encoder: 0.1', '  gamma_sr: 0.5', '  lr_decay_encoder: 60000', '  lr_decay_sr: 600000', '  kd_opt: {type: KDLoss, loss_weight: 1, temperature: 0.15}']
        : []),
      ...tail,
    ]).join('\n');
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
    console.log(JSON.stringify({ key: c.key, batch, label: c.label, median: med, mean, min: Math.min(...rec), max: Math.max(...rec), peakRssMiB: rss, steps: rec.length }));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The last line of a child's stdout, parsed, when it is a JSON object; undefined otherwise. */
function lastJson<T>(stdout: string): T | undefined {
  const line = stdout.trim().split('\n').pop() ?? '';
  return line.startsWith('{') ? (JSON.parse(line) as T) : undefined;
}

/** What bench/pytorch/train_step.py prints last. */
interface TorchStep {
  readonly torch: string;
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly peakRssBytes: number;
}

/** Checks `--pytorch` / `--official` before any long run; returns the torch version, or exits with a one-line error. */
function checkPytorch(): string {
  const fix = 'pass both --pytorch <python with torch> and --official <clone of github.com/Zj-BinXia/DiffIR>';
  if (!pytorch !== !official) die(`--pytorch and --official go together: ${fix}`);
  for (const repo of ['DiffIR-demotionblur', 'DiffIR-RealSR']) {
    if (!existsSync(join(official, repo, 'DiffIR/archs/S1_arch.py'))) die(`--official ${official}: no ${repo}/DiffIR/archs/S1_arch.py there: ${fix}`);
  }
  const r = spawnSync(pytorch, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  const version = r.status === 0 ? r.stdout.trim() : '';
  if (!version) die(`--pytorch ${pytorch}: cannot import torch (${r.error?.message ?? (r.status === 0 ? 'it printed no version' : r.stderr.trim().split('\n').pop() || `exit ${r.status}`)}): ${fix}`);
  return version;
}

function die(msg: string): never {
  console.error(`diffir: bench/train: ${msg}`);
  process.exit(2);
}

/** Runs the official iteration for case `key` in its own Python process; undefined (reason printed on stderr) if it failed. */
function runPytorch(key: string, batch: number): TorchStep | undefined {
  const script = join(root(), 'bench/pytorch/train_step.py');
  const args = [script, '--official', official, '--case', key, '--batch', String(batch), '--threads', String(threads), '--warmup', String(warmup), '--steps', String(steps)];
  const r = spawnSync(pytorch, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  const x = r.status === 0 ? lastJson<TorchStep>(r.stdout) : undefined;
  if (!x) console.error(`diffir: bench/train: PyTorch ${key} batch ${batch} failed (exit ${r.status}); its error is above`);
  return x;
}

async function main(): Promise<void> {
  if (process.argv.includes('--child')) {
    const c = CASES.find((k) => k.key === only)!;
    if (c.stage === 'inpaint') await runInpaint(c.inpaintStage!, { steps, warmup, threads });
    else await runCase(c, batches[0]!);
    return;
  }
  if (only && !CASES.some((c) => c.key === only)) die(`--only ${only}: not a case; one of ${CASES.map((c) => c.key).join(', ')}`);
  const torchVersion = pytorch || official ? checkPytorch() : '';
  console.log(`# training step benchmark — ${machine()}, ORT threads ${threads}, ${steps} timed steps after ${warmup} warm-up steps${lowMemory ? ', --low-memory (no ORT arena)' : ''}`);
  console.log(
    torchVersion
      ? `# PyTorch ${torchVersion} (${pytorch}), the official code from ${official}, CPU, ${threads} threads, same batch, warm-up and steps, each run right after ours in its own process; ratios are ours / PyTorch`
      : '# PyTorch: not measured; pass --pytorch <python with torch> --official <clone of github.com/Zj-BinXia/DiffIR> to run the official iteration after each configuration (README, benchmarks)',
  );
  console.log('| configuration | batch | median s/step | min–max s/step | peak RSS GiB | PyTorch median s/step | PyTorch min–max | PyTorch peak RSS GiB | time ratio | memory ratio |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  const self = fileURLToPath(import.meta.url);
  for (const c of CASES) {
    if (only && c.key !== only) continue;
    // The inpainting iteration is built for batch 1 only.
    for (const batch of c.stage === 'inpaint' ? batches.filter((b) => b === 1) : batches) {
      const args = [self, '--child', '--only', c.key, '--batch', String(batch), '--steps', String(steps), '--warmup', String(warmup), '--threads', String(threads), ...(lowMemory ? ['--low-memory'] : [])];
      const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      const x = r.status === 0 ? lastJson<{ median: number; min: number; max: number; peakRssMiB: number }>(r.stdout) : undefined;
      const ours = x ? [x.median.toFixed(2), `${x.min.toFixed(2)}–${x.max.toFixed(2)}`, (x.peakRssMiB / 1024).toFixed(2)] : [`failed (exit ${r.status})`, '', ''];
      let theirs = [c.pytorch ? 'not measured' : 'no official counterpart', '', '', '', ''];
      if (torchVersion && c.pytorch) {
        const t = runPytorch(c.key, batch);
        theirs = t
          ? [t.median.toFixed(2), `${t.min.toFixed(2)}–${t.max.toFixed(2)}`, (t.peakRssBytes / 2 ** 30).toFixed(2), x ? (x.median / t.median).toFixed(2) : '', x ? ((x.peakRssMiB * 2 ** 20) / t.peakRssBytes).toFixed(2) : '']
          : ['failed', '', '', '', ''];
      }
      console.log(`| ${[c.label, batch, ...ours, ...theirs].join(' | ')} |`);
    }
  }
}

await main();
