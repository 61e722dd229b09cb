/**
 * `diffir eval <predictions> <LaMa evaluation folder> --masks`: LaMa's `bin/evaluate_predicts.py`
 * (what DiffIR-inpainting's eval_*.sh run): every `<name>_mask*.png` of the folder with its
 * image and the prediction named like the mask; SSIM (LaMa's), LPIPS (vgg) and FID on whole
 * images, overall and per mask-area bin; printed as LaMa's tab-separated table, or with --json
 * as one object `{images, groups}`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { intOption, type ParsedOptions } from './args.js';
import { UserError, oneLine } from './errors.js';
import { countProgress } from './progress.js';
import { InterruptHandler } from './interrupt.js';
import { listLamaSamples, maskArea, readLamaMask, type LamaSample } from '../data/lama-eval.js';
import { readImage8 } from '../metrics/color.js';
import { LAMA_SCORES, LamaEvaluator, lamaJson, lamaReport, lamaTable, type LamaImageResult, type LamaScore } from '../metrics/lama.js';
import type { Device } from '../runtime/session.js';

/** Samples scored per network batch. */
const GROUP = 4;

/** A `--metrics` list (or a test file's scores) as LaMa's score names. */
export function parseLamaScores(list: string | undefined): LamaScore[] {
  if (list === undefined) return [...LAMA_SCORES];
  const want = list.split(',').map((m) => m.trim().toLowerCase()).filter((m) => m);
  for (const m of want) {
    if (!(LAMA_SCORES as readonly string[]).includes(m)) throw new UserError(`eval: --metrics: '${m}' is not a score of LaMa's evaluator; with --masks use some of ${LAMA_SCORES.join(', ')}`, 2);
  }
  if (!want.length) throw new UserError(`eval: --metrics: no metric given; with --masks use some of ${LAMA_SCORES.join(', ')}`, 2);
  return LAMA_SCORES.filter((m) => want.includes(m));
}

/** Runs the LaMa evaluation for `diffir eval --masks`. */
export async function evalMasks(positionals: readonly string[], v: ParsedOptions): Promise<void> {
  if (positionals.length !== 2) throw new UserError("eval: --masks takes the predictions folder and the LaMa evaluation folder (images and their masks), e.g. 'diffir eval predictions/ random_thick_512/ --masks'", 2);
  for (const o of ['y', 'save-stats'] as const) if (v[o] !== undefined && v[o] !== false) throw new UserError(`eval: --${o} does not apply to --masks (LaMa's evaluator scores whole RGB images)`, 2);
  if (v.crop !== '0') throw new UserError('eval: --crop does not apply to --masks (LaMa\'s evaluator scores whole images)', 2);
  const [predDir, dataDir] = positionals as [string, string];
  const scores = parseLamaScores(typeof v.metrics === 'string' ? v.metrics : undefined);
  const bins = intOption('eval', v, 'bins') ?? 10;
  if (bins < 1) throw new UserError('eval: --bins must be at least 1', 2);
  const threads = intOption('eval', v, 'threads');
  let samples: LamaSample[];
  try {
    samples = await listLamaSamples(dataDir, String(v['img-suffix'] ?? '.png'));
  } catch (e) {
    throw new UserError(`eval: ${oneLine(e)}`);
  }
  if (!existsSync(predDir)) throw new UserError(`eval: ${predDir}: folder not found`);
  const missing = samples.filter((s) => !existsSync(join(predDir, s.prediction)));
  if (missing.length) {
    const shown = missing.slice(0, 3).map((s) => s.prediction).join(', ');
    throw new UserError(`eval: ${predDir}: ${missing.length} of ${samples.length} predictions missing (${shown}${missing.length > 3 ? ', ...' : ''}); each mask <name>_mask*.png needs a prediction of the same name (diffir inpaint ${dataDir} -o ${predDir})`);
  }

  const weightsDir = typeof v['weights-dir'] === 'string' ? v['weights-dir'] : undefined;
  let evaluator: LamaEvaluator;
  try {
    evaluator = await LamaEvaluator.create(scores, { ...(weightsDir ? { weightsDir } : {}), session: { ...(threads ? { threads } : {}), device: v.device as Device } });
  } catch (e) {
    throw new UserError(`eval: ${oneLine(e)}`);
  }

  const stopper = new InterruptHandler(() => process.stderr.write('\ndiffir: stopping after the images in progress (Ctrl-C again to quit now)\n'));
  const progress = countProgress('eval', samples.length, v.quiet !== true && v.json !== true && samples.length > 1);
  const rows: LamaImageResult[] = [];
  try {
    for (let i = 0; i < samples.length; i += GROUP) {
      if (stopper.signal.aborted) throw new UserError(`eval: interrupted after ${i} of ${samples.length} images`, stopper.exitCode);
      const group = samples.slice(i, i + GROUP);
      try {
        const loaded = await Promise.all(
          group.map(async (s) => {
            const [image, prediction, mask] = await Promise.all([readImage8(join(dataDir, s.image)), readImage8(join(predDir, s.prediction)), readLamaMask(join(dataDir, s.mask))]);
            if (mask.width !== image.width || mask.height !== image.height) throw new Error(`${s.mask}: mask is ${mask.width}×${mask.height} but its image ${s.image} is ${image.width}×${image.height}`);
            return { name: s.mask, area: maskArea(mask), prediction, image };
          }),
        );
        rows.push(...(await evaluator.score(loaded)));
      } catch (e) {
        throw new UserError(`eval: ${oneLine(e)}`);
      }
      progress(Math.min(i + GROUP, samples.length));
    }
    let groups;
    try {
      groups = lamaReport(rows, scores, bins);
    } catch (e) {
      throw new UserError(`eval: ${oneLine(e)}`);
    }
    if (v.json) console.log(JSON.stringify(lamaJson(rows, groups, bins, (k) => ({ image: samples[k]!.image, prediction: samples[k]!.prediction }))));
    else process.stdout.write(lamaTable(groups));
  } finally {
    stopper.dispose();
    await evaluator.release();
  }
}
