/**
 * Float pixels to integer samples, the way the official code quantises
 * (`round(clamp(x,0,1)*255)` in float32, half to even): shared by the sharp encoder in
 * `io.ts` and the browser's PNG encoder, so both write the same samples.
 */

/**
 * Quantises one value the way the official code does: clamp to [0,1], multiply by
 * `maxValue` in float32, round half to even (numpy / PyTorch `round`). NaN gives 0.
 */
export function quantize(x: number, maxValue: 255 | 65535): number {
  if (!(x > 0)) return 0;
  if (x >= 1) return maxValue;
  const v = Math.fround(Math.fround(x) * maxValue);
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Interleaved integer samples, as encoders take them. */
export interface Packed {
  data: Uint8Array | Uint16Array;
  channels: 1 | 2 | 3 | 4;
}

/** Interleaves planar float channels into integer samples, quantising like the official code. */
export function pack(rgb: Float32Array, rgbChannels: 1 | 3, alpha: Float32Array | null, hw: number, gray: boolean, maxValue: 255 | 65535): Packed {
  const cc = gray ? 1 : 3;
  const channels = (cc + (alpha ? 1 : 0)) as Packed['channels'];
  const out = maxValue === 255 ? new Uint8Array(hw * channels) : new Uint16Array(hw * channels);
  const g0 = rgbChannels === 3 ? hw : 0;
  const b0 = rgbChannels === 3 ? 2 * hw : 0;
  for (let p = 0, o = 0; p < hw; p++, o += channels) {
    const r = rgb[p]!;
    const g = rgb[g0 + p]!;
    const b = rgb[b0 + p]!;
    if (gray) {
      out[o] = quantize(r === g && g === b ? r : 0.299 * r + 0.587 * g + 0.114 * b, maxValue);
    } else {
      out[o] = quantize(r, maxValue);
      out[o + 1] = quantize(g, maxValue);
      out[o + 2] = quantize(b, maxValue);
    }
    if (alpha) out[o + cc] = quantize(alpha[p]!, maxValue);
  }
  return { data: out, channels };
}
