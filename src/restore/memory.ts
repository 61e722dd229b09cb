/**
 * Memory estimates that decide between running the whole image at once and the exact
 * tiled executor, and that size the tiles. The estimates count float32 feature maps of
 * the DIRformer program, with a factor for the temporaries inside a transformer block
 * (measured: deblur-gopro at 256² peaks at 1.9 GB RSS, about 4× the sum of its maps).
 */
import { freeMemory } from '#host';
import type { DiffIRConfig } from '../models/config.js';
import { dirformerProgram, PROGRAM_INPUT, PROGRAM_OUTPUT, stepInputs } from '../models/dirformer.js';
import { foldChain, inputHalo, readsWindows, tiledInputs, tiledProgram, type TiledStep } from './program.js';
import { dgfnHidden } from '../nn/dgfn.js';
import { sameGrid, tileGrid, type Grid } from './grid.js';
import { inputChannels } from '../models/config.js';

/** Default budget: half of the memory the OS reports as available. */
export function defaultMemoryBudget(): number {
  return Math.floor(freeMemory() / 2);
}

interface MapInfo {
  c: number;
  scale: number;
}

/** Every map of the DIRformer program (the tiled program's inner ones too), and the tiled program's steps. */
function mapInfo(cfg: DiffIRConfig): { maps: Map<string, MapInfo>; steps: TiledStep[] } {
  const maps = new Map<string, MapInfo>([[PROGRAM_INPUT, { c: inputChannels(cfg), scale: 1 }]]);
  for (const s of dirformerProgram(cfg)) {
    let scale = maps.get(stepInputs(s)[0]!)!.scale;
    if (s.kind === 'unshuffle') scale /= s.r;
    else if (s.kind === 'shuffle') scale *= s.r;
    else if (s.kind === 'nearest') scale *= s.scale;
    maps.set(s.output, { c: stepOutputChannels(s, stepInputs(s).map((n) => maps.get(n)!.c)), scale });
  }
  return { maps, steps: tiledProgram(cfg) };
}

/** Resolution of every map of the DIRformer program relative to the program input. */
export function mapScales(cfg: DiffIRConfig): Map<string, number> {
  return new Map([...mapInfo(cfg).maps].map(([name, m]) => [name, m.scale]));
}

/** Channels of step `s`'s output, given its inputs' channels. */
export function stepOutputChannels(s: TiledStep, inputs: readonly number[]): number {
  if (s.kind === 'chain') return foldChain(s, inputs, stepOutputChannels);
  const c = inputs[0]!;
  if (s.kind === 'conv') return s.cout;
  if (s.kind === 'unshuffle') return c * s.r * s.r;
  if (s.kind === 'shuffle') return c / (s.r * s.r);
  if (s.kind === 'concat') return inputs.reduce((n, k) => n + k, 0);
  return c;
}

/**
 * Bytes the whole-image graph needs for a padded network input of H×W, built for a runtime
 * whose convolutions run in blocks of `channelBlock` channels: four copies of every feature map,
 * or two for ORT's blocked CPU kernels, whose graph has no 3C- or 2h-channel temporaries
 * (measured peak RSS per pixel, 256²–640² deblur-gopro and 96²–224² realsr-x4: 0.38× and 0.18×
 * the four copies; two keep margins of 1.3× and 2.8×).
 */
export function wholeImageBytes(cfg: DiffIRConfig, height: number, width: number, channelBlock = 1): number {
  const { maps } = mapInfo(cfg);
  let sum = 0;
  for (const m of maps.values()) sum += m.c * m.scale * m.scale;
  return Math.ceil((channelBlock > 1 ? 2 : 4) * 4 * sum * height * width);
}

/**
 * Channels a step keeps alive per output tile pixel (inputs, outputs and a block's temporaries;
 * a chain's every map, at its resolution relative to the chain's output).
 */
function stepChannels(s: TiledStep, maps: Map<string, MapInfo>): number {
  if (s.kind === 'block') return 2 * dgfnHidden(s.opts.dim, s.opts.ffnExpansionFactor) + 3 * s.opts.dim;
  const out = maps.get(s.output)!.scale;
  const names = s.kind === 'chain' ? [...s.inputs, ...s.steps.map((t) => t.output)] : [s.output, stepInputs(s)[0]!];
  return names.reduce((n, name) => n + maps.get(name)!.c * (maps.get(name)!.scale / out) ** 2, 0);
}

/** Step footprint in floats for an output tile of side `side` (plus the largest halo, 2). */
const footprint = (c: number, side: number) => c * (side + 4) * (side + 4);

/**
 * Tile side of every step of the DIRformer program (in that step's output pixels) for a
 * nominal tile of `tile` network-input pixels. The deep levels have 2–8× fewer pixels but
 * 2–8× more channels, so a tile scaled down with the map is mostly halo and per-run
 * overhead; each step instead gets the largest side whose footprint stays within the
 * largest footprint of any step at the nominal tile, so the memory bound is unchanged.
 * `align`: what tile sides and starts of the step must be multiples of, so that they map to
 * whole pixels of its inputs (2 for a PixelShuffle, 4 for a ×4 nearest upsampling, else 1).
 */
export function stepTiles(cfg: DiffIRConfig, tile: number): { side: number; align: number }[] {
  const { maps, steps } = mapInfo(cfg);
  const nominal = steps.map((s) => tile * maps.get(s.output)!.scale);
  const bound = Math.max(...steps.map((s, i) => footprint(stepChannels(s, maps), nominal[i]!)));
  const tiles = steps.map((s, i) => {
    const out = maps.get(s.output)!.scale;
    const align = Math.max(1, ...tiledInputs(s).map((n) => out / maps.get(n)!.scale));
    const grown = Math.floor((Math.sqrt(bound / stepChannels(s, maps)) - 4) / align) * align;
    return { side: Math.max(nominal[i]!, grown), align };
  });
  // A local step that can read a block's output from its windows takes the block's tiles, so that
  // its grid is theirs (see windowsConsumer): a smaller tile than it could have, within the bound.
  steps.forEach((s, i) => {
    if (s.kind === 'block') return;
    const p = steps.findIndex((t) => t.kind === 'block' && readsWindows(s, t.output, (n) => maps.get(n)!.scale));
    if (p >= 0 && tiles[p]!.align % tiles[i]!.align === 0) tiles[i] = tiles[p]!;
  });
  return tiles;
}

/** Bytes of ORT working memory for one tile of side `tile` (network-input pixels). */
export function tileBytes(cfg: DiffIRConfig, tile: number): number {
  const { maps, steps } = mapInfo(cfg);
  let worst = 0;
  for (const s of steps) worst = Math.max(worst, 4 * footprint(stepChannels(s, maps), tile * maps.get(s.output)!.scale));
  // Calibrated on deblur-gopro at 1024² (tiles of 208 and 344): ORT's arena peaks at ~5.4× the
  // largest single step's maps.
  return Math.ceil(5.4 * worst);
}

/** Memory that is there whatever the image: runtime, libraries and the weights (bytes). */
export function baselineBytes(weightBytes: number): number {
  return 600 * 2 ** 20 + 2 * weightBytes;
}

/**
 * What a tiled run holds besides its feature maps and ORT's tile memory: the baseline and the
 * decoded image (network-input channels at the padded H×W; measured at 12 MP: 144 MB the
 * estimate had missed).
 */
export function tiledBaseBytes(cfg: DiffIRConfig, weightBytes: number, height: number, width: number): number {
  return baselineBytes(weightBytes) + 4 * inputChannels(cfg) * height * width;
}

/**
 * Bytes the tiled executor's sessions hold when kept across images (see `keepSessions`):
 * measured, deblur-gopro with 103 MB of weights: +0.45 GB RSS.
 */
export function tiledSessionBytes(weightBytes: number): number {
  return 4.5 * weightBytes;
}

/** The host-memory peak of a tiled run: floats, and the maps alive in host memory at that moment with their floats. */
interface HostPeak {
  floats: number;
  alive: Map<string, number>;
  /** Floats on disk at the most (spill files of maps not yet consumed). */
  disk: number;
}

/** What the host-memory plan of one image and tile needs per step, computed once (the spill search runs the plan many times). */
interface StepLayout {
  readonly s: TiledStep;
  readonly inputs: readonly string[];
  /** Floats of the output map, of one of its rows, and of its windows on this step's grid. */
  readonly out: { map: number; row: number; windows: number };
  /** Per input: floats of the map, of one row, and of its windows on this step's grid (blocks). */
  readonly ins: readonly { map: number; row: number; windows: number; rowsPerTile: number }[];
  /** Tile height and the block input's one tile window. */
  readonly th: number;
  readonly tileWindow: number;
  /** Whether the output is kept as windows when in host memory (see {@link windowsConsumer}). */
  readonly windowsOut: boolean;
  /** Whether a block's output takes its input's windows, given the spilled maps (see {@link inPlaceBlock}). */
  readonly inPlace: (spilled: ReadonlySet<string>) => boolean;
}

/**
 * The step on whose grid step `i`'s output is kept as tile windows (2-pixel halo) in host memory:
 * its first consumer, when all its consumers can read windows (see readsWindows) on one grid and,
 * if step `i` is a block, on its own grid too (a block writes its windows whole); else -1 (a map).
 * `scale`: a map's resolution relative to the program input. The tiled executor and the memory
 * plan both decide with this.
 */
export function windowsConsumer(steps: readonly TiledStep[], grids: readonly Grid[], i: number, scale: (map: string) => number): number {
  const s = steps[i]!;
  const consumers = steps.flatMap((t, j) => (j > i && tiledInputs(t).includes(s.output) ? [j] : []));
  const first = consumers[0];
  if (first === undefined || consumers.some((j) => !readsWindows(steps[j]!, s.output, scale) || !sameGrid(grids[j]!, grids[first]!))) return -1;
  return s.kind === 'block' && !sameGrid(grids[first]!, grids[i]!) ? -1 : first;
}

/**
 * Whether block step `i` writes its output into the windows it reads its input from: its output
 * is kept as windows (on its own grid, see {@link windowsConsumer}), and those input windows are
 * dead after the block: a copy read from a map, or the input's own windows at their last use.
 * Neither map may be spilled. The tiled executor and the memory plan both decide with this.
 */
export function inPlaceBlock(steps: readonly TiledStep[], grids: readonly Grid[], i: number, spilled: (name: string) => boolean, scale: (map: string) => number): boolean {
  const s = steps[i]!;
  if (s.kind !== 'block' || spilled(s.input) || spilled(s.output) || windowsConsumer(steps, grids, i, scale) < 0) return false;
  const producer = steps.findIndex((t) => t.output === s.input);
  const lastUse = steps.reduce((k, t, j) => (tiledInputs(t).includes(s.input) ? j : k), -1);
  return producer < 0 || windowsConsumer(steps, grids, producer, scale) < 0 || lastUse === i;
}

function layout(cfg: DiffIRConfig, height: number, width: number, tile: number): StepLayout[] {
  const { maps, steps } = mapInfo(cfg);
  const scale = (n: string) => maps.get(n)!.scale;
  const plan = tile > 0 ? stepTiles(cfg, tile) : null;
  const grids = steps.map((s, i) => {
    if (!plan) return null;
    const f = maps.get(s.output)!.scale;
    return tileGrid(height * f, width * f, plan[i]!.side, plan[i]!.align);
  });
  const sizes = (n: string, i: number) => {
    const { c, scale } = maps.get(n)!;
    const g = grids[i];
    return { map: c * scale * scale * height * width, row: c * scale * width, windows: g ? c * g.ys.length * g.xs.length * (g.th + 4) * (g.tw + 4) : 0 };
  };
  return steps.map((s, i) => {
    const g = grids[i];
    const out = maps.get(s.output)!.scale;
    const wc = g ? windowsConsumer(steps, grids as Grid[], i, scale) : -1;
    return {
      s,
      inputs: tiledInputs(s),
      out: wc >= 0 ? { ...sizes(s.output, i), windows: sizes(s.output, wc).windows } : sizes(s.output, i),
      ins: tiledInputs(s).map((n, k) => ({ ...sizes(n, i), rowsPerTile: g ? g.th * (maps.get(n)!.scale / out) + 2 * inputHalo(s, k) : 0 })),
      th: g?.th ?? 0,
      tileWindow: g && s.kind === 'block' ? maps.get(s.input)!.c * (g.th + 4) * (g.tw + 4) : 0,
      windowsOut: wc >= 0,
      inPlace: (spilled) => g !== null && inPlaceBlock(steps, grids as Grid[], i, (n) => spilled.has(n), scale),
    };
  });
}

/**
 * Follows the tiled executor's plan step by step (see {@link tiledHostBytes}) and returns its
 * host-memory peak. A map in `spilled` lives in a spill file: in host memory it costs only the
 * band of rows its producer fills (tile height × the map's width) and, per consumer, the band
 * it reads (the consumer's tile rows and halo).
 */
function hostPeak(steps: readonly StepLayout[], tiled: boolean, spilled: ReadonlySet<string>): HostPeak {
  const lastUse = new Map<string, number>();
  steps.forEach((l, i) => l.inputs.forEach((n) => lastUse.set(n, i)));
  const windowed = new Set<string>();
  const held = new Map<string, number>([[PROGRAM_INPUT, steps[0]!.ins[0]!.map]]);
  let live = held.get(PROGRAM_INPUT)!;
  let disk = 0;
  let diskPeak = 0;
  let peak: HostPeak = { floats: live, alive: new Map(held), disk: 0 };
  const drop = (n: string) => {
    live -= held.get(n)!;
    held.delete(n);
  };
  steps.forEach((l, i) => {
    const { s } = l;
    const alive = new Map(held);
    let windowsIn = 0;
    let bands = 0;
    if (s.kind === 'block' && spilled.has(s.input)) {
      bands += l.ins[0]!.rowsPerTile * l.ins[0]!.row + l.tileWindow;
    } else if (tiled && s.kind === 'block' && !windowed.has(s.input)) {
      windowsIn = l.ins[0]!.windows;
      live += windowsIn;
      alive.set(s.input, (alive.get(s.input) ?? 0) + windowsIn);
      // A map read into windows for its last use is dropped before the block runs.
      if (lastUse.get(s.input) === i && s.input !== PROGRAM_INPUT) drop(s.input);
    } else if (s.kind !== 'block') {
      l.inputs.forEach((n, k) => {
        if (spilled.has(n)) bands += l.ins[k]!.rowsPerTile * l.ins[k]!.row;
      });
    }
    if (tiled && l.inPlace(spilled)) {
      // The input's windows (a copy read from the map, or its own at their last use) become the
      // output's, which the lines below count again.
      const input = l.inputs[0]!;
      if (windowsIn > 0) {
        live -= windowsIn;
        alive.set(input, alive.get(input)! - windowsIn);
        windowsIn = 0;
      } else drop(input);
      if (!held.has(input)) alive.delete(input);
    }
    let out: number;
    if (spilled.has(s.output)) {
      out = 0;
      bands += l.th * l.out.row;
      disk += l.out.map;
      diskPeak = Math.max(diskPeak, disk);
    } else {
      out = l.windowsOut ? l.out.windows : l.out.map;
      if (l.windowsOut) windowed.add(s.output);
      alive.set(s.output, out);
    }
    held.set(s.output, out);
    live += out;
    if (live + bands > peak.floats) peak = { floats: live + bands, alive, disk: 0 };
    live -= windowsIn;
    l.inputs.forEach((n, k) => {
      if (lastUse.get(n) !== i || n === PROGRAM_INPUT) return;
      if (held.has(n)) drop(n);
      if (spilled.has(n)) disk -= l.ins[k]!.map;
    });
  });
  return { ...peak, disk: diskPeak };
}

/**
 * Bytes of the host feature maps the tiled executor keeps alive at its peak, for an H×W network
 * input, following its plan step by step. With `tile` (> 0), transformer blocks read their input
 * as tile windows (tile + a 2-pixel halo on every side), and a block whose consumers are all
 * blocks on the same tile grid writes its output as such windows instead of a map: the halos make
 * those larger than the map (e.g. +8.5 % for tiles of 96). Maps in `spilled` (tile > 0 only) live
 * in a spill file and cost only their bands of rows.
 */
export function tiledHostBytes(cfg: DiffIRConfig, height: number, width: number, tile = 0, spilled: ReadonlySet<string> = new Set()): number {
  return Math.ceil(4 * hostPeak(layout(cfg, height, width, tile), tile > 0, spilled).floats);
}

/** Which maps of a tiled run go to a spill file, and what stays: host bytes at the peak, and disk bytes at the most. */
export interface SpillPlan {
  readonly maps: ReadonlySet<string>;
  readonly hostBytes: number;
  readonly diskBytes: number;
}

/**
 * The maps to spill so that the tiled run's host maps fit `limit` bytes with tiles of `tile`.
 * Greedy: the largest map alive at the peak goes to disk until the peak fits (each spilled map
 * costs disk I/O, so the fewest large ones). When even spilling every map but the program's
 * input and output does not fit, the plan's `hostBytes` is over `limit` (the least there is).
 */
export function spillPlan(cfg: DiffIRConfig, height: number, width: number, tile: number, limit: number): SpillPlan {
  const steps = layout(cfg, height, width, tile);
  const spilled = new Set<string>();
  for (;;) {
    const p = hostPeak(steps, true, spilled);
    let best: string | null = null;
    if (4 * p.floats > limit) {
      for (const [n, f] of p.alive) if (n !== PROGRAM_INPUT && n !== PROGRAM_OUTPUT && f > 0 && (best === null || f > p.alive.get(best)!)) best = n;
    }
    if (best === null) return { maps: spilled, hostBytes: Math.ceil(4 * p.floats), diskBytes: Math.ceil(4 * p.disk) };
    spilled.add(best);
  }
}

/** The largest tile (a multiple of `multiple`, at most the image) whose working memory fits `budget`. */
export function autoTile(cfg: DiffIRConfig, height: number, width: number, multiple: number, budget: number): number | null {
  const cap = Math.max(height, width);
  let best: number | null = null;
  for (let t = multiple; t <= Math.max(cap, multiple); t += multiple) {
    if (tileBytes(cfg, t) > budget) break;
    best = t;
  }
  return best;
}

/** Formats bytes for messages: `1.2 GB`. */
export function fmtBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GB` : `${Math.max(1, Math.round(n / 2 ** 20))} MB`;
}
