/**
 * The fuzzing harness: runs generated cases in child processes, each case under a time limit
 * (CPU time of the reader, so that a loaded machine does not make cases bad; the child is also
 * killed past a wall-clock limit) and a memory limit (a hard RLIMIT_DATA via `prlimit` where
 * available, V8's --max-old-space-size, and the child's peak RSS checked against the readers'
 * documented bound), and counts the results per kind as clean / error / bad.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { FUZZ_KINDS, generate, type FuzzKind } from './generators.js';
import type { FuzzClass } from './classify.js';
import type { CaseReport, CaseRequest } from './worker.js';
import { memoryAllowance } from '../../src/weights/budget.js';

/** Options of {@link runFuzz}. */
export interface FuzzOptions {
  readonly seed: number;
  /** Stop after this many cases (default: unlimited, then `seconds` must be set). */
  readonly cases?: number;
  /** Stop starting new cases after this many seconds. */
  readonly seconds?: number;
  readonly kinds?: readonly FuzzKind[];
  /** Child processes run at once (default 2). */
  readonly workers?: number;
  /** CPU time a reader may spend on one case (default 10 s). */
  readonly cpuLimitMs?: number;
  /** Wall-clock limit of one case, generation included, after which its worker is killed (default 120 s). */
  readonly timeoutMs?: number;
  /** Hard data-segment limit of each child (default 2 GiB). */
  readonly dataLimit?: number;
  /** Folder to write the bytes of bad cases to. */
  readonly outDir?: string;
  /** Progress lines. */
  readonly log?: (line: string) => void;
}

/** A case judged bad, with what it takes to rebuild it. */
export interface BadCase {
  readonly kind: FuzzKind;
  readonly seed: number;
  readonly index: number;
  readonly recipe: string;
  readonly reason: string;
}

/** What a run found. */
export interface FuzzResult {
  readonly counts: Record<FuzzKind, Record<FuzzClass, number>>;
  readonly bad: BadCase[];
  readonly cases: number;
  readonly seconds: number;
  /** The slowest case (reader CPU time, and its wall time). */
  readonly slowest: { kind: FuzzKind; index: number; recipe: string; cpuMs: number; ms: number } | null;
  /** The highest peak RSS above a worker's starting RSS, and its case. */
  readonly peak: { kind: FuzzKind; index: number; recipe: string; bytes: number; size: number } | null;
}

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));
const HAS_PRLIMIT = spawnSync('prlimit', ['--version'], { stdio: 'ignore' }).status === 0;
/** A worker is replaced once its peak RSS has grown this much, so each case's peak is its own. */
const RESPAWN_GROWTH = 96 * 2 ** 20;

/** The memory a case may take above the worker's starting RSS: the readers' documented bound. */
export function caseMemoryLimit(kind: FuzzKind, size: number, pixels: number | undefined): number {
  // Images are bounded by the pixels their header declares (the pixel limit is checked before
  // decoding; a PNG or WebP may rightly be 1000× smaller than its pixels): 16 bytes a pixel.
  return memoryAllowance(size) + (kind === 'image' ? 16 * Math.min(pixels ?? 0, 100_000_000) : 0);
}

interface Worker {
  child: ChildProcess;
  baseRss: number;
  output: string;
}

async function startWorker(o: FuzzOptions): Promise<Worker> {
  const node = [process.execPath, '--max-old-space-size=1536', WORKER];
  const [cmd, ...args] = HAS_PRLIMIT ? ['prlimit', `--data=${o.dataLimit ?? 2 * 2 ** 30}`, '--', ...node] : node;
  const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  const w: Worker = { child, baseRss: 0, output: '' };
  child.stdout!.on('data', (d: Buffer) => (w.output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (w.output += d.toString()));
  await new Promise<void>((resolve, reject) => {
    child.once('message', (m: { rss: number }) => {
      w.baseRss = m.rss;
      resolve();
    });
    child.once('exit', (code) => reject(new Error(`fuzz worker exited at start (${code}): ${w.output.slice(0, 500)}`)));
  });
  child.removeAllListeners('exit');
  return w;
}

function stop(w: Worker): void {
  w.child.kill('SIGKILL');
}

/** Runs one case on a worker; resolves with its report, or with a reason it went bad. */
function runCase(w: Worker, req: CaseRequest, timeoutMs: number): Promise<{ report?: CaseReport; fatal?: string }> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      cleanup();
      resolve({ fatal: `timeout: still running after ${timeoutMs} ms` });
    }, timeoutMs);
    const onMessage = (m: CaseReport) => {
      if (m.id !== req.id) return;
      cleanup();
      resolve({ report: m });
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      resolve({ fatal: `worker died (${signal ?? `exit ${code}`}): ${w.output.trim().split('\n').slice(-3).join(' | ').slice(0, 400)}` });
    };
    const cleanup = () => {
      clearTimeout(timer);
      w.child.off('message', onMessage);
      w.child.off('exit', onExit);
    };
    w.child.on('message', onMessage);
    w.child.on('exit', onExit);
    w.child.send(req);
  });
}

/** Runs the fuzzer (see {@link FuzzOptions}) and returns the counts and the bad cases. */
export async function runFuzz(o: FuzzOptions): Promise<FuzzResult> {
  const kinds = o.kinds ?? FUZZ_KINDS;
  const timeoutMs = o.timeoutMs ?? 120_000;
  const cpuLimitMs = o.cpuLimitMs ?? 10_000;
  const counts = Object.fromEntries(kinds.map((k) => [k, { clean: 0, error: 0, bad: 0 }])) as FuzzResult['counts'];
  const bad: BadCase[] = [];
  let slowest: FuzzResult['slowest'] = null;
  let peak: FuzzResult['peak'] = null;
  const t0 = performance.now();
  let next = 0;
  let done = 0;
  const more = (): boolean => (o.cases === undefined || next < o.cases) && (o.seconds === undefined || performance.now() - t0 < o.seconds * 1000);
  const log = o.log ?? (() => undefined);
  let lastLog = performance.now();

  const record = async (kind: FuzzKind, index: number, recipe: string, reason: string): Promise<void> => {
    bad.push({ kind, seed: o.seed, index, recipe, reason });
    counts[kind].bad++;
    log(`BAD ${kind} #${index} [${recipe}]: ${reason}`);
    if (o.outDir) {
      mkdirSync(o.outDir, { recursive: true });
      writeFileSync(join(o.outDir, `${kind}-${o.seed}-${index}.bin`), (await generate(kind, o.seed, index)).bytes);
    }
  };

  const lane = async (): Promise<void> => {
    let w = await startWorker(o);
    try {
      while (more()) {
        const i = next++;
        const kind = kinds[i % kinds.length]!;
        const index = Math.floor(i / kinds.length);
        w.output = '';
        const { report, fatal } = await runCase(w, { id: i, kind, seed: o.seed, index }, timeoutMs);
        done++;
        if (fatal !== undefined || !report) {
          await record(kind, index, report?.recipe ?? '?', fatal ?? 'no report');
          stop(w);
          w = await startWorker(o);
          continue;
        }
        const used = report.maxRss - w.baseRss;
        const limit = caseMemoryLimit(kind, report.size, report.pixels);
        let reason: string | undefined;
        if (report.cls === 'bad') reason = report.detail ?? 'bad';
        else if (report.cpuMs > cpuLimitMs) reason = `time: ${report.cpuMs.toFixed(0)} ms of CPU, over the ${cpuLimitMs} ms limit`;
        else if (used > limit) reason = `memory: peak RSS grew by ${used} bytes, over the bound of ${limit} for a ${report.size}-byte file`;
        else if (w.output.length > 0) reason = `printed to stdout/stderr: ${JSON.stringify(w.output.slice(0, 300))}`;
        if (reason !== undefined) await record(kind, index, report.recipe, reason);
        else counts[kind][report.cls]++;
        if (!slowest || report.cpuMs > slowest.cpuMs) slowest = { kind, index, recipe: report.recipe, cpuMs: report.cpuMs, ms: report.ms };
        if (!peak || used > peak.bytes) peak = { kind, index, recipe: report.recipe, bytes: used, size: report.size };
        if (used > RESPAWN_GROWTH || reason !== undefined) {
          stop(w);
          w = await startWorker(o);
        }
        if (performance.now() - lastLog > 30_000) {
          lastLog = performance.now();
          log(`${done} cases in ${((performance.now() - t0) / 1000).toFixed(0)} s, ${bad.length} bad`);
        }
      }
    } finally {
      stop(w);
    }
  };
  await Promise.all(Array.from({ length: o.workers ?? 2 }, lane));
  return { counts, bad, cases: done, seconds: (performance.now() - t0) / 1000, slowest, peak };
}

/** The counts as a table, one row per kind. */
export function formatCounts(r: FuzzResult): string {
  const rows = Object.entries(r.counts).map(([k, c]) => `${k.padEnd(12)} ${String(c.clean).padStart(7)} ${String(c.error).padStart(7)} ${String(c.bad).padStart(5)}`);
  return [`${'kind'.padEnd(12)} ${'clean'.padStart(7)} ${'error'.padStart(7)} ${'bad'.padStart(5)}`, ...rows].join('\n');
}
