/**
 * NIQE against ../shared/fixtures/metrics (BasicSR's calculate_niqe with the fixture's
 * niqe_pris_params.npz): restored images at crop 0 and 4, reference images, each within the
 * per-value tolerance the fixture README states; and its errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readImage8 } from '../src/metrics/color.js';
import { gamma, loadNiqeParams, niqe } from '../src/metrics/niqe.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const M = resolve(root, '../shared/fixtures/metrics');
const expected = JSON.parse(readFileSync(join(M, 'expected.json'), 'utf8'));

test('Γ matches known values', () => {
  assert.ok(Math.abs(gamma(0.5) - Math.sqrt(Math.PI)) < 1e-14);
  assert.ok(Math.abs(gamma(5) - 24) < 1e-12);
  assert.ok(Math.abs(gamma(10.5) / 1133278.3889487855 - 1) < 1e-13);
  assert.ok(Math.abs(gamma(0.1) / 9.513507698668732 - 1) < 1e-13);
});

test('NIQE matches BasicSR on the fixture images (crop 0, crop 4, reference images)', async () => {
  const p = loadNiqeParams(join(M, 'niqe_pris_params.npz'));
  for (const e of expected.images) {
    const restored = await readImage8(join(M, 'images/restored', e.name));
    const reference = await readImage8(join(M, 'images/reference', e.name));
    const got: [string, number, number, number][] = [
      ['niqe', niqe(restored, p, 0, e.name), e.niqe, e.niqe_tol],
      ['niqe_crop4', niqe(restored, p, 4, e.name), e.niqe_crop4, e.niqe_crop4_tol],
      ['niqe_reference_image', niqe(reference, p, 0, e.name), e.niqe_reference_image, e.niqe_reference_image_tol],
    ];
    for (const [k, v, want, tol] of got) assert.ok(Math.abs(v - want) <= tol, `${e.name} ${k}: ${v} vs ${want} (tol ${tol})`);
  }
});

test('NIQE refuses images with fewer than two 96×96 blocks, naming the image', () => {
  const p = loadNiqeParams(join(M, 'niqe_pris_params.npz'));
  const img = { channels: 3, height: 100, width: 150, data: new Uint8Array(3 * 100 * 150).map((_, i) => (i * 37) % 251) };
  assert.throws(() => niqe(img, p, 0, 'small.png'), /small\.png: NIQE needs at least two 96×96 blocks/);
});
