/**
 * Restoring images: the library API behind `diffir restore` and `diffir inpaint`.
 *
 * A `Restorer` holds one stage-2 checkpoint and its ORT sessions and restores images of
 * any size. Small images run as one graph; images whose whole-image working memory would
 * exceed the budget run through the exact tiled executor, with the IPR (the global prior)
 * computed once for the whole image (in windows, see `prior.ts`) and shared by every tile.
 */
import { type Device, convChannelBlock } from '../runtime/session.js';
import { SessionCache } from '../runtime/cache.js';
import { toOnnx } from '../graph/onnx.js';
import type { HostTensor } from '../tensor.js';
import { Rng } from '../random.js';
import { type DiffIRCheckpoint, loadCheckpoint } from '../models/checkpoint.js';
import { type DiffIRConfig, describeConfig, outputScale, padMultiple } from '../models/config.js';
import { IPR_DIM } from '../nn/ipr.js';
import type { LoadedImage } from '../image/io.js';
import { decodeImage, upscaleAlpha } from '#codec';
import { RESTORE_IO, checkImageSize, finishGraph, netinGraph, paddedSize, wholeImageGraph } from './graphs.js';
import { type PriorGrid, priorGridFor, priorLeastBytes, tiledPrior } from './prior.js';
import { abortError } from '../errors.js';
import { TiledDIRformer } from './tiled.js';
import { balancedTile } from './grid.js';
import { autoTile, baselineBytes, defaultMemoryBudget, fmtBytes, spillPlan, tileBytes, tiledBaseBytes, tiledHostBytes, tiledSessionBytes, wholeImageBytes, type SpillPlan } from './memory.js';

/** Where a restoration is: computing the prior, running the network, or tile runs of the tiled executor. */
export interface RestoreProgress {
  readonly phase: 'prior' | 'network' | 'tiles' | 'done';
  readonly done: number;
  readonly total: number;
}

/** How an image runs within a memory budget, and what the plan counts on (bytes). */
export interface MemoryPlan {
  /** 0 for the whole image, else the tile side. */
  readonly tile: number;
  /** Feature maps kept in a temporary file. */
  readonly spilledMaps: number;
  /** Host feature maps (and spill bands) at the planned peak. */
  readonly hostBytes: number;
  /** Temporary-file bytes at the most. */
  readonly diskBytes: number;
  /** Whether the tile sessions stay for the next image of the same size. */
  readonly keepSessions: boolean;
  /** The planned peak of the process: baseline, image, maps, ORT's tile memory and kept sessions. */
  readonly peakBytes: number;
}

/** Options of one restoration. */
export interface RestoreOptions {
  /** Inpainting mask, [1,1,H,W] with 1 = hole (see `loadMask`). Required for inpainting models. */
  readonly mask?: HostTensor<'float32'>;
  /** Tile side in network-input pixels; 0 never tiles; 'auto' (default) tiles only when needed. */
  readonly tile?: number | 'auto';
  /**
   * Memory budget in bytes (default: half the available memory): it decides between the whole
   * image and tiles, the tile size, and whether a tiled run keeps its largest feature maps in a
   * temporary file instead of host memory.
   */
  readonly memoryBudget?: number;
  /** Folder for that temporary file (default: the OS temp folder); it is deleted when the run ends. */
  readonly spillDir?: string;
  /** Seed of the diffusion's initial noise x_T (default 0): results are reproducible. */
  readonly seed?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: RestoreProgress) => void;
}

/** A restored image, ready for `saveImage` (keeps the source's alpha, gray, bit depth and metadata). */
export interface RestoredImage extends Omit<LoadedImage, 'format' | 'orientationApplied'> {
  /** The IPR the restoration used, (256). */
  readonly ipr: Float32Array;
  /** The tile side used, or 0 when the whole image ran at once. */
  readonly tile: number;
}

/** Options when loading a restorer. */
export interface RestorerOptions {
  readonly device?: Device;
  /** ORT intra-op threads (default: all cores). */
  readonly threads?: number;
}

/** A stage-2 DiffIR model ready to restore images. */
export class Restorer {
  private readonly cache: SessionCache;
  private tiled: { tile: number; keep: boolean; t: TiledDIRformer } | null = null;
  private constructor(
    /** The checkpoint (configuration and weights). */
    readonly checkpoint: DiffIRCheckpoint,
    private readonly o: RestorerOptions,
  ) {
    this.cache = new SessionCache(this.sessionOptions(), 3);
  }

  /** Loads a stage-2 checkpoint (or takes a loaded one). Stage-1 models need the ground truth and are refused. */
  static load(weights: string | DiffIRCheckpoint, o: RestorerOptions = {}): Restorer {
    const ck = typeof weights === 'string' ? loadCheckpoint(weights) : weights;
    if (ck.stage !== 2) {
      throw new Error(`${ck.file}: a stage-1 (DiffIRS1) checkpoint needs the ground truth to run; restoring needs a stage-2 (DiffIRS2) checkpoint`);
    }
    return new Restorer(ck, o);
  }

  /** The model configuration. */
  get config(): DiffIRConfig {
    return this.checkpoint.config;
  }

  /** Restores one image (a path, encoded bytes, or an already loaded image). */
  async restore(input: string | Uint8Array | LoadedImage, o: RestoreOptions = {}): Promise<RestoredImage> {
    const img = typeof input === 'string' || input instanceof Uint8Array ? await decodeImage(input) : input;
    const cfg = this.config;
    const { width: W, height: H } = img;
    if (cfg.task === 'inpaint' && !o.mask) throw new Error('this is an inpainting model: give a mask (white = hole)');
    if (cfg.task !== 'inpaint' && o.mask) throw new Error(`a mask is only for inpainting models; this one is ${describeConfig(cfg).split(' dim')[0]}`);
    if (o.mask && (o.mask.shape[2] !== H || o.mask.shape[3] !== W)) {
      throw new Error(`mask is ${o.mask.shape[3]}×${o.mask.shape[2]} but the image is ${W}×${H}; they must be the same size`);
    }
    const tile = this.plan(W, H, o);
    const [ph, pw] = paddedSize(cfg, H, W);
    const budget = o.memoryBudget ?? defaultMemoryBudget();
    const xT: HostTensor = { dtype: 'float32', shape: [1, IPR_DIM], data: new Rng(o.seed ?? 0).normals(IPR_DIM) };
    const images: Record<string, HostTensor> = { [RESTORE_IO.image]: img.rgb, ...(o.mask ? { [RESTORE_IO.mask]: o.mask } : {}) };
    const feeds: Record<string, HostTensor> = { ...images, [RESTORE_IO.xT]: xT };
    const check = () => {
      if (o.signal?.aborted) throw abortError(o.signal);
    };
    check();
    let out: HostTensor;
    let ipr: Float32Array;
    if (tile === 0) {
      o.onProgress?.({ phase: 'network', done: 0, total: 1 });
      const s = await this.cache.get(`whole:${H}x${W}`, () => toOnnx(wholeImageGraph(cfg, H, W, { channelBlock: convChannelBlock(this.o.device) }), { params: 'initializers', weights: this.checkpoint.weights }));
      check();
      const r = await s.run(feeds);
      out = r[RESTORE_IO.out]!;
      ipr = r[RESTORE_IO.ipr]!.data as Float32Array;
    } else {
      o.onProgress?.({ phase: 'prior', done: 0, total: 1 });
      const pre = await this.cache.get(`netin:${H}x${W}`, () => toOnnx(netinGraph(cfg, H, W), { params: 'initializers' }));
      const netin = (await pre.run(images))[RESTORE_IO.netin]!;
      check();
      // The prior runs in windows sized to the budget (one window when the whole image fits),
      // beside the tile sessions kept from the last image.
      const kept = this.tiled?.keep ? tiledSessionBytes(4 * this.checkpoint.parameterCount) : 0;
      const grid = this.priorGrid(ph, pw, budget - kept);
      const map = { c: netin.shape[1]!, h: ph, w: pw, data: netin.data as Float32Array };
      ipr = await tiledPrior(cfg, this.checkpoint.weights, map, xT.data as Float32Array, grid, {
        session: this.sessionOptions(),
        ...(o.signal ? { signal: o.signal } : {}),
        onProgress: (p) => o.onProgress?.({ phase: 'prior', ...p }),
      });
      // The tiled executor is kept for the next image with the same tile, and its sessions too
      // when the budget has room for them.
      const { spill, keep } = this.tiledPlan(ph, pw, tile, budget);
      if (this.tiled?.tile !== tile || this.tiled.keep !== keep) {
        await this.tiled?.t.release();
        this.tiled = { tile, keep, t: new TiledDIRformer(cfg, this.checkpoint.weights, { tile, keepSessions: keep, session: this.sessionOptions() }) };
      }
      const tiled = this.tiled.t;
      let net;
      try {
        net = await tiled.run(map, ipr, {
          ...(o.signal ? { signal: o.signal } : {}),
          ...(spill ? { spill: { maps: spill.maps, diskBytes: spill.diskBytes, ...(o.spillDir ? { dir: o.spillDir } : {}) } } : {}),
          onProgress: (p) => o.onProgress?.({ phase: 'tiles', ...p }),
        });
      } catch (e) {
        await tiled.release();
        throw e;
      }
      const fin = await this.cache.get(`finish:${H}x${W}`, () => toOnnx(finishGraph(cfg, H, W), { params: 'initializers' }));
      const ff: Record<string, HostTensor> = { [RESTORE_IO.image]: img.rgb, [RESTORE_IO.net]: { dtype: 'float32', shape: [1, 3, net.h, net.w], data: net.data } };
      if (o.mask) ff[RESTORE_IO.mask] = o.mask;
      out = (await fin.run(ff))[RESTORE_IO.out]!;
    }
    const s = outputScale(cfg);
    const alpha = img.alpha && s !== 1 ? await upscaleAlpha(img.alpha, W * s, H * s) : img.alpha;
    o.onProgress?.({ phase: 'done', done: 1, total: 1 });
    return {
      rgb: out as HostTensor<'float32'>,
      alpha,
      gray: img.gray,
      bitDepth: img.bitDepth,
      width: W * s,
      height: H * s,
      ...(img.icc ? { icc: img.icc } : {}),
      ...(img.exif ? { exif: img.exif } : {}),
      ipr: Float32Array.from(ipr),
      tile,
    };
  }

  /**
   * Decides, from the image size alone, how a `width`×`height` image will run: 0 for the whole
   * image, else the tile side. Throws a one-line error when it cannot be restored (too small,
   * or over the memory budget even in tiles), so a batch can refuse a file before decoding it.
   */
  plan(width: number, height: number, o: Pick<RestoreOptions, 'tile' | 'memoryBudget'> = {}): number {
    const cfg = this.config;
    checkImageSize(cfg, height, width);
    const [ph, pw] = paddedSize(cfg, height, width);
    const budget = o.memoryBudget ?? defaultMemoryBudget();
    const tile = this.chooseTile(ph, pw, o.tile ?? 'auto', budget);
    if (tile > 0) this.priorGrid(ph, pw, budget);
    return tile;
  }

  /**
   * How a `width`×`height` image will run within the budget, and the memory that was planned
   * for it (see {@link MemoryPlan}); throws the same one-line errors as {@link plan}.
   */
  memoryPlan(width: number, height: number, o: Pick<RestoreOptions, 'tile' | 'memoryBudget'> = {}): MemoryPlan {
    const tile = this.plan(width, height, o);
    const [ph, pw] = paddedSize(this.config, height, width);
    if (tile === 0) return { tile, spilledMaps: 0, hostBytes: 0, diskBytes: 0, keepSessions: false, peakBytes: this.wholeBytes(ph, pw) };
    const { spill, keep, peak } = this.tiledPlan(ph, pw, tile, o.memoryBudget ?? defaultMemoryBudget());
    return {
      tile,
      spilledMaps: spill?.maps.size ?? 0,
      hostBytes: this.hostBytes(ph, pw, tile, spill),
      diskBytes: spill?.diskBytes ?? 0,
      keepSessions: keep,
      peakBytes: peak,
    };
  }

  /** A tiled run's maps in a temporary file (null: none), whether its sessions are kept, and its planned peak. */
  private tiledPlan(ph: number, pw: number, tile: number, budget: number): { spill: SpillPlan | null; keep: boolean; peak: number } {
    const spill = this.spill(ph, pw, tile, budget);
    const run = this.tiledBytes(ph, pw, tile, spill);
    const sessions = tiledSessionBytes(4 * this.checkpoint.parameterCount);
    const keep = run + sessions <= budget;
    return { spill, keep, peak: run + (keep ? sessions : 0) };
  }

  /** The windows of a tiled run's prior within `budget`; throws a one-line error when even the smallest do not fit. */
  private priorGrid(ph: number, pw: number, budget: number): PriorGrid {
    const cfg = this.config;
    const base = this.tiledBase(ph, pw);
    const grid = priorGridFor(cfg, ph, pw, budget - base);
    if (grid) return grid;
    const least = base + priorLeastBytes(cfg, ph, pw);
    throw new Error(`${pw}×${ph} needs about ${fmtBytes(least)} for its prior (CPEN in windows), over the ${fmtBytes(budget)} memory budget; raise --memory-budget`);
  }

  private sessionOptions() {
    return { ...(this.o.device ? { device: this.o.device } : {}), ...(this.o.threads ? { threads: this.o.threads } : {}) };
  }

  private tiledBase(ph: number, pw: number): number {
    return tiledBaseBytes(this.config, 4 * this.checkpoint.parameterCount, ph, pw);
  }

  /**
   * Bytes of a tiled run: baseline and image, host feature maps (with those of `spill` in a
   * temporary file, only their bands) and (tile > 0) ORT's working memory for the tile.
   */
  private tiledBytes(ph: number, pw: number, tile: number, spill: SpillPlan | null = null): number {
    return this.tiledBase(ph, pw) + this.hostBytes(ph, pw, tile, spill) + (tile ? tileBytes(this.config, tile) : 0);
  }

  /** Host feature maps of a tiled run at its peak: those of `spill` in a temporary file cost only their bands. */
  private hostBytes(ph: number, pw: number, tile: number, spill: SpillPlan | null): number {
    return spill ? spill.hostBytes : tiledHostBytes(this.config, ph, pw, tile);
  }

  /** Bytes of a whole-image run: baseline and the whole-image graph. */
  private wholeBytes(ph: number, pw: number): number {
    return wholeImageBytes(this.config, ph, pw, convChannelBlock(this.o.device)) + baselineBytes(4 * this.checkpoint.parameterCount);
  }

  /**
   * The maps a tiled run keeps in a temporary file so that it fits `budget`: null when all fit in
   * host memory; throws a one-line error when even spilling does not fit.
   */
  private spill(ph: number, pw: number, tile: number, budget: number): SpillPlan | null {
    if (this.tiledBytes(ph, pw, tile) <= budget) return null;
    const rest = this.tiledBase(ph, pw) + tileBytes(this.config, tile);
    const plan = spillPlan(this.config, ph, pw, tile, budget - rest);
    if (rest + plan.hostBytes > budget) {
      const least = rest + plan.hostBytes;
      throw new Error(`${pw}×${ph} in tiles of ${tile} needs about ${fmtBytes(least)} even with its feature maps in a temporary file, over the ${fmtBytes(budget)} memory budget; use a smaller tile (or --tile auto), or raise --memory-budget`);
    }
    return plan;
  }

  /** 0 for the whole image, else the tile side; errors when the image cannot fit the budget. */
  private chooseTile(ph: number, pw: number, tile: number | 'auto', budget: number): number {
    const cfg = this.config;
    const m = padMultiple(cfg);
    const whole = this.wholeBytes(ph, pw);
    if (tile === 0) {
      if (whole > budget) {
        throw new Error(`${pw}×${ph} needs about ${fmtBytes(whole)} without tiling, over the ${fmtBytes(budget)} memory budget; allow tiling (--tile auto) or raise --memory-budget`);
      }
      return 0;
    }
    if (tile !== 'auto') {
      if (!Number.isInteger(tile) || tile < m || tile % m !== 0) throw new Error(`tile size must be a positive multiple of ${m} for this model, got ${tile}`);
      if (tile >= ph && tile >= pw && whole <= budget) return 0;
      this.spill(ph, pw, tile, budget);
      return tile;
    }
    if (whole <= budget) return 0;
    const host = this.tiledBytes(ph, pw, 0);
    const t = autoTile(cfg, ph, pw, m, Math.max(0, budget - host));
    if (t !== null) return balancedTile(Math.max(ph, pw), t, m);
    // The maps do not fit in host memory with any tile: the largest tile whose run fits with its
    // largest maps in a temporary file.
    const tb = this.tiledBase(ph, pw);
    for (let s = autoTile(cfg, ph, pw, m, budget - tb) ?? 0; s >= m; s -= m) {
      const bt = balancedTile(Math.max(ph, pw), s, m);
      const rest = tb + tileBytes(cfg, bt);
      if (rest + spillPlan(cfg, ph, pw, bt, budget - rest).hostBytes <= budget) return bt;
    }
    const least = tb + tileBytes(cfg, m) + spillPlan(cfg, ph, pw, m, 0).hostBytes;
    throw new Error(`${pw}×${ph} needs about ${fmtBytes(least)} even in tiles with its feature maps in a temporary file, over the ${fmtBytes(budget)} memory budget; raise --memory-budget or use a smaller image`);
  }

  /** Releases all sessions. */
  async release(): Promise<void> {
    await this.tiled?.t.release();
    this.tiled = null;
    await this.cache.clear();
  }
}

/** One-shot restoration: loads `weights`, restores `input`, releases the sessions. */
export async function restore(
  input: string | Uint8Array | LoadedImage,
  o: RestoreOptions & RestorerOptions & { weights: string | DiffIRCheckpoint },
): Promise<RestoredImage> {
  const r = Restorer.load(o.weights, o);
  try {
    return await r.restore(input, o);
  } finally {
    await r.release();
  }
}
