/**
 * LaMa's `NLayerDiscriminator` (`pix2pixhd_nlayer`) as a graph, keyed by its official
 * state_dict names: `model0` = Conv(4×4, stride 2) + LeakyReLU(0.2); `model1 … model{n−1}` =
 * Conv(4×4, stride 2) + BatchNorm2d + LeakyReLU(0.2) with channels doubling up to 512;
 * `model{n}` the same with stride 1; `model{n+1}` = Conv(4×4, stride 1) to one logit channel.
 * Every conv pads by ceil((4−1)/2) = 2. It returns the logits and the n+1 feature maps before
 * them (feature matching). Its BatchNorms follow `bn` (training mode in LaMa's trainers).
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { type BatchNormState, batchNorm2d } from '../nn/batchnorm.js';

/** The discriminator's configuration (`configs/training/discriminator/pix2pixhd_nlayer.yaml`). */
export interface NLayerDiscriminatorConfig {
  /** `input_nc`: image channels. */
  readonly inputNc: number;
  /** `ndf`: channels of the first conv. */
  readonly ndf: number;
  /** `n_layers`: strided convs (the last stride-1 conv block comes on top). */
  readonly nLayers: number;
}

/** Logits (B, 1, h, w) and the `nLayers + 1` intermediate activations. */
export interface DiscriminatorOutputs {
  readonly logits: Value;
  readonly features: readonly Value[];
}

const KW = 4;
const PADW = Math.ceil((KW - 1) / 2);

/** Official parameter shapes, `model{i}.{j}.weight|bias` (BatchNorm: plus its running statistics). */
export function discriminatorParamShapes(c: NLayerDiscriminatorConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  let nf = c.ndf;
  const conv = (name: string, cin: number, cout: number) => {
    m.set(`${name}.weight`, [cout, cin, KW, KW]);
    m.set(`${name}.bias`, [cout]);
  };
  conv('model0.0', c.inputNc, nf);
  for (let n = 1; n <= c.nLayers; n++) {
    const prev = nf;
    nf = Math.min(nf * 2, 512);
    conv(`model${n}.0`, prev, nf);
    m.set(`model${n}.1.weight`, [nf]);
    m.set(`model${n}.1.bias`, [nf]);
  }
  conv(`model${c.nLayers + 1}.0`, nf, 1);
  return m;
}

/** The names of the discriminator's BatchNorm layers (`model1.1` … `model{n}.1`). */
export function discriminatorBatchNorms(c: NLayerDiscriminatorConfig): string[] {
  return Array.from({ length: c.nLayers }, (_, i) => `model${i + 1}.1`);
}

/** Builds D(x) in `g`; parameters are declared (or shared, when called twice) under their official names. */
export function nLayerDiscriminator(g: Graph, c: NLayerDiscriminatorConfig, x: Value, bn: BatchNormState): DiscriminatorOutputs {
  if (x.rank !== 4 || x.dim(1) !== c.inputNc) throw new Error(`NLayerDiscriminator: expected input (B, ${c.inputNc}, H, W), got ${x}`);
  const conv = (name: string, h: Value, cin: number, cout: number, stride: number) =>
    op.conv(h, g.param(`${name}.weight`, [cout, cin, KW, KW]), g.param(`${name}.bias`, [cout]), { stride, pads: PADW });
  const features: Value[] = [];
  let nf = c.ndf;
  let h = op.leakyRelu(conv('model0.0', x, c.inputNc, nf, 2), 0.2);
  features.push(h);
  for (let n = 1; n <= c.nLayers; n++) {
    const prev = nf;
    nf = Math.min(nf * 2, 512);
    const y = conv(`model${n}.0`, h, prev, nf, n < c.nLayers ? 2 : 1);
    h = op.leakyRelu(batchNorm2d(g, `model${n}.1`, y, bn), 0.2);
    features.push(h);
  }
  return { logits: conv(`model${c.nLayers + 1}.0`, h, nf, 1, 1), features };
}
