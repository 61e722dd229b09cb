/**
 * `diffir forward --weights W --in IN.safetensors --out OUT.safetensors`: runs the
 * auto-detected model on tensors, for checks and debugging. Inputs: `input` (the
 * network input), `gt` for a stage-1 model, optional `s2_xT` (initial noise) for
 * stage 2. Writes `out` and `ipr`.
 */
import { existsSync } from 'node:fs';
import type { Command } from './command.js';
import { parseCommand, required, intOption } from './args.js';
import { UserError } from './errors.js';
import { loadCheckpoint } from '../models/checkpoint.js';
import { DiffIRS1, DiffIRS2, IO_NAMES } from '../models/diffir.js';
import { inputChannels, outputScale, padMultiple } from '../models/config.js';
import { IPR_DIM } from '../nn/ipr.js';
import { compile } from '../runtime/compile.js';
import { readSafetensors, requireF32, writeSafetensors } from '../weights/safetensors.js';
import { Rng } from '../random.js';
import type { HostTensor } from '../tensor.js';

function checkShape(t: HostTensor, want: readonly number[], what: string): void {
  if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
    throw new UserError(`${what} has shape [${t.shape.join(',')}], expected [${want.join(',')}]`);
  }
}

export const forward: Command = {
  summary: 'run a checkpoint on tensors from a safetensors file (checks and debugging)',
  async run(argv) {
    const p = parseCommand(
      'forward',
      '--weights W.pth --in IN.safetensors --out OUT.safetensors',
      {
        weights: { type: 'string', arg: 'file', help: 'checkpoint (.pth or .safetensors)' },
        in: { type: 'string', arg: 'file', help: "tensors: 'input', plus 'gt' (stage 1) or optional 's2_xT' (stage 2)" },
        out: { type: 'string', arg: 'file', help: "where to write 'out' and 'ipr'" },
        seed: { type: 'string', arg: 'n', default: '0', help: 'seed of the initial noise when s2_xT is not given' },
        threads: { type: 'string', arg: 'n', help: 'ONNX Runtime threads (default: all cores)' },
        overwrite: { type: 'boolean', help: 'replace an existing output file' },
      },
      argv,
    );
    if (!p) return;
    const weightsPath = required('forward', p.values, 'weights');
    const inPath = required('forward', p.values, 'in');
    const outPath = required('forward', p.values, 'out');
    if (existsSync(outPath) && !p.values.overwrite) throw new UserError(`${outPath} exists; pass --overwrite to replace it`);
    const ck = loadCheckpoint(weightsPath);
    const cfg = ck.config;
    const tensors = readSafetensors(inPath);
    const input = requireF32(tensors, 'input', inPath);
    const c = inputChannels(cfg);
    if (input.shape.length !== 4 || input.shape[1] !== c) {
      throw new UserError(`${inPath}: 'input' has shape [${input.shape.join(',')}], but this ${cfg.task} model needs [B,${c},H,W]`);
    }
    const [B, , H, W] = input.shape as [number, number, number, number];
    const m = padMultiple(cfg);
    if (H % m || W % m) throw new UserError(`${inPath}: 'input' is ${H}×${W}, but this model needs sizes that are multiples of ${m}; pad it first`);
    const feeds: Record<string, HostTensor> = { [IO_NAMES.input]: input };
    let graph;
    if (ck.stage === 1) {
      const s = outputScale(cfg);
      const gt = requireF32(tensors, 'gt', inPath);
      checkShape(gt, [B, 3, H * s, W * s], `${inPath}: 'gt'`);
      feeds[IO_NAMES.gt] = gt;
      graph = DiffIRS1(cfg, { batch: B, height: H, width: W });
    } else {
      const seed = intOption('forward', p.values, 'seed') ?? 0;
      const xT = tensors.get('s2_xT') ?? { dtype: 'float32' as const, shape: [B, IPR_DIM], data: new Rng(seed).normals(B * IPR_DIM) };
      checkShape(xT, [B, IPR_DIM], `${inPath}: 's2_xT'`);
      feeds[IO_NAMES.xT] = xT;
      graph = DiffIRS2(cfg, { batch: B, height: H, width: W });
    }
    const threads = intOption('forward', p.values, 'threads');
    const session = await compile(graph, { params: 'initializers', weights: ck.weights }, threads ? { threads } : {});
    try {
      const r = await session.run(feeds);
      const out = r[IO_NAMES.out]!;
      writeSafetensors(outPath, new Map([['out', out], ['ipr', r[IO_NAMES.ipr]!]]));
      console.log(`wrote ${outPath}: out [${out.shape.join(',')}], ipr [${B},${IPR_DIM}]`);
    } finally {
      await session.release();
    }
  },
};
