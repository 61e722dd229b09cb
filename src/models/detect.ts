/**
 * Architecture detection: infers a DiffIR configuration and the training stage from a state
 * dict alone (official keys, e.g. as `loadStateDict` returns them), then checks the state dict
 * strictly against that architecture.
 *
 * - stage: `E.*` (CPEN_S1) → 1; `condition.*` + `denoise.*` → 2
 * - task / scale: `G.tail.*` → SR with scale from patch_embed's input channels (3 → x4,
 *   12 → x2, 48 → x1); `G.output` with 3 input channels → deblur, 4 → inpaint
 * - dim, blocks per level and refinement blocks from key indices; heads from the attention
 *   temperatures' shapes; ffn_expansion_factor from the DGFN hidden widths (the shortest
 *   decimal consistent with all levels); LayerNorm type from the presence of norm biases;
 *   n_encoder_res from CPEN's ResBlocks; n_denoise_res from the denoiser's layers;
 *   timesteps / linear_start / linear_end from `diffusion.betas` when present (else 4, 0.1, 0.99).
 */
import type { HostTensor } from '../tensor.js';
import { diffStateDict, formatStateDictDiff } from '../weights/statedict.js';
import {
  type DiffIRConfig,
  type PresetName,
  type Stage,
  type Task,
  cpenInputChannels,
  describeConfig,
  matchingPresets,
  validateConfig,
} from './config.js';
import { ddpmSchedule } from './ddpm.js';
import { expectedParamShapes, ignoredCheckpointKeys } from './params.js';

/** The result of {@link detectArchitecture}. */
export interface DetectedArchitecture {
  readonly config: DiffIRConfig;
  readonly stage: Stage;
  /** Released presets with this architecture (empty for custom configurations). */
  readonly presets: readonly PresetName[];
}

type StateDict = ReadonlyMap<string, HostTensor>;

const DEFAULT_HEADS = [1, 2, 4, 8] as const;
const DEFAULT_DIFFUSION = { timesteps: 4, linearStart: 0.1, linearEnd: 0.99 } as const;

/** Number of consecutive children `<prefix>.0.`, `<prefix>.1.`, … present. */
function countChildren(sd: StateDict, prefix: string): number {
  const idx = new Set<number>();
  const re = new RegExp(`^${prefix.replace(/\./g, '\\.')}\\.(\\d+)\\.`);
  for (const k of sd.keys()) {
    const m = re.exec(k);
    if (m) idx.add(Number(m[1]));
  }
  let n = 0;
  while (idx.has(n)) n++;
  return n;
}

/** Number of consecutive i ≥ `from` for which `<prefix>.<i>.<suffix>` exists. */
function countRun(sd: StateDict, prefix: string, from: number, suffix: string): number {
  let n = 0;
  while (sd.has(`${prefix}.${from + n}.${suffix}`)) n++;
  return n;
}

/**
 * The shortest decimal f with floor(d·f) = h for every (d, h) pair (Python's
 * `int(dim * ffn_expansion_factor)`), or null when none exists.
 */
export function inferFfnFactor(pairs: readonly (readonly [dim: number, hidden: number])[]): number | null {
  if (pairs.length === 0) return null;
  let lo = 0;
  let hi = Infinity;
  for (const [d, h] of pairs) {
    lo = Math.max(lo, h / d);
    hi = Math.min(hi, (h + 1) / d);
  }
  const fits = (f: number) => pairs.every(([d, h]) => Math.floor(d * f) === h);
  for (let k = 0; k <= 8; k++) {
    const m = 10 ** k;
    for (let c = Math.ceil(lo * m - 1e-6); c / m < hi; c++) if (fits(c / m)) return c / m;
  }
  return null;
}

function roundSig(v: number): number {
  return Number(v.toPrecision(6));
}

/**
 * Infers the configuration and stage of a DiffIR state dict. Throws one line naming `file` and
 * listing what could not be recognised, or the keys that do not fit the inferred architecture.
 */
export function detectArchitecture(sd: StateDict, file = 'checkpoint'): DetectedArchitecture {
  const problems: string[] = [];
  const shape = (k: string): readonly number[] | undefined => sd.get(k)?.shape;
  const fail = (): never => {
    throw new Error(`${file}: cannot recognise the DiffIR architecture: ${problems.join('; ')}`);
  };

  // Stage.
  const hasE = sd.has('E.E.0.weight');
  const hasCond = sd.has('condition.E.0.weight');
  const hasDenoise = sd.has('denoise.resmlp.0.weight');
  let stage: Stage | null = null;
  if (hasE && !hasCond && !hasDenoise) stage = 1;
  else if (!hasE && hasCond && hasDenoise) stage = 2;
  else problems.push(`stage: expected 'E.E.0.weight' (stage 1) or 'condition.E.0.weight' and 'denoise.resmlp.0.weight' (stage 2), found ${[hasE && 'E', hasCond && 'condition', hasDenoise && 'denoise'].filter(Boolean).join(', ') || 'none'}`);

  // DIRformer.
  const patch = shape('G.patch_embed.proj.weight');
  if (!patch || patch.length !== 4) {
    problems.push("no 'G.patch_embed.proj.weight' of rank 4 (not a DiffIR generator)");
    fail();
  }
  const dim = patch![0]!;
  const inC = patch![1]!;
  const levels = ['G.encoder_level1', 'G.encoder_level2', 'G.encoder_level3', 'G.latent'] as const;
  const numBlocks = levels.map((p) => countChildren(sd, p)) as unknown as [number, number, number, number];
  const decoders = [['G.decoder_level1', 0], ['G.decoder_level2', 1], ['G.decoder_level3', 2]] as const;
  for (const [p, l] of decoders) {
    const n = countChildren(sd, p);
    if (n !== numBlocks[l]) problems.push(`${p} has ${n} blocks but ${levels[l]} has ${numBlocks[l]}`);
  }
  const numRefinementBlocks = countChildren(sd, 'G.refinement');

  const heads = DEFAULT_HEADS.map((dflt, l) => {
    const t = shape(`${levels[l]}.0.attn.temperature`) ?? (l === 0 ? shape('G.decoder_level1.0.attn.temperature') : undefined);
    return t ? t[0]! : dflt;
  }) as unknown as [number, number, number, number];

  const hiddenPairs: [number, number][] = [];
  levels.forEach((p, l) => {
    const w = shape(`${p}.0.ffn.project_out.weight`);
    if (w) hiddenPairs.push([dim * 2 ** l, w[1]!]);
  });
  const dec1 = shape('G.decoder_level1.0.ffn.project_out.weight');
  if (dec1) hiddenPairs.push([2 * dim, dec1[1]!]);
  const ffn = inferFfnFactor(hiddenPairs);
  if (ffn === null) problems.push(`no ffn_expansion_factor fits the DGFN hidden widths ${hiddenPairs.map(([d, h]) => `${h} at dim ${d}`).join(', ') || '(none found)'}`);

  const normKey = [...sd.keys()].find((k) => k.startsWith('G.') && k.endsWith('.norm1.body.weight'));
  if (!normKey) problems.push('no LayerNorm weights (G.*.norm1.body.weight) found');
  const layerNormType = normKey && sd.has(normKey.replace(/weight$/, 'bias')) ? 'WithBias' : 'BiasFree';

  let task: Task | null = null;
  let scale: 1 | 2 | 4 = 1;
  if (sd.has('G.tail.1.weight')) {
    task = 'sr';
    const byChannels: Record<number, 1 | 2 | 4> = { 3: 4, 12: 2, 48: 1 };
    const s = byChannels[inC];
    if (s === undefined) problems.push(`SR model with ${inC} patch_embed input channels (expected 3, 12 or 48)`);
    else scale = s;
  } else if (sd.has('G.output.weight')) {
    if (inC === 3) task = 'deblur';
    else if (inC === 4) task = 'inpaint';
    else problems.push(`model with 'G.output' and ${inC} input channels (expected 3 for deblurring or 4 for inpainting)`);
  } else problems.push("no output head ('G.tail.*' for SR or 'G.output.weight' for deblurring / inpainting)");

  // CPEN and denoiser.
  const cpenPrefix = stage === 1 ? 'E.E' : 'condition.E';
  const nEncoderRes = countRun(sd, cpenPrefix, 2, 'body.0.weight');
  const nDenoiseRes = countRun(sd, 'denoise.resmlp', 2, 'resmlp.0.weight');

  let diffusion: { timesteps: number; linearStart: number; linearEnd: number } = DEFAULT_DIFFUSION;
  const betas = sd.get('diffusion.betas');
  if (betas) {
    const b = Array.from(betas.data as Float32Array, Number);
    if (betas.shape.length !== 1 || b.length === 0) problems.push(`'diffusion.betas' has shape [${betas.shape}]`);
    else {
      diffusion = { timesteps: b.length, linearStart: roundSig(b[0]!), linearEnd: roundSig(b[b.length - 1]!) };
      const s = ddpmSchedule(diffusion.timesteps, diffusion.linearStart, diffusion.linearEnd);
      if (b.some((v, i) => Math.abs(v - s.betas[i]!) > 1e-6 * Math.max(1, Math.abs(v)))) {
        problems.push(`'diffusion.betas' [${b.map((v) => roundSig(v)).join(', ')}] is not a "linear" schedule`);
      }
    }
  }
  if (problems.length || stage === null || task === null || ffn === null) fail();

  const config: DiffIRConfig = {
    task: task!,
    scale,
    dim,
    numBlocks,
    numRefinementBlocks,
    heads,
    ffnExpansionFactor: ffn!,
    layerNormType,
    nEncoderRes,
    nDenoiseRes: stage === 2 ? nDenoiseRes : 1,
    ...diffusion,
  };
  try {
    validateConfig(config);
  } catch (e) {
    problems.push(e instanceof Error ? e.message : String(e));
    fail();
  }
  const cpenIn = shape(`${cpenPrefix}.0.weight`)?.[1];
  if (cpenIn !== cpenInputChannels(config, stage!)) {
    problems.push(`CPEN takes ${cpenIn} input channels but ${task} x${scale} stage ${stage} needs ${cpenInputChannels(config, stage!)}`);
    fail();
  }
  const ignored = new Set(ignoredCheckpointKeys(config, stage!));
  const diff = diffStateDict(expectedParamShapes(config, stage!), sd, (k) => ignored.has(k));
  if (diff.missing.length || diff.unexpected.length || diff.mismatched.length) {
    throw new Error(`${formatStateDictDiff(diff, file)} (inferred ${describeConfig(config)}, stage ${stage})`);
  }
  return { config, stage: stage!, presets: matchingPresets(config) };
}
