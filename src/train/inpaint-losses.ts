/**
 * The losses of LaMa's inpainting trainers as DiffIR-inpainting configures them
 * (`saicinpainting/training/losses`): masked L1, the non-saturating adversarial loss with the
 * R1 gradient penalty (`NonSaturatingWithR1`), feature matching on the discriminator's
 * activations, and ResNetPL (the ADE20k ResNet50-dilated encoder's layer1…4 MSE). The KD term
 * of stage 2 is `kdLoss` of `objective.ts`.
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { grad } from '../graph/autodiff.js';
import { f32, type HostTensor } from '../tensor.js';
import { ade20kEncoder } from '../models/ade20k-resnet.js';
import { BatchNormState } from '../nn/batchnorm.js';

function all(v: Value): number[] {
  return [...v.shape.keys()];
}

/** Mean of all elements, as a scalar of shape []. */
export function mean(v: Value): Value {
  return op.reduceMean(v, all(v), false);
}

/** `masked_l1_loss`: mean of `(mask·weight_missing + (1−mask)·weight_known)·|pred − target|`. */
export function maskedL1(pred: Value, target: Value, mask: Value, weightKnown: number, weightMissing: number): Value {
  const w = op.add(op.mul(mask, weightMissing), op.mul(op.sub(1, mask), weightKnown));
  return mean(op.mul(w, op.abs(op.sub(pred, target))));
}

/** `feature_matching_loss` without a mask: the mean over layers of MSE(fake, real). */
export function featureMatching(fake: readonly Value[], real: readonly Value[]): Value {
  if (fake.length !== real.length || fake.length === 0) throw new Error('featureMatching: the feature lists differ in length');
  let s: Value | null = null;
  for (let i = 0; i < fake.length; i++) {
    const d = op.sub(fake[i]!, real[i]!);
    const m = mean(op.mul(d, d));
    s = s ? op.add(s, m) : m;
  }
  return op.div(s!, fake.length);
}

/** `NonSaturatingWithR1.generator_loss` with `extra_mask_weight_for_gen` 0: `weight·mean(softplus(−D(fake)))`. */
export function adversarialGeneratorLoss(dFake: Value, weight: number): Value {
  return op.mul(mean(op.softplus(op.neg(dFake))), weight);
}

/** The terms of `NonSaturatingWithR1.discriminator_loss`. */
export interface DiscriminatorLossTerms {
  /** mean(softplus(−D(real))). */
  readonly real: Value;
  /** mean(m·softplus(D(fake)) + (1−m)·softplus(−D(fake))) with `mask_as_fake_target`, else mean(softplus(D(fake))). */
  readonly fake: Value;
  /** gp_coef · mean_b ‖∂ΣD(real)/∂real_b‖² (the official metric `discr_real_gp`). */
  readonly r1: Value;
  /** real + fake + r1: what the discriminator step back-propagates. */
  readonly total: Value;
}

/**
 * The discriminator loss. `real` must be the graph value D was applied to, so that the R1
 * gradient is taken through D (a first-order gradient inside the graph, differentiated again
 * by the step). `maskD` is the mask at the logits' size (see {@link resizeMaskNearest}).
 */
export function adversarialDiscriminatorLoss(real: Value, dReal: Value, dFake: Value, maskD: Value | null, gpCoef: number): DiscriminatorLossTerms {
  const lossReal = mean(op.softplus(op.neg(dReal)));
  const [gReal] = grad(op.reduceSum(dReal, all(dReal), false), [real]);
  const sq = op.reduceSum(op.mul(gReal!, gReal!), [1, 2, 3], false);
  const r1 = op.mul(mean(sq), gpCoef);
  let fakeMap = op.softplus(dFake);
  if (maskD) fakeMap = op.add(op.mul(fakeMap, maskD), op.mul(op.sub(1, maskD), op.softplus(op.neg(dFake))));
  const lossFake = mean(fakeMap);
  return { real: lossReal, fake: lossFake, r1, total: op.add(op.add(lossReal, r1), lossFake) };
}

/**
 * Source index of PyTorch's legacy `F.interpolate(mode='nearest')` for output index `dst`:
 * identity for equal sizes, `dst >> 1` for exactly double, else
 * `min(floor(dst · float(in/out)), in − 1)` in float32 (not the half-pixel 'nearest-exact').
 */
export function legacyNearestIndex(dst: number, inSize: number, outSize: number): number {
  if (inSize === outSize) return dst;
  if (outSize === 2 * inSize) return dst >> 1;
  const scale = Math.fround(inSize / outSize);
  return Math.min(Math.floor(Math.fround(dst * scale)), inSize - 1);
}

/** `F.interpolate(mask, size=(h, w), mode='nearest')` of an NCHW float tensor, on the host. */
export function resizeMaskNearest(mask: HostTensor, h: number, w: number): HostTensor<'float32'> {
  const [n, c, hi, wi] = mask.shape as [number, number, number, number];
  const src = mask.data as Float32Array;
  const out = new Float32Array(n * c * h * w);
  const ys = Array.from({ length: h }, (_, y) => legacyNearestIndex(y, hi, h));
  const xs = Array.from({ length: w }, (_, x) => legacyNearestIndex(x, wi, w));
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[(p * h + y) * w + x] = src[(p * hi + ys[y]!) * wi + xs[x]!]!;
  }
  return f32([n, c, h, w], out);
}

/** ImageNet normalisation of ResNetPL (`IMAGENET_MEAN` / `IMAGENET_STD`, float32 tensors). */
const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

/**
 * `ResNetPL`: `weight · Σ_l MSE(enc_l(norm(pred)), enc_l(norm(target)))` over layer1…4 of the
 * ADE20k encoder (frozen weights `encoder.*`, declared in `g` under the file's keys), its
 * BatchNorms in training mode with separate batch statistics for pred and target.
 */
export function resnetPL(g: Graph, pred: Value, target: Value, weight: number): Value {
  const norm = (x: Value) =>
    op.div(op.sub(x, op.constF32(g, [1, 3, 1, 1], IMAGENET_MEAN, 'imagenet_mean')), op.constF32(g, [1, 3, 1, 1], IMAGENET_STD, 'imagenet_std'));
  // The encoder's running statistics change in training mode but nothing reads them: not tracked.
  const bn = new BatchNormState(g, 'batch-only');
  const fp = g.scope('resnet_pl', () => ade20kEncoder(g, norm(pred), bn));
  const ft = g.scope('resnet_pl', () => ade20kEncoder(g, norm(target), bn));
  let s: Value | null = null;
  fp.forEach((p, i) => {
    const d = op.sub(p, ft[i]!);
    const m = mean(op.mul(d, d));
    s = s ? op.add(s, m) : m;
  });
  return op.mul(s!, weight);
}
