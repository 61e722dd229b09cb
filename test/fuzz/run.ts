/**
 * The fuzzer by hand: `nice -n 10 node dist/test/fuzz/run.js --seconds 3600 [--seed 1]
 * [--workers 2] [--cpu-limit 10000] [--timeout 120000] [--out /tmp/fuzz] [--kinds pth-zip,image]`
 * (limits in milliseconds: CPU time of a reader, wall time of a case). Prints the counts
 * per kind and class, the slowest case and the largest memory peak; exits 1 when any case is bad
 * (their bytes are written to --out for a regression test), 2 on a usage error (one line).
 */
import { parseArgs } from 'node:util';
import { formatCounts, runFuzz } from './harness.js';
import { FUZZ_KINDS, type FuzzKind } from './generators.js';

const USAGE = `usage: node dist/test/fuzz/run.js (--seconds N | --cases N) [options]

Runs generated hostile files through every reader, each case in a child process under a time
and memory limit, and counts them per kind as clean / one-line error / bad.

  --seconds N      start cases for N seconds
  --cases N        run N cases (per run, all kinds together)
  --seed N         seed of the generators (default 1); a case is a function of (kind, seed, index)
  --workers N      child processes at once (default 2)
  --cpu-limit MS   CPU time a reader may spend on one case (default 10000)
  --timeout MS     wall-clock limit of one case, after which its child is killed (default 120000)
  --out DIR        write the bytes of bad cases to DIR
  --kinds LIST     comma-separated subset of: ${FUZZ_KINDS.join(', ')}
  -h, --help       show this text

Exit status: 0 no bad case, 1 some bad cases, 2 usage error.`;

/** A usage error: one line on stderr, exit status 2. */
function usageError(msg: string): never {
  process.stderr.write(`fuzz: ${msg} (see --help)\n`);
  process.exit(2);
}

/** The value of `--name` as a whole number ≥ `min`, or a usage error. */
function whole(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\s*-?\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < min) usageError(`--${name} must be a whole number ≥ ${min}, not '${v}'`);
  return n;
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      seed: { type: 'string', default: '1' },
      seconds: { type: 'string' },
      cases: { type: 'string' },
      workers: { type: 'string', default: '2' },
      timeout: { type: 'string', default: '120000' },
      'cpu-limit': { type: 'string', default: '10000' },
      out: { type: 'string' },
      kinds: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (e) {
  // parseArgs says e.g. "Unknown option '--x'. To specify a positional argument starting with a '-', ...": keep the first sentence.
  usageError((e instanceof Error ? e.message : String(e)).split(/\.\s|\n/)[0]!);
}
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const kinds = values.kinds !== undefined ? values.kinds.split(',') : FUZZ_KINDS;
for (const k of kinds) if (!(FUZZ_KINDS as readonly string[]).includes(k)) usageError(`unknown kind '${k}' (kinds: ${FUZZ_KINDS.join(', ')})`);
const seed = whole('seed', values.seed, 0)!;
const seconds = whole('seconds', values.seconds, 1);
const cases = whole('cases', values.cases, 1);
const workers = whole('workers', values.workers, 1)!;
const timeoutMs = whole('timeout', values.timeout, 1)!;
const cpuLimitMs = whole('cpu-limit', values['cpu-limit'], 1)!;
if (seconds === undefined && cases === undefined) usageError('give --seconds or --cases');

const r = await runFuzz({
  seed,
  kinds: kinds as FuzzKind[],
  workers,
  timeoutMs,
  cpuLimitMs,
  ...(seconds !== undefined ? { seconds } : {}),
  ...(cases !== undefined ? { cases } : {}),
  ...(values.out !== undefined ? { outDir: values.out } : {}),
  log: (l) => console.error(l),
});
console.log(formatCounts(r));
console.log(`${r.cases} cases in ${r.seconds.toFixed(0)} s (seed ${seed}); slowest: ${r.slowest ? `${r.slowest.kind} #${r.slowest.index} ${r.slowest.cpuMs.toFixed(0)} ms CPU (${r.slowest.ms.toFixed(0)} ms wall) [${r.slowest.recipe}]` : '-'}; largest RSS growth: ${r.peak ? `${(r.peak.bytes / 2 ** 20).toFixed(0)} MiB, ${r.peak.kind} #${r.peak.index} (${r.peak.size} bytes) [${r.peak.recipe}]` : '-'}`);
for (const b of r.bad) console.log(`bad: ${b.kind} seed ${b.seed} #${b.index} [${b.recipe}]: ${b.reason}`);
process.exitCode = r.bad.length > 0 ? 1 : 0;
