/**
 * The ADE20k ResNet50-dilated encoder of LaMa's ResNetPL (`models/ade20k`: `ResnetDilated`
 * over the CSAIL `resnet50`, dilate_scale 8), keyed as in `encoder_epoch_20.pth`: a deep stem
 * (three 3×3 convs 3→64→64→128, stride 2 on the first, each with BatchNorm and ReLU), max-pool
 * 3×3/2 pad 1, then Bottleneck layers [3, 4, 6, 3] (stride on the 3×3 conv). The dilation
 * rewrite turns layer3's and layer4's strides into 1: their strided 3×3 convs get dilation
 * 1 / 2 (padding the same), their other 3×3 convs dilation 2 / 4. Returns layer1 … layer4.
 * BatchNorm follows `bn`: LaMa's training leaves this frozen encoder in training mode.
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { type BatchNormState, batchNorm2d } from '../nn/batchnorm.js';

/** Layers of ResNet50 and their widths. */
const LAYERS = [
  { blocks: 3, planes: 64, stride: 1, dilate: 1 },
  { blocks: 4, planes: 128, stride: 2, dilate: 1 },
  { blocks: 6, planes: 256, stride: 2, dilate: 2 },
  { blocks: 3, planes: 512, stride: 2, dilate: 4 },
] as const;

/** Parameter and buffer shapes of the encoder file, by key (without `num_batches_tracked`). */
export function ade20kEncoderShapes(): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const bn = (p: string, c: number) => {
    for (const k of ['weight', 'bias', 'running_mean', 'running_var']) m.set(`${p}.${k}`, [c]);
  };
  m.set('conv1.weight', [64, 3, 3, 3]);
  bn('bn1', 64);
  m.set('conv2.weight', [64, 64, 3, 3]);
  bn('bn2', 64);
  m.set('conv3.weight', [128, 64, 3, 3]);
  bn('bn3', 128);
  let inplanes = 128;
  LAYERS.forEach((l, li) => {
    for (let b = 0; b < l.blocks; b++) {
      const p = `layer${li + 1}.${b}`;
      m.set(`${p}.conv1.weight`, [l.planes, inplanes, 1, 1]);
      bn(`${p}.bn1`, l.planes);
      m.set(`${p}.conv2.weight`, [l.planes, l.planes, 3, 3]);
      bn(`${p}.bn2`, l.planes);
      m.set(`${p}.conv3.weight`, [l.planes * 4, l.planes, 1, 1]);
      bn(`${p}.bn3`, l.planes * 4);
      if (b === 0) {
        m.set(`${p}.downsample.0.weight`, [l.planes * 4, inplanes, 1, 1]);
        bn(`${p}.downsample.1`, l.planes * 4);
      }
      inplanes = l.planes * 4;
    }
  });
  return m;
}

/** The encoder's four feature maps (layer1 … layer4) of an ImageNet-normalised image. */
export function ade20kEncoder(g: Graph, x: Value, bn: BatchNormState): Value[] {
  const conv = (name: string, h: Value, cin: number, cout: number, k: number, stride = 1, dilation = 1) =>
    op.conv(h, g.param(`${name}.weight`, [cout, cin, k, k]), null, { stride, pads: k === 3 ? dilation : 0, dilation });
  const cbr = (i: number, h: Value, cin: number, cout: number, stride: number) => op.relu(batchNorm2d(g, `bn${i}`, conv(`conv${i}`, h, cin, cout, 3, stride), bn));
  let h = cbr(1, x, 3, 64, 2);
  h = cbr(2, h, 64, 64, 1);
  h = cbr(3, h, 64, 128, 1);
  h = op.maxPool(h, { kernel: 3, stride: 2, pads: 1 });
  const outs: Value[] = [];
  let inplanes = 128;
  LAYERS.forEach((l, li) => {
    for (let b = 0; b < l.blocks; b++) {
      const p = `layer${li + 1}.${b}`;
      // _nostride_dilate: a stride-2 3×3 conv becomes stride 1 with dilation dilate/2; the others get dilation dilate.
      const strided = b === 0 && l.stride === 2;
      const stride = strided && l.dilate === 1 ? 2 : 1;
      const dil = l.dilate === 1 ? 1 : strided ? l.dilate / 2 : l.dilate;
      let o = op.relu(batchNorm2d(g, `${p}.bn1`, conv(`${p}.conv1`, h, inplanes, l.planes, 1), bn));
      o = op.relu(batchNorm2d(g, `${p}.bn2`, conv(`${p}.conv2`, o, l.planes, l.planes, 3, stride, dil), bn));
      o = batchNorm2d(g, `${p}.bn3`, conv(`${p}.conv3`, o, l.planes, l.planes * 4, 1), bn);
      const res = b === 0 ? batchNorm2d(g, `${p}.downsample.1`, conv(`${p}.downsample.0`, h, inplanes, l.planes * 4, 1, stride), bn) : h;
      h = op.relu(op.add(o, res));
      inplanes = l.planes * 4;
    }
    outs.push(h);
  });
  return outs;
}
