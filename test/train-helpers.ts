/** Shared pieces of the training tests: tiny paired datasets on disk and tiny option files. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { saveImage } from '../src/image/io.js';
import { f32 } from '../src/tensor.js';

/** A smooth synthetic RGB image (sums of sinusoids), planar [3,S,S] in [0,1]. */
export function synthImage(seed: number, size: number): Float32Array {
  const out = new Float32Array(3 * size * size);
  for (let c = 0; c < 3; c++) {
    const f1 = 0.11 + 0.07 * ((seed * 3 + c) % 5);
    const f2 = 0.05 + 0.03 * ((seed * 7 + 2 * c) % 4);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const v = 0.5 + 0.25 * Math.sin(f1 * x + 0.7 * seed + c) + 0.2 * Math.cos(f2 * y * (1 + c * 0.3) + seed) + 0.05 * Math.sin(0.9 * (x + y));
        out[(c * size + y) * size + x] = Math.min(1, Math.max(0, v));
      }
    }
  }
  return out;
}

/** Horizontal 5-tap box blur (the "motion blur" of the tiny deblurring set). */
function blur(img: Float32Array, size: number): Float32Array {
  const out = new Float32Array(img.length);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        let s = 0;
        for (let d = -2; d <= 2; d++) s += img[(c * size + y) * size + Math.min(size - 1, Math.max(0, x + d))]!;
        out[(c * size + y) * size + x] = s / 5;
      }
    }
  }
  return out;
}

/** Box downsampling by `r`. */
function down(img: Float32Array, size: number, r: number): Float32Array {
  const s = size / r;
  const out = new Float32Array(3 * s * s);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < s; y++) {
      for (let x = 0; x < s; x++) {
        let t = 0;
        for (let a = 0; a < r; a++) for (let b = 0; b < r; b++) t += img[(c * size + r * y + a) * size + r * x + b]!;
        out[(c * s + y) * s + x] = t / (r * r);
      }
    }
  }
  return out;
}

/**
 * Writes `n` pairs of `size`² GT images under `dir`: `gt/`, `lq/` (blurred, same size),
 * `lqx2/` and `lqx4/` (×2 and ×4 box-downsampled). Returns the folder.
 */
export async function makeTinyDataset(dir: string, n = 4, size = 32): Promise<string> {
  for (const d of ['gt', 'lq', 'lqx2', 'lqx4']) mkdirSync(join(dir, d), { recursive: true });
  for (let i = 0; i < n; i++) {
    const gt = synthImage(i + 1, size);
    const name = `im${String(i).padStart(2, '0')}.png`;
    await saveImage(join(dir, 'gt', name), { rgb: f32([1, 3, size, size], gt) }, { overwrite: true });
    await saveImage(join(dir, 'lq', name), { rgb: f32([1, 3, size, size], blur(gt, size)) }, { overwrite: true });
    await saveImage(join(dir, 'lqx2', name), { rgb: f32([1, 3, size / 2, size / 2], down(gt, size, 2)) }, { overwrite: true });
    await saveImage(join(dir, 'lqx4', name), { rgb: f32([1, 3, size / 4, size / 4], down(gt, size, 4)) }, { overwrite: true });
  }
  return dir;
}

/** The tiny architecture of the parity fixtures (deblur flavour), as option-file lines. */
export function tinyNetwork(type: 'DiffIRS1' | 'DiffIRS2', extra: string[] = []): string[] {
  return [
    `  type: ${type}`,
    '  n_encoder_res: 1',
    '  dim: 8',
    '  num_blocks: [1, 1, 1, 1]',
    '  num_refinement_blocks: 1',
    '  heads: [1, 2, 4, 8]',
    '  ffn_expansion_factor: 2',
    '  bias: False',
    '  LayerNorm_type: WithBias',
    ...extra,
  ];
}

/** A tiny deblurring option file (stage 1 or 2); `train` lines are added to the `train:` section. */
export function tinyDeblurOptions(o: {
  name: string;
  stage: 1 | 2;
  data: string;
  totalIter: number;
  pretrain?: string;
  train?: string[];
  dataset?: string[];
  val?: boolean;
  top?: string[];
  valFreq?: number;
  checkpointFreq?: number;
  encoderIter?: number;
  optim?: string;
}): string {
  const s2 = o.stage === 2;
  return [
    `name: ${o.name}`,
    `model_type: DiffIRS${o.stage}Model`,
    'scale: 1',
    'num_gpu: auto',
    'manual_seed: 7',
    ...(o.top ?? []),
    'datasets:',
    '  train:',
    '    name: tiny',
    '    type: DeblurPairedDataset',
    `    dataroot_gt: ${o.data}/gt`,
    `    dataroot_lq: ${o.data}/lq`,
    '    geometric_augs: true',
    '    io_backend: {type: disk}',
    '    use_shuffle: true',
    ...(o.dataset ?? ['    batch_size_per_gpu: 2', '    gt_size: 24', '    mini_batch_sizes: [2, 1]', '    iters: [6, 100]', '    gt_sizes: [16, 24]']),
    ...(o.val === false
      ? []
      : ['  val:', '    name: tinyval', '    type: DeblurPairedDataset', `    dataroot_gt: ${o.data}/gt`, `    dataroot_lq: ${o.data}/lq`, '    io_backend: {type: disk}']),
    'network_g:',
    ...tinyNetwork(s2 ? 'DiffIRS2' : 'DiffIRS1', s2 ? ['  n_denoise_res: 1', '  linear_start: 0.1', '  linear_end: 0.99', '  timesteps: 4'] : []),
    ...(s2 ? ['network_S1:', ...tinyNetwork('DiffIRS1')] : []),
    'path:',
    ...(s2 ? [`  pretrain_network_g: ${o.pretrain}`, `  pretrain_network_S1: ${o.pretrain}`, '  strict_load_g: false'] : ['  pretrain_network_g: ~', '  strict_load_g: true']),
    '  param_key_g: params_ema',
    '  resume_state: ~',
    `  experiments_root: experiments/${o.name}`,
    'train:',
    '  ema_decay: 0.9',
    o.optim ?? '  optim_g: {type: Adam, lr: !!float 2e-3, weight_decay: 0, betas: [0.9, 0.999]}',
    '  scheduler: {type: MultiStepLR, milestones: [12], gamma: 0.5}',
    `  total_iter: ${o.totalIter}`,
    '  warmup_iter: -1',
    '  pixel_opt: {type: L1Loss, loss_weight: 1.0, reduction: mean}',
    ...(s2
      ? [
          '  kd_opt: {type: KDLoss, loss_weight: 1, temperature: 0.15}',
          `  encoder_iter: ${o.encoderIter ?? 10}`,
          '  lr_encoder: !!float 2e-3',
          '  lr_sr: !!float 2e-3',
          '  gamma_encoder: 0.5',
          '  gamma_sr: 0.5',
          '  lr_decay_encoder: 6',
          '  lr_decay_sr: 8',
        ]
      : []),
    ...(o.train ?? []),
    ...(o.val === false
      ? []
      : ['val:', `  val_freq: ${o.valFreq ?? 12}`, '  save_img: false', '  metrics:', '    psnr: {type: calculate_psnr, crop_border: 0, test_y_channel: false}', '    ssim: {type: calculate_ssim, crop_border: 2, test_y_channel: true}']),
    'logger:',
    '  print_freq: 4',
    `  save_checkpoint_freq: ${o.checkpointFreq ?? 6}`,
    '  use_tb_logger: false',
    '',
  ].join('\n');
}

/** Writes an option file and returns its path. */
export function writeOptions(dir: string, name: string, text: string): string {
  const p = join(dir, `${name}.yml`);
  writeFileSync(p, text);
  return p;
}
