/** LaMa inpainting masks: generator parameters, coverage statistics, evaluation sets, determinism. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  boxMask,
  coverage,
  DIFFIR_TRAIN_MASKS,
  drawMask,
  drawStroke,
  EVAL_MASKS,
  evalMask,
  irregularMask,
  irregularStrokes,
  maskTensor,
  mixedMask,
  randomBoxes,
  type BoxMaskOptions,
  type IrregularMaskOptions,
} from '../src/data/masks.js';
import { deriveRng } from '../src/data/rng.js';

const count = (m: Uint8Array): number => m.reduce((a, v) => a + v, 0);

/** Mean ± 4 standard errors of a discrete uniform on [lo, hi] holds `mean` of n draws. */
function assertUniformMean(mean: number, lo: number, hi: number, n: number, what: string): void {
  const sd = Math.sqrt(((hi - lo + 1) ** 2 - 1) / 12);
  assert.ok(Math.abs(mean - (lo + hi) / 2) <= (4 * sd) / Math.sqrt(n), `${what}: mean ${mean}, expected ${(lo + hi) / 2}`);
}

describe('masks', () => {
  test('one box: a filled rectangle inside the margin, sides uniform in [min, max], coverage E[w]·E[h]/(H·W)', () => {
    const o: BoxMaskOptions = { margin: 10, bboxMinSize: 30, bboxMaxSize: 150, minTimes: 1, maxTimes: 1 };
    const N = 600;
    let sw = 0;
    let sh = 0;
    let cov = 0;
    for (let i = 0; i < N; i++) {
      const m = boxMask(256, 256, deriveRng(1, i), o);
      let x0 = 256;
      let x1 = -1;
      let y0 = 256;
      let y1 = -1;
      for (let y = 0; y < 256; y++) for (let x = 0; x < 256; x++) if (m[y * 256 + x]) [x0, x1, y0, y1] = [Math.min(x0, x), Math.max(x1, x), Math.min(y0, y), Math.max(y1, y)];
      const w = x1 - x0 + 1;
      const h = y1 - y0 + 1;
      assert.equal(count(m), w * h, 'a single filled rectangle');
      assert.ok(w >= 30 && w <= 150 && h >= 30 && h <= 150, `box ${w}x${h}`);
      assert.ok(x0 >= 10 && y0 >= 10 && x1 < 246 && y1 < 246, 'inside the margin');
      sw += w;
      sh += h;
      cov += coverage(m);
    }
    assertUniformMean(sw / N, 30, 150, N, 'width');
    assertUniformMean(sh / N, 30, 150, N, 'height');
    const expected = (90 * 90) / 65536;
    // Var(w·h) = E[w²]² − E[w]⁴ for independent sides.
    const ew2 = 90 * 90 + ((121 * 121 - 1) / 12);
    const sd = Math.sqrt(ew2 * ew2 - 90 ** 4) / 65536;
    assert.ok(Math.abs(cov / N - expected) < (4 * sd) / Math.sqrt(N), `coverage ${cov / N} vs ${expected}`);
  });

  test('box counts are uniform in [minTimes, maxTimes]; small images that cannot hold a box are an error', () => {
    const o = DIFFIR_TRAIN_MASKS.box!;
    let n = 0;
    const N = 2000;
    for (let i = 0; i < N; i++) {
      const b = randomBoxes(256, 256, deriveRng(2, i), o);
      assert.ok(b.length >= o.minTimes && b.length <= o.maxTimes);
      n += b.length;
    }
    assertUniformMean(n / N, o.minTimes, o.maxTimes, N, 'boxes per mask');
    assert.throws(() => boxMask(40, 40, deriveRng(1), o), /no room/);
  });

  test('irregular strokes: groups in [minTimes, maxTimes+1], 1–5 segments each, lengths 10…maxLen+9, widths 5…maxWidth+4, LaMa angles', () => {
    const o: IrregularMaskOptions = DIFFIR_TRAIN_MASKS.irregular!;
    const N = 800;
    let groups = 0;
    let widths = 0;
    let segs = 0;
    let unclipped = 0;
    let lens = 0;
    for (let i = 0; i < N; i++) {
      const strokes = irregularStrokes(256, 256, deriveRng(3, i), o);
      const g = new Set(strokes.map((s) => s.group));
      assert.ok(g.size >= o.minTimes && g.size <= o.maxTimes + 1);
      groups += g.size;
      for (const id of g) {
        const chain = strokes.filter((s) => s.group === id);
        assert.ok(chain.length >= 1 && chain.length <= 5);
        for (let k = 1; k < chain.length; k++) assert.ok(chain[k]!.x0 === chain[k - 1]!.x1 && chain[k]!.y0 === chain[k - 1]!.y1, 'segments chain');
      }
      for (const s of strokes) {
        assert.ok(Number.isInteger(s.width) && s.width >= 5 && s.width <= o.maxWidth + 4);
        widths += s.width;
        segs++;
        const len = Math.hypot(s.x1 - s.x0, s.y1 - s.y0);
        assert.ok(len <= o.maxLen + 9 + 2);
        const inside = s.x1 > 0 && s.x1 < 256 && s.y1 > 0 && s.y1 < 256;
        if (inside && len > 20) {
          // Direction: 0.01 + k (k < maxAngle) radians, or 2π minus that, measured from +y towards +x (sin → x, cos → y).
          const a = Math.atan2(s.x1 - s.x0, s.y1 - s.y0);
          const ok = [0, 1, 2, 3].some((k) => {
            const t = 0.01 + k;
            const d = (x: number) => Math.abs(Math.atan2(Math.sin(a - x), Math.cos(a - x)));
            return d(t) < 0.08 || d(2 * 3.1415926 - t) < 0.08;
          });
          assert.ok(ok, `angle ${a}`);
          unclipped++;
          lens += len;
        }
      }
    }
    assertUniformMean(groups / N, o.minTimes, o.maxTimes + 1, N, 'groups');
    assertUniformMean(widths / segs, 5, o.maxWidth + 4, segs / 3, 'widths'); // widths of a mask are independent draws
    assert.ok(unclipped > 100);
    assert.ok(lens / unclipped > 40 && lens / unclipped < 10 + o.maxLen, 'lengths');
  });

  test('strokes are drawn as round-capped lines: area ≈ length·width + π·(width/2)²; mask coverage lies between the largest stroke and the sum', () => {
    const m = new Uint8Array(100 * 100);
    drawStroke(m, 100, 100, { x0: 30, y0: 50, x1: 70, y1: 50, width: 9 });
    const area = 40 * 9 + Math.PI * 4.5 ** 2;
    assert.ok(Math.abs(count(m) - area) / area < 0.04, `area ${count(m)} vs ${area}`);
    const dot = new Uint8Array(100 * 100);
    drawStroke(dot, 100, 100, { x0: 50, y0: 50, x1: 50, y1: 50, width: 20 });
    assert.ok(Math.abs(count(dot) - Math.PI * 100) / (Math.PI * 100) < 0.04);
    for (let i = 0; i < 50; i++) {
      const strokes = irregularStrokes(128, 128, deriveRng(4, i), EVAL_MASKS.thick256.mixed.irregular!);
      const mask = irregularMask(128, 128, deriveRng(4, i), EVAL_MASKS.thick256.mixed.irregular!);
      let largest = 0;
      let total = 0;
      for (const s of strokes) {
        const one = new Uint8Array(128 * 128);
        drawStroke(one, 128, 128, s);
        largest = Math.max(largest, count(one));
        total += count(one);
      }
      assert.ok(count(mask) >= largest && count(mask) <= total);
    }
  });

  test("mixed generator: kinds drawn with the re-normalised probabilities (DiffIR's training masks: ½ strokes, ½ boxes)", () => {
    const N = 2000;
    let boxes = 0;
    for (let i = 0; i < N; i++) if (mixedMask(64, 64, deriveRng(5, i), { ...DIFFIR_TRAIN_MASKS, box: { ...DIFFIR_TRAIN_MASKS.box!, bboxMaxSize: 30, bboxMinSize: 10 }, irregular: { ...DIFFIR_TRAIN_MASKS.irregular!, maxLen: 5 } }).kind === 'box') boxes++;
    assert.ok(Math.abs(boxes - N / 2) < 4 * Math.sqrt(N / 4));
    let b3 = 0;
    for (let i = 0; i < N; i++) if (mixedMask(64, 64, deriveRng(6, i), { irregularProba: 1, irregular: { maxAngle: 4, maxLen: 5, maxWidth: 3, minTimes: 1, maxTimes: 1 }, boxProba: 0.3, box: { margin: 0, bboxMinSize: 5, bboxMaxSize: 9, minTimes: 1, maxTimes: 1 } }).kind === 'box') b3++;
    const p = 0.3 / 1.3;
    assert.ok(Math.abs(b3 - N * p) < 4 * Math.sqrt(N * p * (1 - p)));
    const inv = mixedMask(32, 32, deriveRng(1), { irregularProba: 0, boxProba: 1, box: { margin: 0, bboxMinSize: 4, bboxMaxSize: 8, minTimes: 1, maxTimes: 1 }, invertProba: 1 });
    assert.ok(coverage(inv.mask) > 0.9);
  });

  test('evaluation sets: every mask covers at most half the image (max_tamper_area), sizes, unknown names', () => {
    const stats: Record<string, number> = {};
    for (const name of ['thin256', 'medium256', 'thick256'] as const) {
      let cov = 0;
      for (let i = 0; i < 40; i++) {
        const m = evalMask(name, deriveRng(7, i));
        assert.equal(m.length, 256 * 256);
        const c = coverage(m);
        assert.ok(c <= 0.5 && c > 0, `${name} coverage ${c}`);
        cov += c;
      }
      stats[name] = cov / 40;
    }
    for (const v of Object.values(stats)) assert.ok(v > 0.05 && v < 0.5);
    const t512 = evalMask('thin512', deriveRng(8), 64, 96);
    assert.equal(t512.length, 64 * 96);
    assert.throws(() => evalMask('nope' as 'thin256', deriveRng(1)), /unknown evaluation mask set/);
    const mt = maskTensor(drawMask('train', 80, 90, deriveRng(9)), 80, 90);
    assert.deepEqual(mt.shape, [1, 1, 80, 90]);
    assert.ok(mt.data.every((v) => v === 0 || v === 1));
  });

  test('masks are deterministic per seed', () => {
    for (const p of ['train', 'thin256', 'thick512'] as const) {
      const a = drawMask(p, 128, 160, deriveRng(10, 3));
      const b = drawMask(p, 128, 160, deriveRng(10, 3));
      const c = drawMask(p, 128, 160, deriveRng(10, 4));
      assert.deepEqual(a, b);
      assert.notDeepEqual(a, c);
    }
  });
});
