/**
 * Running the built CLI (`dist/src/cli/main.js`) in a child process, and the check every CLI
 * test makes of a failure: a non-zero exit and exactly one `diffir: ...` line on stderr.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tests run from dist/test). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = join(ROOT, 'dist/src/cli/main.js');

/** What a CLI run gave. */
export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `diffir <args>` (DIFFIR_DEBUG unset, so errors are one line); `env` is added to the environment. */
export function runDiffir(args: readonly string[], o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): CliRun {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', ...(o.cwd ? { cwd: o.cwd } : {}), env: { ...process.env, DIFFIR_DEBUG: '', ...o.env } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A failed run with one stderr line starting with `prefix` and matching `pattern`. */
export function assertOneLineError(r: CliRun, pattern: RegExp, prefix = /^diffir: /): void {
  assert.notEqual(r.code, 0);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, prefix);
  assert.match(lines[0]!, pattern);
}
