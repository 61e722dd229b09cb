/**
 * Dense 1-D interpolation matrices with ONNX Resize semantics (as ONNX Runtime
 * computes them, which matches PyTorch's `interpolate` for the modes we emit).
 * Resize is linear, so its gradient is the transpose of these matrices.
 */

/** The Resize attributes that determine the interpolation weights. */
export interface InterpolationSpec {
  mode: 'nearest' | 'linear' | 'cubic';
  coord: string;
  nearestMode: string;
  cubicA: number;
  excludeOutside: boolean;
}

function sourceCoord(o: number, inSize: number, outSize: number, scale: number, coord: string): number {
  switch (coord) {
    case 'half_pixel':
      return (o + 0.5) / scale - 0.5;
    case 'pytorch_half_pixel':
      return outSize > 1 ? (o + 0.5) / scale - 0.5 : 0;
    case 'align_corners':
      return outSize === 1 ? 0 : (o * (inSize - 1)) / (outSize - 1);
    case 'asymmetric':
      return o / scale;
    default:
      throw new Error(`Resize gradient: coordinate_transformation_mode '${coord}' is not supported`);
  }
}

function nearestIndex(x: number, mode: string): number {
  switch (mode) {
    case 'floor':
      return Math.floor(x);
    case 'ceil':
      return Math.ceil(x);
    case 'round_prefer_ceil':
      return Math.round(x);
    case 'round_prefer_floor':
      return x === Math.floor(x) + 0.5 ? Math.floor(x) : Math.round(x);
    default:
      throw new Error(`Resize gradient: nearest_mode '${mode}' is not supported`);
  }
}

function cubicWeight(t: number, a: number): number {
  const x = Math.abs(t);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

/** The (outSize × inSize) row-major matrix M with y = M·x along one axis. */
export function interpolationMatrix(inSize: number, outSize: number, scale: number, spec: InterpolationSpec): Float32Array {
  const m = new Float64Array(outSize * inSize);
  const clampIdx = (i: number) => Math.min(inSize - 1, Math.max(0, i));
  for (let o = 0; o < outSize; o++) {
    const x = sourceCoord(o, inSize, outSize, scale, spec.coord);
    const row = o * inSize;
    if (spec.mode === 'nearest') {
      m[row + clampIdx(nearestIndex(x, spec.nearestMode))] = 1;
    } else if (spec.mode === 'linear') {
      const xc = Math.min(Math.max(x, 0), inSize - 1);
      const x0 = Math.floor(xc);
      const x1 = Math.min(x0 + 1, inSize - 1);
      const w1 = xc - x0;
      m[row + x0] += 1 - w1;
      m[row + x1] += w1;
    } else {
      const x0 = Math.floor(x);
      const t = x - x0;
      const ws = [cubicWeight(t + 1, spec.cubicA), cubicWeight(t, spec.cubicA), cubicWeight(1 - t, spec.cubicA), cubicWeight(2 - t, spec.cubicA)];
      let sum = 0;
      for (let k = 0; k < 4; k++) {
        const idx = x0 - 1 + k;
        if (spec.excludeOutside && (idx < 0 || idx >= inSize)) ws[k] = 0;
        sum += ws[k]!;
      }
      for (let k = 0; k < 4; k++) m[row + clampIdx(x0 - 1 + k)] += spec.excludeOutside ? ws[k]! / sum : ws[k]!;
    }
  }
  return Float32Array.from(m);
}
