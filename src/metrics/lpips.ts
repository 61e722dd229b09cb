/**
 * LPIPS v0.1 (`lpips.LPIPS(net='alex'|'vgg')`, richzhang/PerceptualSimilarity) as one batched
 * ONNX Runtime graph: the ScalingLayer, the torchvision AlexNet / VGG16 `features` trunk with its
 * five ReLU taps, unit-normalised features (`x / (√Σc x² + 1e-10)`, the eps outside the root),
 * squared differences, the linear heads (`lin{k}.model.1.weight`, 1×1, no bias), the spatial mean
 * of each tap at its own size, and their sum. Inputs are 8-bit RGB images read as DiffIR's
 * `Metric/LPIPS.py` reads them (`x/255` normalised to [−1, 1]); both images at their own size
 * (no crop, no resize).
 */
import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { sym } from '../graph/dim.js';
import { toOnnx } from '../graph/onnx.js';
import { SessionCache } from '../runtime/cache.js';
import type { SessionOptions } from '../runtime/session.js';
import { f32, type HostTensor, type TensorMap } from '../tensor.js';
import { loadStateDict } from '../weights/statedict.js';
import type { Image8 } from './color.js';

/** The LPIPS trunks. */
export type LpipsNet = 'alex' | 'vgg';

/** torchvision `features` layers up to the last tap: conv (index, stride, padding) or max-pool (kernel `pool`, stride 2); taps after these convs' ReLUs. */
const TRUNKS: Record<LpipsNet, { pool: number; layers: readonly (readonly ['conv', number, number, number] | readonly ['pool'])[]; taps: readonly number[]; channels: readonly number[] }> = {
  alex: {
    pool: 3,
    layers: [['conv', 0, 4, 2], ['pool'], ['conv', 3, 1, 2], ['pool'], ['conv', 6, 1, 1], ['conv', 8, 1, 1], ['conv', 10, 1, 1]],
    taps: [0, 3, 6, 8, 10],
    channels: [64, 192, 384, 256, 256],
  },
  vgg: {
    pool: 2,
    layers: [
      ['conv', 0, 1, 1], ['conv', 2, 1, 1], ['pool'],
      ['conv', 5, 1, 1], ['conv', 7, 1, 1], ['pool'],
      ['conv', 10, 1, 1], ['conv', 12, 1, 1], ['conv', 14, 1, 1], ['pool'],
      ['conv', 17, 1, 1], ['conv', 19, 1, 1], ['conv', 21, 1, 1], ['pool'],
      ['conv', 24, 1, 1], ['conv', 26, 1, 1], ['conv', 28, 1, 1],
    ],
    taps: [2, 7, 14, 21, 28],
    channels: [64, 128, 256, 512, 512],
  },
};

const SHIFT = [-0.03, -0.088, -0.188];
const SCALE = [0.458, 0.448, 0.45];

/** Trunk weight names (`features.<i>.weight` / `.bias`) and their shapes, from the loaded file. */
function trunkTaps(g: Graph, net: LpipsNet, x: Value, weights: TensorMap): Value[] {
  const t = TRUNKS[net];
  const taps: Value[] = [];
  let h = x;
  for (const layer of t.layers) {
    if (layer[0] === 'pool') {
      h = op.maxPool(h, { kernel: t.pool, stride: 2 });
      continue;
    }
    const [, i, stride, pad] = layer;
    const w = weights.get(`features.${i}.weight`)!;
    const wv = g.param(`features.${i}.weight`, w.shape);
    const bv = g.param(`features.${i}.bias`, [w.shape[0]!]);
    h = op.relu(op.conv(h, wv, bv, { stride, pads: pad }));
    if (t.taps.includes(i)) taps.push(h);
  }
  return taps;
}

/** The LPIPS graph for images of h×w: inputs `x0`, `x1` [B,3,h,w] in [−1,1]; outputs `lpips` [B] and `layers` [B,5]. */
export function lpipsGraph(net: LpipsNet, h: number, w: number, weights: TensorMap): Graph {
  const g = new Graph(`lpips-${net}`);
  const b = sym('B');
  const x0 = g.input('x0', [b, 3, h, w]);
  const x1 = g.input('x1', [b, 3, h, w]);
  const shift = op.constF32(g, [1, 3, 1, 1], SHIFT, 'shift');
  const scale = op.constF32(g, [1, 3, 1, 1], SCALE, 'scale');
  const f0 = trunkTaps(g, net, op.div(op.sub(x0, shift), scale), weights);
  const f1 = trunkTaps(g, net, op.div(op.sub(x1, shift), scale), weights);
  const unit = (v: Value): Value => op.div(v, op.add(op.sqrt(op.reduceSum(op.mul(v, v), [1])), 1e-10));
  const terms: Value[] = [];
  TRUNKS[net].channels.forEach((c, k) => {
    const d = op.sub(unit(f0[k]!), unit(f1[k]!));
    const lin = g.param(`lin${k}.model.1.weight`, [1, c, 1, 1]);
    terms.push(op.reshape(op.reduceMean(op.conv(op.mul(d, d), lin), [2, 3]), [b, 1]));
  });
  const layers = op.concat(terms, 1);
  g.output(layers, 'layers');
  g.output(op.reshape(op.reduceSum(layers, [1]), [b]), 'lpips');
  return g;
}

/** Checks a loaded state dict for the keys and shapes a net needs, naming the file. */
function requireKeys(sd: TensorMap, keys: readonly [string, readonly number[] | null][], file: string): void {
  for (const [k, shape] of keys) {
    const t = sd.get(k);
    if (!t) throw new Error(`${file}: missing '${k}' (is this the right file?)`);
    if (shape && (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))) {
      throw new Error(`${file}: '${k}' has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
    }
  }
}

/** Float32 image tensor [B,3,H,W] of `x/255` normalised to [−1,1] as `torchvision.transforms.functional.normalize(x, 0.5, 0.5)`. */
function toInput(imgs: readonly Image8[]): HostTensor<'float32'> {
  const { height: h, width: w } = imgs[0]!;
  const n = 3 * h * w;
  const out = new Float32Array(imgs.length * n);
  const lut = new Float32Array(256);
  for (let v = 0; v < 256; v++) lut[v] = Math.fround(Math.fround(v / 255) - 0.5) / 0.5;
  imgs.forEach((im, i) => {
    for (let j = 0; j < n; j++) out[i * n + j] = lut[im.data[j]!]!;
  });
  return f32([imgs.length, 3, h, w], out);
}

/** LPIPS distance of image pairs. */
export interface LpipsResult {
  readonly value: number;
  /** The five per-tap terms whose sum is `value`. */
  readonly layers: readonly number[];
}

/** An LPIPS metric with its weights loaded; sessions are built per image size and reused. */
export class Lpips {
  private readonly cache: SessionCache;
  private constructor(
    readonly net: LpipsNet,
    private readonly weights: TensorMap,
    options: SessionOptions,
  ) {
    this.cache = new SessionCache({ ...options, memoryArena: false }, 2);
  }

  /** Loads the torchvision trunk (`alexnet-owt-7be5be79.pth` / `vgg16-397923af.pth`) and the lpips head (`v0.1/<net>.pth`). */
  static load(net: LpipsNet, trunkFile: string, headFile: string, options: SessionOptions = {}): Lpips {
    const trunk = loadStateDict(trunkFile);
    const head = loadStateDict(headFile);
    const t = TRUNKS[net];
    const need: [string, null][] = [];
    for (const l of t.layers) if (l[0] === 'conv') need.push([`features.${l[1]}.weight`, null], [`features.${l[1]}.bias`, null]);
    requireKeys(trunk, need, trunkFile);
    requireKeys(head, t.channels.map((c, k): [string, number[]] => [`lin${k}.model.1.weight`, [1, c, 1, 1]]), headFile);
    const weights: TensorMap = new Map();
    for (const [k] of need) weights.set(k, trunk.get(k)!);
    t.channels.forEach((_, k) => weights.set(`lin${k}.model.1.weight`, head.get(`lin${k}.model.1.weight`)!));
    // Check the trunk's channel chain once, so a wrong file fails here and not inside ORT.
    let cin = 3;
    for (const l of t.layers) {
      if (l[0] !== 'conv') continue;
      const s = weights.get(`features.${l[1]}.weight`)!.shape;
      if (s.length !== 4 || s[1] !== cin) throw new Error(`${trunkFile}: 'features.${l[1]}.weight' has shape [${s.join(', ')}], which does not fit ${net === 'alex' ? 'AlexNet' : 'VGG16'}`);
      cin = s[0]!;
    }
    return new Lpips(net, weights, options);
  }

  /** LPIPS of each pair (a[i], b[i]); all images of one call must have the same size. */
  async distances(a: readonly Image8[], b: readonly Image8[]): Promise<LpipsResult[]> {
    if (a.length !== b.length || a.length === 0) throw new Error('LPIPS: give as many restored as reference images (at least one)');
    const { height: h, width: w } = a[0]!;
    for (const im of [...a, ...b]) {
      if (im.height !== h || im.width !== w) throw new Error(`LPIPS: images of one batch must have one size (${w}×${h} and ${im.width}×${im.height})`);
      if (im.channels !== 3) throw new Error('LPIPS: needs RGB images');
    }
    const s = await this.cache.get(`${h}x${w}`, () => toOnnx(lpipsGraph(this.net, h, w, this.weights), { params: 'initializers', weights: this.weights }));
    const out = await s.run({ x0: toInput(a), x1: toInput(b) });
    const layers = out.layers!.data as Float32Array;
    const total = out.lpips!.data as Float32Array;
    return a.map((_, i) => ({ value: total[i]!, layers: Array.from(layers.subarray(i * 5, i * 5 + 5)) }));
  }

  /** Releases the sessions. */
  async release(): Promise<void> {
    await this.cache.clear();
  }
}
