/**
 * The fuzzer by hand: `nice -n 10 node dist/test/fuzz/run.js --seconds 3600 [--seed 1]
 * [--workers 2] [--cpu-limit 10000] [--timeout 120000] [--out /tmp/fuzz] [--kinds pth-zip,image]`
 * (limits in milliseconds: CPU time of a reader, wall time of a case). Prints the counts
 * per kind and class, the slowest case and the largest memory peak; exits 1 when any case is bad
 * (their bytes are written to --out for a regression test).
 */
import { parseArgs } from 'node:util';
import { formatCounts, runFuzz } from './harness.js';
import { FUZZ_KINDS, type FuzzKind } from './generators.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '1' },
    seconds: { type: 'string' },
    cases: { type: 'string' },
    workers: { type: 'string', default: '2' },
    timeout: { type: 'string', default: '120000' },
    'cpu-limit': { type: 'string', default: '10000' },
    out: { type: 'string' },
    kinds: { type: 'string' },
  },
});
const kinds = values.kinds ? (values.kinds.split(',') as FuzzKind[]) : FUZZ_KINDS;
for (const k of kinds) if (!FUZZ_KINDS.includes(k)) throw new Error(`unknown kind '${k}' (kinds: ${FUZZ_KINDS.join(', ')})`);
if (values.seconds === undefined && values.cases === undefined) throw new Error('give --seconds or --cases');
const r = await runFuzz({
  seed: Number(values.seed),
  kinds,
  workers: Number(values.workers),
  timeoutMs: Number(values.timeout),
  cpuLimitMs: Number(values['cpu-limit']),
  ...(values.seconds !== undefined ? { seconds: Number(values.seconds) } : {}),
  ...(values.cases !== undefined ? { cases: Number(values.cases) } : {}),
  ...(values.out !== undefined ? { outDir: values.out } : {}),
  log: (l) => console.error(l),
});
console.log(formatCounts(r));
console.log(`${r.cases} cases in ${r.seconds.toFixed(0)} s (seed ${values.seed}); slowest: ${r.slowest ? `${r.slowest.kind} #${r.slowest.index} ${r.slowest.cpuMs.toFixed(0)} ms CPU (${r.slowest.ms.toFixed(0)} ms wall) [${r.slowest.recipe}]` : '-'}; largest RSS growth: ${r.peak ? `${(r.peak.bytes / 2 ** 20).toFixed(0)} MiB, ${r.peak.kind} #${r.peak.index} (${r.peak.size} bytes) [${r.peak.recipe}]` : '-'}`);
for (const b of r.bad) console.log(`bad: ${b.kind} seed ${b.seed} #${b.index} [${b.recipe}]: ${b.reason}`);
process.exitCode = r.bad.length > 0 ? 1 : 0;
