/**
 * The GAN stage's losses as graphs, as BasicSR computes them:
 *
 * - `GANLoss` (vanilla = BCEWithLogits, lsgan = MSE, wgan, wgan_softplus, hinge) against the
 *   real / fake label; `loss_weight` multiplies the generator term only.
 * - `PerceptualLoss`: VGG features of output and target (taken before ReLU for `convX_Y`),
 *   Σ_k w_k·criterion(φ_k(x), φ_k(gt)) · perceptual_weight with criterion l1 / l2 (mean) or fro
 *   (‖·‖_F of the whole difference); the style term the same over Gram matrices
 *   F·Fᵀ/(c·h·w) · style_weight.
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { vggFeatures, type VggType } from '../models/vgg.js';

/** The five GAN types of BasicSR's GANLoss. */
export const GAN_TYPES = ['vanilla', 'lsgan', 'wgan', 'wgan_softplus', 'hinge'] as const;
export type GanType = (typeof GAN_TYPES)[number];

/** `train.gan_opt`. */
export interface GanLossSpec {
  readonly ganType: GanType;
  readonly realLabel: number;
  readonly fakeLabel: number;
  /** Applied to the generator term only. */
  readonly weight: number;
}

/** `train.perceptual_opt`. */
export interface PerceptualSpec {
  /** Layer → weight, in the file's order. */
  readonly layerWeights: Readonly<Record<string, number>>;
  readonly vggType: VggType;
  readonly useInputNorm: boolean;
  readonly rangeNorm: boolean;
  readonly perceptualWeight: number;
  readonly styleWeight: number;
  readonly criterion: 'l1' | 'l2' | 'fro';
}

function mean(v: Value): Value {
  return op.reduceMean(v, [...v.shape.keys()], false);
}

/** GANLoss(pred, target_is_real, is_disc). */
export function ganLoss(pred: Value, targetIsReal: boolean, isDisc: boolean, s: GanLossSpec): Value {
  let loss: Value;
  const label = targetIsReal ? s.realLabel : s.fakeLabel;
  switch (s.ganType) {
    case 'vanilla':
      // BCEWithLogits(x, t) = softplus(x) − x·t
      loss = mean(label === 0 ? op.softplus(pred) : op.sub(op.softplus(pred), label === 1 ? pred : op.mul(pred, label)));
      break;
    case 'lsgan': {
      const d = op.sub(pred, label);
      loss = mean(op.mul(d, d));
      break;
    }
    case 'wgan':
      loss = targetIsReal ? op.neg(mean(pred)) : mean(pred);
      break;
    case 'wgan_softplus':
      loss = mean(op.softplus(targetIsReal ? op.neg(pred) : pred));
      break;
    case 'hinge':
      loss = isDisc ? mean(op.relu(op.add(targetIsReal ? op.neg(pred) : pred, 1))) : op.neg(mean(pred));
      break;
  }
  return isDisc || s.weight === 1 ? loss : op.mul(loss, s.weight);
}

function gram(f: Value): Value {
  const [n, c, h, w] = f.shape as [number, number, number, number];
  const x = op.reshape(f, [n, c, h * w]);
  return op.div(op.matmul(x, op.transpose(x, [0, 2, 1])), c * h * w);
}

function criterion(a: Value, b: Value, kind: PerceptualSpec['criterion']): Value {
  const d = op.sub(a, b);
  if (kind === 'l1') return mean(op.abs(d));
  if (kind === 'l2') return mean(op.mul(d, d));
  const sq = op.mul(d, d);
  return op.sqrt(op.reduceSum(sq, [...sq.shape.keys()], false));
}

/** PerceptualLoss(x, gt): the perceptual and style terms (null when their weight is 0). */
export function perceptualLoss(g: Graph, x: Value, gt: Value, s: PerceptualSpec): { percep: Value | null; style: Value | null } {
  const layers = Object.keys(s.layerWeights);
  const o = { vggType: s.vggType, useInputNorm: s.useInputNorm, rangeNorm: s.rangeNorm };
  const fx = g.scope('vgg_out', () => vggFeatures(g, x, layers, o));
  const fg = g.scope('vgg_gt', () => vggFeatures(g, gt, layers, o));
  const sum = (term: (a: Value, b: Value) => Value, weight: number): Value | null => {
    if (!(weight > 0)) return null;
    let acc: Value | null = null;
    for (const [k, a] of fx) {
      const t = op.mul(term(a, fg.get(k)!), s.layerWeights[k]!);
      acc = acc ? op.add(acc, t) : t;
    }
    return op.mul(acc!, weight);
  };
  return {
    percep: g.scope('perceptual', () => sum((a, b) => criterion(a, b, s.criterion), s.perceptualWeight)),
    style: g.scope('style', () => sum((a, b) => criterion(gram(a), gram(b), s.criterion), s.styleWeight)),
  };
}
