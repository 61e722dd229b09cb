/**
 * DIRformer — DiffIR's Restormer-style U-Net conditioned on the IPR z at every block
 * (keys under `G.`). Four levels (dim, 2dim, 4dim, 8dim channels) with Downsample
 * (Conv3x3 n→n/2 + PixelUnshuffle2) / Upsample (Conv3x3 n→2n + PixelShuffle2), skip
 * concatenations, 1×1 channel reductions at levels 3 and 2, decoder level 1 at 2dim, then
 * the refinement stage and a per-task head:
 * - SR: the U-Net runs at GT/4 (x2 input PixelUnshuffle2, x1 PixelUnshuffle4); tail ×4
 *   (`tail.0.0`, `tail.0.2`: Conv3x3(2dim→8dim, bias)+PixelShuffle2; `tail.1`:
 *   Conv3x3(2dim→3, bias)) plus nearest-upsampled input.
 * - deblur: `output` Conv3x3(2dim→3, no bias) plus the input.
 * - inpaint: 4-channel input, no refinement stage, `output` Conv3x3 with no residual.
 *
 * The topology is written once, as a program of steps over named feature maps. The graph
 * builder below interprets it for whole images; the tiled executor in `src/restore`
 * interprets the same program tile by tile for images too large to run at once.
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { conv2d, conv2dAfterShuffle } from '../nn/conv.js';
import { type TransformerBlockOptions, transformerBlock } from '../nn/transformer.js';
import { type DiffIRConfig, inputChannels, refinementBlocks, unetUnshuffle } from './config.js';

/** One step of the DIRformer program; maps are named, `input` is the network input. */
export type DIRformerStep =
  | { readonly kind: 'unshuffle' | 'shuffle'; readonly input: string; readonly output: string; readonly r: number }
  | {
      readonly kind: 'conv';
      readonly prefix: string;
      readonly input: string;
      readonly output: string;
      readonly cin: number;
      readonly cout: number;
      readonly k: number;
      readonly bias: boolean;
    }
  | { readonly kind: 'concat'; readonly inputs: readonly string[]; readonly output: string }
  | { readonly kind: 'add'; readonly inputs: readonly [string, string]; readonly output: string }
  | { readonly kind: 'nearest'; readonly input: string; readonly output: string; readonly scale: number }
  | { readonly kind: 'block'; readonly prefix: string; readonly input: string; readonly output: string; readonly opts: TransformerBlockOptions };

/** The program's input map and output map names. */
export const PROGRAM_INPUT = 'input';
export const PROGRAM_OUTPUT = 'out';

/** DIRformer's topology for `cfg` as a list of steps (key prefix `prefix`, default `G`). */
export function dirformerProgram(cfg: DiffIRConfig, prefix = 'G'): DIRformerStep[] {
  const p = prefix;
  const d = cfg.dim;
  const steps: DIRformerStep[] = [];
  const block = (level: number, dim = d * 2 ** level): TransformerBlockOptions => ({
    dim,
    heads: cfg.heads[level]!,
    ffnExpansionFactor: cfg.ffnExpansionFactor,
    layerNormType: cfg.layerNormType,
  });
  const conv = (name: string, input: string, output: string, cin: number, cout: number, k: number, bias: boolean) =>
    steps.push({ kind: 'conv', prefix: `${p}.${name}`, input, output, cin, cout, k, bias });
  /** n blocks `<name>.0…n−1`; returns the map holding the result (the input when n = 0). */
  const stage = (name: string, input: string, n: number, o: TransformerBlockOptions): string => {
    let cur = input;
    for (let i = 0; i < n; i++) {
      steps.push({ kind: 'block', prefix: `${p}.${name}.${i}`, input: cur, output: `${name}.${i}`, opts: o });
      cur = `${name}.${i}`;
    }
    return cur;
  };
  const down = (name: string, input: string, output: string, c: number) => {
    conv(`${name}.body.0`, input, `${output}.pre`, c, c / 2, 3, false);
    steps.push({ kind: 'unshuffle', input: `${output}.pre`, output, r: 2 });
  };
  const up = (name: string, input: string, output: string, c: number) => {
    conv(`${name}.body.0`, input, `${output}.pre`, c, 2 * c, 3, false);
    steps.push({ kind: 'shuffle', input: `${output}.pre`, output, r: 2 });
  };

  const [n1, n2, n3, n4] = cfg.numBlocks;
  const u = unetUnshuffle(cfg);
  let x = PROGRAM_INPUT;
  if (u !== 1) {
    steps.push({ kind: 'unshuffle', input: PROGRAM_INPUT, output: 'x', r: u });
    x = 'x';
  }
  conv('patch_embed.proj', x, 'emb', inputChannels(cfg) * u * u, d, 3, false);
  const enc1 = stage('encoder_level1', 'emb', n1, block(0));
  down('down1_2', enc1, 'in2', d);
  const enc2 = stage('encoder_level2', 'in2', n2, block(1));
  down('down2_3', enc2, 'in3', 2 * d);
  const enc3 = stage('encoder_level3', 'in3', n3, block(2));
  down('down3_4', enc3, 'in4', 4 * d);
  const lat = stage('latent', 'in4', n4, block(3));
  up('up4_3', lat, 'up3', 8 * d);
  steps.push({ kind: 'concat', inputs: ['up3', enc3], output: 'cat3' });
  conv('reduce_chan_level3', 'cat3', 'red3', 8 * d, 4 * d, 1, false);
  const dec3 = stage('decoder_level3', 'red3', n3, block(2));
  up('up3_2', dec3, 'up2', 4 * d);
  steps.push({ kind: 'concat', inputs: ['up2', enc2], output: 'cat2' });
  conv('reduce_chan_level2', 'cat2', 'red2', 4 * d, 2 * d, 1, false);
  const dec2 = stage('decoder_level2', 'red2', n2, block(1));
  up('up2_1', dec2, 'up1', 2 * d);
  steps.push({ kind: 'concat', inputs: ['up1', enc1], output: 'cat1' });
  const dec1 = stage('decoder_level1', 'cat1', n1, block(0, 2 * d));
  const feat = stage('refinement', dec1, refinementBlocks(cfg), block(0, 2 * d));

  if (cfg.task === 'sr') {
    conv('tail.0.0', feat, 't1.pre', 2 * d, 8 * d, 3, true);
    steps.push({ kind: 'shuffle', input: 't1.pre', output: 't1', r: 2 });
    conv('tail.0.2', 't1', 't2.pre', 2 * d, 8 * d, 3, true);
    steps.push({ kind: 'shuffle', input: 't2.pre', output: 't2', r: 2 });
    conv('tail.1', 't2', 'tail', 2 * d, 3, 3, true);
    let base = PROGRAM_INPUT;
    if (cfg.scale !== 1) {
      steps.push({ kind: 'nearest', input: PROGRAM_INPUT, output: 'base', scale: cfg.scale });
      base = 'base';
    }
    steps.push({ kind: 'add', inputs: ['tail', base], output: PROGRAM_OUTPUT });
  } else if (cfg.task === 'deblur') {
    conv('output', feat, 'head', 2 * d, 3, 3, false);
    steps.push({ kind: 'add', inputs: ['head', PROGRAM_INPUT], output: PROGRAM_OUTPUT });
  } else {
    conv('output', feat, PROGRAM_OUTPUT, 2 * d, 3, 3, false);
  }
  return steps;
}

/**
 * DIRformer on the network input `inp` (B, 3 or 4, H, W) with IPR `z` (B, 256). Returns the
 * restored image (B, 3, H·scale, W·scale).
 */
export function dirformer(g: Graph, cfg: DiffIRConfig, inp: Value, z: Value, o: DIRformerOptions = {}): Value {
  if (inp.dim(1) !== inputChannels(cfg)) throw new Error(`DIRformer (${cfg.task}): expected ${inputChannels(cfg)} input channels, got ${inp}`);
  const maps = new Map<string, Value>([[PROGRAM_INPUT, inp]]);
  const get = (name: string): Value => {
    const v = maps.get(name);
    if (!v) throw new Error(`DIRformer program: map '${name}' is used before it is computed`);
    return v;
  };
  const block = o.channelBlock ?? 1;
  const steps = dirformerProgram(cfg, o.prefix ?? 'G');
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i]!;
    const next = steps[i + 1];
    // A narrow last conv after a PixelShuffle (the SR tail's 3-channel output) runs before
    // the shuffle, when the channel blocks would mostly be padding (see conv2dAfterShuffle).
    if (block > 1 && s.kind === 'shuffle' && next?.kind === 'conv' && next.input === s.output && next.cout < block && !steps.slice(i + 2).some((t) => stepInputs(t).includes(s.output))) {
      maps.set(next.output, conv2dAfterShuffle(g, next.prefix, get(s.input), { inChannels: next.cin, outChannels: next.cout, kernelSize: next.k, bias: next.bias }, s.r));
      i++;
      continue;
    }
    let y: Value;
    switch (s.kind) {
      case 'unshuffle':
        y = op.pixelUnshuffle(get(s.input), s.r);
        break;
      case 'shuffle':
        y = op.pixelShuffle(get(s.input), s.r);
        break;
      case 'conv':
        y = conv2d(g, s.prefix, get(s.input), { inChannels: s.cin, outChannels: s.cout, kernelSize: s.k, bias: s.bias });
        break;
      case 'concat':
        y = op.concat(s.inputs.map(get), 1);
        break;
      case 'add':
        y = op.add(get(s.inputs[0]), get(s.inputs[1]));
        break;
      case 'nearest':
        y = op.resize(get(s.input), { mode: 'nearest', scale: s.scale });
        break;
      case 'block':
        y = transformerBlock(g, s.prefix, get(s.input), z, block > 1 ? { ...s.opts, channelBlock: block } : s.opts);
        break;
    }
    maps.set(s.output, y);
  }
  return get(PROGRAM_OUTPUT);
}

/** Options of {@link dirformer}. */
export interface DIRformerOptions {
  /** Key prefix (default `G`). */
  readonly prefix?: string;
  /**
   * Channel block of the runtime's convolutions (default 1). Above 1 (8 for ORT's native CPU
   * kernels), the graph is arranged for it with the same parameters and results up to float
   * rounding: DGFN hidden widths padded with zero channels to the block, and a last conv
   * narrower than the block moved before its PixelShuffle. For inference graphs.
   */
  readonly channelBlock?: number;
}

/** The maps a step reads. */
export function stepInputs(s: DIRformerStep): readonly string[] {
  return s.kind === 'concat' || s.kind === 'add' ? s.inputs : [s.input];
}
