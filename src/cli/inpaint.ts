/**
 * `diffir inpaint <image> --mask <mask.png> -o <out> --weights W`: fills the holes of an
 * image (white in the mask) with a stage-2 DiffIR inpainting model. Pixels outside the
 * hole are kept exactly (the model's output is composited as the official code does).
 * The output format follows the output's extension; the output is written atomically.
 *
 * `diffir inpaint <folder> -o <folder> --weights W`: LaMa's `bin/predict.py` over a LaMa
 * evaluation folder (every `<name>_mask*.png` with its `<name>.png`; see data/lama-eval.ts):
 * one prediction per mask, named like the mask, mask binarised as `mask > 0`, saved as
 * predict.py saves it (`np.clip(x·255, 0, 255).astype(uint8)`: truncated, not rounded), as
 * a batch like `diffir restore` (existing predictions skipped unless --overwrite).
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname, extname, join, resolve } from 'node:path';
import type { Command } from './command.js';
import { type ParsedOptions, parseCommand, required } from './args.js';
import { UserError, oneLine } from './errors.js';
import { prepareOutputFolder } from './files.js';
import { InterruptHandler } from './interrupt.js';
import { type ModelSetup, loadModel, modelSetup } from './model.js';
import { type PlannedFile, runBatch } from './restore.js';
import { formatOfExtension, modelOptions, positiveIntOption } from './options.js';
import { Reporter, reportMode } from './progress.js';
import { checkOutputSize, loadImage, saveImage } from '../image/io.js';
import { probeImage } from '../image/decode.js';
import { pathExists } from '../fs/atomic.js';
import { loadMask } from '../image/mask.js';
import { holeTensor, listLamaSamples, readLamaMask, truncate8, type LamaSample } from '../data/lama-eval.js';

export const inpaint: Command = {
  summary: 'fill the holes of an image (white in a mask) with an inpainting model',
  async run(argv) {
    const p = parseCommand(
      'inpaint',
      '<image> --mask <mask.png> -o <out.png> --weights W.pth [options]\n       diffir inpaint <LaMa evaluation folder> -o <predictions folder> --weights W.pth [options]',
      {
        mask: { type: 'string', short: 'm', arg: 'file', help: 'mask image of the same size: white = hole to fill, black = keep' },
        output: { type: 'string', short: 'o', arg: 'file', help: 'output image; the format follows the extension (.png, .jpg, .webp, .tif)' },
        ...modelOptions(),
        quality: { type: 'string', arg: '1-100', help: 'JPEG quality (default 95) or lossy WebP quality (default: lossless WebP)' },
        'img-suffix': { type: 'string', arg: 'ext', default: '.png', help: "folder mode: the image of <name>_mask*.png is <name><img-suffix> (LaMa's dataset img_suffix)" },
        overwrite: { type: 'boolean', help: 'replace the output if it exists' },
        json: { type: 'boolean', help: 'machine-readable progress: one JSON object per line on stdout' },
        quiet: { type: 'boolean', short: 'q', help: 'print only warnings and errors' },
      },
      argv,
    );
    if (!p) return;
    const v = p.values;
    const setup = modelSetup('inpaint', v);
    if (p.positionals.length !== 1) {
      throw new UserError(`inpaint: give one image${p.positionals.length ? ` (got ${p.positionals.length})` : ''}, e.g. 'diffir inpaint photo.png --mask mask.png -o filled.png --weights net_g.pth'`, 2);
    }
    const input = p.positionals[0]!;
    if (await isFolder(input)) return inpaintFolder(input, setup, v);
    const maskPath = required('inpaint', v, 'mask');
    const out = required('inpaint', v, 'output');
    const format = formatOfExtension(extname(out));
    if (!format) throw new UserError(`${out}: cannot tell the output format from the extension; use .png, .jpg, .webp or .tif`, 2);
    const quality = positiveIntOption('inpaint', v, 'quality', 100);
    const overwrite = v.overwrite === true;
    if (!overwrite && (await pathExists(out))) throw new UserError(`${out}: file already exists; pass --overwrite to replace it`);
    await prepareOutputFolder(dirname(out));

    const reporter = new Reporter(reportMode(v));
    const restorer = loadModel('inpaint', setup);
    // Pre-flight from the image header, before any pixel is decoded or the model runs.
    try {
      const h = await probeImage(input);
      checkOutputSize(out, format, h.width, h.height);
      restorer.plan(h.width, h.height, { tile: setup.tile, ...(setup.memoryBudget !== undefined ? { memoryBudget: setup.memoryBudget } : {}) });
    } catch (e) {
      await restorer.release();
      throw e;
    }
    const interrupt = new InterruptHandler((sig) => reporter.interrupted(sig));
    const t0 = performance.now();
    try {
      const img = await loadImage(input);
      const mask = await loadMask(maskPath, img.width, img.height);
      const holes = mask.data.reduce((n, x) => n + x, 0);
      reporter.start({ command: 'inpaint', files: 1, output: out, weights: setup.weights, task: 'inpaint', scale: 1, device: setup.device });
      reporter.fileStart(0, input, { width: img.width, height: img.height, outWidth: img.width, outHeight: img.height });
      let r;
      try {
        r = await restorer.restore(img, {
          mask,
          tile: setup.tile,
          seed: setup.seed,
          ...(setup.memoryBudget !== undefined ? { memoryBudget: setup.memoryBudget } : {}),
          signal: interrupt.signal,
          onProgress: (pg) => reporter.progress(0, pg),
        });
      } catch (e) {
        if (interrupt.stoppedBy) {
          reporter.summary({ restored: 0, failed: 0, skipped: 0, notProcessed: 1, seconds: (performance.now() - t0) / 1000, interrupted: interrupt.stoppedBy });
          return;
        }
        throw e;
      }
      interrupt.writing.add(out);
      const saved = await saveImage(out, r, { format, overwrite, ...(quality !== undefined ? { quality } : {}) });
      const warnings = holes === 0 ? ['the mask has no white pixels: nothing was filled, the output equals the input', ...saved.warnings] : saved.warnings;
      reporter.fileDone(0, input, { output: saved.path, width: img.width, height: img.height, outWidth: r.width, outHeight: r.height, tile: r.tile, seconds: (performance.now() - t0) / 1000, warnings });
      if (reporter.mode === 'json') reporter.summary({ restored: 1, failed: 0, skipped: 0, notProcessed: 0, seconds: (performance.now() - t0) / 1000, interrupted: interrupt.stoppedBy });
    } finally {
      reporter.close();
      interrupt.writing.clear();
      await restorer.release();
      interrupt.dispose();
      if (interrupt.stoppedBy) process.exitCode = interrupt.exitCode;
    }
  },
};

async function isFolder(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Folder mode: LaMa's predict.py over an evaluation folder, as a `diffir restore`-style batch. */
async function inpaintFolder(dir: string, setup: ModelSetup, v: ParsedOptions): Promise<void> {
  if (v.mask !== undefined) throw new UserError(`inpaint: ${dir} is a folder: its masks are the <name>_mask*.png files in it; --mask is for one image`, 2);
  const outDir = required('inpaint', v, 'output');
  let samples: LamaSample[];
  try {
    samples = await listLamaSamples(dir, String(v['img-suffix']));
  } catch (e) {
    throw new UserError(`inpaint: ${oneLine(e)}`);
  }
  if (resolve(outDir) === resolve(dir)) throw new UserError(`inpaint: the predictions would replace the masks in ${dir}; choose another output folder`, 2);
  await prepareOutputFolder(outDir);
  const plan: PlannedFile[] = samples.map((s) => ({ input: { path: join(dir, s.image), explicit: true }, output: join(outDir, s.prediction), format: 'png' }));
  await Promise.all([...new Set(plan.map((f) => dirname(f.output)))].map((d) => mkdir(d, { recursive: true })));
  const quality = positiveIntOption('inpaint', v, 'quality', 100);
  await runBatch('inpaint', plan, [], setup, {
    values: v,
    outDir,
    overwrite: v.overwrite === true,
    ...(quality !== undefined ? { quality } : {}),
    maskOf: async (i) => holeTensor(await readLamaMask(join(dir, samples[i]!.mask))),
    beforeSave: (r) => ({ ...r, rgb: truncate8(r.rgb) }),
  });
}
