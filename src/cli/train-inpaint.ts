/**
 * `diffir train -opt <inpainting config> [--auto_resume] [--iters n] [--root dir] ...`: DiffIR's
 * LaMa-based inpainting trainers (configs with `training_model`, composed or with `defaults:`).
 * Ctrl-C finishes the current iteration, saves a checkpoint and exits with 130.
 */
import type { Command } from './command.js';
import { intOption, normalizeOpt, parseCommand } from './args.js';
import { UserError } from './errors.js';
import { InterruptHandler } from './interrupt.js';
import { LamaConfigError } from '../train/lama-config.js';

export const trainInpaint: Command = {
  summary: 'train DiffIR inpainting (stage 1 or 2) from a LaMa-style config',
  async run(argv) {
    const p = parseCommand(
      'train',
      '-opt config.yaml [--auto_resume] [--iters n] [--root dir] [--weights G.pth] [--teacher S1.pth] [--discriminator D.pth]',
      {
        opt: { type: 'string', arg: 'file', help: 'DiffIR-inpainting training config (configs/training/*.yaml, composed or with defaults:)' },
        auto_resume: { type: 'boolean', help: 'continue from the latest training state of the experiment' },
        iters: { type: 'string', arg: 'n', help: 'iterations (default: max_epochs × limit_train_batches)' },
        root: { type: 'string', arg: 'dir', help: 'experiment folder (default experiments/<config name>)' },
        weights: { type: 'string', arg: 'file', help: 'generator start weights (stage 2 default: training_model.generatorS2_path)' },
        teacher: { type: 'string', arg: 'file', help: 'stage 2: the stage-1 checkpoint (default: training_model.generatorS1_path)' },
        discriminator: { type: 'string', arg: 'file', help: 'discriminator start state (default: fresh)' },
        log_every: { type: 'string', arg: 'n', help: 'log every n iterations (default 50)' },
        checkpoint_every: { type: 'string', arg: 'n', help: 'checkpoint every n iterations (default 1000)' },
        val_every: { type: 'string', arg: 'n', help: 'validate every n iterations (default 1000)' },
        seed: { type: 'string', arg: 'n', help: 'seed of the data stream, masks, noise and fresh weights (default 0)' },
        workers: { type: 'string', arg: 'n', help: 'data worker threads (default 1)' },
        threads: { type: 'string', arg: 'n', help: 'ONNX Runtime threads (default: all cores)' },
        quiet: { type: 'boolean', help: 'no progress lines' },
      },
      normalizeOpt(argv),
    );
    if (!p) return;
    const config = typeof p.values.opt === 'string' ? p.values.opt : null;
    if (!config) throw new UserError("train: -opt is required; run 'diffir train --help'", 2);
    const n = (k: string) => intOption('train', p.values, k);
    const str = (k: string) => (typeof p.values[k] === 'string' ? (p.values[k] as string) : undefined);
    const { InpaintTrainer, InpaintTrainError } = await import('../train/inpaint-trainer.js');
    const stop = new InterruptHandler(() => console.error('diffir: interrupt: finishing the current iteration and saving a checkpoint (Ctrl-C again to quit at once)'));
    let trainer;
    try {
      const opt = <T>(k: string, v: T | undefined) => (v === undefined ? {} : { [k]: v });
      trainer = await InpaintTrainer.create({
        config,
        autoResume: p.values.auto_resume === true,
        signal: stop.signal,
        ...opt('iterations', n('iters')),
        ...opt('root', str('root')),
        ...opt('weights', str('weights')),
        ...opt('teacher', str('teacher')),
        ...opt('discriminator', str('discriminator')),
        ...opt('logEvery', n('log_every')),
        ...opt('checkpointEvery', n('checkpoint_every')),
        ...opt('valEvery', n('val_every')),
        ...opt('seed', n('seed')),
        ...opt('workers', n('workers')),
        ...opt('threads', n('threads')),
        ...(p.values.quiet ? { log: null } : {}),
      });
      const r = await trainer.run();
      if (r.interrupted) process.exitCode = stop.exitCode || 130;
    } catch (e) {
      if (e instanceof LamaConfigError || e instanceof InpaintTrainError) throw new UserError(e.message);
      throw e;
    } finally {
      stop.dispose();
      if (trainer) await trainer.release();
    }
  },
};
