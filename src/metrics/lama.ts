/**
 * LaMa's inpainting evaluation (`saicinpainting/evaluation/evaluator.py` and
 * `losses/base_loss.py`, run by `bin/evaluate_predicts.py`, which DiffIR-inpainting uses for
 * its tables): SSIM and LPIPS per image (mean and population std), FID between the
 * predictions and the images, `lpips_fid100_f1`, each overall (`total`) and per group of
 * images by mask area (`np.linspace(0, 1, bins + 1)` edges, names such as `10-20%`; a group
 * with one image has no FID). {@link lamaTable} prints it as `evaluate_predicts.py` writes its
 * CSV (pandas, tab-separated, `%.4f`).
 */
import type { SessionOptions } from '../runtime/session.js';
import type { Image8 } from './color.js';
import { fidStatistics, frechetDistance } from './frechet.js';
import { FidInception, FID_DIM } from './inception.js';
import { Lpips } from './lpips.js';
import { lamaSsim } from './psnr-ssim.js';
import { findMetricFile } from './weights.js';

/** The scores of LaMa's evaluator, in its column order. */
export const LAMA_SCORES = ['ssim', 'lpips', 'fid'] as const;
export type LamaScore = (typeof LAMA_SCORES)[number];

/** Name of the combined score LaMa reports when it has both LPIPS and FID. */
export const LAMA_F1 = 'lpips_fid100_f1';

/** One evaluated sample. */
export interface LamaImageResult {
  readonly name: string;
  /** Share of the image covered by the mask (see `maskArea`). */
  readonly area: number;
  readonly ssim?: number;
  readonly lpips?: number;
  /** FID Inception features of the prediction and of the image (2048 each). */
  readonly features?: { readonly prediction: Float32Array; readonly image: Float32Array };
}

/** A score's statistics in one group: `std` for the per-image scores only. */
export interface LamaStat {
  readonly mean: number;
  readonly std?: number;
}

/** One row of the report: a mask-area group or `total`. */
export interface LamaGroup {
  readonly name: string;
  readonly count: number;
  readonly scores: Readonly<Record<string, LamaStat>>;
}

/** The bin edges `np.linspace(0, 1, bins + 1)` (numpy: `i · (1/bins)`, the last exactly 1). */
export function binEdges(bins: number): number[] {
  if (!Number.isInteger(bins) || bins < 1) throw new Error(`the number of area bins must be a positive integer, got ${bins}`);
  const step = 1 / bins;
  return Array.from({ length: bins + 1 }, (_, i) => (i === bins ? 1 : i * step));
}

/** Python's `round(x, n)` then `'{:.nf}'.format(...)` (halves to even). */
function pyFixed(x: number, n: number): string {
  const k = 10 ** n;
  const s = x * k;
  const f = Math.floor(s);
  const r = s - f === 0.5 ? (f % 2 === 0 ? f : f + 1) / k : x;
  return r.toFixed(n);
}

/** The group names of LaMa's evaluator (`_get_bin_edges`): `0-10%`, `10-20%`, ... for 10 bins. */
export function binNames(bins: number): string[] {
  const e = binEdges(bins);
  const digits = Math.max(0, Math.ceil(Math.log10(bins)) - 1);
  return Array.from({ length: bins }, (_, i) => `${pyFixed(100 * e[i]!, digits)}-${pyFixed(100 * e[i + 1]!, digits)}%`);
}

/** The bin of a mask area: `searchsorted(edges, area, side='right') - 1`, an area of 1 in the last bin. */
export function binOf(area: number, bins: number): number {
  const e = binEdges(bins);
  let i = 0;
  while (i < e.length && e[i]! <= area) i++;
  return Math.min(Math.max(i - 1, 0), bins - 1);
}

function meanStd(v: readonly number[]): LamaStat {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  return { mean, std: Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length) };
}

/** FID of a set of samples (NaN for fewer than two, as LaMa's groups of one). */
function fidOf(rows: readonly LamaImageResult[]): number {
  if (rows.length < 2) return NaN;
  const dim = rows[0]!.features!.prediction.length;
  const cat = (k: 'prediction' | 'image'): Float32Array => {
    const out = new Float32Array(rows.length * dim);
    rows.forEach((r, i) => out.set(r.features![k], i * dim));
    return out;
  };
  return frechetDistance(fidStatistics(cat('prediction'), rows.length, dim), fidStatistics(cat('image'), rows.length, dim)).value;
}

/** `lpips_fid100_f1` of LaMa's evaluator (bigger is better). */
export function lpipsFid100F1(lpips: number, fid: number, fidScale = 100): number {
  const negLpips = 1 - lpips;
  const fidRel = Math.max(0, fidScale - fid) / fidScale;
  return (2 * negLpips * fidRel) / (negLpips + fidRel + 1e-3);
}

function groupScores(rows: readonly LamaImageResult[], scores: readonly LamaScore[]): Record<string, LamaStat> {
  const out: Record<string, LamaStat> = {};
  for (const s of scores) {
    if (s === 'fid') out.fid = { mean: fidOf(rows) };
    else out[s] = meanStd(rows.map((r) => r[s]!));
  }
  return out;
}

/**
 * The evaluator's results: `total` and one group per mask-area bin that holds images, in the
 * order pandas prints them (labels sorted as strings, which is numeric order for 10 bins).
 * `scores` are those computed for every row (`features` present for `fid`).
 */
export function lamaReport(rows: readonly LamaImageResult[], scores: readonly LamaScore[], bins = 10): LamaGroup[] {
  if (rows.length === 0) throw new Error('no images to evaluate');
  for (const s of scores) {
    const missing = rows.find((r) => (s === 'fid' ? !r.features : r[s] === undefined));
    if (missing) throw new Error(`${missing.name}: no ${s} value`);
  }
  const names = binNames(bins);
  const byBin = new Map<number, LamaImageResult[]>();
  for (const r of rows) {
    const b = binOf(r.area, bins);
    byBin.set(b, [...(byBin.get(b) ?? []), r]);
  }
  const total = groupScores(rows, scores);
  if (scores.includes('lpips') && scores.includes('fid')) total[LAMA_F1] = { mean: lpipsFid100F1(total.lpips!.mean, total.fid!.mean) };
  const groups: LamaGroup[] = [...byBin].map(([b, rs]) => ({ name: names[b]!, count: rs.length, scores: groupScores(rs, scores) }));
  groups.push({ name: 'total', count: rows.length, scores: total });
  return groups.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The report as `evaluate_predicts.py` writes it: `pd.DataFrame(results).stack(1).unstack(0)`,
 * all-NaN columns dropped, `to_csv(sep='\t', float_format='%.4f')` — two header rows (score,
 * statistic; columns sorted), one row per group, NaN as an empty field.
 */
export function lamaTable(groups: readonly LamaGroup[]): string {
  const cols: [string, 'mean' | 'std'][] = [];
  const names = [...new Set(groups.flatMap((g) => Object.keys(g.scores)))].sort();
  for (const s of names) {
    for (const stat of ['mean', 'std'] as const) {
      if (groups.some((g) => !Number.isNaN(g.scores[s]?.[stat] ?? NaN))) cols.push([s, stat]);
    }
  }
  const fmt = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? '' : v.toFixed(4));
  const lines = [['', ...cols.map((c) => c[0])].join('\t'), ['', ...cols.map((c) => c[1])].join('\t')];
  for (const g of groups) lines.push([g.name, ...cols.map(([s, stat]) => fmt(g.scores[s]?.[stat]))].join('\t'));
  return `${lines.join('\n')}\n`;
}

/** One prediction to score with its image and mask area. */
export interface LamaSampleImages {
  readonly name: string;
  readonly area: number;
  readonly prediction: Image8;
  readonly image: Image8;
}

/** LaMa's scores with their networks loaded: SSIMScore, LPIPSScore (vgg), FIDScore's features. */
export class LamaEvaluator {
  private constructor(
    readonly scores: readonly LamaScore[],
    private readonly lpips: Lpips | null,
    private readonly inception: FidInception | null,
  ) {}

  /** Locates every weight file the scores need (`--weights-dir` first, see weights.ts), then loads them. */
  static async create(scores: readonly LamaScore[], o: { weightsDir?: string; session?: SessionOptions; env?: NodeJS.ProcessEnv } = {}): Promise<LamaEvaluator> {
    const find = (f: Parameters<typeof findMetricFile>[0]): string => findMetricFile(f, o.weightsDir, o.env ?? process.env);
    const vgg = scores.includes('lpips') ? [find('vgg16'), find('lpips-vgg')] : null;
    const inc = scores.includes('fid') ? find('inception') : null;
    const s = o.session ?? {};
    return new LamaEvaluator(scores, vgg ? Lpips.load('vgg', vgg[0]!, vgg[1]!, s) : null, inc ? await FidInception.load(inc, s) : null);
  }

  /** Per-sample results (LPIPS and Inception batched per image size). */
  async score(items: readonly LamaSampleImages[]): Promise<LamaImageResult[]> {
    for (const it of items) {
      const { prediction: p, image: g } = it;
      if (p.width !== g.width || p.height !== g.height) throw new Error(`${it.name}: the prediction is ${p.width}×${p.height} but the image is ${g.width}×${g.height}`);
    }
    const lp = new Array<number>(items.length);
    if (this.lpips) {
      const bySize = new Map<string, number[]>();
      items.forEach((it, j) => {
        const k = `${it.image.width}x${it.image.height}`;
        bySize.set(k, [...(bySize.get(k) ?? []), j]);
      });
      for (const idx of bySize.values()) {
        const d = await this.lpips.distances(idx.map((j) => items[j]!.prediction), idx.map((j) => items[j]!.image));
        idx.forEach((j, k) => (lp[j] = d[k]!.value));
      }
    }
    const fp = this.inception ? await this.inception.features(items.map((it) => it.prediction)) : null;
    const fi = this.inception ? await this.inception.features(items.map((it) => it.image)) : null;
    return items.map((it, j) => ({
      name: it.name,
      area: it.area,
      ...(this.scores.includes('ssim') ? { ssim: lamaSsim(it.prediction, it.image) } : {}),
      ...(this.lpips ? { lpips: lp[j]! } : {}),
      ...(fp && fi ? { features: { prediction: fp.slice(j * FID_DIM, (j + 1) * FID_DIM), image: fi.slice(j * FID_DIM, (j + 1) * FID_DIM) } } : {}),
    }));
  }

  /** Releases the ORT sessions. */
  async release(): Promise<void> {
    await Promise.all([this.lpips?.release(), this.inception?.release()]);
  }
}

/** The `--json` / metrics.json form of a report: per-image values with their bin, and the groups. */
export function lamaJson(rows: readonly LamaImageResult[], groups: readonly LamaGroup[], bins: number, extra: (i: number) => Record<string, string> = () => ({})): { images: Record<string, unknown>[]; groups: Record<string, unknown> } {
  const names = binNames(bins);
  return {
    images: rows.map((r, i) => ({
      name: r.name,
      ...extra(i),
      area: r.area,
      bin: names[binOf(r.area, bins)],
      ...(r.ssim !== undefined ? { ssim: r.ssim } : {}),
      ...(r.lpips !== undefined ? { lpips: r.lpips } : {}),
    })),
    groups: Object.fromEntries(groups.map((g) => [g.name, { count: g.count, ...g.scores }])),
  };
}
