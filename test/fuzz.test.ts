/**
 * The fuzzing harness in CI: a fixed seed, a bounded number of cases of every kind (torch zip and
 * legacy checkpoints, safetensors, images), each in a child process under the time and memory
 * limits, with zero bad results allowed. Longer runs by hand: `node dist/test/fuzz/run.js`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { classifyError } from './fuzz/classify.js';
import { formatCounts, runFuzz } from './fuzz/harness.js';
import { FUZZ_KINDS } from './fuzz/generators.js';

test('the classifier calls multi-line, unsafe, unnamed and engine errors bad', () => {
  assert.equal(classifyError(new Error('f.pth: not a zip archive'), 'f.pth').cls, 'error');
  assert.equal(classifyError(new Error('f.pth: bad\n    at x (y.js:1:1)'), 'f.pth').cls, 'bad');
  assert.equal(classifyError(new Error("f.pth: tensor 'a\u001b[2Jb' is odd"), 'f.pth').cls, 'bad');
  assert.equal(classifyError(new Error("f.pth: tensor '\u202eb' is odd"), 'f.pth').cls, 'bad');
  assert.equal(classifyError(new RangeError('Invalid typed array length: -4'), 'f.pth').cls, 'bad');
  assert.equal(classifyError(new Error('f.pth: cannot inflate (Array buffer allocation failed)'), 'f.pth').cls, 'bad');
  assert.equal(classifyError('a string', 'f.pth').cls, 'bad');
});

test('the runner by hand prints its usage for --help and one line for a bad option', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [fileURLToPath(new URL('./fuzz/run.js', import.meta.url)), ...args], { encoding: 'utf8' });
  const help = run('--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^usage: node dist\/test\/fuzz\/run\.js \(--seconds N \| --cases N\)/);
  assert.match(help.stdout, /--kinds LIST +comma-separated subset of: pth-zip, pth-legacy, safetensors, image/);
  assert.equal(help.stderr, '');
  for (const [args, msg] of [
    [['--bogus'], "fuzz: Unknown option '--bogus' (see --help)"],
    [['--seconds', '1e3'], "fuzz: --seconds must be a whole number ≥ 1, not '1e3' (see --help)"],
    [['--cases', '5', '--kinds', 'pth-zip,zip'], "fuzz: unknown kind 'zip' (kinds: pth-zip, pth-legacy, safetensors, image) (see --help)"],
    [[], 'fuzz: give --seconds or --cases (see --help)'],
  ] as const) {
    const r = run(...args);
    assert.deepEqual([r.status, r.stdout, r.stderr], [2, '', `${msg}\n`], args.join(' '));
  }
});

test('fixed-seed fuzzing of every reader: clean or one-line errors, within time and memory', async (t) => {
  const r = await runFuzz({ seed: 15, cases: Number(process.env.DIFFIR_FUZZ_CASES ?? 320), workers: 2 });
  t.diagnostic(`${r.cases} cases in ${r.seconds.toFixed(1)} s`);
  for (const line of formatCounts(r).split('\n')) t.diagnostic(line);
  assert.deepEqual(r.bad, [], r.bad.map((b) => `${b.kind} seed ${b.seed} #${b.index} [${b.recipe}]: ${b.reason}`).join('\n'));
  for (const k of FUZZ_KINDS) {
    const c = r.counts[k];
    assert.ok(c.clean > 0 && c.error > 0, `${k}: the generator should give both readable and refused files (${JSON.stringify(c)})`);
  }
});
