/**
 * torchvision's VGG `features` as a frozen feature extractor, as BasicSR's VGGFeatureExtractor
 * uses it for the perceptual loss: layers named as BasicSR names them (`conv1_1`, `relu1_1`,
 * `pool1`, …), weights under torchvision's keys `features.<index>.weight|bias`, 3×3 convolutions
 * with padding 1, ReLU, 2×2 max-pooling (stride `poolingStride`). A `convX_Y` feature is taken
 * before its ReLU (torchvision's in-place ReLU runs after BasicSR's clone). The network stops at
 * the deepest layer asked for.
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';

/** Layer names per VGG type, in `features` order (index = torchvision key index). */
export const VGG_LAYER_NAMES: Readonly<Record<'vgg11' | 'vgg13' | 'vgg16' | 'vgg19', readonly string[]>> = (() => {
  const blocks = (convs: readonly number[]) => {
    const names: string[] = [];
    convs.forEach((n, b) => {
      for (let i = 1; i <= n; i++) names.push(`conv${b + 1}_${i}`, `relu${b + 1}_${i}`);
      names.push(`pool${b + 1}`);
    });
    return names;
  };
  return { vgg11: blocks([1, 1, 2, 2, 2]), vgg13: blocks([2, 2, 2, 2, 2]), vgg16: blocks([2, 2, 3, 3, 3]), vgg19: blocks([2, 2, 4, 4, 4]) };
})();
export type VggType = keyof typeof VGG_LAYER_NAMES;

/** ImageNet mean and std of torchvision's models (inputs in [0, 1]). */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/** How the input is prepared and pooled. */
export interface VggFeatureOptions {
  readonly vggType: VggType;
  /** (x − mean) / std with ImageNet statistics (BasicSR default true). */
  readonly useInputNorm: boolean;
  /** x ← (x + 1) / 2 first, for inputs in [−1, 1] (default false). */
  readonly rangeNorm: boolean;
  /** Max-pool stride (BasicSR default 2). */
  readonly poolingStride?: number;
}

/** Output channels of each conv of `features`, by index. */
function convChannels(type: VggType): Map<number, { cin: number; cout: number }> {
  const m = new Map<number, { cin: number; cout: number }>();
  let cin = 3;
  VGG_LAYER_NAMES[type].forEach((name, i) => {
    const c = /^conv(\d)_/.exec(name);
    if (!c) return;
    const cout = Math.min(512, 64 * 2 ** (Number(c[1]) - 1));
    m.set(i, { cin, cout });
    cin = cout;
  });
  return m;
}

/** The torchvision keys (and shapes) the features up to `lastLayer` need. */
export function vggWeightShapes(type: VggType, lastLayer: string): Map<string, number[]> {
  const names = VGG_LAYER_NAMES[type];
  const last = names.indexOf(lastLayer);
  if (last < 0) throw new Error(`${type} has no layer '${lastLayer}'`);
  const out = new Map<string, number[]>();
  for (const [i, c] of convChannels(type)) {
    if (i > last) break;
    out.set(`features.${i}.weight`, [c.cout, c.cin, 3, 3]);
    out.set(`features.${i}.bias`, [c.cout]);
  }
  return out;
}

/** The deepest of `layers` in network order. */
export function deepestLayer(type: VggType, layers: readonly string[]): string {
  const names = VGG_LAYER_NAMES[type];
  let best = -1;
  for (const l of layers) {
    const i = names.indexOf(l);
    if (i < 0) throw new Error(`${type} has no layer '${l}' (layers are named ${names.slice(0, 5).join(', ')}, …)`);
    best = Math.max(best, i);
  }
  return names[best]!;
}

/**
 * The features named in `layers` of x (B, 3, H, W), in network order. Weights are the graph's
 * parameters `features.<i>.weight|bias` (give them as frozen weights).
 */
export function vggFeatures(g: Graph, x: Value, layers: readonly string[], o: VggFeatureOptions): Map<string, Value> {
  const names = VGG_LAYER_NAMES[o.vggType];
  const last = names.indexOf(deepestLayer(o.vggType, layers));
  const channels = convChannels(o.vggType);
  const want = new Set(layers);
  let h = x;
  if (o.rangeNorm) h = op.div(op.add(h, 1), 2);
  if (o.useInputNorm) {
    const mean = op.constF32(g, [1, 3, 1, 1], IMAGENET_MEAN, 'imagenet_mean');
    const std = op.constF32(g, [1, 3, 1, 1], IMAGENET_STD, 'imagenet_std');
    h = op.div(op.sub(h, mean), std);
  }
  const out = new Map<string, Value>();
  for (let i = 0; i <= last; i++) {
    const name = names[i]!;
    if (name.startsWith('conv')) {
      const c = channels.get(i)!;
      const w = g.param(`features.${i}.weight`, [c.cout, c.cin, 3, 3]);
      const b = g.param(`features.${i}.bias`, [c.cout]);
      h = op.conv(h, w, b, { pads: 1 });
    } else if (name.startsWith('relu')) h = op.relu(h);
    else h = op.maxPool(h, { kernel: 2, stride: o.poolingStride ?? 2 });
    if (want.has(name)) out.set(name, h);
  }
  return out;
}
