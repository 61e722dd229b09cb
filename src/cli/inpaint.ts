/**
 * `diffir inpaint <image> --mask <mask.png> -o <out> --weights W`: fills the holes of an
 * image (white in the mask) with a stage-2 DiffIR inpainting model. Pixels outside the
 * hole are kept exactly (the model's output is composited as the official code does).
 * The output format follows the output's extension; the output is written atomically.
 */
import { dirname, extname } from 'node:path';
import type { Command } from './command.js';
import { parseCommand, required } from './args.js';
import { UserError } from './errors.js';
import { prepareOutputFolder } from './files.js';
import { InterruptHandler } from './interrupt.js';
import { loadModel, modelSetup } from './model.js';
import { formatOfExtension, modelOptions, positiveIntOption } from './options.js';
import { Reporter, reportMode } from './progress.js';
import { checkOutputSize, loadImage, saveImage } from '../image/io.js';
import { probeImage } from '../image/decode.js';
import { pathExists } from '../fs/atomic.js';
import { loadMask } from '../image/mask.js';

export const inpaint: Command = {
  summary: 'fill the holes of an image (white in a mask) with an inpainting model',
  async run(argv) {
    const p = parseCommand(
      'inpaint',
      '<image> --mask <mask.png> -o <out.png> --weights W.pth [options]',
      {
        mask: { type: 'string', short: 'm', arg: 'file', help: 'mask image of the same size: white = hole to fill, black = keep' },
        output: { type: 'string', short: 'o', arg: 'file', help: 'output image; the format follows the extension (.png, .jpg, .webp, .tif)' },
        ...modelOptions(),
        quality: { type: 'string', arg: '1-100', help: 'JPEG quality (default 95) or lossy WebP quality (default: lossless WebP)' },
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
