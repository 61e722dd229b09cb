/**
 * `nn.Conv2d` (NCHW, stride 1, "same" zero padding k//2 as every DiffIR convolution uses).
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';

/** Shape of a 2-D convolution. */
export interface Conv2dOptions {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number;
  /** Whether the layer has `<prefix>.bias` (default true, as in PyTorch). */
  readonly bias?: boolean;
  /** Channel groups (`inChannels` for a depthwise convolution); default 1. */
  readonly groups?: number;
  /** Zero padding on each side; default kernelSize // 2. */
  readonly padding?: number;
}

/**
 * Convolution declaring `<prefix>.weight` (out, in/groups, k, k) and, with bias,
 * `<prefix>.bias` (out).
 */
export function conv2d(g: Graph, prefix: string, x: Value, o: Conv2dOptions): Value {
  const groups = o.groups ?? 1;
  if (x.rank !== 4 || x.dim(1) !== o.inChannels) {
    throw new Error(`conv2d ${prefix}: expected input (B, ${o.inChannels}, H, W), got ${x}`);
  }
  if (o.inChannels % groups !== 0 || o.outChannels % groups !== 0) {
    throw new Error(`conv2d ${prefix}: ${o.inChannels}→${o.outChannels} channels are not divisible by ${groups} groups`);
  }
  const k = o.kernelSize;
  const w = g.param(`${prefix}.weight`, [o.outChannels, o.inChannels / groups, k, k]);
  const b = o.bias === false ? null : g.param(`${prefix}.bias`, [o.outChannels]);
  return op.conv(x, w, b, { pads: o.padding ?? Math.floor(k / 2), group: groups });
}
