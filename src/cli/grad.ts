/**
 * `diffir grad --weights W.pth [--teacher S1.pth] --in IO.safetensors --loss s1|s2joint|s2enc
 * --out GRADS.safetensors`: the loss and its gradient with respect to every trained parameter,
 * through the compiled training step, keyed by official parameter names — to check training
 * against the official code (the fixtures' `grads.safetensors`).
 *
 * `diffir grad -opt OPTIONS.yml --in IO --out OUT`: one iteration of the model an option file
 * describes, from its networks and weights. The dispatch on the file's kind is `optGradients`.
 */
import { existsSync } from 'node:fs';
import { OptionError, readOptions, resolveOptions } from '../train/options.js';
import { DataError } from '../train/data.js';
import type { Command } from './command.js';
import { intOption, normalizeOpt, parseCommand, type ParsedOptions, required } from './args.js';
import { UserError } from './errors.js';
import { computeGradients } from '../train/gradients.js';
import type { LossKind } from '../train/objective.js';
import { readSafetensors, writeSafetensors } from '../weights/safetensors.js';
import { loadStateDict } from '../weights/statedict.js';
import { f32, type TensorMap } from '../tensor.js';
import { lamaConfigOf } from './lama-opt.js';
import { gradInpaint } from './grad-inpaint.js';

const LOSSES: readonly LossKind[] = ['s1', 's2joint', 's2enc'];

export const grad: Command = {
  summary: 'gradients of a training loss at given weights and tensors (checks)',
  async run(argv) {
    if (lamaConfigOf(argv)) return gradInpaint.run(argv);
    const p = parseCommand(
      'grad',
      '--weights W.pth [--teacher S1.pth] --in IO.safetensors --loss s1|s2joint|s2enc --out GRADS.safetensors\n   or: diffir grad -opt OPTIONS.yml --in IO.safetensors --out OUT.safetensors [--weights G] [--teacher S1] [--discriminator D]',
      {
        opt: { type: 'string', arg: 'file', help: 'option file: one official iteration of its model (DiffIRGANS2Model) with every loss, D output, spectral-norm vector and gradient' },
        discriminator: { type: 'string', arg: 'file', help: 'with -opt: net_d checkpoint (default: path.pretrain_network_d)' },
        weights: { type: 'string', arg: 'file', help: 'checkpoint: stage 1 for s1, stage 2 for s2joint / s2enc' },
        teacher: { type: 'string', arg: 'file', help: "stage-1 checkpoint whose CPEN gives IPR_S1 (default: the tensor 's2_train_teacher')" },
        in: { type: 'string', arg: 'file', help: "tensors 'input', 'gt', and for stage 2 's2_train_eps' (and 's2_train_teacher')" },
        loss: { type: 'string', arg: 'name', help: 's1 (L1(out,GT)), s2joint (L1(out,GT) + L1(IPR_S2,IPR_S1)) or s2enc (L1(IPR_S2,IPR_S1))' },
        out: { type: 'string', arg: 'file', help: "where to write the gradients (and 'loss')" },
        threads: { type: 'string', arg: 'n', help: 'ONNX Runtime threads (default: all cores)' },
        overwrite: { type: 'boolean', help: 'replace an existing output file' },
      },
      normalizeOpt(argv),
    );
    if (!p) return;
    if (typeof p.values.opt === 'string') return optGradients(p.values);
    const weights = required('grad', p.values, 'weights');
    const inPath = required('grad', p.values, 'in');
    const loss = required('grad', p.values, 'loss') as LossKind;
    const outPath = required('grad', p.values, 'out');
    if (!LOSSES.includes(loss)) throw new UserError(`grad: --loss must be one of ${LOSSES.join(', ')}, got '${loss}'`, 2);
    const teacher = typeof p.values.teacher === 'string' ? p.values.teacher : undefined;
    if (teacher && loss === 's1') throw new UserError('grad: --teacher is only used by the stage-2 losses', 2);
    if (existsSync(outPath) && !p.values.overwrite) throw new UserError(`${outPath} exists; pass --overwrite to replace it`);
    const threads = intOption('grad', p.values, 'threads');
    const r = await computeGradients({
      kind: loss,
      weights: loadStateDict(weights),
      ...(teacher ? { teacher: loadStateDict(teacher) } : {}),
      data: readSafetensors(inPath),
      names: { weights, data: inPath, ...(teacher ? { teacher } : {}) },
      ...(threads ? { session: { threads } } : {}),
    });
    const out: TensorMap = new Map(r.grads);
    const meta: Record<string, string> = { loss, loss_value: String(r.loss), grad_norm: String(r.gradNorm) };
    for (const [k, v] of Object.entries(r.logs)) meta[k] = String(v);
    out.set('loss', f32([], [r.loss]));
    writeSafetensors(outPath, out, meta);
    console.log(`wrote ${outPath}: ${r.grads.size} gradients, loss ${r.loss.toPrecision(8)}, ‖g‖ ${r.gradNorm.toPrecision(6)}${Object.entries(r.logs).map(([k, v]) => `, ${k} ${v.toPrecision(6)}`).join('')}`);
  },
};

/** `-opt`: the option file decides what one iteration is (BasicSR files name a `model_type`). */
async function optGradients(values: ParsedOptions): Promise<void> {
  const file = values.opt as string;
  const inPath = required('grad', values, 'in');
  const outPath = required('grad', values, 'out');
  if (values.loss !== undefined) throw new UserError('grad: --loss is not used with -opt (the option file names the model)', 2);
  if (existsSync(outPath) && !values.overwrite) throw new UserError(`${outPath} exists; pass --overwrite to replace it`);
  const threads = intOption('grad', values, 'threads');
  const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  const { ganGradients } = await import('../train/gan-setup.js');
  let out: TensorMap;
  try {
    const plan = resolveOptions(readOptions(file));
    if (plan.modelType !== 'DiffIRGANS2Model') throw new UserError(`grad: -opt runs DiffIRGANS2Model option files; ${file} is a ${plan.modelType} (use --weights and --loss)`, 2);
    const files = { ...(str('weights') ? { weights: str('weights') } : {}), ...(str('teacher') ? { teacher: str('teacher') } : {}), ...(str('discriminator') ? { discriminator: str('discriminator') } : {}) };
    out = await ganGradients(plan, readSafetensors(inPath), files, process.cwd(), threads ? { threads } : undefined);
  } catch (e) {
    if (e instanceof OptionError || e instanceof DataError) throw new UserError(e.message);
    throw e;
  }
  const meta: Record<string, string> = { options: file };
  for (const [k, v] of out) if (v.shape.length === 1 && v.shape[0] === 1 && k.startsWith('l_')) meta[k] = String(v.data[0]);
  writeSafetensors(outPath, out, meta);
  console.log(`wrote ${outPath}: ${out.size} tensors${Object.entries(meta).filter(([k]) => k.startsWith('l_')).map(([k, v]) => `, ${k} ${Number(v).toPrecision(6)}`).join('')}`);
}
