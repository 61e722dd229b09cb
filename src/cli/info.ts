/**
 * `diffir info W.pth`: what a checkpoint holds — task, scale, stage and the full
 * architecture detected from the weights, with the parameter count.
 */
import type { Command } from './command.js';
import { parseCommand } from './args.js';
import { UserError } from './errors.js';
import { loadCheckpoint } from '../models/checkpoint.js';
import { refinementBlocks } from '../models/config.js';

export const info: Command = {
  summary: 'show the architecture, task and parameter count of a checkpoint',
  async run(argv) {
    const p = parseCommand('info', '<weights.pth|.safetensors> [--json]', { json: { type: 'boolean', help: 'print JSON' } }, argv);
    if (!p) return;
    if (p.positionals.length !== 1) throw new UserError("info: give one checkpoint file, e.g. 'diffir info net_g.pth'", 2);
    const ck = loadCheckpoint(p.positionals[0]!);
    const c = ck.config;
    const summary = {
      file: ck.file,
      stage: ck.stage,
      task: c.task,
      scale: c.scale,
      dim: c.dim,
      num_blocks: c.numBlocks,
      num_refinement_blocks: refinementBlocks(c),
      heads: c.heads,
      ffn_expansion_factor: c.ffnExpansionFactor,
      LayerNorm_type: c.layerNormType,
      n_encoder_res: c.nEncoderRes,
      ...(ck.stage === 2 ? { n_denoise_res: c.nDenoiseRes, timesteps: c.timesteps, linear_start: c.linearStart, linear_end: c.linearEnd } : {}),
      presets: ck.presets,
      parameters: ck.parameterCount,
    };
    if (p.values.json) {
      console.log(JSON.stringify(summary, null, 2));
      return;
    }
    const width = Math.max(...Object.keys(summary).map((k) => k.length));
    for (const [k, v] of Object.entries(summary)) {
      const text = k === 'parameters' ? (v as number).toLocaleString('en-US') : Array.isArray(v) ? (v.length ? `[${v.join(', ')}]` : '(custom)') : String(v);
      console.log(`${k.padEnd(width)}  ${text}`);
    }
  },
};
