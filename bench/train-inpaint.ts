/**
 * One official LaMa-style inpainting iteration (G step with ResNetPL, D step with the R1 penalty,
 * both Adams; no data loading) at the place2 widths, batch 1, 256×256, with random weights (the
 * ResNet50 encoder too: the time does not depend on its values). `bench/train.ts` runs it in a
 * child process and prints its row; this module prints one JSON line like the trainer cases.
 */
import { PRESETS } from '../src/models/config.js';
import { DiffIRS1, DiffIRS2 } from '../src/models/diffir.js';
import { initParams } from '../src/nn/init.js';
import { ade20kEncoderShapes } from '../src/models/ade20k-resnet.js';
import { InpaintIteration, initDiscriminator } from '../src/train/inpaint-step.js';
import { IPR_DIM } from '../src/nn/ipr.js';
import type { TensorMap } from '../src/tensor.js';
import { median, rand } from './util.js';

/** One official inpainting iteration at the place2 widths, batch 1, 256×256. */
export async function runInpaint(stage: 1 | 2, { steps, warmup, threads }: { steps: number; warmup: number; threads: number }): Promise<void> {
  const cfg = PRESETS['inpaint-places2'];
  const disc = { inputNc: 3, ndf: 64, nLayers: 4 };
  const encoder: TensorMap = new Map();
  let seed = 1;
  for (const [k, shape] of ade20kEncoderShapes()) {
    const t = rand(shape, seed++);
    if (k.endsWith('running_var')) t.data.fill(1);
    else if (/bn\d\.weight$|downsample\.1\.weight$/.test(k)) t.data.forEach((v, i) => (t.data[i] = 0.25 + 0.1 * v));
    encoder.set(k, t);
  }
  const s1 = initParams(DiffIRS1(cfg), 1);
  const it = await InpaintIteration.create(
    {
      stage,
      generator: cfg,
      ...(stage === 2 ? { teacher: cfg } : {}),
      discriminator: disc,
      losses: { l1: { weightKnown: 10, weightMissing: 0 }, adversarial: { weight: 10, gpCoef: 0.001, maskAsFakeTarget: true, allowScaleMask: true }, featureMatching: 100, resnetPl: 30, ...(stage === 2 ? { kd: { weight: 1, temperature: 0.15 } } : {}) },
      batch: 1,
      height: 256,
      width: 256,
      lrG: 2e-4,
      lrD: 1e-4,
      gradientClipVal: 1,
    },
    { generator: stage === 1 ? s1 : initParams(DiffIRS2(cfg), 2), discriminator: initDiscriminator(disc, 3), ...(stage === 2 ? { teacher: s1 } : {}), encoder },
    { threads },
  );
  const image = rand([1, 3, 256, 256], 7);
  image.data.forEach((v, i) => (image.data[i] = 0.5 + 0.5 * v));
  const mask = rand([1, 1, 256, 256], 8);
  mask.data.forEach((v, i) => (mask.data[i] = v > 0.3 ? 1 : 0));
  const times: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const t0 = performance.now();
    await it.run({ image, mask, ...(stage === 2 ? { gEps: rand([1, IPR_DIM], 10 + i), dEps: rand([1, IPR_DIM], 100 + i) } : {}) });
    if (i >= warmup) times.push((performance.now() - t0) / 1000);
  }
  await it.release();
  const rss = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify({ key: `inpaint${stage}`, median: median(times), mean: times.reduce((a, b) => a + b, 0) / times.length, min: Math.min(...times), max: Math.max(...times), peakRssMiB: rss, steps: times.length }));
}
