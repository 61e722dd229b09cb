/**
 * The weight gradient of a depthwise 3×3 convolution, the one backward op that keeps a batch-1
 * training step above PyTorch's time (see README, Benchmarks): the formulation our autodiff uses
 * (a grouped convolution with the output gradient as the kernel) against the other ways ONNX's
 * operators can express dW[c, a, b] = Σ gOut[c, y, x] · x_pad[c, y + a, x + b]. Prints the median
 * ms of each and its largest difference from the first.
 *
 *   npm run build && node dist/bench/depthwise-grad.js [--channels 384] [--size 128] [--runs 7] [--threads 2]
 */
import { Graph, type Value } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { vjp } from '../src/graph/autodiff.js';
import { compile } from '../src/runtime/compile.js';
import { flag, machine, median, rand, timeIt } from './util.js';

const C = Number(flag('channels', '384'));
const S = Number(flag('size', '128'));
const runs = Number(flag('runs', '7'));
const threads = Number(flag('threads', '2'));
/** Row length of the flattened padded map: 1 pixel left, 3 right, so every shift is one contiguous slice. */
const R = S + 4;

/** The nine shifted copies of x (zero padded), each (C, S·R) over the flattened map. */
function flatShifts(x: Value): Value[] {
  const xf = op.reshape(op.pad(x, [0, 0, 1, 1, 0, 0, 2, 3]), [C, (S + 3) * R]);
  const out: Value[] = [];
  for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) out.push(op.slice(xf, [a * R + b], [a * R + b + S * R], [1]));
  return out;
}
/** gOut on the same flattened rows (zero in the 4 extra columns). */
const flatGrad = (g: Value): Value => op.reshape(op.pad(g, [0, 0, 0, 0, 0, 0, 0, R - S]), [C, S * R]);

const forms: Record<string, (x: Value, g: Value, w: Value) => Value> = {
  'autodiff (grouped conv, gOut as kernel)': (x, g, w) => op.reshape(vjp([op.conv(x, w, null, { pads: 1, group: C })], [g], [w])[0]!, [C, 9]),
  'nine shifted multiply-reductions': (x, g) => {
    const xp = op.pad(x, [0, 0, 1, 1, 0, 0, 1, 1]);
    const taps: Value[] = [];
    for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) taps.push(op.reshape(op.reduceSum(op.mul(op.slice(xp, [a, b], [a + S, b + S], [2, 3]), g), [2, 3], false), [C, 1]));
    return op.concat(taps, 1);
  },
  'the same over contiguous flat slices': (x, g) => {
    const gf = flatGrad(g);
    return op.concat(flatShifts(x).map((t) => op.reduceSum(op.mul(t, gf), [1], true)), 1);
  },
  'flat slices stacked, one batched MatMul': (x, g) => {
    const cols = op.concat(flatShifts(x).map((t) => op.reshape(t, [C, 1, S * R])), 1);
    return op.reshape(op.matmul(op.reshape(flatGrad(g), [C, 1, S * R]), op.transpose(cols, [0, 2, 1])), [C, 9]);
  },
  'im2col by a unit-kernel conv, batched MatMul': (x, g) => {
    const eye = new Float32Array(81);
    for (let i = 0; i < 9; i++) eye[i * 9 + i] = 1;
    const cols = op.conv(op.reshape(x, [C, 1, S, S]), op.constF32(x.graph, [9, 1, 3, 3], eye, 'eye'), null, { pads: 1 });
    return op.reshape(op.matmul(op.reshape(cols, [C, 9, S * S]), op.reshape(g, [C, S * S, 1])), [C, 9]);
  },
};

console.log(`# depthwise 3×3 weight gradient, ${C} channels at ${S}², batch 1, ${threads} threads, median of ${runs}`);
console.log(`# ${machine()}`);
console.log('| formulation | ms | max abs difference |\n|---|---|---|');
const feeds = { x: rand([1, C, S, S], 1), g: rand([1, C, S, S], 2), w: rand([C, 1, 3, 3], 3) };
let ref: Float32Array | null = null;
for (const [name, f] of Object.entries(forms)) {
  const gr = new Graph('dwgrad');
  const x = gr.input('x', [1, C, S, S]);
  const g = gr.input('g', [1, C, S, S]);
  const w = gr.input('w', [C, 1, 3, 3]);
  gr.output(f(x, g, w), 'dw');
  const s = await compile(gr, { params: 'initializers' }, { threads });
  let out: Float32Array | null = null;
  const ms = median(await timeIt(async () => (out = (await s.run(feeds)).dw!.data as Float32Array), runs));
  ref ??= out!;
  let d = 0;
  for (let i = 0; i < ref.length; i++) d = Math.max(d, Math.abs(out![i]! - ref[i]!));
  console.log(`| ${name} | ${ms.toFixed(1)} | ${d.toExponential(1)} |`);
  await s.release();
}
