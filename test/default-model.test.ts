/**
 * The built-in default model beats MATLAB bicubic upscaling on held-out photos (../shared/data/images,
 * never trained on) for every kind of input it is meant for: clean bicubic ×1/4, mild (blur 0.8,
 * ×1/4, JPEG 80) and heavy (Real-ESRGAN second order). Small crops, so it takes seconds; the
 * full evaluation with the goals is bench/default-model.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Restorer } from '../src/restore/restore.js';
import { DEFAULT_MODEL_PATH } from '../src/models/default-model.js';
import { imresize } from '../src/data/degrade/resize.js';
import { releaseDataSessions } from '../src/data/degrade/runtime.js';
import { evalPairs, EVAL_KINDS, type EvalKind } from '../src/data/eval-pairs.js';
import { measure } from '../src/metrics/psnr-ssim.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const photos = ['astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg'].map((f) => resolve(root, '../shared/data/images', f));

test('default model: a stage-2 ×4 SR model that beats bicubic on clean, mild and heavy held-out crops', async () => {
  const r = Restorer.load(DEFAULT_MODEL_PATH, { threads: 2 });
  assert.equal(r.config.task, 'sr');
  assert.equal(r.config.scale, 4);
  const pairs = await evalPairs(photos, { size: 128, crops: 2, seed: 0 });
  await releaseDataSessions();
  const sum: Record<EvalKind, { model: number; bicubic: number; n: number }> = { clean: { model: 0, bicubic: 0, n: 0 }, mild: { model: 0, bicubic: 0, n: 0 }, heavy: { model: 0, bicubic: 0, n: 0 } };
  const spec = { type: 'psnr' as const, cropBorder: 4, testYChannel: true };
  for (const p of pairs) {
    const [, , h, w] = p.lq.shape as number[];
    const out = (await r.restore({ rgb: p.lq, alpha: null, gray: false, bitDepth: 8, format: 'png', width: w!, height: h!, orientationApplied: false }, { seed: 0 })).rgb;
    const s = sum[p.kind];
    s.model += measure(out, p.gt, spec);
    s.bicubic += measure(await imresize(p.lq, 4), p.gt, spec);
    s.n++;
  }
  await r.release();
  const line = (k: EvalKind) => `${k}: default model ${(sum[k].model / sum[k].n).toFixed(2)} dB vs bicubic ${(sum[k].bicubic / sum[k].n).toFixed(2)} dB`;
  console.log(`${EVAL_KINDS.map(line).join('; ')} (PSNR-Y, crop 4, ${sum.clean.n} crops each)`);
  for (const k of EVAL_KINDS) assert.ok(sum[k].model > sum[k].bicubic, `${line(k)}: does not beat bicubic`);
});
