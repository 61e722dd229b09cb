/**
 * The inpainting trainer: the official DiffIR-inpainting configs (defaults: form, committed under
 * options/DiffIR-inpainting) compose to the structure the official trainer saves (the fixture's
 * composed configs) and read to the official values; clear errors; and a tiny training run that is
 * interrupted and resumed bit for bit, with checkpoints in both layouts and a report.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { composeLamaConfig, readLamaConfig } from '../src/train/lama-config.js';
import { InpaintTrainer } from '../src/train/inpaint-trainer.js';
import { loadStateDict } from '../src/weights/statedict.js';
import { selectWeights } from '../src/models/params.js';
import { FIXTURES_DIR, synthWeights } from './helpers/synth.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CONFIGS = join(root, 'options/DiffIR-inpainting/configs/training');
const F = join(FIXTURES_DIR, 'inpaint_train');
const IMAGES = resolve(FIXTURES_DIR, '../data/images');
const env = { TORCH_HOME: '/weights' };

/** The key paths of a tree (values ignored), as `a.b.c`. */
function keyPaths(v: unknown, prefix = ''): string[] {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return [prefix];
  return Object.entries(v).flatMap(([k, x]) => keyPaths(x, prefix ? `${prefix}.${k}` : k));
}

test('official configs read to the official values', () => {
  for (const name of ['place2', 'celeba']) {
    const s1 = readLamaConfig(join(CONFIGS, `DiffIRS1-${name}.yaml`), env);
    const s2 = readLamaConfig(join(CONFIGS, `DiffIRS2-${name}.yaml`), env);
    assert.equal(s1.stage, 1);
    assert.equal(s2.stage, 2);
    for (const c of [s1, s2]) {
      assert.deepEqual([c.generator.dim, [...c.generator.numBlocks], c.generator.nEncoderRes, c.generator.ffnExpansionFactor], [52, [1, 1, 1, 9], 5, 1.8]);
      assert.deepEqual(c.discriminator, { inputNc: 3, ndf: 64, nLayers: 4 });
      assert.deepEqual([c.lrG, c.lrD, c.gradientClipVal], [2e-4, 1e-4, 1]);
      assert.deepEqual(c.losses.adversarial, { weight: 10, gpCoef: 0.001, maskAsFakeTarget: true, allowScaleMask: true });
      assert.deepEqual([c.losses.l1.weightKnown, c.losses.l1.weightMissing, c.losses.featureMatching, c.losses.resnetPl], [10, 0, 100, 30]);
      assert.equal(c.resnetPlWeightsPath, '/weights');
      assert.equal(c.data.outSize, 256);
      assert.equal(c.data.masks.box?.bboxMaxSize, 150);
    }
    assert.deepEqual(s2.losses.kd, { weight: 1, temperature: 0.15 });
    assert.equal(s2.teacher?.dim, 52);
    assert.equal(s2.generator.timesteps, 4);
  }
  assert.equal(readLamaConfig(join(CONFIGS, 'DiffIRS1-place2.yaml'), env).data.batchSize, 10);
  assert.equal(readLamaConfig(join(CONFIGS, 'DiffIRS1-celeba.yaml'), env).data.trainDir, '/mnt/bn/xiabinpaint/dataset/celeba-hq-dataset//train_256');
  assert.deepEqual([...readLamaConfig(join(CONFIGS, 'DiffIRbigdataS2-place2.yaml'), env).generator.numBlocks], [1, 1, 1, 20]);
  // The official bigdata stage-1 file names group files its repository lacks.
  assert.throws(() => readLamaConfig(join(CONFIGS, 'DiffIRbigdataS1-place2.yaml'), env), /location: place2_big' needs .*location\/place2_big\.yaml, which does not exist/);
});

test('the defaults: form composes to the structure the official trainer saves', () => {
  for (const s of [1, 2]) {
    const ours = composeLamaConfig(join(CONFIGS, `DiffIRS${s}-place2.yaml`));
    const saved = parse(readFileSync(join(F, `s${s}_config.yaml`), 'utf8'));
    assert.deepEqual(keyPaths(ours).sort(), keyPaths(saved).sort());
    // Interpolations stay unresolved in the composed tree, as in config.yaml.
    assert.equal((ours.losses as Record<string, Record<string, unknown>>).resnet_pl!.weights_path, '${env:TORCH_HOME}');
  }
});

test('config errors name the key', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'diffir-lama-'));
  const base = readFileSync(join(F, 's1_config.yaml'), 'utf8');
  const write = (text: string) => {
    const p = join(tmp, `c${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(p, text);
    return p;
  };
  assert.throws(() => readLamaConfig(write(base.replace('  gp_coef: 0.001', '  gp_coef: 0.001\n    gp_coeff: 1')), env), /unknown key 'losses\.adversarial\.gp_coeff'/);
  assert.throws(() => readLamaConfig(write(base), {}), /losses\.resnet_pl\.weights_path is \$\{env:TORCH_HOME\}, but the environment variable TORCH_HOME is not set/);
  assert.throws(() => readLamaConfig(write(base.replace('  perceptual:\n    weight: 0', '  perceptual:\n    weight: 1')), env), /losses\.perceptual\.weight: 1 is not supported/);
  assert.throws(() => readLamaConfig(write(base.replace('${location.data_root_dir}/train', '${location.nowhere}/train')), env), /data\.train\.indir refers to 'location\.nowhere'/);
});

test('a tiny inpainting run: Ctrl-C saves, --auto_resume continues bit for bit, both checkpoint layouts, report', { skip: !existsSync(IMAGES) && 'no images' }, async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'diffir-inpaint-train-'));
  const encDir = join(tmp, 'ade20k', 'ade20k-resnet50dilated-ppm_deepsup');
  mkdirSync(encDir, { recursive: true });
  copyFileSync(synthWeights('inpaint_train/ade20k_encoder.manifest.json'), join(encDir, 'encoder_epoch_20.pth'));
  // The fixture's composed stage-1 config (tiny widths, 64² crops) with only the data paths changed.
  const cfg = join(tmp, 'tiny.yaml');
  writeFileSync(cfg, readFileSync(join(F, 's1_config.yaml'), 'utf8').replace('data_root_dir: /data/data', `data_root_dir: ${tmp}/data`).replace(/indir: \$\{location.data_root_dir\}\/(train|val)/g, `indir: ${IMAGES}`));
  const opts = { config: cfg, env: { TORCH_HOME: tmp }, iterations: 2, workers: 0, log: null, valEvery: 100, checkpointEvery: 100 } as const;
  const straight = await InpaintTrainer.create({ ...opts, root: join(tmp, 'a') });
  const ra = await straight.run();
  await straight.release();
  assert.equal(ra.iter, 2);
  for (const h of ra.history) for (const v of Object.values(h.losses)) assert.ok(Number.isFinite(v));
  // Interrupted after the first iteration (as Ctrl-C does), then resumed.
  const ac = new AbortController();
  const first = await InpaintTrainer.create({ ...opts, root: join(tmp, 'b'), logEvery: 1, signal: ac.signal, log: () => ac.abort() });
  const rb = await first.run();
  await first.release();
  assert.deepEqual([rb.iter, rb.interrupted], [1, true]);
  assert.ok(existsSync(join(tmp, 'b/training_states/1.state')));
  const resumed = await InpaintTrainer.create({ ...opts, root: join(tmp, 'b'), autoResume: true });
  const rc = await resumed.run();
  await resumed.release();
  assert.equal(rc.iter, 2);
  assert.deepEqual(rc.history[0]!.losses, ra.history[1]!.losses);
  const c = readLamaConfig(cfg, { TORCH_HOME: tmp });
  for (const f of ['G_2.pth', 'net_g_2.pth']) {
    const a = selectWeights(loadStateDict(join(tmp, 'a/models', f)), c.generator, 1, f);
    const b = selectWeights(loadStateDict(join(tmp, 'b/models', f)), c.generator, 1, f);
    for (const [k, t] of a) assert.deepEqual(b.get(k)!.data, t.data, `${f} ${k} after resume`);
  }
  assert.ok(readFileSync(join(tmp, 'a/report.html'), 'utf8').includes('data:image/png;base64'));
  assert.ok(existsSync(join(tmp, 'a/config.yaml')));
});
