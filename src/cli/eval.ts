/**
 * `diffir eval <restored> [<reference>]`: image-quality metrics of restored images as the
 * reference tools compute them (BasicSR PSNR/SSIM/NIQE, lpips, pytorch-fid), per image and
 * averaged, and FID between the two folders. Folders are matched by file name (extension
 * ignored); two files make one pair. A reference `.npz` (pytorch-fid statistics) serves FID.
 * Output: a CSV (per image, then `mean`, then `fid`) or, with --json, one JSON object.
 * With --masks, LaMa's inpainting evaluation instead (eval-masks.ts).
 */
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Command } from './command.js';
import { intOption, parseCommand } from './args.js';
import { UserError } from './errors.js';
import { countProgress } from './progress.js';
import { evalMasks } from './eval-masks.js';
import { InterruptHandler } from './interrupt.js';
import { listImages, matchByName } from '../data/folder.js';
import { readImage8 } from '../metrics/color.js';
import { Evaluator, meanScores, parseMetrics, REFERENCE_METRICS, type EvalMetric, type ImageScores } from '../metrics/evaluate.js';
import { loadFidStats, saveFidStats, type FidStats } from '../metrics/frechet.js';
import { firstLine } from '../errors.js';
import type { Device } from '../runtime/session.js';

/** Images scored per network batch. */
const GROUP = 4;

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    throw new UserError(`eval: ${p}: not found`);
  }
}

/** Formats a value for the CSV (full precision; inf for identical images' PSNR). */
function fmt(v: number | undefined): string {
  if (v === undefined) return '';
  return Number.isFinite(v) ? String(v) : v > 0 ? 'inf' : 'nan';
}

export const evalCommand: Command = {
  summary: 'measure restored images: PSNR, SSIM, LPIPS, NIQE per image and FID between folders; --masks: LaMa\'s inpainting evaluation',
  async run(argv) {
    const p = parseCommand(
      'eval',
      '<restored folder|file> [<reference folder|file|stats.npz>] [options]\n       diffir eval <predictions folder> <LaMa evaluation folder> --masks [options]',
      {
        metrics: { type: 'string', arg: 'list', help: `comma-separated: psnr, ssim, lpips-alex, lpips-vgg, niqe, fid (default: psnr,ssim with a reference, niqe without)` },
        crop: { type: 'string', arg: 'n', help: 'pixels cropped from each edge for PSNR, SSIM and NIQE (BasicSR crop_border)', default: '0' },
        y: { type: 'boolean', help: 'PSNR and SSIM on the Y channel (BasicSR test_y_channel)' },
        'weights-dir': { type: 'string', arg: 'dir', help: 'folder searched first for the metric weights under their official names' },
        'save-stats': { type: 'string', arg: 'file.npz', help: "with fid: write the reference set's FID statistics (pytorch-fid .npz)" },
        masks: { type: 'boolean', help: "LaMa's inpainting evaluation: <predictions> <folder of images and <name>_mask*.png>; SSIM, LPIPS (vgg), FID overall and per mask-area bin" },
        bins: { type: 'string', arg: 'n', help: 'with --masks: number of mask-area bins (LaMa: 10)' },
        'img-suffix': { type: 'string', arg: 'ext', help: 'with --masks: the image of <name>_mask*.png is <name><img-suffix> (default .png)' },
        json: { type: 'boolean', help: 'print one JSON object on stdout ({images, mean, fid}; with --masks {images, groups})' },
        threads: { type: 'string', arg: 'n', help: 'ONNX Runtime threads (default: all cores)' },
        device: { type: 'string', arg: 'cpu|cuda|webgpu', help: 'execution provider', default: 'cpu' },
        quiet: { type: 'boolean', short: 'q', help: 'no progress' },
      },
      argv,
    );
    if (!p) return;
    const v = p.values;
    if (v.masks === true) return evalMasks(p.positionals, v);
    for (const o of ['bins', 'img-suffix'] as const) if (v[o] !== undefined) throw new UserError(`eval: --${o} is for the inpainting evaluation; add --masks`, 2);
    if (p.positionals.length < 1 || p.positionals.length > 2) {
      throw new UserError("eval: give the restored folder (or file) and optionally the reference, e.g. 'diffir eval results/ gt/ --metrics psnr,ssim,lpips-alex'", 2);
    }
    const [restoredArg, referenceArg] = p.positionals as [string, string | undefined];
    let metrics: EvalMetric[];
    try {
      metrics = parseMetrics(typeof v.metrics === 'string' ? v.metrics : referenceArg ? 'psnr,ssim' : 'niqe');
    } catch (e) {
      throw new UserError(`eval: --metrics: ${firstLine(e)}`, 2);
    }
    const crop = intOption('eval', v, 'crop') ?? 0;
    const threads = intOption('eval', v, 'threads');
    const statsRef = referenceArg !== undefined && referenceArg.toLowerCase().endsWith('.npz');
    const needRef = metrics.filter((m) => REFERENCE_METRICS.has(m));
    if (needRef.length && (!referenceArg || statsRef)) {
      throw new UserError(`eval: ${needRef.join(', ')} need reference images; give the reference folder (or file) after the restored one`, 2);
    }
    if (metrics.includes('fid') && !referenceArg) throw new UserError('eval: fid needs a reference folder or a pytorch-fid statistics .npz', 2);
    if (typeof v['save-stats'] === 'string' && (!metrics.includes('fid') || statsRef)) {
      throw new UserError('eval: --save-stats writes the FID statistics of a reference folder: add fid to --metrics and give the folder', 2);
    }

    // Pairs: two folders matched by name, two files, or one folder/file alone.
    let pairs: { name: string; restored: string; reference: string | null }[];
    const restoredIsDir = await isDir(restoredArg);
    const referenceIsDir = referenceArg && !statsRef ? await isDir(referenceArg) : false;
    try {
      if (restoredIsDir) {
        const names = await listImages(restoredArg, { recursive: false });
        if (referenceArg && !statsRef) {
          if (!referenceIsDir) throw new Error(`${referenceArg}: is a file but ${restoredArg} is a folder; give two folders or two files`);
          const ref = await listImages(referenceArg, { recursive: false });
          const m = matchByName(names, ref, { a: restoredArg, b: referenceArg });
          pairs = names.map((n) => ({ name: n, restored: join(restoredArg, n), reference: join(referenceArg, m.get(n)!) }));
        } else pairs = names.map((n) => ({ name: n, restored: join(restoredArg, n), reference: null }));
      } else {
        if (referenceIsDir) throw new Error(`${referenceArg}: is a folder but ${restoredArg} is a file; give two folders or two files`);
        pairs = [{ name: basename(restoredArg), restored: restoredArg, reference: referenceArg && !statsRef ? referenceArg : null }];
      }
    } catch (e) {
      throw new UserError(`eval: ${firstLine(e)}`);
    }
    let against: FidStats | undefined;
    if (statsRef) {
      try {
        against = loadFidStats(referenceArg!);
      } catch (e) {
        throw new UserError(`eval: ${firstLine(e)}`);
      }
    }

    let evaluator: Evaluator;
    try {
      evaluator = await Evaluator.create({
        metrics,
        crop,
        y: v.y === true,
        ...(typeof v['weights-dir'] === 'string' ? { weightsDir: v['weights-dir'] } : {}),
        session: { ...(threads ? { threads } : {}), device: v.device as Device },
      });
    } catch (e) {
      throw new UserError(`eval: ${firstLine(e)}`);
    }
    const stopper = new InterruptHandler(() => process.stderr.write('\ndiffir: stopping after the images in progress (Ctrl-C again to quit now)\n'));
    const progress = countProgress('eval', pairs.length, v.quiet !== true && pairs.length > 1);
    const rows: ImageScores[] = [];
    try {
      for (let i = 0; i < pairs.length; i += GROUP) {
        if (stopper.signal.aborted) throw new UserError(`eval: interrupted after ${i} of ${pairs.length} images`, stopper.exitCode);
        const group = pairs.slice(i, i + GROUP);
        const loaded = await Promise.all(
          group.map(async (g) => {
            try {
              return { name: g.name, restored: await readImage8(g.restored), reference: g.reference ? await readImage8(g.reference) : null };
            } catch (e) {
              throw new UserError(`eval: ${firstLine(e)}`);
            }
          }),
        );
        try {
          rows.push(...(await evaluator.score(loaded)));
        } catch (e) {
          throw new UserError(`eval: ${firstLine(e)}`);
        }
        progress(Math.min(i + GROUP, pairs.length));
      }
      const perImage = metrics.filter((m) => m !== 'fid');
      const mean = meanScores(rows, perImage);
      let fid: number | undefined;
      if (metrics.includes('fid')) {
        if (pairs.length < 2) throw new UserError('eval: fid needs at least 2 images per set');
        try {
          fid = evaluator.fid(against);
          if (typeof v['save-stats'] === 'string') await saveFidStats(v['save-stats'], evaluator.stats('reference'));
        } catch (e) {
          throw new UserError(`eval: ${firstLine(e)}`);
        }
      }
      if (v.json) {
        const images = pairs.map((pp, i) => ({ name: pp.name, ...Object.fromEntries(perImage.map((m) => [m, rows[i]![m] ?? null])) }));
        console.log(JSON.stringify({ images, mean, ...(fid !== undefined ? { fid } : {}) }));
        return;
      }
      const lines: string[] = [];
      if (perImage.length) {
        lines.push(['name', ...perImage].join(','));
        pairs.forEach((pp, i) => lines.push([csvField(pp.name), ...perImage.map((m) => fmt(rows[i]![m]))].join(',')));
        lines.push(['mean', ...perImage.map((m) => fmt(mean[m]))].join(','));
      }
      if (fid !== undefined) lines.push(`fid,${fmt(fid)}`);
      console.log(lines.join('\n'));
    } finally {
      stopper.dispose();
      await evaluator.release();
    }
  },
};

/** Quotes a CSV field when needed. */
function csvField(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
