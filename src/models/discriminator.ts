/**
 * UNetDiscriminatorSN (Real-ESRGAN, the official `discriminator_arch.py`): conv0 (3×3, bias),
 * three strided 4×4 down convolutions conv1–conv3, three 3×3 up convolutions conv4–conv6 after
 * bilinear ×2 upsampling (align_corners false) with skip connections, two extra 3×3 convolutions
 * conv7–conv8, and conv9 (3×3, bias) to one channel; LeakyReLU 0.2 after all but conv9.
 * conv1–conv8 are spectrally normalised: state-dict keys `convK.weight_orig` (parameter),
 * `convK.weight_u`, `convK.weight_v` (buffers), in torch's order.
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { spectralNormWeight } from '../nn/spectral-norm.js';

/** `network_d` of an option file. */
export interface DiscriminatorConfig {
  readonly numInCh: number;
  readonly numFeat: number;
  readonly skipConnection: boolean;
}

/** The spectrally normalised convolutions. */
export const SN_CONVS = ['conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'conv6', 'conv7', 'conv8'] as const;
export type SnConv = (typeof SN_CONVS)[number];

/** Where D's tensors come from in a graph: its weights by state-dict name, and each conv's u, v. */
export interface DiscriminatorWeights {
  weight(name: string, shape: readonly number[]): Value;
  vectors(conv: SnConv): { readonly u: Value; readonly v: Value };
}

interface ConvSpec {
  readonly name: string;
  readonly cin: number;
  readonly cout: number;
  readonly k: number;
  readonly stride: number;
  readonly sn: boolean;
}

function convSpecs(c: DiscriminatorConfig): ConvSpec[] {
  const f = c.numFeat;
  const sn = (name: string, cin: number, cout: number, k: number, stride: number): ConvSpec => ({ name, cin, cout, k, stride, sn: true });
  return [
    { name: 'conv0', cin: c.numInCh, cout: f, k: 3, stride: 1, sn: false },
    sn('conv1', f, f * 2, 4, 2),
    sn('conv2', f * 2, f * 4, 4, 2),
    sn('conv3', f * 4, f * 8, 4, 2),
    sn('conv4', f * 8, f * 4, 3, 1),
    sn('conv5', f * 4, f * 2, 3, 1),
    sn('conv6', f * 2, f, 3, 1),
    sn('conv7', f, f, 3, 1),
    sn('conv8', f, f, 3, 1),
    { name: 'conv9', cin: f, cout: 1, k: 3, stride: 1, sn: false },
  ];
}

/** The trainable parameters in `named_parameters()` order, with shapes. */
export function discriminatorParamShapes(c: DiscriminatorConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const s of convSpecs(c)) {
    const w = [s.cout, s.cin, s.k, s.k];
    if (s.sn) m.set(`${s.name}.weight_orig`, w);
    else {
      m.set(`${s.name}.weight`, w);
      m.set(`${s.name}.bias`, [s.cout]);
    }
  }
  return m;
}

/** Every state-dict key in `state_dict()` order (parameters and the u/v buffers), with shapes. */
export function discriminatorStateShapes(c: DiscriminatorConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const s of convSpecs(c)) {
    if (s.sn) {
      m.set(`${s.name}.weight_orig`, [s.cout, s.cin, s.k, s.k]);
      m.set(`${s.name}.weight_u`, [s.cout]);
      m.set(`${s.name}.weight_v`, [s.cin * s.k * s.k]);
    } else {
      m.set(`${s.name}.weight`, [s.cout, s.cin, s.k, s.k]);
      m.set(`${s.name}.bias`, [s.cout]);
    }
  }
  return m;
}

/** D's logits map (B, 1, H, W) for x (B, numInCh, H, W); H and W multiples of 8. */
export function unetDiscriminatorSN(g: Graph, c: DiscriminatorConfig, x: Value, w: DiscriminatorWeights): Value {
  const specs = new Map(convSpecs(c).map((s) => [s.name, s]));
  const conv = (name: string, v: Value): Value =>
    g.scope(name, () => {
      const s = specs.get(name)!;
      const shape = [s.cout, s.cin, s.k, s.k];
      let weight: Value;
      let bias: Value | null = null;
      if (s.sn) {
        const { u, v: vv } = w.vectors(name as SnConv);
        weight = spectralNormWeight(w.weight(`${name}.weight_orig`, shape), u, vv);
      } else {
        weight = w.weight(`${name}.weight`, shape);
        bias = w.weight(`${name}.bias`, [s.cout]);
      }
      return op.conv(v, weight, bias, { stride: s.stride, pads: 1 });
    });
  const act = (v: Value) => op.leakyRelu(v, 0.2);
  const up = (v: Value) => op.resize(v, { mode: 'linear', scale: 2 });
  const skip = (a: Value, b: Value) => (c.skipConnection ? op.add(a, b) : a);
  const x0 = act(conv('conv0', x));
  const x1 = act(conv('conv1', x0));
  const x2 = act(conv('conv2', x1));
  const x3 = act(conv('conv3', x2));
  const x4 = skip(act(conv('conv4', up(x3))), x2);
  const x5 = skip(act(conv('conv5', up(x4))), x1);
  const x6 = skip(act(conv('conv6', up(x5))), x0);
  const o = act(conv('conv8', act(conv('conv7', x6))));
  return conv('conv9', o);
}
