/**
 * `diffir test -opt <BasicSR test option file>`: BasicSR's `test.py` (`test_pipeline`) for the
 * official DiffIR `test_*.yml` files. For each `datasets.*` entry (PairedImageDataset,
 * DeblurPairedDataset, SingleImageDataset) every LQ image is restored with the model of
 * `path.pretrain_network_g`, saved as BasicSR saves it
 * (`results/<name>/visualization/<dataset>/<image>_<suffix or name>.png`) when `val.save_img`,
 * and scored with `val.metrics` (calculate_psnr, calculate_ssim, calculate_niqe, plus
 * calculate_lpips / calculate_fid of ours). The log (`results/<name>/test_<name>_<time>.log`)
 * gives BasicSR's per-dataset summary; `results/<name>/metrics.json` holds every image's values
 * and the means. An existing `results/<name>` is renamed `<name>_archived_<time>` first, as BasicSR does.
 * Inpainting models take InpaintingDataset sets (LaMa's evaluation folders) scored by LaMa's
 * evaluator (`val.metrics` types SSIMScore, LPIPSScore, FIDScore), as DiffIR-inpainting's
 * test_*.sh + eval_*.sh do.
 */
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, rename } from 'node:fs/promises';
import { basename, dirname, extname, isAbsolute, join, resolve } from 'node:path';
import type { Command } from './command.js';
import { intOption, normalizeOpt, parseCommand } from './args.js';
import { UserError } from './errors.js';
import { InterruptHandler } from './interrupt.js';
import { firstLine } from '../errors.js';
import { OptionError, readOptions, TEST_OPTIONS_SCHEMA } from '../train/options.js';
import { listImages } from '../data/folder.js';
import { Restorer } from '../restore/restore.js';
import { loadImage, saveImage } from '../image/io.js';
import { readImage8, toUint8, type Image8 } from '../metrics/color.js';
import { psnr, ssim } from '../metrics/psnr-ssim.js';
import { niqe, loadNiqeParams, type NiqeParams } from '../metrics/niqe.js';
import { Lpips, type LpipsNet } from '../metrics/lpips.js';
import { FidInception, FID_DIM } from '../metrics/inception.js';
import { fidStatistics, frechetDistance } from '../metrics/frechet.js';
import { findMetricFile } from '../metrics/weights.js';
import { writeFileAtomic } from '../fs/atomic.js';
import { holeTensor, listLamaSamples, maskArea, readLamaMask, truncate8, type LamaSample } from '../data/lama-eval.js';
import { LamaEvaluator, lamaJson, lamaReport, lamaTable, type LamaImageResult, type LamaScore } from '../metrics/lama.js';
import type { Device } from '../runtime/session.js';

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {});

/** One image of a test set. */
interface TestItem {
  readonly lq: string;
  readonly gt: string | null;
}

/** A `val.metrics` entry resolved (`lama`: a score of LaMa's inpainting evaluator). */
interface TestMetric {
  readonly name: string;
  readonly type: 'psnr' | 'ssim' | 'niqe' | 'lpips' | 'fid' | 'lama';
  readonly lama?: LamaScore;
  readonly cropBorder: number;
  readonly testYChannel: boolean;
  readonly net: LpipsNet;
}

const METRIC_TYPES: Record<string, TestMetric['type']> = {
  calculate_psnr: 'psnr',
  calculate_ssim: 'ssim',
  calculate_niqe: 'niqe',
  calculate_lpips: 'lpips',
  calculate_fid: 'fid',
};

/** Images directly in a folder, sorted by code point as BasicSR's `sorted(scandir(...))` gives them. */
async function imagesIn(dir: string, key: string): Promise<string[]> {
  try {
    return await listImages(dir, { recursive: false });
  } catch (e) {
    throw new UserError(`${key}: ${firstLine(e)}`);
  }
}

/** BasicSR's `paired_paths_from_folder` (or `_from_meta_info_file`): GT names, LQ = filename_tmpl.format(GT stem) + GT extension. */
async function pairedItems(d: Obj, key: string, abs: (p: string) => string): Promise<TestItem[]> {
  const gtRoot = abs(String(d.dataroot_gt ?? ''));
  const lqRoot = abs(String(d.dataroot_lq ?? ''));
  if (!d.dataroot_gt || !d.dataroot_lq) throw new UserError(`${key}: ${String(d.type)} needs dataroot_gt and dataroot_lq`);
  const tmpl = typeof d.filename_tmpl === 'string' ? d.filename_tmpl : '{}';
  let gts: string[];
  if (typeof d.meta_info_file === 'string') {
    gts = readFileSync(abs(d.meta_info_file), 'utf8')
      .split('\n')
      .map((l) => l.trim().split(' ')[0]!)
      .filter((l) => l);
  } else gts = await imagesIn(gtRoot, `${key}.dataroot_gt`);
  const lqs = new Set(typeof d.meta_info_file === 'string' ? gts : await imagesIn(lqRoot, `${key}.dataroot_lq`));
  return gts.map((g) => {
    const ext = extname(g);
    const lq = `${tmpl.replace('{}', g.slice(0, g.length - ext.length))}${ext}`;
    if (!lqs.has(lq)) throw new UserError(`${key}: ${lq} is not in dataroot_lq ${lqRoot} (it pairs with ${g}; BasicSR names the LQ file filename_tmpl.format(<GT name>) + <GT extension>)`);
    return { lq: join(lqRoot, lq), gt: join(gtRoot, g) };
  });
}

/** LaMa's evaluator classes (`saicinpainting/evaluation/losses/base_loss.py`), for InpaintingDataset sets. */
const LAMA_METRIC_TYPES: Record<string, LamaScore> = { SSIMScore: 'ssim', LPIPSScore: 'lpips', FIDScore: 'fid' };

function resolveMetrics(val: Obj, where: (k: string) => string): TestMetric[] {
  return Object.entries(obj(val.metrics)).map(([name, m0]) => {
    const m = obj(m0);
    const lama = LAMA_METRIC_TYPES[String(m.type)];
    if (lama) return { name, type: 'lama', lama, cropBorder: 0, testYChannel: false, net: 'vgg' };
    const type = METRIC_TYPES[String(m.type)];
    if (!type) throw new UserError(`${where(`val.metrics.${name}.type`)}'${String(m.type)}' is not supported (use ${[...Object.keys(METRIC_TYPES), ...Object.keys(LAMA_METRIC_TYPES)].join(', ')})`);
    const net = String(m.net ?? 'alex');
    if (net !== 'alex' && net !== 'vgg') throw new UserError(`${where(`val.metrics.${name}.net`)}'${net}' is not an LPIPS net (alex or vgg)`);
    return { name, type, cropBorder: Number(m.crop_border ?? 0), testYChannel: m.test_y_channel === true, net };
  });
}

/** Local time stamp as BasicSR's `get_time_str` (`%Y%m%d_%H%M%S`). */
function timeStr(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}_${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

export const test: Command = {
  summary: "run a BasicSR test option file (the official test_*.yml): restore the test sets, save visuals, compute val.metrics",
  async run(argv) {
    const p = parseCommand(
      'test',
      '-opt test_options.yml [options]',
      {
        opt: { type: 'string', arg: 'file', help: 'BasicSR test option file (YAML)' },
        'weights-dir': { type: 'string', arg: 'dir', help: 'folder searched first for metric weights (LPIPS, FID, NIQE)' },
        seed: { type: 'string', arg: 'n', help: 'seed of the diffusion noise (default: manual_seed, else 0)' },
        threads: { type: 'string', arg: 'n', help: 'ONNX Runtime threads (default: all cores)' },
        device: { type: 'string', arg: 'cpu|cuda|webgpu', help: 'execution provider', default: 'cpu' },
        quiet: { type: 'boolean', short: 'q', help: 'print only the summary' },
      },
      normalizeOpt(argv),
    );
    if (!p) return;
    const file = typeof p.values.opt === 'string' ? p.values.opt : p.positionals[0];
    if (!file) throw new UserError("test: -opt is required; run 'diffir test --help'", 2);
    let opt: Obj;
    let whereKey: (k: string) => string;
    try {
      const f = readOptions(file, [], TEST_OPTIONS_SCHEMA);
      opt = f.opt;
      whereKey = (k) => f.where(k.split('.'));
    } catch (e) {
      if (e instanceof OptionError) throw new UserError(e.message);
      throw e;
    }
    const cwd = process.cwd();
    const abs = (q: string): string => (isAbsolute(q) ? q : resolve(cwd, q.startsWith('~/') ? `${process.env.HOME ?? ''}${q.slice(1)}` : q));
    const name = String(opt.name ?? basename(file, extname(file)));
    const path = obj(opt.path);
    const weights = path.pretrain_network_g;
    if (typeof weights !== 'string' || !weights) throw new UserError(`${whereKey('path.pretrain_network_g')}path.pretrain_network_g is required (the stage-2 checkpoint to test)`);
    const val = obj(opt.val);
    const metrics = resolveMetrics(val, whereKey);
    const saveImg = val.save_img !== false;
    const suffix = typeof val.suffix === 'string' && val.suffix ? val.suffix : name;
    const datasets = Object.entries(obj(opt.datasets)).filter(([k]) => k !== 'train');
    if (datasets.length === 0) throw new UserError(`${file}: no test datasets (datasets.test_1, val_1, ...)`);
    const threads = intOption('test', p.values, 'threads');
    const seed = intOption('test', p.values, 'seed') ?? (typeof opt.manual_seed === 'number' ? opt.manual_seed : 0);

    // Datasets first: a wrong path fails before the model loads.
    const sets: { key: string; name: string; type: string; items: TestItem[]; lama?: { root: string; samples: LamaSample[] } }[] = [];
    const lamaMetrics = metrics.filter((m) => m.type === 'lama');
    if (lamaMetrics.length && lamaMetrics.length !== metrics.length) {
      throw new UserError(`${whereKey('val.metrics')}LaMa's scores (${Object.keys(LAMA_METRIC_TYPES).join(', ')}) evaluate InpaintingDataset sets and cannot be mixed with ${metrics.filter((m) => m.type !== 'lama').map((m) => m.name).join(', ')}`);
    }
    for (const [k, d0] of datasets) {
      const d = obj(d0);
      const key = `datasets.${k}`;
      const type = String(d.type ?? '');
      let items: TestItem[];
      if (type === 'InpaintingDataset') {
        if (!d.dataroot_gt) throw new UserError(`${key}: InpaintingDataset needs dataroot_gt (LaMa's evaluation folder: <name>.png with its masks <name>_mask*.png)`);
        const root = abs(String(d.dataroot_gt));
        let samples: LamaSample[];
        try {
          samples = await listLamaSamples(root, typeof d.img_suffix === 'string' ? d.img_suffix : '.png');
        } catch (e) {
          throw new UserError(`${key}.dataroot_gt: ${firstLine(e)}`);
        }
        if (metrics.length && !lamaMetrics.length) throw new UserError(`${key}: InpaintingDataset is scored by LaMa's evaluator; val.metrics types ${Object.keys(LAMA_METRIC_TYPES).join(', ')}`);
        sets.push({ key, name: String(d.name ?? k), type, items: samples.map((x) => ({ lq: join(root, x.image), gt: join(root, x.image) })), lama: { root, samples } });
        continue;
      }
      if (lamaMetrics.length) throw new UserError(`${key}: ${lamaMetrics.map((m) => m.name).join(', ')} (LaMa's scores) evaluate InpaintingDataset sets, not ${type}`);
      if (type === 'PairedImageDataset' || type === 'DeblurPairedDataset') items = await pairedItems(d, key, abs);
      else if (type === 'SingleImageDataset') {
        if (!d.dataroot_lq) throw new UserError(`${key}: SingleImageDataset needs dataroot_lq`);
        const lqRoot = abs(String(d.dataroot_lq));
        items = (await imagesIn(lqRoot, `${key}.dataroot_lq`)).map((n) => ({ lq: join(lqRoot, n), gt: null }));
      } else throw new UserError(`${whereKey(`${key}.type`)}'${type}' is not a test dataset this implementation knows (PairedImageDataset, DeblurPairedDataset, SingleImageDataset, InpaintingDataset)`);
      const needGt = metrics.filter((m) => m.type !== 'niqe');
      if (type === 'SingleImageDataset' && needGt.length) {
        throw new UserError(`${key}: SingleImageDataset has no ground truth, so val.metrics ${needGt.map((m) => m.name).join(', ')} cannot be computed (use PairedImageDataset or keep only calculate_niqe)`);
      }
      sets.push({ key, name: String(d.name ?? k), type, items });
    }

    const weightsDir = typeof p.values['weights-dir'] === 'string' ? p.values['weights-dir'] : undefined;
    const session = { ...(threads ? { threads } : {}), device: p.values.device as Device };
    let restorer: Restorer;
    let niqeParams: NiqeParams | null = null;
    const lpips = new Map<LpipsNet, Lpips>();
    let inception: FidInception | null = null;
    let lamaEval: LamaEvaluator | null = null;
    try {
      restorer = Restorer.load(abs(weights), session);
      if (metrics.some((m) => m.type === 'niqe')) niqeParams = loadNiqeParams(findMetricFile('niqe', weightsDir));
      for (const m of metrics) {
        if (m.type === 'lpips' && !lpips.has(m.net)) {
          lpips.set(m.net, Lpips.load(m.net, findMetricFile(m.net === 'alex' ? 'alexnet' : 'vgg16', weightsDir), findMetricFile(m.net === 'alex' ? 'lpips-alex' : 'lpips-vgg', weightsDir), session));
        }
      }
      if (metrics.some((m) => m.type === 'fid')) inception = await FidInception.load(findMetricFile('inception', weightsDir), session);
    } catch (e) {
      throw new UserError(`test: ${firstLine(e)}`);
    }
    const task = restorer.config.task;
    if (task === 'sr' && typeof opt.scale === 'number' && opt.scale !== restorer.config.scale) {
      await restorer.release();
      throw new UserError(`${whereKey('scale')}scale ${opt.scale} but ${basename(weights)} is a ×${restorer.config.scale} model`);
    }
    const plain = sets.find((x) => !x.lama);
    if ((task === 'inpaint') !== !plain || (task !== 'inpaint' && sets.some((x) => x.lama))) {
      await Promise.all([restorer.release(), inception?.release(), ...[...lpips.values()].map((l) => l.release())]);
      throw new UserError(
        task === 'inpaint'
          ? `${plain!.key}: ${basename(weights)} is an inpainting model; its test sets are InpaintingDataset (LaMa's evaluation folders), not ${plain!.type}`
          : `${sets.find((x) => x.lama)!.key}: InpaintingDataset needs an inpainting model, but ${basename(weights)} is not one`,
      );
    }
    try {
      if (lamaMetrics.length) lamaEval = await LamaEvaluator.create(lamaMetrics.map((m) => m.lama!), { ...(weightsDir ? { weightsDir } : {}), session });
    } catch (e) {
      await Promise.all([restorer.release(), inception?.release(), ...[...lpips.values()].map((l) => l.release())]);
      throw new UserError(`test: ${firstLine(e)}`);
    }

    // Results folder, renamed aside if it exists (BasicSR's mkdir_and_rename).
    const resultsRoot = abs(join('results', name));
    if (existsSync(resultsRoot)) await rename(resultsRoot, `${resultsRoot}_archived_${timeStr()}`);
    await mkdir(resultsRoot, { recursive: true });
    const logFile = join(resultsRoot, `test_${name}_${timeStr()}.log`);
    const log = async (line: string, show = true): Promise<void> => {
      await appendFile(logFile, `${new Date().toISOString()} INFO: ${line}\n`);
      if (show && p.values.quiet !== true) console.error(line);
    };
    await log(`diffir test -opt ${file}: model ${weights} (${task}, ×${restorer.config.scale}), seed ${seed}`);
    const stopper = new InterruptHandler(() => process.stderr.write('\ndiffir: stopping after the image in progress (Ctrl-C again to quit now)\n'));
    const report: { name: string; option_file: string; model: string; seed: number; datasets: unknown[] } = { name, option_file: file, model: weights, seed, datasets: [] };
    try {
      for (const set of sets) {
        await log(`Testing ${set.name} (${set.type}, ${set.items.length} images)...`);
        const visDir = join(resultsRoot, 'visualization', set.name);
        if (saveImg) await mkdir(visDir, { recursive: true });
        if (set.lama) {
          report.datasets.push(await testInpainting(set.name, set.lama, { restorer, evaluator: lamaEval, scores: lamaMetrics.map((m) => m.lama!), seed, visDir: saveImg ? visDir : null, resultsRoot, stopper, log }));
          continue;
        }
        const rows: Record<string, number | string>[] = [];
        const feats: { sr: Float32Array[]; gt: Float32Array[] } = { sr: [], gt: [] };
        const t0 = performance.now();
        for (const [i, it] of set.items.entries()) {
          if (stopper.signal.aborted) throw new UserError(`test: interrupted in ${set.name} after ${i} of ${set.items.length} images; results so far are in ${resultsRoot}`, stopper.exitCode);
          const imgName = basename(it.lq, extname(it.lq));
          let sr: Image8;
          let gt: Image8 | null = null;
          try {
            const out = await restorer.restore(await loadImage(it.lq), { seed, signal: stopper.signal });
            sr = toUint8(out.rgb);
            if (it.gt) {
              gt = await readImage8(it.gt);
              // PairedImageDataset crops the GT to scale × the LQ size outside training.
              if (gt.height > sr.height || gt.width > sr.width) gt = cropTopLeft(gt, sr.height, sr.width);
              if (gt.height !== sr.height || gt.width !== sr.width) throw new Error(`the result is ${sr.width}×${sr.height} but the ground truth ${basename(it.gt)} is ${gt.width}×${gt.height}`);
            }
            if (saveImg) {
              const file = join(visDir, `${imgName}_${suffix}.png`);
              await saveImage(file, { rgb: out.rgb, alpha: null, gray: false, bitDepth: 8 }, { overwrite: true });
            }
          } catch (e) {
            if (e instanceof UserError) throw e;
            throw new UserError(`test: ${set.name}: ${basename(it.lq)}: ${firstLine(e)}`);
          }
          const row: Record<string, number | string> = { name: imgName };
          for (const m of metrics) {
            const o = { cropBorder: m.cropBorder, testYChannel: m.testYChannel };
            if (m.type === 'psnr') row[m.name] = psnr(sr, gt!, o);
            else if (m.type === 'ssim') row[m.name] = ssim(sr, gt!, o);
            else if (m.type === 'niqe') row[m.name] = niqe(sr, niqeParams!, m.cropBorder, imgName);
            else if (m.type === 'lpips') row[m.name] = (await lpips.get(m.net)!.distances([sr], [gt!]))[0]!.value;
          }
          if (inception) {
            feats.sr.push(await inception.features([sr]));
            feats.gt.push(await inception.features([gt!]));
          }
          rows.push(row);
          await log(`${set.name} ${i + 1}/${set.items.length} ${imgName}${metrics.filter((m) => m.type !== 'fid').map((m) => ` ${m.name} ${(row[m.name] as number).toFixed(4)}`).join('')} (${((performance.now() - t0) / 1000 / (i + 1)).toFixed(1)} s/image)`);
        }
        const mean: Record<string, number> = {};
        for (const m of metrics) {
          if (m.type === 'fid') {
            const n = feats.sr.length;
            const cat = (a: Float32Array[]) => Float32Array.from(a.flatMap((x) => Array.from(x)));
            mean[m.name] = frechetDistance(fidStatistics(cat(feats.sr), n, FID_DIM), fidStatistics(cat(feats.gt), n, FID_DIM)).value;
          } else mean[m.name] = rows.reduce((a, r) => a + (r[m.name] as number), 0) / rows.length;
        }
        if (metrics.length) await log(`Validation ${set.name}\n${metrics.map((m) => `\t # ${m.name}: ${mean[m.name]!.toFixed(4)}`).join('\n')}`);
        else await log(`${set.name}: ${rows.length} images restored${saveImg ? ` into ${visDir}` : ''}`);
        report.datasets.push({ key: set.key, name: set.name, type: set.type, images: rows, mean, seconds: (performance.now() - t0) / 1000 });
      }
      await writeFileAtomic(join(resultsRoot, 'metrics.json'), new TextEncoder().encode(`${JSON.stringify(report, null, 2)}\n`), true);
      console.log(`results: ${resultsRoot} (log ${basename(logFile)}, metrics.json${saveImg ? ', visualization/' : ''})`);
    } finally {
      stopper.dispose();
      await Promise.all([restorer.release(), inception?.release(), lamaEval?.release(), ...[...lpips.values()].map((l) => l.release())]);
    }
  },
};

function cropTopLeft(img: Image8, h: number, w: number): Image8 {
  const data = new Uint8Array(img.channels * h * w);
  for (let c = 0; c < img.channels; c++) for (let y = 0; y < h; y++) data.set(img.data.subarray((c * img.height + y) * img.width, (c * img.height + y) * img.width + w), (c * h + y) * w);
  return { channels: img.channels, height: h, width: w, data };
}

/**
 * One InpaintingDataset set: LaMa's `predict.py` (mask > 0, prediction truncated to 8 bits,
 * saved under the mask's name in the visualization folder) and `evaluate_predicts.py` on the
 * predictions (`val.metrics` of types SSIMScore / LPIPSScore / FIDScore), its table written to
 * `results/<name>/<dataset>_metrics.csv` and the log.
 */
async function testInpainting(
  setName: string,
  set: { root: string; samples: readonly LamaSample[] },
  o: {
    restorer: Restorer;
    evaluator: LamaEvaluator | null;
    scores: readonly LamaScore[];
    seed: number;
    visDir: string | null;
    resultsRoot: string;
    stopper: InterruptHandler;
    log: (line: string) => Promise<void>;
  },
): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const rows: LamaImageResult[] = [];
  for (const [i, s] of set.samples.entries()) {
    if (o.stopper.signal.aborted) throw new UserError(`test: interrupted in ${setName} after ${i} of ${set.samples.length} images; results so far are in ${o.resultsRoot}`, o.stopper.exitCode);
    try {
      const img = await loadImage(join(set.root, s.image));
      const mask = await readLamaMask(join(set.root, s.mask));
      const out = await o.restorer.restore(img, { mask: holeTensor(mask), seed: o.seed, signal: o.stopper.signal });
      const rgb = truncate8(out.rgb);
      if (o.visDir) {
        const file = join(o.visDir, s.prediction);
        await mkdir(dirname(file), { recursive: true });
        await saveImage(file, { rgb, alpha: null, gray: false, bitDepth: 8 }, { overwrite: true });
      }
      if (o.evaluator) rows.push(...(await o.evaluator.score([{ name: s.mask, area: maskArea(mask), prediction: toUint8(rgb), image: await readImage8(join(set.root, s.image)) }])));
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw new UserError(`test: ${setName}: ${s.mask}: ${firstLine(e)}`);
    }
    const last = rows.at(-1);
    await o.log(`${setName} ${i + 1}/${set.samples.length} ${s.mask}${last?.ssim !== undefined ? ` ssim ${last.ssim.toFixed(4)}` : ''}${last?.lpips !== undefined ? ` lpips ${last.lpips.toFixed(4)}` : ''} (${((performance.now() - t0) / 1000 / (i + 1)).toFixed(1)} s/image)`);
  }
  const seconds = (performance.now() - t0) / 1000;
  if (!o.evaluator) {
    await o.log(`${setName}: ${set.samples.length} images inpainted${o.visDir ? ` into ${o.visDir}` : ''}`);
    return { name: setName, type: 'InpaintingDataset', images: set.samples.map((s) => ({ name: s.mask })), seconds };
  }
  let groups;
  try {
    groups = lamaReport(rows, o.scores);
  } catch (e) {
    throw new UserError(`test: ${setName}: ${firstLine(e)}`);
  }
  const table = lamaTable(groups);
  await writeFileAtomic(join(o.resultsRoot, `${setName}_metrics.csv`), new TextEncoder().encode(table), true);
  await o.log(`Validation ${setName} (LaMa's evaluator, ${setName}_metrics.csv)\n${table.trimEnd()}`);
  return { name: setName, type: 'InpaintingDataset', ...lamaJson(rows, groups, 10, (k) => ({ image: set.samples[k]!.image })), seconds };
}
