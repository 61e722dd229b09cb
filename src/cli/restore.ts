/**
 * `diffir restore <files | folders | globs...> -o <folder> --weights W`: restores image
 * files with a stage-2 DiffIR model (super-resolution or deblurring, detected from the
 * weights) into a folder.
 *
 * The model is loaded once for the batch. Each output is `<input name><suffix>.<ext>`; an
 * existing output is skipped unless --overwrite. A file that fails (unreadable, too small,
 * ...) is reported and the batch goes on; the exit status is 1 if any failed. Outputs are
 * written atomically, so an interrupted batch (Ctrl-C, SIGTERM) leaves only complete
 * files; it reports what was done and exits with 130 (143 for SIGTERM).
 */
import { lstat, stat } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import type { Command } from './command.js';
import { type ParsedOptions, parseCommand, required } from './args.js';
import { UserError, oneLine } from './errors.js';
import { type InputFile, type InputProblem, expandInputs } from './inputs.js';
import { prepareOutputFolder } from './files.js';
import { InterruptHandler } from './interrupt.js';
import { type ModelSetup, loadModel, modelSetup } from './model.js';
import { FORMAT_EXT, type OutputFormat, formatOfExtension, formatOption, modelOptions, positiveIntOption } from './options.js';
import { Reporter, reportMode } from './progress.js';
import { checkOutputSize, loadImage, saveImage } from '../image/io.js';
import { probeImage } from '../image/decode.js';
import type { RestoredImage, Restorer } from '../restore/restore.js';
import type { HostTensor } from '../tensor.js';
import { errCode, sanitize } from '../errors.js';
import { outputScale } from '../models/config.js';

/** One input with its planned output. */
export interface PlannedFile {
  readonly input: InputFile;
  readonly output: string;
  readonly format: OutputFormat;
  /** Why this file cannot be processed, decided before any work (e.g. two inputs, one output name). */
  readonly problem?: string;
}

/**
 * Output paths for the inputs: `<dir>/<stem><suffix><ext>`, the extension kept for
 * `same` (PNG for formats that cannot be written: GIF, AVIF). Files found in folders or by
 * globs that are themselves outputs of this batch (a re-run into the input folder) are
 * dropped; an output that would replace its input, or be shared by two inputs, is a problem.
 */
export function planOutputs(files: readonly InputFile[], dir: string, suffix: string, format: OutputFormat | 'same'): PlannedFile[] {
  const target = (f: InputFile): { output: string; format: OutputFormat } => {
    const ext = extname(f.path);
    const stem = basename(f.path, ext);
    const same = formatOfExtension(ext);
    if (format === 'same') return same ? { output: join(dir, stem + suffix + ext), format: same } : { output: join(dir, `${stem}${suffix}.png`), format: 'png' };
    return { output: join(dir, stem + suffix + (same === format ? ext : FORMAT_EXT[format])), format };
  };
  const targets = files.map(target);
  const outputs = new Set(targets.map((t) => resolve(t.output)));
  const claimed = new Map<string, string>();
  const plan: PlannedFile[] = [];
  files.forEach((f, i) => {
    const t = targets[i]!;
    const key = resolve(f.path);
    if (!f.explicit && outputs.has(key) && resolve(t.output) !== key) return;
    let problem: string | undefined;
    const out = resolve(t.output);
    if (out === key) problem = `the output would replace the input; choose another output folder or --suffix`;
    else if (claimed.has(out)) problem = `its output ${t.output} would also be the output of ${claimed.get(out)}; restore them in separate runs or into separate folders`;
    else claimed.set(out, f.path);
    plan.push({ input: f, ...t, ...(problem ? { problem } : {}) });
  });
  return plan;
}

/** The reason to print after `<file>: `, without repeating the file name. */
function reasonFor(e: unknown, file: string): string {
  const msg = oneLine(e);
  for (const shown of [file, sanitize(file, 1024)]) if (msg.startsWith(`${shown}: `)) return msg.slice(shown.length + 2);
  return msg;
}

/** What is at an output path, without following a final symbolic link (a dangling one counts). */
async function outputState(path: string): Promise<'none' | 'folder' | 'dangling link' | 'exists'> {
  try {
    const st = await lstat(path);
    if (st.isDirectory()) return 'folder';
    if (st.isSymbolicLink()) {
      const target = await stat(path).catch((e: unknown) => (errCode(e) === 'ENOENT' ? null : undefined));
      if (target === null) return 'dangling link';
      if (target?.isDirectory()) return 'folder';
    }
    return 'exists';
  } catch (e) {
    if (errCode(e) === 'ENOENT') return 'none';
    return 'exists';
  }
}

/** The pre-flight verdict on one planned file: run it (with its pixel count), skip it, or fail it. */
export type Verdict = { readonly run: true; readonly pixels: number } | { readonly run: false; readonly skip?: string; readonly problem?: string };

/**
 * Pre-flight of the whole batch, before the first model run and without decoding any pixels:
 * output path state (an existing file or dangling link is skipped unless --overwrite; a folder
 * is a problem), the input (a regular, readable, non-empty file, checked with `stat` so a FIFO
 * never blocks; its header readable; within the pixel limit), the output size against the output
 * format's limits, and the memory plan for the image's size.
 */
export async function preflight(
  plan: readonly PlannedFile[],
  restorer: Pick<Restorer, 'plan'>,
  scale: number,
  o: { overwrite: boolean; tile?: number | 'auto'; memoryBudget?: number },
): Promise<Verdict[]> {
  const verdicts: Verdict[] = [];
  for (const f of plan) {
    if (f.problem) {
      verdicts.push({ run: false, problem: f.problem });
      continue;
    }
    const state = await outputState(f.output);
    if (state === 'folder') {
      verdicts.push({ run: false, problem: `the output ${sanitize(f.output, 1024)} is a folder; choose another output folder or --suffix` });
      continue;
    }
    if (state !== 'none' && !o.overwrite) {
      verdicts.push({ run: false, skip: `${sanitize(f.output, 1024)} exists${state === 'dangling link' ? ' (a symbolic link to a missing file)' : ''}` });
      continue;
    }
    try {
      const h = await probeImage(f.input.path);
      checkOutputSize(f.output, f.format, h.width * scale, h.height * scale);
      restorer.plan(h.width, h.height, { ...(o.tile !== undefined ? { tile: o.tile } : {}), ...(o.memoryBudget !== undefined ? { memoryBudget: o.memoryBudget } : {}) });
      verdicts.push({ run: true, pixels: h.width * h.height });
    } catch (e) {
      verdicts.push({ run: false, problem: reasonFor(e, f.input.path) });
    }
  }
  return verdicts;
}

export const restore: Command = {
  summary: 'restore image files (super-resolution or deblurring, detected from the weights) into a folder',
  async run(argv) {
    const p = parseCommand(
      'restore',
      '<files | folders | globs...> -o <folder> --weights W.pth [options]',
      {
        output: { type: 'string', short: 'o', arg: 'folder', help: 'folder for the restored images (created if missing)' },
        ...modelOptions(),
        format: { type: 'string', arg: 'png|jpg|webp|tiff|same', default: 'same', help: "output format; 'same' keeps the input's (PNG for GIF/AVIF inputs)" },
        quality: { type: 'string', arg: '1-100', help: 'JPEG quality (default 95) or lossy WebP quality (default: lossless WebP)' },
        suffix: { type: 'string', arg: 'text', default: '_diffir', help: 'added to each input name to make the output name' },
        overwrite: { type: 'boolean', help: 'replace existing outputs (default: skip them)' },
        json: { type: 'boolean', help: 'machine-readable progress: one JSON object per line on stdout' },
        quiet: { type: 'boolean', short: 'q', help: 'print only failures' },
      },
      argv,
    );
    if (!p) return;
    const v = p.values;
    const setup = modelSetup('restore', v);
    const outDir = required('restore', v, 'output');
    if (p.positionals.length === 0) {
      throw new UserError("restore: give the images to restore (files, folders or globs), e.g. 'diffir restore photos -o restored --weights net_g.pth'", 2);
    }
    const format = formatOption('restore', v);
    const quality = positiveIntOption('restore', v, 'quality', 100);
    const suffix = typeof v.suffix === 'string' ? v.suffix : '_diffir';
    if (/[/\\]/.test(suffix) || suffix.includes('\0')) throw new UserError(`restore: --suffix cannot contain path separators, got '${suffix}'`, 2);
    const overwrite = v.overwrite === true;

    const { files, problems } = await expandInputs(p.positionals);
    if (files.length === 0) {
      const first = problems[0]!;
      throw new UserError(`${first.arg}: ${first.reason}${problems.length > 1 ? ` (and ${problems.length - 1} more arguments gave no images)` : ''}`);
    }
    await prepareOutputFolder(outDir);
    const plan = planOutputs(files, outDir, suffix, format);

    await runBatch('restore', plan, problems, setup, { values: v, outDir, overwrite, ...(quality !== undefined ? { quality } : {}) });
  },
};

/** What {@link runBatch} needs besides the plan. */
export interface BatchOptions {
  /** The command's parsed options (for --json / --quiet). */
  readonly values: ParsedOptions;
  readonly outDir: string;
  readonly overwrite: boolean;
  readonly quality?: number;
  /** The mask of planned file `i` for an inpainting model (read when the file is restored). */
  readonly maskOf?: (i: number) => Promise<HostTensor<'float32'>>;
  /** Applied to each result before it is saved. */
  readonly beforeSave?: (r: RestoredImage) => RestoredImage;
}

/**
 * Restores planned files one by one with the model loaded once, as `diffir restore` does: pre-flight
 * of the whole batch, existing outputs skipped unless `overwrite`, a failing file reported and the
 * batch going on, atomic outputs, Ctrl-C / SIGTERM stopping after the step in progress; sets the
 * exit status (1 when some file failed, 130/143 when interrupted).
 */
export async function runBatch(command: 'restore' | 'inpaint', plan: readonly PlannedFile[], problems: readonly InputProblem[], setup: ModelSetup, o: BatchOptions): Promise<void> {
  const { overwrite, quality, outDir } = o;
  const reporter = new Reporter(reportMode(o.values));
  const restorer = loadModel(command, setup);
  const scale = outputScale(restorer.config);
  const interrupt = new InterruptHandler((sig) => reporter.interrupted(sig));
  const t0 = performance.now();
  let restored = 0;
  let failed = 0;
  let skipped = 0;
  let processed = 0;
  try {
    reporter.start({ command, files: plan.length, output: outDir, weights: setup.weights, task: restorer.config.task, scale, device: setup.device });
    const verdicts = await preflight(plan, restorer, scale, {
      overwrite,
      tile: setup.tile,
      ...(setup.memoryBudget !== undefined ? { memoryBudget: setup.memoryBudget } : {}),
    });
    reporter.setWork(verdicts.map((v) => (v.run ? v.pixels : 0)));
    for (const pr of problems) {
      reporter.fileFailed(null, pr.arg, pr.reason);
      failed++;
    }
    for (const [i, f] of plan.entries()) {
      if (interrupt.signal.aborted) break;
      processed++;
      const file = f.input.path;
      const v = verdicts[i]!;
      if (!v.run && v.skip !== undefined) {
        reporter.fileSkipped(i, file, f.output, v.skip);
        skipped++;
        continue;
      }
      if (!v.run) {
        reporter.fileFailed(i, file, v.problem ?? 'cannot be restored');
        failed++;
        continue;
      }
      if (!overwrite && (await outputState(f.output)) !== 'none') {
        reporter.fileSkipped(i, file, f.output, `${f.output} exists`);
        skipped++;
        continue;
      }
      const started = performance.now();
      try {
        const img = await loadImage(file);
        if (interrupt.signal.aborted) {
          processed--;
          break;
        }
        reporter.fileStart(i, file, { width: img.width, height: img.height, outWidth: img.width * scale, outHeight: img.height * scale });
        const mask = o.maskOf ? await o.maskOf(i) : undefined;
        const r0 = await restorer.restore(img, {
          ...(mask ? { mask } : {}),
          tile: setup.tile,
          seed: setup.seed,
          ...(setup.memoryBudget !== undefined ? { memoryBudget: setup.memoryBudget } : {}),
          signal: interrupt.signal,
          onProgress: (pg) => reporter.progress(i, pg),
        });
        const r = o.beforeSave ? o.beforeSave(r0) : r0;
        interrupt.writing.add(f.output);
        const saved = await saveImage(f.output, r, { format: f.format, overwrite, ...(quality !== undefined ? { quality } : {}) });
        restored++;
        reporter.fileDone(i, file, {
          output: saved.path, width: img.width, height: img.height, outWidth: r.width, outHeight: r.height,
          tile: r.tile, seconds: (performance.now() - started) / 1000, warnings: saved.warnings,
        });
      } catch (e) {
        if (interrupt.signal.aborted) {
          processed--;
          break;
        }
        if (!overwrite && (await outputState(f.output)) !== 'none') {
          // The output appeared while this file was being restored.
          reporter.fileSkipped(i, file, f.output, `${f.output} exists`);
          skipped++;
        } else {
          reporter.fileFailed(i, file, reasonFor(e, file));
          failed++;
        }
      } finally {
        interrupt.writing.delete(f.output);
      }
    }
    reporter.summary({ restored, failed, skipped, notProcessed: plan.length - processed, seconds: (performance.now() - t0) / 1000, interrupted: interrupt.stoppedBy });
  } finally {
    reporter.close();
    await restorer.release();
    interrupt.dispose();
  }
  if (interrupt.stoppedBy) process.exitCode = interrupt.exitCode;
  else if (failed > 0) process.exitCode = 1;
}
