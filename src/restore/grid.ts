/** Tile grids of the tiled executor: balanced tile sides and tile starts along one axis. */

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
