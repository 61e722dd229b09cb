/** The `diffir` command line: info and forward on the official-format fixtures, and its errors. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors, writeSafetensors } from '../src/weights/safetensors.js';
import type { HostTensor } from '../src/tensor.js';
import { maxAbs } from './helpers/tensors.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const fixtures = resolve(root, '../shared/fixtures');
const bin = join(root, 'dist/src/cli/main.js');
const tmp = mkdtempSync(join(tmpdir(), 'diffir-cli-'));

function diffir(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, DIFFIR_DEBUG: '' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}


function assertOneLineError(r: { code: number; stderr: string }, pattern: RegExp): void {
  assert.notEqual(r.code, 0);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line, got: ${r.stderr}`);
  assert.match(lines[0]!, /^diffir: /);
  assert.match(lines[0]!, pattern);
}

describe('diffir info', () => {
  test('prints the detected architecture and the parameter count', () => {
    const r = diffir('info', join(fixtures, 'deblur/s2.pth'), '--json');
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    const cfg = JSON.parse(spawnSync('cat', [join(fixtures, 'deblur/config.json')], { encoding: 'utf8' }).stdout) as { network: Record<string, unknown> };
    assert.equal(j.stage, 2);
    assert.equal(j.task, 'deblur');
    assert.equal(j.dim, cfg.network.dim);
    assert.deepEqual(j.num_blocks, cfg.network.num_blocks);
    assert.equal(j.LayerNorm_type, cfg.network.LayerNorm_type);
    assert.equal(j.n_encoder_res, cfg.network.n_encoder_res);
    assert.equal(typeof j.parameters, 'number');
    const text = diffir('info', join(fixtures, 'realsr_x2/s1.pth'));
    assert.match(text.stdout, /task\s+sr/);
    assert.match(text.stdout, /scale\s+2/);
  });
  test('a file that is not a checkpoint gets a one-line error', () => {
    const png = join(tmp, 'photo.png');
    writeFileSync(png, Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'));
    assertOneLineError(diffir('info', png), /photo\.png/);
    assertOneLineError(diffir('info', join(tmp, 'missing.pth')), /missing\.pth/);
    assertOneLineError(diffir('info', join(fixtures, 'deblur/io.safetensors')), /cannot recognise the DiffIR architecture/);
  });
});

describe('diffir forward', () => {
  test('stage 1 and stage 2 reproduce the PyTorch outputs', () => {
    for (const name of ['deblur', 'realsr_x4', 'inpaint']) {
      const io = readSafetensors(join(fixtures, name, 'io.safetensors'));
      for (const stage of [1, 2]) {
        const out = join(tmp, `${name}-s${stage}.safetensors`);
        const r = diffir('forward', '--weights', join(fixtures, name, `s${stage}.pth`), '--in', join(fixtures, name, 'io.safetensors'), '--out', out, '--threads', '1');
        assert.equal(r.code, 0, r.stderr);
        const got = readSafetensors(out);
        assert.ok(maxAbs(got.get('out')!, io.get(`s${stage}_out`)!) < 1e-4, `${name} s${stage} out`);
        assert.ok(maxAbs(got.get('ipr')!, io.get(`s${stage}_ipr`)!) < 1e-4, `${name} s${stage} ipr`);
      }
    }
  });
  test('bad inputs get one-line errors naming the problem', () => {
    const io = readSafetensors(join(fixtures, 'deblur/io.safetensors'));
    const w = join(fixtures, 'deblur/s1.pth');
    const noGt = join(tmp, 'nogt.safetensors');
    writeSafetensors(noGt, new Map([['input', io.get('input')!]]));
    assertOneLineError(diffir('forward', '--weights', w, '--in', noGt, '--out', join(tmp, 'x.safetensors')), /missing tensor 'gt'/);
    const badC = join(tmp, 'badc.safetensors');
    writeSafetensors(badC, new Map([['input', { dtype: 'float32', shape: [1, 4, 32, 32], data: new Float32Array(4096) }]]));
    assertOneLineError(diffir('forward', '--weights', w, '--in', badC, '--out', join(tmp, 'y.safetensors')), /needs \[B,3,H,W\]/);
    const odd = join(tmp, 'odd.safetensors');
    writeSafetensors(odd, new Map([['input', { dtype: 'float32', shape: [1, 3, 30, 30], data: new Float32Array(2700) }]]));
    assertOneLineError(diffir('forward', '--weights', join(fixtures, 'deblur/s2.pth'), '--in', odd, '--out', join(tmp, 'z.safetensors')), /multiples of 8/);
    const existing = join(tmp, 'exists.safetensors');
    writeFileSync(existing, 'keep me');
    assertOneLineError(diffir('forward', '--weights', w, '--in', join(fixtures, 'deblur/io.safetensors'), '--out', existing), /pass --overwrite/);
    assertOneLineError(diffir('forward', '--weights', w), /--in is required/);
    assertOneLineError(diffir('forward', '--bogus'), /unknown option/);
    assertOneLineError(diffir('frobnicate'), /unknown command 'frobnicate'/);
  });
});
