/**
 * DiffIR model graphs: every preset builds with the spec's parameter counts, runs a forward
 * pass with random weights, and is recognised by architecture detection; the DDPM schedule
 * matches the spec; detection reports what it cannot match.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sym } from '../src/graph/dim.js';
import {
  type DiffIRConfig,
  PRESETS,
  PRESET_NAMES,
  type PresetName,
  type Stage,
  inputChannels,
  outputScale,
  padMultiple,
  preset,
} from '../src/models/config.js';
import { ddpmSchedule, scheduleBuffers } from '../src/models/ddpm.js';
import { detectArchitecture, inferFfnFactor } from '../src/models/detect.js';
import { DiffIRS1, DiffIRS2, IO_NAMES } from '../src/models/diffir.js';
import { expectedParamShapes, ignoredCheckpointKeys, parameterCount, selectWeights } from '../src/models/params.js';
import { initParams, seededRandom } from '../src/nn/init.js';
import { compile } from '../src/runtime/compile.js';
import { type HostTensor, type TensorMap, f32, numel } from '../src/tensor.js';

/** S2 parameter counts given by the spec (§4). */
const SPEC_S2_COUNTS: Partial<Record<PresetName, number>> = {
  'realsr-x4': 24_971_206,
  'srgan-x4': 24_971_206,
  'deblur-gopro': 26_911_934,
  'inpaint-places2': 26_402_474,
  'inpaint-celeba': 26_402_474,
};

function randomTensor(shape: readonly number[], seed: number): HostTensor {
  const r = seededRandom(seed);
  return f32(shape, Float32Array.from({ length: numel(shape) }, () => r()));
}

function assertFinite(t: HostTensor | undefined, what: string): void {
  assert.ok(t, `${what}: missing`);
  const d = t.data as Float32Array;
  for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) assert.fail(`${what}: non-finite value at ${i}`);
}

/** Zero tensors of every expected parameter shape (detection only looks at keys and shapes). */
function zeroWeights(cfg: DiffIRConfig, stage: Stage): TensorMap {
  const out: TensorMap = new Map();
  for (const [k, s] of expectedParamShapes(cfg, stage)) out.set(k, f32(s));
  return out;
}

/** A full official-style state dict for a graph's parameters (plus S2 buffers and aliases). */
function fakeCheckpoint(cfg: DiffIRConfig, stage: Stage, weights: TensorMap): TensorMap {
  const sd: TensorMap = new Map(weights);
  if (stage === 2) {
    for (const [k, v] of scheduleBuffers(ddpmSchedule(cfg.timesteps, cfg.linearStart, cfg.linearEnd))) sd.set(k, v);
    for (const k of ignoredCheckpointKeys(cfg, 2)) {
      if (sd.has(k)) continue;
      const target = k.replace(/^diffusion\.model\./, 'denoise.').replace(/^diffusion\.condition\./, 'condition.');
      sd.set(k, sd.get(target)!);
    }
  }
  return sd;
}

test('presets: parameter counts match the spec', () => {
  for (const name of PRESET_NAMES) {
    const cfg = PRESETS[name];
    const s1 = parameterCount(cfg, 1);
    const s2 = parameterCount(cfg, 2);
    const want = SPEC_S2_COUNTS[name];
    if (want !== undefined) assert.equal(s2, want, `${name} S2`);
    // S2 = S1 − CPEN_S1's first conv + CPEN_S2's first conv + denoiser.
    const firstConv = (c: number) => 64 * c * 9;
    const e1 = expectedParamShapes(cfg, 1).get('E.E.0.weight')![1]!;
    const e2 = expectedParamShapes(cfg, 2).get('condition.E.0.weight')![1]!;
    const denoiser = 513 * 256 + 256 + cfg.nDenoiseRes * (256 * 256 + 256);
    assert.equal(s2, s1 - firstConv(e1) + firstConv(e2) + denoiser, `${name} S1/S2 relation`);
  }
});

test('presets: detection recovers every preset from a state dict alone', () => {
  for (const name of PRESET_NAMES) {
    const cfg = PRESETS[name];
    for (const stage of [1, 2] as const) {
      const sd = fakeCheckpoint(cfg, stage, zeroWeights(cfg, stage));
      const det = detectArchitecture(sd, name);
      assert.equal(det.stage, stage, name);
      assert.ok(det.presets.includes(name), `${name} S${stage}: detected ${JSON.stringify(det.config)} matches ${det.presets.join(', ')}`);
      assert.equal(selectWeights(sd, det.config, stage).size, expectedParamShapes(cfg, stage).size);
    }
  }
});

test('detection lists what does not fit', () => {
  const cfg = preset('deblur-gopro');
  const sd = fakeCheckpoint(cfg, 2, zeroWeights(cfg, 2));
  sd.delete('G.latent.2.ffn.kernel.0.weight');
  sd.set('G.extra.weight', f32([1], [0]));
  assert.throws(() => detectArchitecture(sd, 'x.pth'), /x\.pth.*missing.*G\.latent\.2\.ffn\.kernel\.0\.weight.*unexpected.*G\.extra\.weight/);
  assert.throws(() => detectArchitecture(new Map([['foo', f32([1], [0])]]), 'y.pth'), /y\.pth: cannot recognise the DiffIR architecture: .*stage.*patch_embed/);
  const s1 = fakeCheckpoint(cfg, 1, zeroWeights(cfg, 1));
  s1.delete('G.output.weight');
  assert.throws(() => detectArchitecture(s1, 'z.pth'), /z\.pth: cannot recognise.*no output head/);
});

test('ffn expansion factor inference', () => {
  assert.equal(inferFfnFactor([[64, 140], [128, 281], [256, 563], [512, 1126]]), 2.2);
  assert.equal(inferFfnFactor([[48, 127], [96, 255], [192, 510], [384, 1021]]), 2.66);
  assert.equal(inferFfnFactor([[52, 93], [104, 187], [208, 374], [416, 748]]), 1.8);
  assert.equal(inferFfnFactor([[8, 16], [16, 32]]), 2);
  assert.equal(inferFfnFactor([[8, 16], [16, 40]]), null);
});

test('DDPM schedule matches the spec', () => {
  const s = ddpmSchedule(4, 0.1, 0.99);
  const close = (a: ArrayLike<number>, b: readonly number[], tol: number) => b.forEach((v, i) => assert.ok(Math.abs(a[i]! - v) < tol, `${a[i]} vs ${v}`));
  close(s.betas, [0.1, 0.294286, 0.590952, 0.99], 1e-6);
  assert.equal(Math.fround(s.posteriorMeanCoef1[0]!), 1);
  assert.equal(s.posteriorMeanCoef2[0], 0);
  let acp = 1;
  for (let i = 0; i < 4; i++) {
    acp *= 1 - s.betas[i]!;
    assert.ok(Math.abs(s.alphasCumprod[i]! - acp) < 1e-15);
  }
  assert.equal(scheduleBuffers(s).size, 12);
});

/** One forward per distinct architecture and stage (presets sharing one run the same graph). */
const distinct = new Map<string, { cfg: DiffIRConfig; names: PresetName[] }>();
for (const name of PRESET_NAMES) {
  const key = JSON.stringify(PRESETS[name]);
  const e = distinct.get(key);
  if (e) e.names.push(name);
  else distinct.set(key, { cfg: PRESETS[name], names: [name] });
}

for (const { cfg, names } of distinct.values()) {
  test(`forward with random weights: ${names.join(', ')}`, async () => {
    const size = Math.max(16, padMultiple(cfg));
    const shape = { batch: 1, height: size, width: size };
    const input = randomTensor([1, inputChannels(cfg), size, size], 1);
    const outSize = size * outputScale(cfg);
    const gt = randomTensor([1, 3, outSize, outSize], 2);

    const g1 = DiffIRS1(cfg, shape);
    const s1 = await compile(g1, { params: 'initializers', weights: initParams(g1, 7) }, { threads: 2 });
    const r1 = await s1.run({ input, gt });
    await s1.release();
    assert.deepEqual(r1[IO_NAMES.out]?.shape, [1, 3, outSize, outSize]);
    assert.deepEqual(r1[IO_NAMES.ipr]?.shape, [1, 256]);
    assertFinite(r1[IO_NAMES.out], 'S1 out');

    const g2 = DiffIRS2(cfg, shape);
    const s2 = await compile(g2, { params: 'initializers', weights: initParams(g2, 7) }, { threads: 2 });
    const r2 = await s2.run({ input, x_T: randomTensor([1, 256], 3) });
    await s2.release();
    assert.deepEqual(r2[IO_NAMES.out]?.shape, [1, 3, outSize, outSize]);
    assertFinite(r2[IO_NAMES.out], 'S2 out');
    assertFinite(r2[IO_NAMES.ipr], 'S2 ipr');
  });
}

test('dynamic-size graph equals static-size graphs', async () => {
  const cfg: DiffIRConfig = { ...PRESETS['realsr-x2'], dim: 8, numBlocks: [1, 1, 1, 2], numRefinementBlocks: 1, nEncoderRes: 1 };
  const dyn = DiffIRS2(cfg, { batch: sym('B') });
  const weights = initParams(dyn, 5);
  const sd = await compile(dyn, { params: 'initializers', weights }, { threads: 2 });
  for (const [b, h, w] of [[1, 16, 32], [2, 32, 16]] as const) {
    const input = randomTensor([b, 3, h, w], h + w);
    const xT = randomTensor([b, 256], b);
    const st = await compile(DiffIRS2(cfg, { batch: b, height: h, width: w }), { params: 'initializers', weights }, { threads: 2 });
    const a = (await sd.run({ input, x_T: xT }))[IO_NAMES.out]!;
    const e = (await st.run({ input, x_T: xT }))[IO_NAMES.out]!;
    await st.release();
    assert.deepEqual(a.shape, [b, 3, 2 * h, 2 * w]);
    const x = a.data as Float32Array;
    const y = e.data as Float32Array;
    let m = 0;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
    assert.ok(m < 1e-5, `max abs diff ${m}`);
  }
  await sd.release();
});
