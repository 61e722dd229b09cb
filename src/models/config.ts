/**
 * DiffIR configurations: the official `network_g` arguments under camelCase names, the
 * released presets, and what follows from a configuration (channel counts, padding multiple).
 */
import type { LayerNormType } from '../nn/layernorm.js';

/** The restoration task, which fixes the network's input and output heads. */
export type Task = 'sr' | 'deblur' | 'inpaint';

/** Training stage of a checkpoint: 1 = DiffIRS1 (G + E), 2 = DiffIRS2 (G + condition + denoise). */
export type Stage = 1 | 2;

/** The architecture of a DiffIR model (official `network_g` arguments plus task and scale). */
export interface DiffIRConfig {
  readonly task: Task;
  /** Super-resolution factor (1 for deblur and inpaint). */
  readonly scale: 1 | 2 | 4;
  /** `dim`: channels of DIRformer's first level. */
  readonly dim: number;
  /** `num_blocks`: TransformerBlocks per level (level 1, 2, 3, latent). */
  readonly numBlocks: readonly [number, number, number, number];
  /** `num_refinement_blocks` (ignored for inpainting, which has no refinement stage). */
  readonly numRefinementBlocks: number;
  /** `heads`: attention heads per level. */
  readonly heads: readonly [number, number, number, number];
  /** `ffn_expansion_factor` of DGFN. */
  readonly ffnExpansionFactor: number;
  /** `LayerNorm_type`. */
  readonly layerNormType: LayerNormType;
  /** `n_encoder_res`: ResBlocks in CPEN. */
  readonly nEncoderRes: number;
  /** `n_denoise_res`: hidden Linear layers of the denoiser after the first. */
  readonly nDenoiseRes: number;
  /** `timesteps` of the IPR diffusion. */
  readonly timesteps: number;
  /** `linear_start`: first β of the schedule. */
  readonly linearStart: number;
  /** `linear_end`: last β of the schedule. */
  readonly linearEnd: number;
}

const DIFFUSION = { nDenoiseRes: 1, timesteps: 4, linearStart: 0.1, linearEnd: 0.99 } as const;
const HEADS = [1, 2, 4, 8] as const;

const REALSR = {
  task: 'sr',
  dim: 64,
  numBlocks: [13, 1, 1, 1],
  numRefinementBlocks: 13,
  heads: HEADS,
  ffnExpansionFactor: 2.2,
  layerNormType: 'BiasFree',
  nEncoderRes: 9,
  ...DIFFUSION,
} as const;

const INPAINT = {
  task: 'inpaint',
  scale: 1,
  dim: 52,
  numBlocks: [1, 1, 1, 9],
  numRefinementBlocks: 0,
  heads: HEADS,
  ffnExpansionFactor: 1.8,
  layerNormType: 'WithBias',
  nEncoderRes: 5,
  ...DIFFUSION,
} as const;

/** The released models' configurations (spec §4), by preset name. */
export const PRESETS = {
  'realsr-x4': { ...REALSR, scale: 4 },
  'realsr-x2': { ...REALSR, scale: 2 },
  'realsr-x1': { ...REALSR, scale: 1 },
  'srgan-x4': { ...REALSR, scale: 4 },
  'srgan-x2': { ...REALSR, scale: 2 },
  'deblur-gopro': {
    task: 'deblur',
    scale: 1,
    dim: 48,
    numBlocks: [3, 5, 6, 6],
    numRefinementBlocks: 4,
    heads: HEADS,
    ffnExpansionFactor: 2.0,
    layerNormType: 'WithBias',
    nEncoderRes: 5,
    ...DIFFUSION,
  },
  'inpaint-places2': INPAINT,
  'inpaint-celeba': INPAINT,
  'inpaint-places2-big': { ...INPAINT, numBlocks: [1, 1, 1, 20], nEncoderRes: 8 },
} as const satisfies Record<string, DiffIRConfig>;

/** Name of a released configuration. */
export type PresetName = keyof typeof PRESETS;

/** All preset names. */
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

/** The configuration of a released model; throws listing the known names otherwise. */
export function preset(name: string): DiffIRConfig {
  if (!(name in PRESETS)) throw new Error(`unknown DiffIR preset '${name}' (known: ${PRESET_NAMES.join(', ')})`);
  return PRESETS[name as PresetName];
}

/** True when two configurations describe the same architecture (same task, scale and sizes). */
export function sameConfig(a: DiffIRConfig, b: DiffIRConfig): boolean {
  const arr = (x: readonly number[], y: readonly number[]) => x.length === y.length && x.every((v, i) => v === y[i]);
  const close = (x: number, y: number) => Math.abs(x - y) <= 1e-6 * Math.max(1, Math.abs(x), Math.abs(y));
  return (
    a.task === b.task &&
    a.scale === b.scale &&
    a.dim === b.dim &&
    arr(a.numBlocks, b.numBlocks) &&
    (a.task === 'inpaint' || a.numRefinementBlocks === b.numRefinementBlocks) &&
    arr(a.heads, b.heads) &&
    Math.floor(a.dim * a.ffnExpansionFactor) === Math.floor(b.dim * b.ffnExpansionFactor) &&
    close(a.ffnExpansionFactor, b.ffnExpansionFactor) &&
    a.layerNormType === b.layerNormType &&
    a.nEncoderRes === b.nEncoderRes &&
    a.nDenoiseRes === b.nDenoiseRes &&
    a.timesteps === b.timesteps &&
    close(a.linearStart, b.linearStart) &&
    close(a.linearEnd, b.linearEnd)
  );
}

/** Preset names whose architecture equals `cfg` (RealSR and SRGAN presets share theirs). */
export function matchingPresets(cfg: DiffIRConfig): PresetName[] {
  return PRESET_NAMES.filter((n) => sameConfig(PRESETS[n], cfg));
}

/** Channels of the network input: 4 for inpainting (masked image and mask), else 3. */
export function inputChannels(cfg: DiffIRConfig): number {
  return cfg.task === 'inpaint' ? 4 : 3;
}

/** Output height/width divided by input height/width (the SR scale, else 1). */
export function outputScale(cfg: DiffIRConfig): number {
  return cfg.task === 'sr' ? cfg.scale : 1;
}

/**
 * Pixel-unshuffle factor applied to the input before DIRformer's patch_embed: SR x2 → 2,
 * SR x1 → 4 (the U-Net always runs at GT/4 for SR), else 1.
 */
export function unetUnshuffle(cfg: DiffIRConfig): number {
  return cfg.task === 'sr' ? 4 / cfg.scale : 1;
}

/** Input channels of DIRformer's patch_embed. */
export function unetInputChannels(cfg: DiffIRConfig): number {
  const u = unetUnshuffle(cfg);
  return inputChannels(cfg) * u * u;
}

/**
 * Pixel-unshuffle factor applied to the network input to form CPEN's LQ part:
 * SR x4 → 1, x2 → 2, x1 → 4, deblur and inpaint → 4.
 */
export function cpenUnshuffle(cfg: DiffIRConfig): number {
  return cfg.task === 'sr' ? 4 / cfg.scale : 4;
}

/** Input channels of CPEN: stage 1 sees LQ part + PixelUnshuffle4(GT), stage 2 the LQ part only. */
export function cpenInputChannels(cfg: DiffIRConfig, stage: Stage): number {
  const u = cpenUnshuffle(cfg);
  const lq = inputChannels(cfg) * u * u;
  return stage === 1 ? lq + 3 * 16 : lq;
}

/** The multiple the input height and width must have (spec §6: 8, 16 for SR x2, 32 for SR x1). */
export function padMultiple(cfg: DiffIRConfig): number {
  return 8 * unetUnshuffle(cfg);
}

/** Whether DIRformer has a refinement stage (all tasks but inpainting). */
export function refinementBlocks(cfg: DiffIRConfig): number {
  return cfg.task === 'inpaint' ? 0 : cfg.numRefinementBlocks;
}

/** Checks a configuration for values the architecture cannot build; throws one line listing them. */
export function validateConfig(cfg: DiffIRConfig): void {
  const errs: string[] = [];
  if (!['sr', 'deblur', 'inpaint'].includes(cfg.task)) errs.push(`task '${String(cfg.task)}'`);
  if (![1, 2, 4].includes(cfg.scale)) errs.push(`scale ${cfg.scale}`);
  if (cfg.task !== 'sr' && cfg.scale !== 1) errs.push(`scale ${cfg.scale} for ${cfg.task} (must be 1)`);
  if (!Number.isInteger(cfg.dim) || cfg.dim < 1) errs.push(`dim ${cfg.dim}`);
  if (cfg.numBlocks.length !== 4 || cfg.numBlocks.some((n) => !Number.isInteger(n) || n < 0)) errs.push(`numBlocks [${cfg.numBlocks}]`);
  if (cfg.heads.length !== 4 || cfg.heads.some((h, i) => !Number.isInteger(h) || h < 1 || (cfg.dim * 2 ** i) % h !== 0)) {
    errs.push(`heads [${cfg.heads}] for dim ${cfg.dim}`);
  }
  if (!(cfg.ffnExpansionFactor > 0)) errs.push(`ffnExpansionFactor ${cfg.ffnExpansionFactor}`);
  if (cfg.layerNormType !== 'WithBias' && cfg.layerNormType !== 'BiasFree') errs.push(`layerNormType '${String(cfg.layerNormType)}'`);
  if (!Number.isInteger(cfg.numRefinementBlocks) || cfg.numRefinementBlocks < 0) errs.push(`numRefinementBlocks ${cfg.numRefinementBlocks}`);
  if (!Number.isInteger(cfg.nEncoderRes) || cfg.nEncoderRes < 0) errs.push(`nEncoderRes ${cfg.nEncoderRes}`);
  if (!Number.isInteger(cfg.nDenoiseRes) || cfg.nDenoiseRes < 0) errs.push(`nDenoiseRes ${cfg.nDenoiseRes}`);
  if (!Number.isInteger(cfg.timesteps) || cfg.timesteps < 1) errs.push(`timesteps ${cfg.timesteps}`);
  if (!(cfg.linearStart > 0 && cfg.linearEnd < 1 && cfg.linearStart <= cfg.linearEnd)) errs.push(`linearStart/End ${cfg.linearStart}/${cfg.linearEnd}`);
  if (errs.length) throw new Error(`invalid DiffIR config: ${errs.join(', ')}`);
}

/** A one-line summary of a configuration, e.g. for logs and error messages. */
export function describeConfig(c: DiffIRConfig): string {
  return (
    `${c.task}${c.task === 'sr' ? ` x${c.scale}` : ''} dim ${c.dim} blocks [${c.numBlocks}] refine ${c.task === 'inpaint' ? 0 : c.numRefinementBlocks} ` +
    `heads [${c.heads}] ffn ${c.ffnExpansionFactor} ${c.layerNormType} enc_res ${c.nEncoderRes} denoise_res ${c.nDenoiseRes} ` +
    `T ${c.timesteps} β ${c.linearStart}…${c.linearEnd}`
  );
}
