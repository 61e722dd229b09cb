/**
 * The inpainting trainers' iteration against the official code (`../shared/fixtures/inpaint_train`):
 * stage 1 and stage 2 through `diffir grad -opt <config>`, every stored tensor within the
 * tolerance the fixture's README states for it; and the mask resize's legacy nearest rule.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors } from '../src/weights/safetensors.js';
import type { TensorMap } from '../src/tensor.js';
import { legacyNearestIndex } from '../src/train/inpaint-losses.js';
import { FIXTURES_DIR, synthWeights } from './helpers/synth.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = join(root, 'dist/src/cli/main.js');
const F = join(FIXTURES_DIR, 'inpaint_train');
const LR_D = 1e-4;

/** The README's tolerance of a fixture tensor, given the largest magnitude of the reference. */
function tolerance(key: string, maxb: number): number {
  if (key.endsWith('num_batches_tracked')) return 0;
  if (key.includes('_loss_') || /_g_pred$/.test(key)) return 1e-4;
  if (/^s[12]_g\./.test(key)) return 2e-2 * maxb + 1e-6;
  if (/^s[12]_d\./.test(key)) return 5e-2 * maxb + 1e-6;
  if (/^s[12]_d_after\..*\.(weight|bias)$/.test(key)) return 2.5 * LR_D + 1e-6;
  return 1e-3 * maxb + 1e-6;
}

/** Every reference tensor of stage `s` against ours: failures, and the worst error/tolerance per group. */
function compare(ours: TensorMap, ref: TensorMap, s: number): { failed: string[]; worst: Record<string, number> } {
  const failed: string[] = [];
  const worst: Record<string, number> = {};
  for (const [key, b] of ref) {
    if (!key.startsWith(`s${s}_`)) continue;
    const a = ours.get(key);
    if (!a) {
      failed.push(`${key} missing`);
      continue;
    }
    assert.deepEqual(a.shape, b.shape, `${key}: shape`);
    const x = Array.from(a.data as ArrayLike<number | bigint>, Number);
    const y = Array.from(b.data as ArrayLike<number | bigint>, Number);
    let maxb = 0;
    let err = 0;
    for (let i = 0; i < y.length; i++) {
      maxb = Math.max(maxb, Math.abs(y[i]!));
      err = Math.max(err, Math.abs(x[i]! - y[i]!));
    }
    const tol = tolerance(key, maxb);
    const group = key.replace(/\..*/, '').replace(/_loss_.*|_pred$/, '_losses');
    worst[group] = Math.max(worst[group] ?? 0, tol === 0 ? (err === 0 ? 0 : Infinity) : err / tol);
    if (err > tol) failed.push(`${key}: |a−b| ${err.toExponential(3)} > ${tol.toExponential(3)}`);
  }
  return { failed, worst };
}

test('PyTorch legacy nearest index rule (64 → 11 as the README lists it)', () => {
  assert.deepEqual(
    Array.from({ length: 11 }, (_, i) => legacyNearestIndex(i, 64, 11)),
    [0, 5, 11, 17, 23, 29, 34, 40, 46, 52, 58],
  );
  assert.deepEqual(Array.from({ length: 4 }, (_, i) => legacyNearestIndex(i, 2, 4)), [0, 0, 1, 1]);
});

for (const stage of [1, 2] as const) {
  test(`inpainting stage ${stage}: one official iteration through 'diffir grad -opt' matches the fixture`, { skip: !existsSync(F) && 'no fixture' }, () => {
    const tmp = mkdtempSync(join(tmpdir(), 'diffir-inpaint-'));
    // ResNetPL's encoder where the official code looks: $TORCH_HOME/ade20k/ade20k-resnet50dilated-ppm_deepsup/.
    const encDir = join(tmp, 'ade20k', 'ade20k-resnet50dilated-ppm_deepsup');
    mkdirSync(encDir, { recursive: true });
    copyFileSync(synthWeights('inpaint_train/ade20k_encoder.manifest.json'), join(encDir, 'encoder_epoch_20.pth'));
    const s1 = synthWeights('inpaint_train/s1_G.manifest.json');
    const weights = stage === 1 ? s1 : synthWeights('inpaint_train/s2_G_init.manifest.json');
    const out = join(tmp, 'out.safetensors');
    const args = [bin, 'grad', '-opt', join(F, `s${stage}_config.yaml`), '--weights', weights, ...(stage === 2 ? ['--teacher', s1] : [])];
    args.push('--discriminator', join(F, `s${stage}_D.pth`), '--in', join(F, 'inputs.safetensors'), '--out', out);
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, TORCH_HOME: tmp } });
    assert.equal(r.status, 0, r.stderr);
    const { failed, worst } = compare(readSafetensors(out), readSafetensors(join(F, 'expected.safetensors')), stage);
    console.log(`stage ${stage} worst error / tolerance:`, JSON.stringify(Object.fromEntries(Object.entries(worst).map(([k, v]) => [k, Number(v.toPrecision(3))]))));
    assert.deepEqual(failed, []);
  });
}

test('ResNetPL without its encoder file: a one-line error naming the file and where to get it', { skip: !existsSync(F) && 'no fixture' }, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'diffir-inpaint-'));
  const r = spawnSync(
    process.execPath,
    [bin, 'grad', '-opt', join(F, 's1_config.yaml'), '--weights', synthWeights('inpaint_train/s1_G.manifest.json'), '--discriminator', join(F, 's1_D.pth'), '--in', join(F, 'inputs.safetensors'), '--out', join(tmp, 'o.safetensors')],
    { encoding: 'utf8', env: { ...process.env, TORCH_HOME: tmp } },
  );
  assert.equal(r.status, 1);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^diffir: .*ade20k-resnet50dilated-ppm_deepsup\/encoder_epoch_20\.pth.*sceneparsing\.csail\.mit\.edu/);
});
