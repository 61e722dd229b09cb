/**
 * LPIPS (alex, vgg) and the FID Inception against ../shared/fixtures/metrics (the lpips package
 * and pytorch-fid in float64 on the fixture's synthesized weights): per-image LPIPS and its five
 * terms within 1e-6, Inception features within 1e-4 of their max, FID end to end within 1e-3
 * relative, from legacy (pre-1.6) `.pth` files and again from zip ones; and the missing-file errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readImage8, type Image8 } from '../src/metrics/color.js';
import { Lpips, type LpipsNet } from '../src/metrics/lpips.js';
import { FidInception, FID_DIM } from '../src/metrics/inception.js';
import { fidStatistics, frechetDistance } from '../src/metrics/frechet.js';
import { findMetricFile } from '../src/metrics/weights.js';
import { readSafetensors } from '../src/weights/safetensors.js';
import { METRICS_DIR, metricWeightsDir } from './helpers/metric-weights.js';

const expected = JSON.parse(readFileSync(join(METRICS_DIR, 'expected.json'), 'utf8'));
const names: string[] = expected.images.map((e: { name: string }) => e.name);
const legacy = metricWeightsDir('legacy');

async function set(which: 'restored' | 'reference'): Promise<Image8[]> {
  return Promise.all(names.map((n) => readImage8(join(METRICS_DIR, 'images', which, n))));
}

async function checkLpips(net: LpipsNet, dir: string): Promise<void> {
  const trunk = findMetricFile(net === 'alex' ? 'alexnet' : 'vgg16', dir);
  const lp = Lpips.load(net, trunk, findMetricFile(net === 'alex' ? 'lpips-alex' : 'lpips-vgg', dir), { threads: 2 });
  try {
    const [a, b] = [await set('restored'), await set('reference')];
    for (let i = 0; i < names.length; i++) {
      const e = expected.images[i];
      const [d] = await lp.distances([a[i]!], [b[i]!]);
      assert.ok(Math.abs(d!.value - e[`lpips-${net}`]) <= 1e-6, `${net} ${e.name}: ${d!.value} vs ${e[`lpips-${net}`]}`);
      d!.layers.forEach((v, k) => assert.ok(Math.abs(v - e[`lpips-${net}_layers`][k]) <= 1e-6, `${net} ${e.name} layer ${k}`));
    }
    // Batched: the five 200×200 pairs in one run give the same values; LPIPS is symmetric.
    const same = names.map((_, i) => i).filter((i) => a[i]!.height === 200 && a[i]!.width === 200);
    const batch = await lp.distances(same.map((i) => b[i]!), same.map((i) => a[i]!));
    same.forEach((i, j) => assert.ok(Math.abs(batch[j]!.value - expected.images[i][`lpips-${net}`]) <= 1e-6));
  } finally {
    await lp.release();
  }
}

test('LPIPS alex matches the lpips package (legacy .pth trunk and head)', () => checkLpips('alex', legacy));
test('LPIPS vgg matches the lpips package (legacy .pth trunk and head)', () => checkLpips('vgg', legacy));
test('LPIPS alex from zip (torch ≥ 1.6) .pth files gives the same values', () => checkLpips('alex', metricWeightsDir('zip', true)));

test('FID Inception features and FID between the folders match pytorch-fid', async () => {
  const net = await FidInception.load(findMetricFile('inception', legacy), { threads: 2 });
  try {
    const ref = readSafetensors(join(METRICS_DIR, 'features.safetensors'));
    const feats: Record<string, Float32Array> = {};
    for (const which of ['restored', 'reference'] as const) {
      const f = await net.features(await set(which));
      const want = ref.get(`inception.${which}`)!.data as Float32Array;
      assert.equal(f.length, names.length * FID_DIM);
      let max = 0;
      let diff = 0;
      for (let i = 0; i < want.length; i++) {
        max = Math.max(max, Math.abs(want[i]!));
        diff = Math.max(diff, Math.abs(want[i]! - f[i]!));
      }
      assert.ok(diff <= 1e-4 * max, `${which} features: max diff ${diff} (max ${max})`);
      feats[which] = f;
    }
    const fid = frechetDistance(fidStatistics(feats.restored!, names.length, FID_DIM), fidStatistics(feats.reference!, names.length, FID_DIM)).value;
    assert.ok(Math.abs(fid - expected.fid) <= 1e-3 * expected.fid, `FID ${fid} vs ${expected.fid}`);
  } finally {
    await net.release();
  }
});

test('a missing metric weight file is a one-line error naming the file and where to get it', () => {
  const env = { HOME: '/nonexistent', TORCH_HOME: '/nonexistent/torch' };
  assert.throws(() => findMetricFile('inception', '/nonexistent/w', env), (e: Error) => {
    assert.match(e.message, /^pt_inception-2015-12-05-6726825d\.pth not found \(looked in --weights-dir \/nonexistent\/w, \/nonexistent\/torch\/hub\/checkpoints/);
    assert.match(e.message, /pytorch-fid/);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
  assert.throws(() => findMetricFile('lpips-vgg', undefined, env), /v0\.1\/vgg\.pth not found .*pip install lpips/);
  // TORCH_HOME/hub/checkpoints and the lpips package layout (DIR/weights/v0.1/…) are searched too.
  const home = mkdtempSync(join(tmpdir(), 'diffir-torch-home-'));
  mkdirSync(join(home, 'hub/checkpoints'), { recursive: true });
  writeFileSync(join(home, 'hub/checkpoints/alexnet-owt-7be5be79.pth'), '');
  assert.equal(findMetricFile('alexnet', '/nonexistent/w', { ...env, TORCH_HOME: home }), join(home, 'hub/checkpoints/alexnet-owt-7be5be79.pth'));
  mkdirSync(join(home, 'weights/v0.1'), { recursive: true });
  writeFileSync(join(home, 'weights/v0.1/alex.pth'), '');
  assert.equal(findMetricFile('lpips-alex', home, env), join(home, 'weights/v0.1/alex.pth'));
});
