/**
 * The training step's gradients against the official code: for every fixture with
 * `grads.safetensors`, the runs s1, s2joint and s2enc through the same compiled step the trainer
 * uses, with IPR_S1 both from the fixture tensor and from the stage-1 CPEN computed in the graph
 * (as in training); and once through `diffir grad`. Tolerance of the fixtures:
 * |a−b| ≤ 1e-3·max|b| + 1e-6 per tensor. The logged KD terms are checked too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { computeGradients } from '../src/train/gradients.js';
import type { LossKind } from '../src/train/objective.js';
import { readSafetensors, readSafetensorsWithMetadata } from '../src/weights/safetensors.js';
import { loadStateDict } from '../src/weights/statedict.js';
import type { HostTensor, TensorMap } from '../src/tensor.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const fixtures = resolve(root, '../shared/fixtures');
const bin = join(root, 'dist/src/cli/main.js');
const folders = existsSync(fixtures) ? readdirSync(fixtures).filter((d) => existsSync(join(fixtures, d, 'grads.safetensors'))).sort() : [];

/** Worst relative error over the gradients the fixture stores under `<run>.`; failures listed. */
function compare(ours: TensorMap, ref: TensorMap, run: string): { worst: number; n: number; failed: string[] } {
  let worst = 0;
  let n = 0;
  const failed: string[] = [];
  for (const [key, b] of ref) {
    if (!key.startsWith(`${run}.`)) continue;
    const name = key.slice(run.length + 1);
    const a = ours.get(name);
    if (!a) {
      failed.push(`${name} missing`);
      continue;
    }
    const x = a.data as Float32Array;
    const y = b.data as Float32Array;
    let mb = 0;
    let md = 0;
    for (let i = 0; i < y.length; i++) {
      mb = Math.max(mb, Math.abs(y[i]!));
      md = Math.max(md, Math.abs(x[i]! - y[i]!));
    }
    if (!(md <= 1e-3 * mb + 1e-6)) failed.push(`${name} (${md} vs max ${mb})`);
    worst = Math.max(worst, Number.isNaN(md) ? Infinity : md / (mb || 1));
    n++;
  }
  return { worst, n, failed };
}

const scalar = (io: TensorMap, k: string) => (io.get(k)!.data as Float32Array)[0]!;

/** KL(softmax(t/T) ‖ softmax(s/T)) / B in float64, the official KDLoss's logged term. */
function klBatchmean(s: HostTensor, t: HostTensor, T = 0.15): number {
  const [b, d] = s.shape as [number, number];
  let total = 0;
  for (let i = 0; i < b; i++) {
    const row = (x: HostTensor) => Array.from((x.data as Float32Array).subarray(i * d, (i + 1) * d), (v) => v / T);
    const lse = (r: number[]) => {
      const m = Math.max(...r);
      return m + Math.log(r.reduce((a, v) => a + Math.exp(v - m), 0));
    };
    const rs = row(s);
    const rt = row(t);
    const ls = lse(rs);
    const lt = lse(rt);
    for (let j = 0; j < d; j++) total += Math.exp(rt[j]! - lt) * (rt[j]! - lt - (rs[j]! - ls));
  }
  return total / b;
}

if (folders.length === 0) test('training gradients vs fixtures', { skip: `no fixtures in ${fixtures}` }, () => {});

for (const name of folders) {
  test(`training gradients match the official grads.safetensors: ${name}`, async (t) => {
    const dir = join(fixtures, name);
    const io = readSafetensors(join(dir, 'io.safetensors'));
    const ref = readSafetensors(join(dir, 'grads.safetensors'));
    const runs = new Set([...ref.keys()].map((k) => k.slice(0, k.indexOf('.'))));
    const s1 = loadStateDict(join(dir, 's1.pth'));
    const s2 = loadStateDict(join(dir, 's2.pth'));
    const lines: string[] = [];
    for (const kind of ['s1', 's2joint', 's2enc'] as LossKind[]) {
      if (!runs.has(kind)) continue;
      for (const inGraph of kind === 's1' ? [false] : [false, true]) {
        const r = await computeGradients({ kind, weights: kind === 's1' ? s1 : s2, data: io, ...(inGraph ? { teacher: s1 } : {}), session: { threads: 1 } });
        const want = kind === 's1' ? scalar(io, 's1_train_loss') : kind === 's2joint' ? scalar(io, 's2_train_loss_pix') + scalar(io, 's2_train_loss_kd') : scalar(io, 's2_enc_loss');
        assert.ok(Math.abs(r.loss - want) < 1e-5, `${kind}: loss ${r.loss} vs ${want}`);
        const e = compare(r.grads, ref, kind);
        assert.deepEqual(e.failed, [], `${name} ${kind}${inGraph ? ' (teacher in graph)' : ''}: gradients beyond tolerance`);
        if (kind === 's2enc') assert.deepEqual([...r.grads.keys()].every((k) => k.startsWith('condition.') || k.startsWith('denoise.')), true, 'phase A trains CPEN_S2 + denoiser only');
        if (kind !== 's1') {
          const kl = klBatchmean(io.get('s2_train_ipr')!, io.get('s2_train_teacher')!);
          assert.ok(Math.abs(r.logs.l_kd_3! - kl) < 1e-4 * Math.max(1, kl), `logged KL ${r.logs.l_kd_3} vs ${kl}`);
          assert.ok(Math.abs(r.logs.l_abs_3! - scalar(io, 's2_train_loss_kd')) < 1e-6);
        }
        lines.push(`${kind}${inGraph ? '+teacher' : ''} ${e.n} tensors, worst rel ${e.worst.toExponential(2)}`);
      }
    }
    t.diagnostic(`${name}: ${lines.join('; ')}`);
  });
}

test('diffir grad writes the gradients keyed by official names', { skip: !folders.includes('deblur') && 'no deblur fixture' }, () => {
  const dir = join(fixtures, 'deblur');
  const tmp = mkdtempSync(join(tmpdir(), 'diffir-grad-'));
  const out = join(tmp, 'g.safetensors');
  const r = spawnSync(process.execPath, [bin, 'grad', '--weights', join(dir, 's2.pth'), '--teacher', join(dir, 's1.pth'), '--in', join(dir, 'io.safetensors'), '--loss', 's2joint', '--out', out, '--threads', '1'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /wrote .*: 134 gradients, loss 0\.156419/);
  const { tensors, metadata } = readSafetensorsWithMetadata(out);
  assert.equal(metadata.get('loss'), 's2joint');
  const e = compare(tensors, readSafetensors(join(dir, 'grads.safetensors')), 's2joint');
  assert.deepEqual(e.failed, []);
  assert.equal(e.n, 124);
  // Errors are one line and name the problem.
  const bad = spawnSync(process.execPath, [bin, 'grad', '--weights', join(dir, 's1.pth'), '--in', join(dir, 'io.safetensors'), '--loss', 's2enc', '--out', join(tmp, 'x.safetensors')], { encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr.trim(), /^diffir: .*s1\.pth: a stage-1 checkpoint, but loss 's2enc' needs a stage-2 model$/);
  const badLoss = spawnSync(process.execPath, [bin, 'grad', '--weights', join(dir, 's1.pth'), '--in', join(dir, 'io.safetensors'), '--loss', 'kd', '--out', join(tmp, 'y.safetensors')], { encoding: 'utf8' });
  assert.match(badLoss.stderr, /--loss must be one of s1, s2joint, s2enc/);
});
