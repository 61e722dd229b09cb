/** Session cache: one session per key, least recently used released beyond capacity. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { toOnnx } from '../src/graph/onnx.js';
import { SessionCache } from '../src/runtime/cache.js';
import { Session, availableDevices } from '../src/runtime/session.js';
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

test('outputs written into caller buffers are returned as those buffers, run after run', async () => {
  const g = new Graph('into');
  const x = g.input('x', [1, 4, 64, 64]);
  g.output(op.add(op.mul(x, 2), 1), 'y');
  const s = await Session.create(toOnnx(g, { params: 'initializers', weights: new Map() }), { threads: 1 });
  const xs = f32([1, 4, 64, 64], Float32Array.from({ length: 4 * 64 * 64 }, (_, i) => i / 1000));
  const y = f32([1, 4, 64, 64], new Float32Array(4 * 64 * 64));
  // Enough runs to pass the output-copy collection threshold more than once.
  const runs = Math.ceil((3 * 128 * 2 ** 20) / y.data.byteLength);
  for (let r = 0; r < runs; r++) {
    (xs.data as Float32Array)[0] = r;
    const out = await s.run({ x: xs }, undefined, { y });
    assert.equal(out.y, y);
    assert.equal((y.data as Float32Array)[0], 2 * r + 1);
    assert.equal((y.data as Float32Array)[5], Math.fround(2 * Math.fround(5 / 1000) + 1));
  }
  await s.release();
});
