/**
 * The inpainting trainer: the official DiffIR-inpainting configs (defaults: form, committed under
 * options/DiffIR-inpainting) compose to the structure the official trainer saves (the fixture's
 * composed configs) and read to the official values; clear errors; a tiny stage-1 run that is
 * interrupted and resumed bit for bit, with checkpoints in both layouts and a report; a stage-2 run
 * started from that run's checkpoint (teacher and student, as the official configs do), resumed bit
 * for bit; and each official place2/celeba S1/S2 config training an iteration.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { composeLamaConfig, readLamaConfig } from '../src/train/lama-config.js';
import { InpaintTrainer, type InpaintTrainOptions, type InpaintTrainResult } from '../src/train/inpaint-trainer.js';
import { loadTrainingState } from '../src/train/checkpoint.js';
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

/** A temporary folder with ResNetPL's (synthetic) encoder where the configs' `${env:TORCH_HOME}` points. */
function torchHome(): string {
  const tmp = mkdtempSync(join(tmpdir(), 'diffir-inpaint-train-'));
  const encDir = join(tmp, 'ade20k', 'ade20k-resnet50dilated-ppm_deepsup');
  mkdirSync(encDir, { recursive: true });
  copyFileSync(synthWeights('inpaint_train/ade20k_encoder.manifest.json'), join(encDir, 'encoder_epoch_20.pth'));
  return tmp;
}

/** A fixture's composed config (tiny widths, 64² crops) with only the data paths changed (and `more`). */
function tinyConfig(tmp: string, stage: 1 | 2, more: (text: string) => string = (t) => t): string {
  const cfg = join(tmp, `tiny-s${stage}.yaml`);
  const text = readFileSync(join(F, `s${stage}_config.yaml`), 'utf8')
    .replace('data_root_dir: /data/data', `data_root_dir: ${tmp}/data`)
    .replace(/indir: \$\{location.data_root_dir\}\/(train|val)/g, `indir: ${IMAGES}`);
  writeFileSync(cfg, more(text));
  return cfg;
}

/** Runs `opts` straight, and interrupted after the first iteration then resumed; returns both. */
async function straightAndResumed(opts: InpaintTrainOptions, a: string, b: string): Promise<{ straight: InpaintTrainResult; resumed: InpaintTrainResult }> {
  const s = await InpaintTrainer.create({ ...opts, root: a });
  const straight = await s.run();
  await s.release();
  // Interrupted after the first iteration (as Ctrl-C does), then resumed.
  const ac = new AbortController();
  const first = await InpaintTrainer.create({ ...opts, root: b, logEvery: 1, signal: ac.signal, log: () => ac.abort() });
  const rb = await first.run();
  await first.release();
  assert.deepEqual([rb.iter, rb.interrupted], [1, true]);
  assert.ok(existsSync(join(b, 'training_states/1.state')));
  const r = await InpaintTrainer.create({ ...opts, root: b, autoResume: true });
  const resumed = await r.run();
  await r.release();
  return { straight, resumed };
}

/** The stage-1 tiny run (memoised: its checkpoint starts the stage-2 test). */
let stage1: Promise<{ tmp: string; cfg: string; straight: InpaintTrainResult; resumed: InpaintTrainResult }> | null = null;
function tinyStage1() {
  stage1 ??= (async () => {
    const tmp = torchHome();
    const cfg = tinyConfig(tmp, 1);
    const opts = { config: cfg, env: { TORCH_HOME: tmp }, iterations: 2, workers: 0, log: null, valEvery: 100, checkpointEvery: 100 } as const;
    return { tmp, cfg, ...(await straightAndResumed(opts, join(tmp, 'a'), join(tmp, 'b'))) };
  })();
  return stage1;
}

/** Asserts that the `G_<iter>.pth` and `net_g_<iter>.pth` of two experiments load strictly and are equal. */
function sameCheckpoints(cfg: string, env: Record<string, string>, a: string, b: string, iter: number): void {
  const c = readLamaConfig(cfg, env);
  for (const f of [`G_${iter}.pth`, `net_g_${iter}.pth`]) {
    const wa = selectWeights(loadStateDict(join(a, 'models', f)), c.generator, c.stage, f);
    const wb = selectWeights(loadStateDict(join(b, 'models', f)), c.generator, c.stage, f);
    for (const [k, t] of wa) assert.deepEqual(wb.get(k)!.data, t.data, `${f} ${k} after resume`);
  }
  const da = loadTrainingState(join(a, `training_states/${iter}.state`)).networks!.discriminator!;
  const db = loadTrainingState(join(b, `training_states/${iter}.state`)).networks!.discriminator!;
  for (const [k, t] of da) assert.deepEqual(db.get(k)!.data, t.data, `discriminator ${k} after resume`);
}

test('a tiny inpainting run: Ctrl-C saves, --auto_resume continues bit for bit, both checkpoint layouts, report', { skip: !existsSync(IMAGES) && 'no images' }, async () => {
  const { tmp, cfg, straight: ra, resumed: rc } = await tinyStage1();
  assert.equal(ra.iter, 2);
  for (const h of ra.history) for (const v of Object.values(h.losses)) assert.ok(Number.isFinite(v));
  assert.equal(rc.iter, 2);
  assert.deepEqual(rc.history[0]!.losses, ra.history[1]!.losses);
  sameCheckpoints(cfg, { TORCH_HOME: tmp }, join(tmp, 'a'), join(tmp, 'b'), 2);
  assert.ok(readFileSync(join(tmp, 'a/report.html'), 'utf8').includes('data:image/png;base64'));
  assert.ok(existsSync(join(tmp, 'a/config.yaml')));
});

test('stage 2 trains from the stage-1 checkpoint: KD term, student initialised from stage 1, --auto_resume bit for bit, strict checkpoints', { skip: !existsSync(IMAGES) && 'no images' }, async () => {
  const { tmp, cfg: cfg1 } = await tinyStage1();
  // Stage 1's flat G_2.pth is what the official S1forS2.py writes; the official stage-2 configs name
  // that one file for both the teacher (generatorS1_path) and the student's start (generatorS2_path).
  const s1 = join(tmp, 'a/models/G_2.pth');
  const cfg = tinyConfig(tmp, 2, (t) => t.replace('./s2_G_init.pth', s1).replace('./s1_G.pth', s1));
  const env = { TORCH_HOME: tmp };
  const opts = { config: cfg, env, iterations: 2, workers: 0, log: null, valEvery: 100, checkpointEvery: 100 } as const;
  const { straight, resumed } = await straightAndResumed(opts, join(tmp, 's2a'), join(tmp, 's2b'));
  assert.equal(straight.iter, 2);
  for (const h of straight.history) {
    for (const v of Object.values(h.losses)) assert.ok(Number.isFinite(v));
    // The student's diffusion starts fresh, so its IPR is far from the teacher's.
    assert.ok(h.losses.loss_kd_l1! > 1e-3, `loss_kd_l1 ${h.losses.loss_kd_l1}`);
    assert.ok(h.losses.loss_kd_kl !== undefined);
  }
  assert.equal(resumed.iter, 2);
  assert.deepEqual(resumed.history[0]!.losses, straight.history[1]!.losses);
  assert.equal(straight.validations.length, 1);
  sameCheckpoints(cfg, env, join(tmp, 's2a'), join(tmp, 's2b'), 2);
  // The student's G.* started from stage 1's: two Adam steps move each weight by at most ~lr each.
  const c1 = readLamaConfig(cfg1, env);
  const c2 = readLamaConfig(cfg, env);
  const w1 = selectWeights(loadStateDict(s1), c1.generator, 1, 'G_2.pth');
  const w2 = selectWeights(loadStateDict(join(tmp, 's2a/models/G_2.pth')), c2.generator, 2, 'G_2.pth');
  let worst = 0;
  let moved = 0;
  for (const [k, t] of w2) {
    if (!k.startsWith('G.')) continue;
    const a = w1.get(k)!.data as Float32Array;
    (t.data as Float32Array).forEach((v, i) => {
      worst = Math.max(worst, Math.abs(v - a[i]!));
      if (v !== a[i]) moved++;
    });
  }
  assert.ok(worst <= 3 * 2 * c2.lrG, `G.* moved ${worst} from stage 1 in two iterations`);
  assert.ok(moved > 0);
});

/** `a.b.c` → value of every leaf of a tree. */
function leaves(v: unknown, prefix = ''): Map<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return new Map([[prefix, JSON.stringify(v)]]);
  return new Map(Object.entries(v).flatMap(([k, x]) => [...leaves(x, prefix ? `${prefix}.${k}` : k)]));
}

function setKey(tree: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let o = tree;
  for (const p of parts.slice(0, -1)) o = o[p] as Record<string, unknown>;
  assert.ok(parts.at(-1)! in o, `${path} is in the official config`);
  o[parts.at(-1)!] = value;
}

test('the official DiffIRS1/S2 place2 and celeba configs each train an iteration with the data paths changed (and, for CI time, batch, crop and generator widths)', { skip: !existsSync(IMAGES) && 'no images' }, async () => {
  const tmp = torchHome();
  const data = join(tmp, 'data');
  mkdirSync(data);
  // The folders the official data configs name under the data root (place2: train, val; celeba: train_256, val_256).
  for (const d of ['train', 'val', 'train_256', 'val_256']) symlinkSync(IMAGES, join(data, d));
  const env = { TORCH_HOME: tmp };
  // At the official widths one iteration (batch 1, 64²) costs ~30 s of CPU per config: bench/train's
  // inpaint1/inpaint2 rows measure those widths. Everything else is the official value.
  const tiny = { dim: 8, num_blocks: [1, 1, 1, 1] };
  for (const name of ['place2', 'celeba']) {
    let s1 = '';
    for (const stage of [1, 2] as const) {
      const official = composeLamaConfig(join(CONFIGS, `DiffIRS${stage}-${name}.yaml`));
      const over: Record<string, unknown> = { 'location.data_root_dir': data, 'data.batch_size': 1, 'data.train.out_size': 64 };
      for (const g of stage === 1 ? ['generator'] : ['generator', 'generatorT']) for (const [k, v] of Object.entries(tiny)) over[`${g}.${k}`] = v;
      const tree = structuredClone(official) as Record<string, unknown>;
      for (const [k, v] of Object.entries(over)) setKey(tree, k, v);
      const cfg = join(tmp, `DiffIRS${stage}-${name}.yaml`);
      writeFileSync(cfg, stringify(tree));
      const root = join(tmp, `S${stage}-${name}`);
      // Stage 2: the stage-1 checkpoint as teacher and start (the configs name ./<data>-S1.pth; --weights/--teacher take their place).
      const t = await InpaintTrainer.create({ config: cfg, env, iterations: 1, workers: 0, log: null, root, ...(stage === 2 ? { weights: s1, teacher: s1 } : {}) });
      const r = await t.run();
      await t.release();
      assert.equal(r.iter, 1);
      const losses = r.history[0]!.losses;
      for (const v of Object.values(losses)) assert.ok(Number.isFinite(v), `${name} S${stage}: ${JSON.stringify(losses)}`);
      for (const k of ['loss_adv', 'loss_fm', 'loss_resnet_pl', 'loss_d_r1', ...(stage === 2 ? ['loss_kd_l1'] : [])]) assert.ok(losses[k]! > 0, `${name} S${stage} ${k} ${losses[k]}`);
      // The run saved the official composition with exactly the overridden keys changed.
      const a = leaves(official);
      const b = leaves(parse(readFileSync(join(root, 'config.yaml'), 'utf8')));
      assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
      const changed = [...a.keys()].filter((k) => a.get(k) !== b.get(k)).sort();
      assert.deepEqual(changed, Object.keys(over).sort());
      // Its checkpoint loads strictly as the config's generator.
      const c = readLamaConfig(cfg, env);
      selectWeights(loadStateDict(join(root, 'models/G_1.pth')), c.generator, stage, 'G_1.pth');
      if (stage === 1) s1 = join(root, 'models/G_1.pth');
    }
  }
});
