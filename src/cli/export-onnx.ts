/**
 * `diffir export-onnx --weights W -o model.onnx [--seed n]`: writes a stage-2 checkpoint as
 * a self-contained ONNX model (standard opset-17 ops, weights embedded, any image size)
 * that runs unchanged in any ONNX Runtime: input `image` (1,3,H,W) in [0,1] (+ `mask`
 * (1,1,H,W), 1 = hole, for inpainting), output `output` (1,3,s·H,s·W). The padding,
 * cropping and inpainting composite are inside the model; the diffusion's initial noise
 * is a constant drawn from --seed, so it gives what `diffir restore --seed n` gives.
 * The file is written atomically and an existing one is kept unless --overwrite.
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Command } from './command.js';
import { parseCommand, required } from './args.js';
import { UserError } from './errors.js';
import { prepareOutputFolder, removeTempFiles, writeFileAtomic } from './files.js';
import { seedOption } from './options.js';
import { taskName, weightsOption } from './model.js';
import { loadCheckpoint } from '../models/checkpoint.js';
import { exportOnnx } from '../restore/export.js';
import { readOnnxSummary } from '../graph/onnx.js';

function fmtSize(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} kB`;
}

export const exportOnnxCommand: Command = {
  summary: 'write a checkpoint as a standalone ONNX model (opset 17) for any ONNX Runtime',
  async run(argv) {
    const p = parseCommand(
      'export-onnx',
      '--weights W.pth -o model.onnx [--seed n] [--overwrite]',
      {
        weights: { type: 'string', short: 'w', arg: 'file', help: 'stage-2 DiffIR checkpoint (.pth or .safetensors)' },
        output: { type: 'string', short: 'o', arg: 'file', help: 'the ONNX file to write' },
        seed: { type: 'string', arg: 'n', default: '0', help: "seed of the diffusion's initial noise, fixed in the model (as restore --seed)" },
        overwrite: { type: 'boolean', help: 'replace the output if it exists' },
        json: { type: 'boolean', help: 'print the model summary as JSON' },
      },
      argv,
    );
    if (!p) return;
    const v = p.values;
    const weights = weightsOption('export-onnx', v);
    const out = required('export-onnx', v, 'output');
    if (p.positionals.length) throw new UserError(`export-onnx: unexpected argument '${p.positionals[0]}'; the checkpoint goes in --weights`, 2);
    const seed = seedOption('export-onnx', v);
    const overwrite = v.overwrite === true;
    if (!overwrite && existsSync(out)) throw new UserError(`${out}: file already exists; pass --overwrite to replace it`);
    await prepareOutputFolder(dirname(out));
    const ck = loadCheckpoint(weights);
    if (ck.stage !== 2) {
      throw new UserError(`${weights}: this is a stage-1 (DiffIRS1) checkpoint, which needs the ground truth to run; export the stage-2 (DiffIRS2) checkpoint`);
    }
    const bytes = exportOnnx(ck, seed);
    // The write is short: a signal during it removes the temporary file and exits at once.
    const stop = (code: number) => () => {
      removeTempFiles([out]);
      process.exit(code);
    };
    const onInt = stop(130);
    const onTerm = stop(143);
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    try {
      await writeFileAtomic(out, bytes, overwrite);
    } finally {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    }
    const s = readOnnxSummary(bytes);
    const tensors = (list: typeof s.inputs) => list.map((t) => ({ name: t.name, type: 'float32', shape: t.dims }));
    if (v.json) {
      console.log(JSON.stringify({ file: out, bytes: bytes.byteLength, opset: s.opset, task: ck.config.task, scale: Number(s.metadata.scale ?? 1), seed, inputs: tensors(s.inputs), outputs: tensors(s.outputs), metadata: s.metadata }, null, 2));
      return;
    }
    const dims = (d: readonly (string | number)[]) => `[${d.join(', ')}]`;
    const lines = [`wrote ${out} (${fmtSize(bytes.byteLength)}): DiffIR ${taskName(ck)}, seed ${seed}, ONNX opset ${s.opset}, ${s.ops.length} nodes`];
    for (const t of s.inputs) lines.push(`  input   ${t.name.padEnd(7)} float32 ${dims(t.dims)}${t.name === 'mask' ? '  (1 = hole)' : '  (RGB in [0, 1])'}`);
    for (const t of s.outputs) lines.push(`  output  ${t.name.padEnd(7)} float32 ${dims(t.dims)}`);
    console.log(lines.join('\n'));
  },
};
