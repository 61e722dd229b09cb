/**
 * Every variant of a synthesized fixture file (legacy or zip container, one shared storage or
 * one per tensor) loads to exactly the values the manifest's rule defines, computed here
 * independently by the generator's own `tensorValues`.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';
import { loadPth, isHostTensor } from '../src/weights/pth.js';
import type { PthValue } from '../src/weights/pth.js';
import { readManifest, synthWeights, SYNTH_SCRIPT } from './helpers/synth.js';

type TensorValuesFn = (name: string, shape: readonly number[], init: unknown, seed: number) => ArrayLike<number | bigint>;

async function tensorValues(): Promise<TensorValuesFn> {
  const mod = (await import(pathToFileURL(SYNTH_SCRIPT).href)) as { tensorValues: TensorValuesFn };
  return mod.tensorValues;
}

function checkAgainstManifest(sd: PthValue, manifest: string, seed: number, values: TensorValuesFn): number {
  assert.ok(sd instanceof Map, 'expected a state dict');
  const m = readManifest(manifest);
  let checked = 0;
  for (const t of m.tensors) {
    const v = sd.get(t.name);
    assert.ok(v !== undefined && isHostTensor(v), `missing tensor ${t.name}`);
    assert.deepEqual([...v.shape], [...t.shape], `${t.name}: shape`);
    const want = values(t.name, t.shape, t.init ?? m.tensors.find((u) => u.name === t.alias_of)!.init, seed);
    const got = v.data as ArrayLike<number | bigint>;
    assert.equal(got.length, want.length, `${t.name}: length`);
    for (let i = 0; i < got.length; i++) {
      if (Number(got[i]) !== Number(want[i])) assert.fail(`${t.name}[${i}]: ${String(got[i])} vs ${String(want[i])}`);
    }
    checked++;
  }
  assert.equal(sd.size, m.tensors.length, 'no extra keys');
  return checked;
}

describe('synthesized fixture weights load exactly', () => {
  const manifest = 'metrics/lpips_v0.1_alex.manifest.json';
  for (const [format, sharedStorage] of [['legacy', false], ['legacy', true], ['zip', false], ['zip', true]] as const) {
    test(`${format} container, ${sharedStorage ? 'one shared storage' : 'a storage per tensor'}`, async () => {
      const file = synthWeights(manifest, { format, sharedStorage });
      const seed = readManifest(manifest).seed ?? 0;
      assert.ok(checkAgainstManifest(loadPth(file), manifest, seed, await tensorValues()) > 0);
    });
  }

  test('the ADE20k encoder as its manifest says (legacy, all float tensors in one storage at offsets)', async () => {
    const manifest = 'inpaint_train/ade20k_encoder.manifest.json';
    const m = readManifest(manifest);
    assert.equal(m.format, 'legacy');
    assert.equal(m.shared_storage, true);
    assert.equal(checkAgainstManifest(loadPth(synthWeights(manifest)), manifest, m.seed ?? 0, await tensorValues()), m.tensors.length);
  });
});
