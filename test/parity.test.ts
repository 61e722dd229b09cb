/**
 * Parity with the official PyTorch DiffIR: for each fixture folder in ../shared/fixtures,
 * load the official-format checkpoints through the real loader, detect the architecture
 * (checked against config.json), run S1 and S2 (inference with the fixture's x_T, and the
 * training-mode forward with its teacher IPR and ε) and compare every stored tensor. Where the
 * fixture has gradients, the L1 losses' gradients through our graphs (autodiff) are compared too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type DiffIRConfig, type Stage } from '../src/models/config.js';
import { ddpmSchedule, scheduleBuffers } from '../src/models/ddpm.js';
import { detectArchitecture } from '../src/models/detect.js';
import { DiffIRS1, DiffIRS2, IO_NAMES } from '../src/models/diffir.js';
import { selectWeights } from '../src/models/params.js';
import { compile } from '../src/runtime/compile.js';
import type { HostTensor, TensorMap } from '../src/tensor.js';
import { readSafetensors } from '../src/weights/safetensors.js';
import { loadStateDict } from '../src/weights/statedict.js';
import { grad } from '../src/graph/autodiff.js';
import type { Graph, Value } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';

const TOL = 1e-4;
/** Gradient tolerance of the fixtures: |a−b| ≤ 1e-3·max|b| + 1e-6 per tensor. */
const GRAD_RTOL = 1e-3;
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixturesDir = resolve(repoRoot, '..', 'shared', 'fixtures');
const folders = existsSync(fixturesDir)
  ? readdirSync(fixturesDir, { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(join(fixturesDir, d.name, 'io.safetensors')))
      .map((d) => d.name)
      .sort()
  : [];

interface FixtureConfig {
  task: string;
  scale: number;
  network: {
    n_encoder_res: number;
    dim: number;
    num_blocks: number[];
    num_refinement_blocks: number;
    heads: number[];
    ffn_expansion_factor: number;
    LayerNorm_type: string;
  };
  network_s2_extra: { n_denoise_res: number; linear_start: number; linear_end: number; timesteps: number };
}

function maxAbsDiff(a: HostTensor, b: HostTensor, what: string): number {
  assert.deepEqual([...a.shape], [...b.shape], `${what}: shape`);
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i]! - y[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

function checkConfig(cfg: DiffIRConfig, want: FixtureConfig, stage: Stage): void {
  const n = want.network;
  assert.equal(cfg.task, want.task);
  assert.equal(cfg.scale, want.scale);
  assert.equal(cfg.dim, n.dim);
  assert.deepEqual([...cfg.numBlocks], n.num_blocks);
  if (cfg.task !== 'inpaint') assert.equal(cfg.numRefinementBlocks, n.num_refinement_blocks);
  assert.deepEqual([...cfg.heads], n.heads);
  assert.ok(Math.abs(cfg.ffnExpansionFactor - n.ffn_expansion_factor) < 1e-9, `ffn ${cfg.ffnExpansionFactor} vs ${n.ffn_expansion_factor}`);
  assert.equal(cfg.layerNormType, n.LayerNorm_type);
  assert.equal(cfg.nEncoderRes, n.n_encoder_res);
  if (stage === 2) {
    const e = want.network_s2_extra;
    assert.equal(cfg.nDenoiseRes, e.n_denoise_res);
    assert.equal(cfg.timesteps, e.timesteps);
    assert.ok(Math.abs(cfg.linearStart - e.linear_start) < 1e-9 && Math.abs(cfg.linearEnd - e.linear_end) < 1e-9);
  }
}

async function run(g: Graph, weights: TensorMap, feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const s = await compile(g, { params: 'initializers', weights });
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

if (folders.length === 0) test('parity fixtures', { skip: `no fixtures in ${fixturesDir}` }, () => {});

for (const name of folders) {
  test(`parity: ${name}`, async (t) => {
    const dir = join(fixturesDir, name);
    const want = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as FixtureConfig;
    const io = readSafetensors(join(dir, 'io.safetensors'));
    const get = (k: string): HostTensor => {
      const v = io.get(k);
      assert.ok(v, `io.safetensors has no '${k}'`);
      return v;
    };
    const input = get('input');
    const [batch, , height, width] = input.shape as [number, number, number, number];
    const errors: Record<string, number> = {};
    const compare = (got: HostTensor | undefined, key: string, label = key) => {
      assert.ok(got, `missing output for ${label}`);
      errors[label] = maxAbsDiff(got, get(key), `${name} ${label}`);
    };

    // Stage 1.
    const sd1 = loadStateDict(join(dir, 's1.pth'));
    const det1 = detectArchitecture(sd1, `${name}/s1.pth`);
    assert.equal(det1.stage, 1);
    checkConfig(det1.config, want, 1);
    const r1 = await run(DiffIRS1(det1.config, { batch, height, width }), selectWeights(sd1, det1.config, 1), { input, gt: get('gt') });
    compare(r1[IO_NAMES.ipr], 's1_ipr');
    compare(r1[IO_NAMES.out], 's1_out');

    // Stage 2, inference from the fixture's x_T, with every intermediate IPR.
    const sd2 = loadStateDict(join(dir, 's2.pth'));
    const det2 = detectArchitecture(sd2, `${name}/s2.pth`);
    assert.equal(det2.stage, 2);
    checkConfig(det2.config, want, 2);
    const w2 = selectWeights(sd2, det2.config, 2);
    const shape = { batch, height, width };
    const r2 = await run(DiffIRS2(det2.config, shape, { intermediates: true }), w2, { input, x_T: get('s2_xT') });
    compare(r2[IO_NAMES.cond], 's2_cond');
    for (let s = det2.config.timesteps - 1; s >= 0; s--) compare(r2[`${IO_NAMES.iprStep}${s}`], `s2_ipr_t${s}`);
    compare(r2[IO_NAMES.ipr], 's2_ipr');
    compare(r2[IO_NAMES.out], 's2_out');

    // The same with dynamic height and width (the export used for real images).
    const rDyn = await run(DiffIRS2(det2.config, { batch }), w2, { input, x_T: get('s2_xT') });
    compare(rDyn[IO_NAMES.out], 's2_out', 's2_out(dynamic H,W)');

    // The schedule computed from linear_start / linear_end / timesteps equals the stored buffers.
    const sched = scheduleBuffers(ddpmSchedule(det2.config.timesteps, det2.config.linearStart, det2.config.linearEnd));
    let bufErr = 0;
    for (const [k, v] of sched) {
      const stored = sd2.get(k);
      assert.ok(stored, `s2.pth has no '${k}'`);
      bufErr = Math.max(bufErr, maxAbsDiff(v, stored, k));
    }
    errors[`diffusion.* buffers (${sched.size})`] = bufErr;

    // Stage 2, training-mode forward (q_sample of the teacher IPR with the fixture's ε).
    const r3 = await run(DiffIRS2(det2.config, shape, { mode: 'train' }), w2, {
      input,
      teacher_ipr: get('s2_train_teacher'),
      eps: get('s2_train_eps'),
    });
    compare(r3[IO_NAMES.ipr], 's2_train_ipr');
    compare(r3[IO_NAMES.out], 's2_train_out');

    t.diagnostic(`${name} max abs error: ${Object.entries(errors).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')}`);
    const bad = Object.entries(errors).filter(([, v]) => !(v <= TOL));
    assert.deepEqual(bad, [], `${name}: tensors beyond ${TOL}`);
  });
}

/** Mean absolute error, as the official L1 loss. */
function l1(a: Value, b: Value): Value {
  return op.reduceMean(op.abs(op.sub(a, b)), [...a.shape.keys()], false);
}

function named(g: Graph, name: string): Value {
  const v = [...g.inputs, ...g.outputs].find((x) => x.name === name);
  assert.ok(v, `graph has no value '${name}'`);
  return v;
}

/**
 * Appends ∂loss/∂θ for the parameters the fixture stored under `<prefix>.`, runs the graph and
 * returns the loss and the worst per-tensor relative gradient error.
 */
async function gradientErrors(
  g: Graph,
  loss: Value,
  prefix: string,
  grads: TensorMap,
  weights: TensorMap,
  feeds: Record<string, HostTensor>,
): Promise<{ loss: number; worst: number; worstKey: string; count: number; failed: string[] }> {
  g.output(loss, 'loss');
  const names = [...g.params.keys()].filter((k) => grads.has(`${prefix}.${k}`));
  grad(loss, names.map((k) => g.params.get(k)!.value)).forEach((v, i) => g.output(v, `grad:${names[i]}`));
  const r = await run(g, weights, feeds);
  let worst = 0;
  let worstKey = '';
  const failed: string[] = [];
  for (const k of names) {
    const a = r[`grad:${k}`]!.data as Float32Array;
    const b = grads.get(`${prefix}.${k}`)!.data as Float32Array;
    let mb = 0;
    let md = 0;
    for (let i = 0; i < b.length; i++) {
      mb = Math.max(mb, Math.abs(b[i]!));
      md = Math.max(md, Math.abs(a[i]! - b[i]!));
    }
    if (!(md <= GRAD_RTOL * mb + 1e-6)) failed.push(`${k} (${md} vs max ${mb})`);
    const rel = Number.isNaN(md) ? Infinity : md / (mb || 1);
    if (rel > worst) [worst, worstKey] = [rel, k];
  }
  return { loss: (r.loss!.data as Float32Array)[0]!, worst, worstKey, count: names.length, failed };
}

for (const name of folders.filter((f) => existsSync(join(fixturesDir, f, 'grads.safetensors')))) {
  test(`parity gradients: ${name}`, async (t) => {
    const dir = join(fixturesDir, name);
    const io = readSafetensors(join(dir, 'io.safetensors'));
    const grads = readSafetensors(join(dir, 'grads.safetensors'));
    const input = io.get('input')!;
    const gtT = io.get('gt')!;
    const [batch, , height, width] = input.shape as [number, number, number, number];
    const shape = { batch, height, width };
    const runs = new Set([...grads.keys()].map((k) => k.slice(0, k.indexOf('.'))));
    const lines: string[] = [];
    const scalar = (k: string) => (io.get(k)!.data as Float32Array)[0]!;

    if (runs.has('s1')) {
      const sd = loadStateDict(join(dir, 's1.pth'));
      const { config } = detectArchitecture(sd);
      const g = DiffIRS1(config, shape);
      const e = await gradientErrors(g, l1(named(g, IO_NAMES.out), named(g, IO_NAMES.gt)), 's1', grads, selectWeights(sd, config, 1), { input, gt: gtT });
      assert.ok(Math.abs(e.loss - scalar('s1_train_loss')) < TOL, `s1 loss ${e.loss} vs ${scalar('s1_train_loss')}`);
      lines.push(`s1 ${e.count} grads worst rel ${e.worst.toExponential(2)} (${e.worstKey})`);
      assert.deepEqual(e.failed, [], `${name} s1: gradients beyond tolerance`);
    }
    const sd2 = loadStateDict(join(dir, 's2.pth'));
    const { config } = detectArchitecture(sd2);
    const w2 = selectWeights(sd2, config, 2);
    for (const key of ['s2joint', 's2enc'].filter((r) => runs.has(r))) {
      const g = DiffIRS2(config, shape, { mode: 'train' });
      const gt = g.input('gt', gtT.shape);
      const kd = l1(named(g, IO_NAMES.ipr), named(g, IO_NAMES.teacher));
      const loss = key === 's2joint' ? op.add(l1(named(g, IO_NAMES.out), gt), kd) : kd;
      const feeds = { input, gt: gtT, teacher_ipr: io.get('s2_train_teacher')!, eps: io.get('s2_train_eps')! };
      const e = await gradientErrors(g, loss, key, grads, w2, feeds);
      const want = key === 's2joint' ? scalar('s2_train_loss_pix') + scalar('s2_train_loss_kd') : scalar('s2_enc_loss');
      assert.ok(Math.abs(e.loss - want) < TOL, `${key} loss ${e.loss} vs ${want}`);
      lines.push(`${key} ${e.count} grads worst rel ${e.worst.toExponential(2)} (${e.worstKey})`);
      assert.deepEqual(e.failed, [], `${name} ${key}: gradients beyond tolerance`);
    }
    t.diagnostic(`${name} gradients: ${lines.join('; ')}`);
  });
}
