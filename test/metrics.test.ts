/**
 * PSNR / SSIM against BasicSR's calculate_psnr / calculate_ssim. The expected numbers were
 * computed once with numpy, re-expressing basicsr/metrics/psnr_ssim.py operation by operation
 * (BGR uint8 images as tensor2img gives them, to_y_channel's float32/float64 steps, OpenCV's
 * Gaussian kernel and the 'valid' part of filter2D) on the two synthetic images below.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { psnr, ssim, toUint8, yChannel, measure, type Image8 } from '../src/metrics/index.js';
import { f32 } from '../src/tensor.js';

const H = 40;
const W = 37;
function synth(f: (c: number, y: number, x: number) => number): Image8 {
  const data = new Uint8Array(3 * H * W);
  for (let c = 0; c < 3; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) data[(c * H + y) * W + x] = f(c, y, x);
  return { channels: 3, height: H, width: W, data };
}
const a0 = (c: number, y: number, x: number) => (x * 7 + y * 13 + c * 29 + ((x * y) % 17) * 5) % 256;
const A = synth(a0);
const B = synth((c, y, x) => Math.min(255, Math.max(0, a0(c, y, x) + ((x * 31 + y * 17 + c * 11) % 21) - 10)));

// [crop_border, test_y_channel, psnr, ssim] from the numpy re-expression of BasicSR.
const EXPECTED: [number, boolean, number, number][] = [
  [0, false, 32.58097636324065, 0.9898567543965773],
  [0, true, 39.837531508430864, 0.996610398142925],
  [4, true, 39.83124065274531, 0.9967318648630249],
  [3, false, 32.58237726243146, 0.9900930413880394],
];

test('PSNR and SSIM match BasicSR (RGB and Y channel, crop border)', () => {
  for (const [cropBorder, testYChannel, p, s] of EXPECTED) {
    const o = { cropBorder, testYChannel };
    assert.ok(Math.abs(psnr(A, B, o) - p) < 1e-9, `psnr ${JSON.stringify(o)}: ${psnr(A, B, o)} vs ${p}`);
    assert.ok(Math.abs(ssim(A, B, o) - s) < 1e-10, `ssim ${JSON.stringify(o)}: ${ssim(A, B, o)} vs ${s}`);
  }
  assert.equal(psnr(A, A), Infinity);
  assert.ok(Math.abs(ssim(A, A) - 1) < 1e-12);
});

test("Y channel is BasicSR's to_y_channel (float32 steps), R·65.481 + G·128.553 + B·24.966 + 16", () => {
  const y = yChannel(A);
  assert.deepEqual([...y.data.subarray(0, 4)], [36.29829406738281, 42.310062408447266, 48.32182312011719, 54.333587646484375]);
  const white = yChannel({ channels: 3, height: 1, width: 1, data: new Uint8Array([255, 255, 255]) });
  assert.equal(white.data[0], Math.fround(Math.fround(235 / 255) * 255));
});

test('float images are quantised like tensor2img (clamp, ×255 in float32, round half to even)', () => {
  const t = f32([1, 3, 1, 4], [-0.5, 0.5 / 255, 1.5 / 255, 2, 0, 0, 0, 0, 1, 1, 1, 1]);
  const u = toUint8(t);
  assert.deepEqual([...u.data.subarray(0, 4)], [0, 0, 2, 255]);
  // measure() quantises both images first
  const out = f32([1, 3, H, W], Float32Array.from(A.data, (v) => v / 255));
  const gt = f32([1, 3, H, W], Float32Array.from(B.data, (v) => v / 255));
  assert.ok(Math.abs(measure(out, gt, { type: 'psnr', cropBorder: 4, testYChannel: true }) - EXPECTED[2]![2]) < 1e-9);
  assert.throws(() => psnr(A, { ...B, width: W - 1, data: B.data.subarray(0, 3 * H * (W - 1)) }), /image shapes are different/);
  assert.throws(() => ssim(A, B, { cropBorder: 15 }), /SSIM needs images of at least 11×11/);
});
