/**
 * The prior (IPR) of a tiled restoration, computed exactly in windows so that its memory is
 * bounded like the tiles'.
 *
 * CPEN_S2 ends in a global average pool: the IPR depends on its 256-channel features summed
 * over the whole image, and each feature pixel sees only `cpenRadius` pixels around it. So the
 * features are computed window by window — a tile of CPEN's input map plus a halo of that
 * radius, with a mask that zeroes what lies outside the map, as the whole image's zero padding
 * does — summed over the tile, and the sums added up. Their mean then runs through CPEN's mlp
 * and the diffusion. Equal to the whole-image prior up to float summation order.
 */
import { toOnnx } from '../graph/onnx.js';
import { Session, type SessionOptions } from '../runtime/session.js';
import type { HostTensor, TensorMap } from '../tensor.js';
import { abortError } from '../errors.js';
import { type DiffIRConfig, cpenUnshuffle, inputChannels } from '../models/config.js';
import { CPEN_FEATS, cpenRadius } from '../models/cpen.js';
import { IPR_DIM } from '../nn/ipr.js';
import { RESTORE_IO, priorHeadGraph, priorTileGraph } from './graphs.js';
import { insideMask, readTile, type FeatureMap } from './tiled.js';

/** How the prior's windows cover CPEN_S2's input map (hL × wL, the padded input over `cpenUnshuffle`). */
export interface PriorGrid {
  /** Tile height and width (CPEN pixels). */
  readonly th: number;
  readonly tw: number;
  /** Tiles per column and per row. */
  readonly ny: number;
  readonly nx: number;
  /** Halo on every side: `cpenRadius`, or 0 when one tile covers the map. */
  readonly halo: number;
}

/** The window grid of the prior for a padded network input of H×W with tiles of at most `side` CPEN pixels. */
export function priorGrid(cfg: DiffIRConfig, height: number, width: number, side: number): PriorGrid {
  const u = cpenUnshuffle(cfg);
  const [hL, wL] = [height / u, width / u];
  const ny = Math.ceil(hL / side);
  const nx = Math.ceil(wL / side);
  // Balanced: the same number of tiles with the least area past the map's end.
  return { th: Math.ceil(hL / ny), tw: Math.ceil(wL / nx), ny, nx, halo: ny * nx > 1 ? cpenRadius(cfg.nEncoderRes) : 0 };
}

/**
 * Bytes one window of the prior needs: its input window (and its copy in ORT) and ORT's working
 * memory. Calibrated on deblur-gopro's CPEN, windows of 156², 284² and 540²: the peak RSS over
 * the process's baseline was 156, 421 and 1447 MiB; this gives 128, 423 and 1530 (the small
 * window's rest is session overhead, which the baseline covers).
 */
export function priorTileBytes(cfg: DiffIRConfig, grid: PriorGrid): number {
  const u = cpenUnshuffle(cfg);
  const px = (grid.th + 2 * grid.halo) * (grid.tw + 2 * grid.halo);
  return Math.ceil(4 * px * (2 * inputChannels(cfg) * u * u + 5 * 4 * CPEN_FEATS));
}

/** The grids a run may use, largest first: the whole map in one window, then tiles of multiples of 8 down to 8. */
function priorGrids(cfg: DiffIRConfig, height: number, width: number): PriorGrid[] {
  const side = Math.max(height, width) / cpenUnshuffle(cfg);
  const grids = [priorGrid(cfg, height, width, side)];
  for (let s = Math.floor(side / 8) * 8; s >= 8; s -= 8) grids.push(priorGrid(cfg, height, width, s));
  return grids;
}

/** The largest window grid whose working memory fits `budget` bytes (the whole map when it fits), or null. */
export function priorGridFor(cfg: DiffIRConfig, height: number, width: number, budget: number): PriorGrid | null {
  return priorGrids(cfg, height, width).find((g) => priorTileBytes(cfg, g) <= budget) ?? null;
}

/** The least working memory of any grid {@link priorGridFor} may choose (bytes). */
export function priorLeastBytes(cfg: DiffIRConfig, height: number, width: number): number {
  return Math.min(...priorGrids(cfg, height, width).map((g) => priorTileBytes(cfg, g)));
}

/** Options of {@link tiledPrior}. */
export interface TiledPriorOptions {
  readonly session?: SessionOptions;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: { done: number; total: number }) => void;
}

/**
 * The IPR of the padded network input `netin` (batch 1) from the initial noise `xT` (256),
 * with CPEN_S2 run over the windows of `grid`. Both sessions are released at the end.
 */
export async function tiledPrior(cfg: DiffIRConfig, weights: TensorMap, netin: FeatureMap, xT: Float32Array, grid: PriorGrid, o: TiledPriorOptions = {}): Promise<Float32Array> {
  const u = cpenUnshuffle(cfg);
  const [hL, wL] = [netin.h / u, netin.w / u];
  const { th, tw, ny, nx, halo } = grid;
  const [wh, ww] = [th + 2 * halo, tw + 2 * halo];
  const total = ny * nx;
  const sums = new Float64Array(IPR_DIM);
  const tile = await Session.create(toOnnx(priorTileGraph(cfg, wh, ww, { cy: halo, cx: halo, ch: th, cw: tw }), { params: 'initializers', weights }), o.session);
  try {
    const window = new Float32Array(netin.c * u * wh * u * ww);
    for (let i = 0; i < ny; i++) {
      for (let j = 0; j < nx; j++) {
        if (o.signal?.aborted) throw abortError(o.signal);
        const [y0, x0] = [i * th, j * tw];
        readTile(netin, u * y0, u * x0, u * th, u * tw, u * halo, window);
        // 1 where the window lies on the map: outside it the whole image has zero padding.
        const mask = insideMask({ h: hL, w: wL }, y0, x0, th, tw, halo);
        const r = await tile.run({
          [RESTORE_IO.window]: { dtype: 'float32', shape: [1, netin.c, u * wh, u * ww], data: window },
          [RESTORE_IO.mask]: { dtype: 'float32', shape: [1, 1, wh, ww], data: mask },
        });
        const s = r[RESTORE_IO.sum]!.data as Float32Array;
        for (let k = 0; k < IPR_DIM; k++) sums[k]! += s[k]!;
        o.onProgress?.({ done: i * nx + j + 1, total });
      }
    }
  } finally {
    await tile.release();
  }
  const pooled = new Float32Array(IPR_DIM);
  for (let k = 0; k < IPR_DIM; k++) pooled[k] = sums[k]! / (hL * wL);
  const head = await Session.create(toOnnx(priorHeadGraph(cfg), { params: 'initializers', weights }), o.session);
  try {
    const feeds: Record<string, HostTensor> = {
      [RESTORE_IO.pooled]: { dtype: 'float32', shape: [1, IPR_DIM], data: pooled },
      [RESTORE_IO.xT]: { dtype: 'float32', shape: [1, IPR_DIM], data: xT },
    };
    return Float32Array.from((await head.run(feeds))[RESTORE_IO.ipr]!.data as Float32Array);
  } finally {
    await head.release();
  }
}
