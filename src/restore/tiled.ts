/**
 * Exact tiled execution of DIRformer for images too large to run at once.
 *
 * DMTA attends over channels with statistics summed over *all* pixels (q·kᵀ and the
 * norms of q and k), so independent overlapping tiles cannot reproduce the full-image
 * result. Instead the DIRformer program runs step by step over full-resolution feature
 * maps kept in host memory, each step tile by tile:
 * - convolutions, (un)shuffles, concatenations: each tile reads its region plus a halo;
 * - a transformer block takes two passes: pass A sums q·kᵀ, Σq², Σk² over the tiles
 *   (each pixel counted once), pass B applies the attention built from the whole-image
 *   sums and the feed-forward network.
 * The output equals the whole-image output up to float rounding, for any tile size, and
 * ORT's working memory is bounded by the tile size.
 */
import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { toOnnx } from '../graph/onnx.js';
import { conv2d } from '../nn/conv.js';
import { IPR_DIM } from '../nn/ipr.js';
import { cropBorder } from '../nn/tile.js';
import { blockApply, blockStats } from '../nn/transformer.js';
import type { DiffIRConfig } from '../models/config.js';
import { type DIRformerStep, PROGRAM_INPUT, PROGRAM_OUTPUT, stepInputs } from '../models/dirformer.js';
import { Session, type SessionOptions } from '../runtime/session.js';
import { inPlaceBlock, mapScales, stepOutputChannels, stepTiles, windowsConsumer } from './memory.js';
import { foldChain, inputHalo, tiledInputs, tiledProgram, type LocalStep, type TiledStep } from './program.js';
import { overlaps, sameGrid, tileGrid, type Grid } from './grid.js';
import { SpilledMap, SpillStore } from './spill.js';
import type { HostTensor, TensorMap } from '../tensor.js';
import { abortError } from '../errors.js';
import { collectGarbage } from '#host';

/** A feature map of batch 1 in host memory: (C, H, W) row-major. */
export interface FeatureMap {
  readonly c: number;
  readonly h: number;
  readonly w: number;
  readonly data: Float32Array;
}

/** Progress of a tiled run: ORT runs done and total. */
export interface TiledProgress {
  readonly done: number;
  readonly total: number;
}

/** Options of {@link TiledDIRformer}. */
export interface TiledOptions {
  /** Tile side in network-input pixels (a multiple of the model's padding multiple). */
  readonly tile: number;
  readonly session?: SessionOptions;
  /**
   * Keep the sessions for the next run (default false: each step's sessions are released when
   * the step ends). Kept, ~100 sessions hold about 4× the weights (measured: deblur-gopro,
   * 103 MB of weights, +0.45 GB RSS) but the next image of the same size creates none
   * (2–3 s per image).
   */
  readonly keepSessions?: boolean;
}

/** Maps of a run kept in a temporary spill file instead of host memory (see `spillPlan`). */
export interface TiledSpill {
  /** Names of the program's maps to spill. */
  readonly maps: ReadonlySet<string>;
  /** Disk bytes the spill files need at the most (checked against the free space first). */
  readonly diskBytes: number;
  /** Folder for the spill files' folder (default: the OS temp folder). */
  readonly dir?: string;
}

/** Options of one run. */
export interface TiledRunOptions {
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: TiledProgress) => void;
  readonly spill?: TiledSpill;
}


/**
 * Copies a (c, th+2·halo, tw+2·halo) window of `m` at (y0, x0) − halo, zero outside the
 * map, into `out` when given (reused across tiles) or a new array.
 */
export function readTile(m: FeatureMap, y0: number, x0: number, th: number, tw: number, halo: number, out?: Float32Array): Float32Array {
  return readStrided(planar(m), y0, x0, th, tw, halo, out);
}

/**
 * A map's pixels in memory: (c, y, x) is at origin + c·cs + y·rs + x. A host map is planar
 * (C, H, W); a band of a spill file holds some rows as (rows, C, W), with the origin shifted
 * so that image rows index it directly.
 */
interface Strided {
  readonly c: number;
  readonly h: number;
  readonly w: number;
  readonly data: Float32Array;
  readonly origin: number;
  readonly cs: number;
  readonly rs: number;
}

const planar = (m: FeatureMap): Strided => ({ c: m.c, h: m.h, w: m.w, data: m.data, origin: 0, cs: m.h * m.w, rs: m.w });

/** {@link readTile} from any layout; only the rows the window needs must be present. */
function readStrided(m: Strided, y0: number, x0: number, th: number, tw: number, halo: number, out?: Float32Array): Float32Array {
  const H = th + 2 * halo;
  const W = tw + 2 * halo;
  const ya = Math.max(0, y0 - halo);
  const yb = Math.min(m.h, y0 + th + halo);
  const xa = Math.max(0, x0 - halo);
  const xb = Math.min(m.w, x0 + tw + halo);
  if (out) {
    if (out.length !== m.c * H * W) throw new Error('readTile: buffer size does not match the tile');
    if (ya > y0 - halo || yb < y0 + th + halo || xa > x0 - halo || xb < x0 + tw + halo) out.fill(0);
  } else out = new Float32Array(m.c * H * W);
  if (ya >= yb || xa >= xb) return out;
  for (let c = 0; c < m.c; c++) {
    for (let y = ya; y < yb; y++) {
      const src = m.origin + c * m.cs + y * m.rs;
      const dst = (c * H + (y - y0 + halo)) * W + (xa - x0 + halo);
      out.set(m.data.subarray(src + xa, src + xb), dst);
    }
  }
  return out;
}

/** Writes a (c, th, tw) tile into `m` at (y0, x0). */
function writeTile(m: FeatureMap | Strided, y0: number, x0: number, th: number, tw: number, tile: Float32Array): void {
  const d = 'origin' in m ? m : planar(m);
  for (let c = 0; c < d.c; c++) {
    for (let y = 0; y < th; y++) d.data.set(tile.subarray((c * th + y) * tw, (c * th + y + 1) * tw), d.origin + c * d.cs + (y0 + y) * d.rs + x0);
  }
}

/**
 * Writes a (c, th, tw) tile at (y0, x0) into every window of `w` that it overlaps, core or halo,
 * so that the windows need no halo filling afterwards; parts outside the map stay as they are.
 */
function scatterTile(w: TileWindows, y0: number, x0: number, th: number, tw: number, tile: Float32Array): void {
  const { halo } = w;
  const [H, W] = [w.th + 2 * halo, w.tw + 2 * halo];
  w.ys.forEach((wy, yi) => {
    const ya = Math.max(y0, wy - halo);
    const yb = Math.min(y0 + th, wy + w.th + halo);
    if (ya >= yb) return;
    w.xs.forEach((wx, xi) => {
      const xa = Math.max(x0, wx - halo);
      const xb = Math.min(x0 + tw, wx + w.tw + halo);
      if (xa >= xb) return;
      copyPlanes(tile, th * tw, tw, (ya - y0) * tw + (xa - x0), w.data[yi * w.xs.length + xi]!, H * W, W, (ya - wy + halo) * W + (xa - wx + halo), w.c, yb - ya, xb - xa);
    });
  });
}

/**
 * Band buffers reused from step to step. Bands of a 12 MP map are ~250 MB each; dropped after
 * every step, the last step's were still unreclaimed garbage when the next step allocated its
 * own (measured: two 240 MB arrays a step peak at twice their size).
 */
class BandPool {
  private free: Float32Array[] = [];
  private used: Float32Array[] = [];

  /** A band of `n` floats: the smallest free buffer that holds it, else a new one. */
  take(n: number): Float32Array {
    let best = -1;
    this.free.forEach((b, i) => {
      if (b.length >= n && (best < 0 || b.length < this.free[best]!.length)) best = i;
    });
    if (best < 0 && this.free.length > 0) {
      // None fits: the free bands are too small for this step's bands, and holding them through
      // the step would cost their size on top of the step's own (122 MB at a 2 MP concat).
      this.free = [];
      collectGarbage();
    }
    const buf = best >= 0 ? this.free.splice(best, 1)[0]! : new Float32Array(n);
    this.used.push(buf);
    return buf.subarray(0, n);
  }

  /** Ends a step: its bands are free for the next; buffers no step used since are dropped, so the pool does not grow. */
  endStep(): void {
    this.free = this.used;
    this.used = [];
  }

  clear(): void {
    this.free = [];
    this.used = [];
  }
}

/**
 * Writes a spilled map tile by tile: the output tiles of a row of tiles fill a band of rows in
 * host memory, written to the file when the row is complete (the last row of tiles overlaps
 * the one before it and rewrites those rows, as {@link writeTile} does in host memory).
 */
class BandWriter {
  private readonly band: Float32Array;
  private y0 = -1;

  constructor(
    readonly map: SpilledMap,
    private readonly th: number,
    bands: BandPool,
  ) {
    this.band = bands.take(th * map.rowFloats);
  }

  put(y0: number, x0: number, tw: number, tile: Float32Array): void {
    if (y0 !== this.y0) this.flush();
    this.y0 = y0;
    const m = this.map;
    writeTile({ c: m.c, h: m.h, w: m.w, data: this.band, origin: -y0 * m.rowFloats, cs: m.w, rs: m.rowFloats }, y0, x0, this.th, tw, tile);
  }

  /** Writes the current band (call once more after the last tile). */
  flush(): void {
    if (this.y0 >= 0) this.map.writeRows(this.y0, this.th, this.band);
    this.y0 = -1;
  }
}

/** Reads tile windows of a spilled map: the rows of one row of tiles are read once into a band. */
class BandReader {
  private readonly band: Float32Array;
  private ya = 0;
  private yb = 0;

  /** `rows`: the most rows a window needs (tile height and halos). */
  constructor(
    readonly map: SpilledMap,
    rows: number,
    bands: BandPool,
  ) {
    this.band = bands.take(Math.min(rows, map.h) * map.rowFloats);
  }

  /** {@link readTile} from the file. */
  window(y0: number, x0: number, th: number, tw: number, halo: number, out: Float32Array): Float32Array {
    const m = this.map;
    const ya = Math.max(0, y0 - halo);
    const yb = Math.min(m.h, y0 + th + halo);
    if (ya < this.ya || yb > this.yb) {
      m.readRows(ya, yb - ya, this.band);
      [this.ya, this.yb] = [ya, yb];
    }
    return readStrided({ c: m.c, h: m.h, w: m.w, data: this.band, origin: -this.ya * m.rowFloats, cs: m.w, rs: m.rowFloats }, y0, x0, th, tw, halo, out);
  }
}

/**
 * A feature map kept as the windows of one tile grid: for each tile (row-major over ys, xs)
 * the tile plus a halo of `halo`, zero outside the map (what {@link readTile} returns). The
 * two passes of the blocks that use this grid take their input tiles from here without a
 * copy; a block writes its output tiles straight into the windows of the next block, and a
 * local step whose consumers are all blocks on one grid scatters its tiles into theirs.
 */
interface TileWindows {
  readonly c: number;
  readonly th: number;
  readonly tw: number;
  readonly ys: readonly number[];
  readonly xs: readonly number[];
  readonly halo: number;
  readonly data: Float32Array[];
}

type HostMap = FeatureMap | TileWindows | SpilledMap;

type BlockStep = Extract<DIRformerStep, { kind: 'block' }>;

/** What every step of one tiled run shares. */
interface StepRun {
  /** The network input's height and width. */
  readonly h: number;
  readonly w: number;
  /** The maps alive, by name. */
  readonly maps: Map<string, HostMap>;
  readonly grids: readonly Grid[];
  readonly store: SpillStore | null;
  spilled(name: string): boolean;
  /** The IPR as a [1, 256] tensor. */
  readonly zT: HostTensor;
  /** Counts one ORT run for progress. */
  tick(): void;
  /** Throws when the run was cancelled. */
  check(): void;
}

const isWindows = (m: HostMap): m is TileWindows => 'halo' in m;

/** Throws unless windows `w` are those of grid `g` with the 2-pixel halo a step on `g` reads them with. */
function checkOnGrid(w: TileWindows, g: Grid, step: string): void {
  if (w.halo !== 2 || !sameGrid(w, g)) throw new Error(`tiled DIRformer: step ${step}: input windows are not on its grid`);
}

/** Copies `rows` rows of `cols` floats from `src` (row stride ss) at `si` to `dst` (row stride ds) at `di`, for each of `n` planes. */
function copyPlanes(src: Float32Array, sPlane: number, ss: number, si: number, dst: Float32Array, dPlane: number, ds: number, di: number, n: number, rows: number, cols: number): void {
  for (let c = 0; c < n; c++) {
    for (let y = 0; y < rows; y++) {
      const a = c * sPlane + y * ss + si;
      const b = c * dPlane + y * ds + di;
      // The halo strips are rows of 1–2 floats: a view per row would cost more than the copy.
      if (cols < 16) for (let x = 0; x < cols; x++) dst[b + x] = src[a + x]!;
      else dst.set(src.subarray(a, a + cols), b);
    }
  }
}

/**
 * Fills the halos of windows whose cores hold their tiles (each written whole by its block run,
 * zero halo included): every halo pixel inside the map is copied from the core of a tile that
 * covers it; those outside the map stay zero.
 */
function fillHalos(st: TileWindows): void {
  const { th, tw, halo, ys, xs } = st;
  const [H, W] = [th + 2 * halo, tw + 2 * halo];
  ys.forEach((wy, yi) =>
    xs.forEach((wx, xi) => {
      const dst = st.data[yi * xs.length + xi]!;
      // The ring around the core: top and bottom strips (full width), left and right (core rows).
      const ring = [
        [wy - halo, wy, wx - halo, wx + tw + halo],
        [wy + th, wy + th + halo, wx - halo, wx + tw + halo],
        [wy, wy + th, wx - halo, wx],
        [wy, wy + th, wx + tw, wx + tw + halo],
      ] as const;
      for (const [ya, yb, xa, xb] of ring) {
        ys.forEach((sy, syi) =>
          xs.forEach((sx, sxi) => {
            const y0 = Math.max(ya, sy);
            const y1 = Math.min(yb, sy + th);
            const x0 = Math.max(xa, sx);
            const x1 = Math.min(xb, sx + tw);
            if (y0 >= y1 || x0 >= x1 || (syi === yi && sxi === xi)) return;
            const src = st.data[syi * xs.length + sxi]!;
            copyPlanes(src, H * W, W, (y0 - sy + halo) * W + (x0 - sx + halo), dst, H * W, W, (y0 - wy + halo) * W + (x0 - wx + halo), st.c, y1 - y0, x1 - x0);
          }),
        );
      }
    }),
  );
}

/** 1 where the window of {@link readTile} lies inside the map, else 0. */
export function insideMask(m: { h: number; w: number }, y0: number, x0: number, th: number, tw: number, halo: number): Float32Array {
  const H = th + 2 * halo;
  const W = tw + 2 * halo;
  const out = new Float32Array(H * W);
  for (let y = 0; y < H; y++) {
    const gy = y0 - halo + y;
    if (gy < 0 || gy >= m.h) continue;
    for (let x = 0; x < W; x++) {
      const gx = x0 - halo + x;
      if (gx >= 0 && gx < m.w) out[y * W + x] = 1;
    }
  }
  return out;
}

/** Rows (or columns) that tile i owns: its core minus what earlier tiles already cover. */
function ownedFrom(starts: readonly number[], i: number, t: number): number {
  return i === 0 ? starts[0]! : Math.max(starts[i]!, starts[i - 1]! + t);
}

const f32 = (shape: number[], data: Float32Array): HostTensor => ({ dtype: 'float32', shape, data });

/** DIRformer executed tile by tile with exact results. */
export class TiledDIRformer {
  private readonly steps: TiledStep[];
  private readonly scales: Map<string, number>;
  private readonly scale = (map: string): number => this.scales.get(map)!;
  private readonly lastUse = new Map<string, number>();
  /** Tile side of each step in its output pixels (larger than the nominal tile at the deep levels). */
  private readonly tiles: { side: number; align: number }[];
  /**
   * Sessions by step, pass and tile shape. Without `keepSessions`, those of a step are released
   * when it ends, so their arenas do not pile up. With it, they outlive the run (a run releases
   * at its end those it did not use) and run without ORT's arena, so an idle one holds only its
   * weights.
   */
  private sessions = new Map<string, Promise<Session>>();
  /** Keys of the sessions the current run used. */
  private used = new Set<string>();

  constructor(
    private readonly cfg: DiffIRConfig,
    private readonly weights: TensorMap,
    private readonly o: TiledOptions,
  ) {
    this.steps = tiledProgram(cfg);
    this.scales = mapScales(cfg);
    this.steps.forEach((s, i) => tiledInputs(s).forEach((n) => this.lastUse.set(n, i)));
    for (const [name, f] of this.scales) {
      const t = o.tile * f;
      if (!Number.isInteger(t) || t < 1) throw new Error(`tile size ${o.tile} does not divide map '${name}' (scale ${f}); use a multiple of ${Math.round(1 / Math.min(...this.scales.values()))}`);
    }
    this.tiles = stepTiles(cfg, o.tile);
  }

  /** The tiles of step `i` on a network input of H×W: tile height, width and their starts. */
  grid(i: number, height: number, width: number): Grid {
    const f = this.scales.get(this.steps[i]!.output)!;
    const { side: t, align } = this.tiles[i]!;
    return tileGrid(height * f, width * f, t, align);
  }

  /** Number of ORT runs for a network input of H×W (for progress). */
  runCount(height: number, width: number): number {
    let n = 0;
    this.steps.forEach((s, i) => {
      const { ys, xs } = this.grid(i, height, width);
      n += (s.kind === 'block' ? 2 : 1) * ys.length * xs.length;
    });
    return n;
  }

  private session(key: string, build: () => Graph): Promise<Session> {
    this.used.add(key);
    let s = this.sessions.get(key);
    if (!s) {
      // Tile runs are many short parallel sections: spinning threads burnt up to twice the CPU on a
      // busy machine. Kept sessions run without ORT's arena (an idle one holds only its weights) and
      // without its memory pattern: the pattern's one block per run is larger than malloc's mmap
      // threshold, so every run faulted in fresh pages (measured: 2× the run time of a 128² block
      // tile), while tensors allocated one by one are reused from the heap across runs and sessions.
      const opts: SessionOptions = { spinning: false, ...this.o.session, ...(this.o.keepSessions ? { memoryArena: false, memoryPattern: false } : {}) };
      s = Session.create(toOnnx(build(), { params: 'initializers', weights: this.weights }), opts);
      this.sessions.set(key, s);
    }
    return s;
  }

  /** Runs DIRformer on the padded network input `input` (C, H, W) with IPR `z`. */
  async run(input: FeatureMap, z: Float32Array, r: TiledRunOptions = {}): Promise<FeatureMap> {
    if (z.length !== IPR_DIM) throw new Error(`IPR must have ${IPR_DIM} values, got ${z.length}`);
    const spill = r.spill?.maps.size ? r.spill : null;
    for (const n of spill?.maps ?? []) {
      if (n === PROGRAM_INPUT || n === PROGRAM_OUTPUT || !this.scales.has(n)) throw new Error(`tiled DIRformer: cannot spill map '${n}'`);
    }
    const store = spill ? SpillStore.open(spill.diskBytes, spill.dir) : null;
    try {
      return await this.runSteps(input, z, r, store);
    } finally {
      store?.close();
      this.pool.clear();
      this.bands.clear();
    }
  }

  private async runSteps(input: FeatureMap, z: Float32Array, r: TiledRunOptions, store: SpillStore | null): Promise<FeatureMap> {
    const maps = new Map<string, HostMap>([[PROGRAM_INPUT, input]]);
    const total = this.runCount(input.h, input.w);
    let done = 0;
    const st: StepRun = {
      h: input.h,
      w: input.w,
      maps,
      grids: this.steps.map((_, i) => this.grid(i, input.h, input.w)),
      store,
      spilled: (n) => store !== null && r.spill!.maps.has(n),
      zT: f32([1, IPR_DIM], z),
      tick: () => {
        done++;
        r.onProgress?.({ done, total });
      },
      check: () => {
        if (r.signal?.aborted) throw abortError(r.signal);
      },
    };
    this.used.clear();
    for (let i = 0; i < this.steps.length; i++) {
      const s = this.steps[i]!;
      // Each step runs in its own call: an async function's frame keeps every local of earlier
      // loop iterations (tile buffers, windows, closures over them) until they are overwritten,
      // which pinned ~1 GiB of dead maps through later steps of a 2 MP run.
      if (s.kind === 'block') await this.blockStep(i, st);
      else await this.localStep(i, st);
      this.dropInputs(i, st);
      this.bands.endStep();
      if (!this.o.keepSessions) await this.release();
    }
    this.pool.clear();
    await this.release((key) => !this.used.has(key));
    return maps.get(PROGRAM_OUTPUT) as FeatureMap;
  }

  /** Step `i`'s output map size on this run's input, and its tile grid. */
  private stepArea(i: number, st: StepRun): Grid & { H: number; W: number } {
    const f = this.scales.get(this.steps[i]!.output)!;
    return { ...st.grids[i]!, H: st.h * f, W: st.w * f };
  }

  /** Drops the maps whose last use was step `i` (in a call of its own, so that no local outlives it). */
  private dropInputs(i: number, st: StepRun): void {
    for (const name of tiledInputs(this.steps[i]!)) {
      if (this.lastUse.get(name) !== i || name === PROGRAM_INPUT) continue;
      const m = st.maps.get(name);
      // Windows that became the step's output (in place) stay.
      if (m && isWindows(m) && st.maps.get(this.steps[i]!.output) !== m) this.recycle(m);
      if (m instanceof SpilledMap) st.store!.drop(m);
      st.maps.delete(name);
    }
  }

  /** Transformer block step `i`: pass A sums q·kᵀ and the norms over all tiles, pass B applies them tile by tile. */
  private async blockStep(i: number, st: StepRun): Promise<void> {
    const s = this.steps[i]! as BlockStep;
    const { H, W, th, tw, ys, xs } = this.stepArea(i, st);
    const { maps, grids, store, tick, check, zT, spilled } = st;
    const C = s.opts.dim;
    const ch = C / s.opts.heads;
    // The input as windows of this grid with a 2-pixel halo (both passes read them): all in
    // host memory, or, spilled, each read from the file when its tile runs.
    // No local holds the input map itself: read into windows for its last use, it must die when
    // blockWindows drops it, not stay alive through the block.
    const fromMap = !isWindows(maps.get(s.input)!);
    const reader = this.bandReader(maps.get(s.input)!, th + 4);
    const win = reader ? null : this.blockWindows(maps, s.input, i, grids[i]!);
    const xBuf = reader ? new Float32Array(C * (th + 4) * (tw + 4)) : null;
    const xT = (k: number) => {
      const data = reader ? reader.window(ys[Math.floor(k / xs.length)]!, xs[k % xs.length]!, th, tw, 2, xBuf!) : win!.data[k]!;
      return f32([1, C, th + 4, tw + 4], data);
    };
    // Masks differ only where a window crosses the map's border: one per kind of crossing.
    const maskOf = new Map<string, HostTensor>();
    const mask = (k: number) => {
      const [y0, x0] = [ys[Math.floor(k / xs.length)]!, xs[k % xs.length]!];
      const key = `${Math.max(0, 2 - y0)},${Math.max(0, y0 + th + 2 - H)},${Math.max(0, 2 - x0)},${Math.max(0, x0 + tw + 2 - W)}`;
      let m = maskOf.get(key);
      if (!m) maskOf.set(key, (m = f32([1, 1, th + 4, tw + 4], insideMask({ h: H, w: W }, y0, x0, th, tw, 2))));
      return m;
    };
    const S = new Float64Array(s.opts.heads * ch * ch);
    const nq = new Float64Array(C);
    const nk = new Float64Array(C);
    // Where tiles overlap, each counts only the pixels it owns: all but a strip where it overlaps
    // the previous tile. On a grid without overlap every tile counts all its pixels, and the
    // stats graph has no ownership mask to multiply by.
    const owned = overlaps(grids[i]!);
    const statsKey = `${i}:A${owned ? 'o' : ''}:${th}x${tw}`;
    const statsS = await this.session(statsKey, () => this.statsGraph(s, th, tw, owned));
    const ownOf = new Map<string, HostTensor>();
    const own = (yi: number, xi: number): Record<string, HostTensor> => {
      if (!owned) return {};
      const oy = ownedFrom(ys, yi, th) - ys[yi]!;
      const ox = ownedFrom(xs, xi, tw) - xs[xi]!;
      let m = ownOf.get(`${oy},${ox}`);
      if (!m) {
        const d = new Float32Array(th * tw);
        for (let y = oy; y < th; y++) d.fill(1, y * tw + ox, (y + 1) * tw);
        ownOf.set(`${oy},${ox}`, (m = f32([1, 1, th, tw], d)));
      }
      return { own: m };
    };
    for (let yi = 0; yi < ys.length; yi++) {
      for (let xi = 0; xi < xs.length; xi++) {
        check();
        const k = yi * xs.length + xi;
        const res = await statsS.run({ x: xT(k), mask: mask(k), z: zT, ...own(yi, xi) });
        const add = (acc: Float64Array, v: HostTensor) => {
          const d = v.data as Float32Array;
          for (let j = 0; j < d.length; j++) acc[j]! += d[j]!;
        };
        add(S, res.S!);
        add(nq, res.nq!);
        add(nk, res.nk!);
        tick();
      }
    }
    // Pass B does not need pass A's arena: unless sessions are kept, free it before B grows its own.
    if (!this.o.keepSessions) await this.dropSessions((key) => key === statsKey);
    // Written as windows when every consumer is a block on the same grid, else as a map.
    const toFile = spilled(s.output);
    const asWindows = this.windowsGrid(i, st) !== null;
    // In place: the input's windows on this grid, dead after this block, take the output. Pass B
    // of tile k reads only window k, and the run writes it last (the graph's final Pad), so each
    // window goes from input to output within its own run. A chain of blocks then holds one map,
    // not two (deblur 2048² under 4 GB: 2 maps spilled instead of the decoder chain's 7).
    const inPlace = asWindows && win !== null && inPlaceBlock(this.steps, grids, i, spilled, this.scale);
    if (inPlace) checkOnGrid(win, grids[i]!, s.output);
    this.trimPool(asWindows && !inPlace ? TiledDIRformer.poolKey(grids[i]!, C, 2) : null);
    const writer = toFile ? new BandWriter(store!.map(C, H, W), th, this.bands) : null;
    const out: HostMap = writer ? writer.map : inPlace ? win! : asWindows ? this.windows(null, grids[i]!, 2, C) : { c: C, h: H, w: W, data: new Float32Array(C * H * W) };
    // Into windows, the run writes its tile with a zero 2-pixel border straight into the tile's
    // window (one contiguous write); the halos are filled from the neighbours after the pass.
    const pad = isWindows(out) ? 2 : 0;
    const apply = await this.session(`${i}:B${pad ? 'p' : ''}:${th}x${tw}`, () => this.applyGraph(s, th, tw, pad));
    // Otherwise into one tile buffer, copied to the map or the band after each run.
    const yb = pad ? null : f32([1, C, th, tw], new Float32Array(C * th * tw));
    const sums = {
      S: f32([1, s.opts.heads, ch, ch], Float32Array.from(S)),
      nq: f32([1, s.opts.heads, ch, 1], Float32Array.from(nq)),
      nk: f32([1, s.opts.heads, ch, 1], Float32Array.from(nk)),
    };
    for (let yi = 0; yi < ys.length; yi++) {
      for (let xi = 0; xi < xs.length; xi++) {
        check();
        const k = yi * xs.length + xi;
        const y = isWindows(out) ? f32([1, C, th + 4, tw + 4], out.data[k]!) : yb!;
        await apply.run({ x: xT(k), mask: mask(k), z: zT, ...sums }, undefined, { y });
        if (writer) writer.put(ys[yi]!, xs[xi]!, tw, yb!.data as Float32Array);
        else if (!isWindows(out) && !(out instanceof SpilledMap)) writeTile(out, ys[yi]!, xs[xi]!, th, tw, yb!.data as Float32Array);
        tick();
      }
    }
    writer?.flush();
    if (isWindows(out)) fillHalos(out);
    if (fromMap && win && !inPlace) this.recycle(win);
    maps.set(s.output, out);
  }

  /** A local step or chain `i` (convolution, shuffle, concatenation, addition): each output tile from its input windows. */
  private async localStep(i: number, st: StepRun): Promise<void> {
    const s = this.steps[i]! as Exclude<TiledStep, BlockStep>;
    const { H, W, th, tw, ys, xs } = this.stepArea(i, st);
    const { maps, store, tick, check, spilled } = st;
    this.trimPool(null);
    const ins = tiledInputs(s).map((n) => maps.get(n)!);
    // Windows (a block's output, see readsWindows) are fed as they are, on this step's grid.
    ins.forEach((m) => isWindows(m) && checkOnGrid(m, st.grids[i]!, s.output));
    const c = stepOutputChannels(s, ins.map((m) => m.c));
    const writer = spilled(s.output) ? new BandWriter(store!.map(c, H, W), th, this.bands) : null;
    // Consumed only by blocks on one grid, the output goes straight into their input windows
    // (halos included): no map, and no copy of it into windows when the first block starts.
    const wg = writer ? null : this.windowsGrid(i, st);
    const win = wg ? this.windows(null, wg, 2, c, true) : null;
    const out: FeatureMap | null = writer || win ? null : { c, h: H, w: W, data: new Float32Array(c * H * W) };
    const fromWindows = ins.map(isWindows);
    const local = await this.session(`${i}:L${fromWindows.map((w) => (w ? 'w' : 'm')).join('')}:${th}x${tw}`, () => this.localGraph(s, ins, th, tw));
    // Input windows and the output tile reuse their buffers across tiles.
    const wins = ins.map((m, k) => {
      if (isWindows(m)) return { read: (tile: number) => f32([1, m.c, th + 4, tw + 4], m.data[tile]!) };
      const { g, halo } = this.inputWindow(s, k);
      const [wh, ww] = [th * g + 2 * halo, tw * g + 2 * halo];
      const reader = this.bandReader(m, wh);
      const t = f32([1, m.c, wh, ww], new Float32Array(m.c * wh * ww));
      const read = (tile: number) => {
        const [y0, x0] = [ys[Math.floor(tile / xs.length)]!, xs[tile % xs.length]!];
        if (reader) reader.window(y0 * g, x0 * g, th * g, tw * g, halo, t.data as Float32Array);
        else readTile(m as FeatureMap, y0 * g, x0 * g, th * g, tw * g, halo, t.data as Float32Array);
        return t;
      };
      return { read };
    });
    const yT = f32([1, c, th, tw], new Float32Array(c * th * tw));
    for (let yi = 0; yi < ys.length; yi++) {
      for (let xi = 0; xi < xs.length; xi++) {
        check();
        const [y0, x0] = [ys[yi]!, xs[xi]!];
        const feeds: Record<string, HostTensor> = {};
        wins.forEach(({ read }, k) => (feeds[`in${k}`] = read(yi * xs.length + xi)));
        await local.run(feeds, undefined, { y: yT });
        if (writer) writer.put(y0, x0, tw, yT.data as Float32Array);
        else if (win) scatterTile(win, y0, x0, th, tw, yT.data as Float32Array);
        else writeTile(out!, y0, x0, th, tw, yT.data as Float32Array);
        tick();
      }
    }
    writer?.flush();
    maps.set(s.output, writer?.map ?? win ?? out!);
  }

  /** The grid whose windows hold step `i`'s output in host memory (see {@link windowsConsumer}), or null: a map or a spill file. */
  private windowsGrid(i: number, st: StepRun): Grid | null {
    if (st.spilled(this.steps[i]!.output)) return null;
    const j = windowsConsumer(this.steps, st.grids, i, this.scale);
    return j < 0 ? null : st.grids[j]!;
  }

  /**
   * The input of block step `i` as windows of its grid. A map read into windows for its last
   * use is dropped at once, not after the block: with its windows and the block's output it
   * would make three maps alive.
   */
  private blockWindows(maps: Map<string, HostMap>, name: string, i: number, g: Grid): TileWindows {
    const m = maps.get(name)!;
    if (isWindows(m)) return m;
    if (m instanceof SpilledMap) throw new Error(`tiled DIRformer: map '${name}' is spilled`);
    if (this.lastUse.get(name) === i && name !== PROGRAM_INPUT) maps.delete(name);
    return this.windows(m, g, 2);
  }

  private readonly bands = new BandPool();

  /** A reader of `rows` rows at a time when `m` is spilled, else null. */
  private bandReader(m: HostMap, rows: number): BandReader | null {
    return m instanceof SpilledMap ? new BandReader(m, rows, this.bands) : null;
  }

  /** Window arrays of finished maps by grid, for the next windows of the same grid (each block run rewrites its whole window). */
  private readonly pool = new Map<string, Float32Array[][]>();

  private static poolKey(g: Grid, c: number, halo: number): string {
    return `${c}:${halo}:${g.th}x${g.tw}:${g.ys.join(',')}:${g.xs.join(',')}`;
  }

  /**
   * Windows of grid `g` with `halo`: read from map `m`, or (m null) left to be written, with `c`
   * channels. A block writes each window whole and may reuse pooled ones; `zeroed` ones are new
   * (all zero), for writers that leave the parts outside the map unwritten.
   */
  private windows(m: FeatureMap | null, g: Grid, halo: number, c = m?.c ?? 0, zeroed = false): TileWindows {
    const reuse = m || zeroed ? undefined : this.pool.get(TiledDIRformer.poolKey(g, c, halo))?.pop();
    const size = c * (g.th + 2 * halo) * (g.tw + 2 * halo);
    // One buffer for all windows, not one per window: above malloc's mmap threshold (32 MB at
    // most), it gets pages of its own that go back to the OS when it is freed. Windows of a few MB
    // each lived in malloc's heap between ORT's per-run allocations, which then could not be
    // returned: the heap stayed at 1.8 GiB with 1 GiB live in it (deblur 2048², tiles of 88).
    const slab = reuse ? null : new Float32Array(size * g.ys.length * g.xs.length);
    const data = g.ys.flatMap((y0, yi) => g.xs.map((x0, xi) => {
      const k = yi * g.xs.length + xi;
      const w = reuse ? reuse[k]! : slab!.subarray(k * size, (k + 1) * size);
      return m ? readTile(m, y0, x0, g.th, g.tw, halo, w) : w;
    }));
    return { c, th: g.th, tw: g.tw, ys: g.ys, xs: g.xs, halo, data };
  }

  /**
   * Pooled windows only serve the next windows of the same grid and channels: the rest are
   * dropped before a step allocates its output, so that they do not stay alive through the
   * following stages (tiledHostBytes does not count them).
   */
  private trimPool(keep: string | null): void {
    for (const k of [...this.pool.keys()]) if (k !== keep) this.pool.delete(k);
  }

  private recycle(w: TileWindows): void {
    const key = TiledDIRformer.poolKey(w, w.c, w.halo);
    const list = this.pool.get(key) ?? [];
    list.push(w.data);
    this.pool.set(key, list);
  }

  /** Pass A of block step `s` on a tile; with `owned`, an `own` input marks the pixels the tile counts. */
  private statsGraph(s: Extract<DIRformerStep, { kind: 'block' }>, th: number, tw: number, owned: boolean): Graph {
    const g = new Graph(`${s.prefix}:stats`);
    const C = s.opts.dim;
    // The same 2-pixel-halo window as pass B; the stats need a halo of 1.
    const x = cropBorder(g.input('x', [1, C, th + 4, tw + 4]), 1);
    const mask = cropBorder(g.input('mask', [1, 1, th + 4, tw + 4]), 1);
    const own = owned ? g.input('own', [1, 1, th, tw]) : null;
    const z = g.input('z', [1, IPR_DIM]);
    const r = blockStats(g, s.prefix, x, z, s.opts, { mask }, own);
    g.output(r.S, 'S');
    g.output(r.nq, 'nq');
    g.output(r.nk, 'nk');
    return g;
  }

  /** Pass B of block step `s` on a tile; its output tile gets a zero border of `pad` pixels (0: none). */
  private applyGraph(s: Extract<DIRformerStep, { kind: 'block' }>, th: number, tw: number, pad: number): Graph {
    const g = new Graph(`${s.prefix}:apply`);
    const C = s.opts.dim;
    const ch = C / s.opts.heads;
    const x = g.input('x', [1, C, th + 4, tw + 4]);
    const mask = g.input('mask', [1, 1, th + 4, tw + 4]);
    const z = g.input('z', [1, IPR_DIM]);
    const S = g.input('S', [1, s.opts.heads, ch, ch]);
    const nq = g.input('nq', [1, s.opts.heads, ch, 1]);
    const nk = g.input('nk', [1, s.opts.heads, ch, 1]);
    g.output(op.pad(blockApply(g, s.prefix, x, z, s.opts, { mask }, { S, nq, nk }), [0, 0, pad, pad, 0, 0, pad, pad]), 'y');
    return g;
  }

  /**
   * How input `k` of a local step is read for an output tile: `g` = input resolution over
   * output resolution (tile coordinates scale by it), `halo` = the extra pixels a
   * convolution needs around the tile.
   */
  private inputWindow(s: TiledStep, k: number): { g: number; halo: number } {
    return { g: this.scales.get(tiledInputs(s)[k]!)! / this.scales.get(s.output)!, halo: inputHalo(s, k) };
  }

  /**
   * A local step or chain on its input windows (a conv's halo is consumed: padding 0). Tile
   * windows of its grid come with a halo of 2, cropped in the graph to the halo the step needs.
   */
  private localGraph(s: TiledStep, ins: readonly HostMap[], th: number, tw: number): Graph {
    const g = new Graph(`step:${s.output}`);
    const xs = ins.map((m, k) => {
      const w = this.inputWindow(s, k);
      if (isWindows(m)) return cropBorder(g.input(`in${k}`, [1, m.c, th + 4, tw + 4]), 2 - w.halo);
      return g.input(`in${k}`, [1, m.c, th * w.g + 2 * w.halo, tw * w.g + 2 * w.halo]);
    });
    if (s.kind === 'block') throw new Error(`unexpected step ${s.kind}`);
    g.output(s.kind === 'chain' ? foldChain(s, xs, localOp) : localOp(s, xs), 'y');
    return g;
  }

  /** Releases the sessions (all, or those whose key `which` selects). */
  async release(which: (key: string) => boolean = () => true): Promise<void> {
    this.pool.clear();
    await this.dropSessions(which);
  }

  /** Releases the sessions whose key `which` selects (the window pool stays). */
  private async dropSessions(which: (key: string) => boolean): Promise<void> {
    const gone = [...this.sessions].filter(([k]) => which(k));
    for (const [k] of gone) this.sessions.delete(k);
    await Promise.all(gone.map(([, p]) => p.then((s) => s.release(), () => undefined)));
  }
}

/** One local step on its inputs in a tile graph. */
function localOp(s: LocalStep, xs: readonly Value[]): Value {
  const g = xs[0]!.graph;
  switch (s.kind) {
    case 'conv':
      return conv2d(g, s.prefix, xs[0]!, { inChannels: s.cin, outChannels: s.cout, kernelSize: s.k, bias: s.bias, padding: 0 });
    case 'unshuffle':
      return op.pixelUnshuffle(xs[0]!, s.r);
    case 'shuffle':
      return op.pixelShuffle(xs[0]!, s.r);
    case 'concat':
      return op.concat(xs, 1);
    case 'add':
      return op.add(xs[0]!, xs[1]!);
    case 'nearest':
      return op.resize(xs[0]!, { mode: 'nearest', scale: s.scale });
  }
}

