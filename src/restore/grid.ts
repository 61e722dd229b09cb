/** Tile grids of the tiled executor: balanced tile sides, tile starts, and a step's grid over a map. */

/**
 * The tile side to use on an axis of `size` with tiles of at most `max` (multiples of
 * `align`): the smallest aligned side giving the same number of tiles, so that the last
 * tile overlaps its neighbour as little as possible.
 */
export function balancedTile(size: number, max: number, align: number): number {
  if (max >= size) return max;
  const n = Math.ceil(size / max);
  return Math.min(max, Math.ceil(size / n / align) * align);
}

/** Tile starts covering [0, size) with tiles of `t`; the last tile is shifted back to end at `size`. */
export function tileStarts(size: number, t: number): number[] {
  if (t >= size) return [0];
  const starts: number[] = [];
  for (let s = 0; s + t < size; s += t) starts.push(s);
  starts.push(size - t);
  return starts;
}

/** Tile side per axis and tile starts of a step. */
export interface Grid {
  readonly th: number;
  readonly tw: number;
  readonly ys: readonly number[];
  readonly xs: readonly number[];
}

/** Whether two tile grids are the same. */
export function sameGrid(a: Grid, b: Grid): boolean {
  const eq = (u: readonly number[], v: readonly number[]) => u.length === v.length && u.every((x, i) => x === v[i]);
  return a.th === b.th && a.tw === b.tw && eq(a.ys, b.ys) && eq(a.xs, b.xs);
}

/** Whether some tiles of `g` overlap (the last of a row or column is shifted back onto its neighbour). */
export function overlaps(g: Grid): boolean {
  const shifted = (starts: readonly number[], t: number) => starts.length > 1 && starts[starts.length - 1]! - starts[starts.length - 2]! < t;
  return shifted(g.ys, g.th) || shifted(g.xs, g.tw);
}

/**
 * The tiles over an H×W map with sides of at most `side` (multiples of `align`), balanced per
 * axis (the same number of tiles with the least overlap): tile height, width and their starts.
 */
export function tileGrid(H: number, W: number, side: number, align: number): Grid {
  const th = Math.min(balancedTile(H, side, align), H);
  const tw = Math.min(balancedTile(W, side, align), W);
  return { th, tw, ys: tileStarts(H, th), xs: tileStarts(W, tw) };
}
