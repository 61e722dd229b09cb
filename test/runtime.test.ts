/** Session cache: one session per key, least recently used released beyond capacity. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { toOnnx } from '../src/graph/onnx.js';
import { SessionCache } from '../src/runtime/cache.js';
import { availableDevices } from '../src/runtime/session.js';
import { f32 } from '../src/tensor.js';

function scaleModel(k: number): Uint8Array {
  const g = new Graph();
  g.output(op.mul(g.input('x', [2]), k), 'y');
  return toOnnx(g, { params: 'initializers' });
}

test('session cache reuses sessions per key and evicts the least recently used', async () => {
  const cache = new SessionCache({ threads: 1 }, 2);
  let builds = 0;
  const get = (k: number) => cache.get(`x${k}`, () => (builds++, scaleModel(k)));
  const a = await get(2);
  assert.equal(await get(2), a);
  assert.equal(builds, 1);
  await get(3);
  await get(2); // refreshes x2
  await get(4); // evicts x3
  assert.equal(cache.size, 2);
  await get(3);
  assert.equal(builds, 4);
  const y = (await (await get(3)).run({ x: f32([2], [1, 2]) })).y!;
  assert.deepEqual(Array.from(y.data as Float32Array), [3, 6]);
  await cache.clear();
  assert.equal(cache.size, 0);
});

test('cpu is always available', () => {
  assert.ok(availableDevices().includes('cpu'));
});
