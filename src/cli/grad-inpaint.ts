/**
 * `diffir grad -opt <inpainting config> --weights G.pth [--teacher S1.pth] --discriminator D.pth
 * --in IO.safetensors --out OUT.safetensors`: one official iteration of the config's stage
 * (`training_model.kind` defaultS1 / defaultS2), writing the losses, predictions, gradients
 * (before clipping) and the discriminator's state after the step under the names of the
 * `inpaint_train` fixture.
 */
import { existsSync } from 'node:fs';
import type { Command } from './command.js';
import { intOption, normalizeOpt, parseCommand, required } from './args.js';
import { UserError } from './errors.js';
import { LamaConfigError } from '../train/lama-config.js';
import { readSafetensors, writeSafetensors } from '../weights/safetensors.js';

export const gradInpaint: Command = {
  summary: 'one inpainting training iteration (LaMa-style config) and its gradients',
  async run(argv) {
    const p = parseCommand(
      'grad',
      '-opt config.yaml --weights G.pth [--teacher S1.pth] --discriminator D.pth --in IO.safetensors --out OUT.safetensors',
      {
        opt: { type: 'string', arg: 'file', help: 'DiffIR-inpainting training config (composed, or with defaults:)' },
        weights: { type: 'string', arg: 'file', help: 'generator checkpoint (stage 2 default: training_model.generatorS2_path)' },
        teacher: { type: 'string', arg: 'file', help: 'stage 2: stage-1 checkpoint of the teacher CPEN (default: training_model.generatorS1_path)' },
        discriminator: { type: 'string', arg: 'file', help: 'NLayerDiscriminator state dict' },
        in: { type: 'string', arg: 'file', help: "tensors 'image', 'mask' (1 = hole), stage 2 also 's2_g_eps', 's2_d_eps'" },
        out: { type: 'string', arg: 'file', help: 'where to write the results' },
        threads: { type: 'string', arg: 'n', help: 'ONNX Runtime threads (default: all cores)' },
        overwrite: { type: 'boolean', help: 'replace an existing output file' },
      },
      normalizeOpt(argv),
    );
    if (!p) return;
    const config = required('grad', p.values, 'opt');
    const inPath = required('grad', p.values, 'in');
    const outPath = required('grad', p.values, 'out');
    const discriminator = required('grad', p.values, 'discriminator');
    if (existsSync(outPath) && !p.values.overwrite) throw new UserError(`${outPath} exists; pass --overwrite to replace it`);
    const threads = intOption('grad', p.values, 'threads');
    const { inpaintIterationTensors } = await import('../train/inpaint-grad.js');
    let out;
    try {
      out = await inpaintIterationTensors({
        config,
        ...(typeof p.values.weights === 'string' ? { weights: p.values.weights } : {}),
        ...(typeof p.values.teacher === 'string' ? { teacher: p.values.teacher } : {}),
        discriminator,
        data: readSafetensors(inPath),
        dataName: inPath,
        ...(threads ? { session: { threads } } : {}),
      });
    } catch (e) {
      if (e instanceof LamaConfigError) throw new UserError(e.message);
      throw e;
    }
    writeSafetensors(outPath, out);
    const num = (k: string) => (out.get(k)?.data as Float32Array | undefined)?.[0];
    const s = out.has('s2_g_loss_total') ? 's2' : 's1';
    console.log(`wrote ${outPath}: ${out.size} tensors, G loss ${num(`${s}_g_loss_total`)?.toPrecision(8)}, D loss ${num(`${s}_d_loss_total`)?.toPrecision(8)}`);
  },
};
