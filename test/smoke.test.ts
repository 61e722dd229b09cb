import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { sym } from '../src/graph/dim.js';
import { toOnnx } from '../src/graph/onnx.js';
import { Session } from '../src/runtime/session.js';
import { f32 } from '../src/tensor.js';

test('smoke', async () => {
  const g = new Graph();
  const x = g.input('x', [1, 2, sym('H'), sym('W')]);
  const w = g.param('w', [4, 2, 3, 3], f32([4, 2, 3, 3], new Float32Array(72).fill(0.1)));
  const y = op.pixelUnshuffle(op.conv(x, w, null, { pads: 1 }), 2);
  g.output(op.gelu(y), 'y');
  const s = await Session.create(toOnnx(g, { params: 'initializers' }));
  const r = await s.run({ x: f32([1, 2, 4, 6], new Float32Array(48).fill(1)) });
  assert.deepEqual(r.y!.shape, [1, 16, 2, 3]);
  await s.release();
});
