/**
 * `diffir train -opt options.yml [--auto_resume] [--debug] [--force_yml k:k=v ...] [--check]`:
 * trains DiffIR stage 1 or 2 from a BasicSR-style option file, as BasicSR's train.py does.
 * Ctrl-C finishes the current step, saves a checkpoint and exits; `--auto_resume` continues
 * from the latest checkpoint of the experiment, bit for bit.
 */
import type { Command } from './command.js';
import { parseCommand, intOption } from './args.js';
import { UserError } from './errors.js';
import { OptionError, readOptions, resolveOptions, type TrainPlan } from '../train/options.js';
import { DataError } from '../train/data.js';
import { describeConfig } from '../models/config.js';
import { lamaConfigOf } from './lama-opt.js';
import { trainInpaint } from './train-inpaint.js';

function summary(p: TrainPlan): string[] {
  const lines = [
    `name: ${p.name} (${p.experimentsRoot})`,
    `model: ${p.modelType}, ${describeConfig(p.config)}`,
    `data: ${p.train.type} ${p.train.gtRoot} (batch ${p.train.batchSize}${p.worldSize > 1 ? ` × ${p.worldSize} devices` : ''}, GT patch ${p.train.gtSize}${p.train.progressive ? `, progressive ${p.train.progressive.gtSizes.join('/')}` : ''})`,
    `schedule: ${p.totalIter} iterations, ${p.optim.type} lr ${p.optim.lr}, ${p.stage === 2 && p.lrRule === 'manual' ? `manual stage-2 rules (encoder_iter ${p.manual!.encoderIter})` : p.scheduler.type}`,
    `validation: ${p.val.length ? `${p.val.map((v) => v.name).join(', ')} every ${p.valFreq} (${p.metrics.map((m) => m.name).join(', ')})` : 'none'}`,
  ];
  for (const n of p.notices) lines.push(`note: ${n}`);
  return lines;
}

export const train: Command = {
  summary: 'train DiffIR (stage 1 or 2) from a BasicSR option file',
  async run(argv) {
    if (lamaConfigOf(argv)) return trainInpaint.run(argv);
    // BasicSR spells the option file flag `-opt`, and --force_yml takes several values.
    const args: string[] = [];
    let forcing = false;
    for (const a of argv) {
      if (a === '-opt') args.push('--opt');
      else if (a === '--force_yml') forcing = true;
      else if (forcing && !a.startsWith('-')) args.push('--force_yml', a);
      else {
        forcing = false;
        args.push(a);
      }
    }
    const p = parseCommand(
      'train',
      '-opt options.yml [--auto_resume] [--debug] [--force_yml key:sub=value ...]',
      {
        opt: { type: 'string', arg: 'file', help: 'BasicSR-style option file (YAML)' },
        auto_resume: { type: 'boolean', help: 'continue from the latest training state of the experiment' },
        debug: { type: 'boolean', help: "BasicSR debug mode: name prefixed 'debug_', log every iteration, checkpoint and validate every 8" },
        force_yml: { type: 'string', multiple: true, arg: 'k:k=v', help: 'override an option, e.g. train:ema_decay=0.999 (repeatable)' },
        check: { type: 'boolean', help: 'read and check the option file, print the plan, and exit' },
        threads: { type: 'string', arg: 'n', help: 'ONNX Runtime threads (default: all cores)' },
        low_memory: { type: 'boolean', help: 'run ONNX Runtime without its memory arena: less memory, slower steps' },
        quiet: { type: 'boolean', help: 'no progress lines' },
      },
      args,
    );
    if (!p) return;
    const file = typeof p.values.opt === 'string' ? p.values.opt : p.positionals[0];
    if (!file) throw new UserError("train: -opt is required; run 'diffir train --help'", 2);
    const extra = p.positionals.slice(typeof p.values.opt === 'string' ? 0 : 1);
    if (extra.length) throw new UserError(`train: unexpected argument '${extra[0]}'; run 'diffir train --help'`, 2);
    const overrides = (p.values.force_yml as string[] | undefined) ?? [];
    let plan: TrainPlan;
    try {
      plan = resolveOptions(readOptions(file, overrides), { debug: p.values.debug === true });
    } catch (e) {
      if (e instanceof OptionError) throw new UserError(e.message);
      throw e;
    }
    if (p.values.check) {
      for (const l of summary(plan)) console.log(l);
      return;
    }
    const threads = intOption('train', p.values, 'threads');
    const { Trainer } = await import('../train/trainer.js');
    const controller = new AbortController();
    let interrupts = 0;
    const onSigint = () => {
      interrupts++;
      if (interrupts === 1) {
        console.error('diffir: interrupt: finishing the current step and saving a checkpoint (Ctrl-C again to quit at once)');
        controller.abort();
      } else process.exit(130);
    };
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigint);
    let trainer;
    try {
      trainer = await Trainer.create(plan, {
        autoResume: p.values.auto_resume === true,
        signal: controller.signal,
        ...(threads ? { threads } : {}),
        ...(p.values.low_memory ? { lowMemory: true } : {}),
        ...(p.values.quiet ? { log: null } : {}),
      });
      const r = await trainer.run();
      if (r.interrupted) process.exitCode = 130;
    } catch (e) {
      if (e instanceof DataError || e instanceof OptionError) throw new UserError(e.message);
      throw e;
    } finally {
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigint);
      if (trainer) await trainer.release();
    }
  },
};
