/**
 * Evaluating restored images as the paper's tables do: per-image PSNR / SSIM (BasicSR), LPIPS
 * alex / vgg (lpips), NIQE (BasicSR), their means, and FID between two sets (pytorch-fid).
 * Used by `diffir eval` and `diffir test`. Weight files are located (and their absence
 * reported) before any work; the networks run batched on ONNX Runtime.
 */
import type { SessionOptions } from '../runtime/session.js';
import type { Image8 } from './color.js';
import { fidStatistics, frechetDistance, type FidStats } from './frechet.js';
import { FidInception, FID_DIM } from './inception.js';
import { Lpips } from './lpips.js';
import { loadNiqeParams, niqe, type NiqeParams } from './niqe.js';
import { psnr, ssim } from './psnr-ssim.js';
import { findMetricFile } from './weights.js';

/** The metrics `diffir eval --metrics` accepts. */
export const EVAL_METRICS = ['psnr', 'ssim', 'lpips-alex', 'lpips-vgg', 'niqe', 'fid'] as const;
export type EvalMetric = (typeof EVAL_METRICS)[number];

/** Metrics that compare against a reference image. */
export const REFERENCE_METRICS: ReadonlySet<EvalMetric> = new Set(['psnr', 'ssim', 'lpips-alex', 'lpips-vgg']);

/** Parses a `--metrics` list, naming an unknown entry. */
export function parseMetrics(list: string): EvalMetric[] {
  const out: EvalMetric[] = [];
  for (const raw of list.split(',')) {
    const m = raw.trim().toLowerCase();
    if (!m) continue;
    if (!(EVAL_METRICS as readonly string[]).includes(m)) throw new Error(`unknown metric '${raw.trim()}'; use some of ${EVAL_METRICS.join(', ')}`);
    if (!out.includes(m as EvalMetric)) out.push(m as EvalMetric);
  }
  if (out.length === 0) throw new Error(`no metric given; use some of ${EVAL_METRICS.join(', ')}`);
  return out;
}

/** Options of an {@link Evaluator}. */
export interface EvaluatorOptions {
  readonly metrics: readonly EvalMetric[];
  /** Pixels removed from each edge for PSNR, SSIM and NIQE (BasicSR's `crop_border`). */
  readonly crop?: number;
  /** PSNR / SSIM on the Y channel (BasicSR's `test_y_channel`). */
  readonly y?: boolean;
  /** Searched first for every weight file. */
  readonly weightsDir?: string;
  /** ORT options of the networks. */
  readonly session?: SessionOptions;
  /** Environment for locating weights (TORCH_HOME, HOME), default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
}

/** One image pair to score. */
export interface EvalPair {
  readonly name: string;
  readonly restored: Image8;
  /** Null when no reference exists (NIQE and FID only). */
  readonly reference: Image8 | null;
}

/** Per-image values keyed by metric name (no `fid`). */
export type ImageScores = Partial<Record<EvalMetric, number>>;

/** Loaded metric models and the features FID collects over the pairs. */
export class Evaluator {
  private readonly restoredFeatures: Float32Array[] = [];
  private readonly referenceFeatures: Float32Array[] = [];

  private constructor(
    readonly options: EvaluatorOptions,
    private readonly lpipsAlex: Lpips | null,
    private readonly lpipsVgg: Lpips | null,
    private readonly niqeParams: NiqeParams | null,
    private readonly inception: FidInception | null,
  ) {}

  /** Finds and loads every weight file the metrics need (all are located before any is loaded). */
  static async create(o: EvaluatorOptions): Promise<Evaluator> {
    const has = (m: EvalMetric): boolean => o.metrics.includes(m);
    const find = (f: Parameters<typeof findMetricFile>[0]): string => findMetricFile(f, o.weightsDir, o.env ?? process.env);
    const files = {
      alex: has('lpips-alex') ? [find('alexnet'), find('lpips-alex')] : null,
      vgg: has('lpips-vgg') ? [find('vgg16'), find('lpips-vgg')] : null,
      niqe: has('niqe') ? find('niqe') : null,
      inception: has('fid') ? find('inception') : null,
    };
    const s = o.session ?? {};
    return new Evaluator(
      o,
      files.alex ? Lpips.load('alex', files.alex[0]!, files.alex[1]!, s) : null,
      files.vgg ? Lpips.load('vgg', files.vgg[0]!, files.vgg[1]!, s) : null,
      files.niqe ? loadNiqeParams(files.niqe) : null,
      files.inception ? await FidInception.load(files.inception, s) : null,
    );
  }

  /** Scores a group of pairs (batched through the networks where sizes agree); FID features are kept for {@link fid}. */
  async score(pairs: readonly EvalPair[]): Promise<ImageScores[]> {
    const o = this.options;
    const crop = o.crop ?? 0;
    const out: ImageScores[] = pairs.map(() => ({}));
    const needRef = o.metrics.some((m) => REFERENCE_METRICS.has(m));
    pairs.forEach((p, i) => {
      if (needRef) {
        if (!p.reference) throw new Error(`${p.name}: ${o.metrics.filter((m) => REFERENCE_METRICS.has(m)).join(', ')} need a reference image`);
        const r = p.restored;
        const g = p.reference;
        if (r.height !== g.height || r.width !== g.width) {
          throw new Error(`${p.name}: the restored image is ${r.width}×${r.height} but the reference is ${g.width}×${g.height}; they must have the same size`);
        }
        const mo = { cropBorder: crop, testYChannel: o.y ?? false };
        if (o.metrics.includes('psnr')) out[i]!.psnr = psnr(r, g, mo);
        if (o.metrics.includes('ssim')) out[i]!.ssim = ssim(r, g, mo);
      }
      if (this.niqeParams) out[i]!.niqe = niqe(p.restored, this.niqeParams, crop, p.name);
    });
    for (const [m, net] of [['lpips-alex', this.lpipsAlex], ['lpips-vgg', this.lpipsVgg]] as const) {
      if (!net) continue;
      // One network run per image size.
      const bySize = new Map<string, number[]>();
      pairs.forEach((p, i) => {
        const k = `${p.restored.width}x${p.restored.height}`;
        bySize.set(k, [...(bySize.get(k) ?? []), i]);
      });
      for (const idx of bySize.values()) {
        const d = await net.distances(
          idx.map((i) => pairs[i]!.restored),
          idx.map((i) => pairs[i]!.reference!),
        );
        idx.forEach((i, j) => (out[i]![m] = d[j]!.value));
      }
    }
    if (this.inception) {
      this.restoredFeatures.push(await this.inception.features(pairs.map((p) => p.restored)));
      const refs = pairs.map((p) => p.reference).filter((r): r is Image8 => r !== null);
      if (refs.length) this.referenceFeatures.push(await this.inception.features(refs));
    }
    return out;
  }

  /** FID statistics of the restored (`which = 'restored'`) or reference images scored so far. */
  stats(which: 'restored' | 'reference'): FidStats {
    const chunks = which === 'restored' ? this.restoredFeatures : this.referenceFeatures;
    const n = chunks.reduce((a, c) => a + c.length / FID_DIM, 0);
    const all = new Float32Array(n * FID_DIM);
    let off = 0;
    for (const c of chunks) {
      all.set(c, off);
      off += c.length;
    }
    return fidStatistics(all, n, FID_DIM);
  }

  /** FID between the restored images and the references scored so far, or `against` statistics (e.g. from an `.npz`). */
  fid(against?: FidStats): number {
    if (!this.inception) throw new Error('FID was not asked for');
    return frechetDistance(this.stats('restored'), against ?? this.stats('reference')).value;
  }

  /** Releases the ORT sessions. */
  async release(): Promise<void> {
    await Promise.all([this.lpipsAlex?.release(), this.lpipsVgg?.release(), this.inception?.release()]);
  }
}

/** Mean of each metric over images (metrics absent from an image are skipped). */
export function meanScores(rows: readonly ImageScores[], metrics: readonly EvalMetric[]): ImageScores {
  const out: ImageScores = {};
  for (const m of metrics) {
    const v = rows.map((r) => r[m]).filter((x): x is number => x !== undefined);
    if (v.length) out[m] = v.reduce((a, b) => a + b, 0) / v.length;
  }
  return out;
}
