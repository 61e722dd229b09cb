/**
 * What `diffir restore` and `diffir inpaint` tell the user while they work, in one of
 * four modes:
 * - `tty`: a progress line on stderr, redrawn in place: the image, its tiles, a bar, the
 *   elapsed time and the ETA of the whole batch; results and the summary on stdout;
 * - `plain` (stderr is not a terminal: logs, CI): one line per image started and, for long
 *   tiled runs, a tile count every few seconds, on stderr; results and summary on stdout;
 * - `json`: one JSON object per line on stdout, for programs (events `start`, `file_start`,
 *   `progress`, `file_done`, `file_skipped`, `file_failed`, `interrupted`, `summary`);
 * - `quiet`: only failures and warnings, on stderr.
 * Failures are always `diffir: <file>: <reason>` on stderr (except in json mode, where
 * they are `file_failed` events).
 */
import type { RestoreProgress } from '../restore/restore.js';
import type { StopSignal } from './interrupt.js';
import { escapeUnsafe } from '../errors.js';

export type ReportMode = 'tty' | 'plain' | 'json' | 'quiet';

/** The mode for the --json / --quiet flags and where stderr goes. */
export function reportMode(values: { json?: unknown; quiet?: unknown }, stderr: { isTTY?: boolean } = process.stderr): ReportMode {
  if (values.json) return 'json';
  if (values.quiet) return 'quiet';
  return stderr.isTTY && process.env.TERM !== 'dumb' ? 'tty' : 'plain';
}

/** Formats seconds for people: `0.4 s`, `12.3 s`, `2:05`, `1:02:03`. */
export function fmtDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/**
 * A count-only progress line on stderr for `diffir eval`: redrawn in place on a terminal,
 * otherwise one line every 5 s and at the end; nothing when `show` is false.
 */
export function countProgress(label: string, total: number, show: boolean): (done: number) => void {
  const tty = process.stderr.isTTY === true;
  const t0 = performance.now();
  let lastPlain = t0;
  return (done) => {
    if (!show) return;
    const el = (performance.now() - t0) / 1000;
    const line = `${label}: ${done}/${total} images, ${fmtDuration(el)} elapsed, ETA ${fmtDuration((el / done) * (total - done))}`;
    if (tty) process.stderr.write(`\r${line}\x1b[K${done === total ? '\n' : ''}`);
    else if (performance.now() - lastPlain > 5000 || done === total) {
      process.stderr.write(`${line}\n`);
      lastPlain = performance.now();
    }
  };
}

/** The start of a batch. */
export interface BatchStart {
  readonly command: string;
  readonly files: number;
  readonly output: string;
  readonly weights: string;
  readonly task: string;
  readonly scale: number;
  readonly device: string;
}

/** Sizes of an image being processed. */
export interface FileSizes {
  readonly width: number;
  readonly height: number;
  readonly outWidth: number;
  readonly outHeight: number;
}

/** A restored and saved image. */
export interface FileResult extends FileSizes {
  readonly output: string;
  /** Tile side used, 0 for a whole-image run. */
  readonly tile: number;
  readonly seconds: number;
  readonly warnings: readonly string[];
}

/** The end of a batch. */
export interface BatchSummary {
  readonly restored: number;
  readonly failed: number;
  readonly skipped: number;
  /** Files not started because the batch was interrupted. */
  readonly notProcessed: number;
  readonly seconds: number;
  readonly interrupted: StopSignal | null;
}

interface Stream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

interface Current {
  index: number;
  file: string;
  pixels: number;
  started: number;
  phase: RestoreProgress['phase'] | 'load';
  done: number;
  total: number;
  lastPlain: number;
  lastJson: number;
}

/** Progress and results of a batch, in the chosen mode. */
export class Reporter {
  private total = 0;
  private t0: number;
  private cur: Current | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private barShown = false;
  private lastDraw = 0;
  /** Pixels of each input (for the ETA), when known. */
  private work: number[] = [];
  /** Seconds and pixels of the restorations finished so far (for the rate). */
  private spent = 0;
  private spentPixels = 0;
  private readonly out: Stream;
  private readonly err: Stream;
  private readonly now: () => number;

  constructor(
    readonly mode: ReportMode,
    o: { out?: Stream; err?: Stream; now?: () => number } = {},
  ) {
    this.out = o.out ?? process.stdout;
    this.err = o.err ?? process.stderr;
    this.now = o.now ?? (() => performance.now() / 1000);
    this.t0 = this.now();
  }

  /** Whether {@link setWork} improves the output (the ETA of the TTY line). */
  get wantsWork(): boolean {
    return this.mode === 'tty';
  }

  /** Pixel counts of the inputs in order (0 where unknown), for a pixel-weighted ETA. */
  setWork(pixels: number[]): void {
    this.work = pixels;
  }

  private json(o: Record<string, unknown>): void {
    this.out.write(`${escapeUnsafe(JSON.stringify(o))}\n`);
  }

  /** Writes a line on stdout (results), keeping the TTY progress line intact. */
  private result(line: string): void {
    this.clearBar();
    this.out.write(`${escapeUnsafe(line)}\n`);
    this.drawBar();
  }

  /** Writes a line on stderr (failures, warnings, notes), keeping the TTY progress line intact. */
  private note(line: string): void {
    this.clearBar();
    this.err.write(`${escapeUnsafe(line)}\n`);
    this.drawBar();
  }

  start(s: BatchStart): void {
    this.total = s.files;
    this.t0 = this.now();
    if (this.mode === 'json') this.json({ event: 'start', command: s.command, files: s.files, output: s.output, weights: s.weights, task: s.task, scale: s.scale, device: s.device });
  }

  fileStart(index: number, file: string, z: FileSizes): void {
    const t = this.now();
    this.cur = { index, file, pixels: z.width * z.height, started: t, phase: 'load', done: 0, total: 1, lastPlain: t, lastJson: 0 };
    if (this.work[index] === undefined || this.work[index] === 0) this.work[index] = z.width * z.height;
    if (this.mode === 'json') {
      this.json({ event: 'file_start', index: index + 1, total: this.total, file, width: z.width, height: z.height, output_width: z.outWidth, output_height: z.outHeight });
    } else if (this.mode === 'plain' && this.total > 1) {
      const scaled = z.outWidth !== z.width || z.outHeight !== z.height ? ` → ${z.outWidth}×${z.outHeight}` : '';
      this.err.write(escapeUnsafe(`[${index + 1}/${this.total}] ${file} (${z.width}×${z.height}${scaled})`) + '\n');
    } else if (this.mode === 'tty') {
      this.timer ??= setInterval(() => this.drawBar(), 250);
      this.timer.unref?.();
      this.drawBar();
    }
  }

  progress(index: number, p: RestoreProgress): void {
    const c = this.cur;
    if (!c || c.index !== index) return;
    const phaseChanged = c.phase !== p.phase;
    c.phase = p.phase;
    c.done = p.done;
    c.total = p.total;
    const t = this.now();
    if (this.mode === 'json') {
      if (phaseChanged || p.done === p.total || t - c.lastJson >= 0.2) {
        c.lastJson = t;
        this.json({ event: 'progress', index: index + 1, total: this.total, file: c.file, phase: p.phase, done: p.done, of: p.total });
      }
    } else if (this.mode === 'plain') {
      if (p.phase === 'tiles' && p.done < p.total && t - c.lastPlain >= 10) {
        c.lastPlain = t;
        this.err.write(`[${index + 1}/${this.total}] ${escapeUnsafe(c.file)}: tile runs ${p.done}/${p.total} (${Math.floor((100 * p.done) / p.total)}%)\n`);
      }
    } else if (this.mode === 'tty') {
      // Redraw at most 10 times a second (tiles can be much faster than that).
      if (phaseChanged || t - this.lastDraw >= 0.1) this.drawBar();
    }
  }

  private finishCurrent(index: number, restored: boolean): void {
    const c = this.cur;
    if (c && c.index === index) {
      if (restored) {
        this.spent += this.now() - c.started;
        this.spentPixels += c.pixels;
      }
      this.cur = null;
    }
    // Failed and skipped files are no longer work to do.
    if (!restored) this.work[index] = 0;
  }

  fileDone(index: number, file: string, r: FileResult): void {
    this.finishCurrent(index, true);
    if (this.mode === 'json') {
      this.json({
        event: 'file_done', index: index + 1, total: this.total, file, output: r.output, width: r.width, height: r.height,
        output_width: r.outWidth, output_height: r.outHeight, tile: r.tile, seconds: round3(r.seconds), warnings: r.warnings,
      });
      return;
    }
    for (const w of r.warnings) this.note(`diffir: warning: ${r.output}: ${w}`);
    if (this.mode !== 'quiet') this.result(`${file} -> ${r.output} (${r.outWidth}×${r.outHeight}${r.tile ? `, tiles of ${r.tile}` : ''}, ${fmtDuration(r.seconds)})`);
  }

  fileSkipped(index: number, file: string, output: string, reason: string): void {
    this.finishCurrent(index, false);
    if (this.mode === 'json') this.json({ event: 'file_skipped', index: index + 1, total: this.total, file, output, reason });
    else if (this.mode !== 'quiet') this.result(`${file}: skipped, ${reason}`);
  }

  /** A file (or an argument that gave no file: index null) that failed. */
  fileFailed(index: number | null, file: string, reason: string): void {
    if (index !== null) this.finishCurrent(index, false);
    if (this.mode === 'json') this.json({ event: 'file_failed', ...(index !== null ? { index: index + 1, total: this.total } : {}), file, error: reason });
    else this.note(`diffir: ${file}: ${reason}`);
  }

  interrupted(signal: StopSignal): void {
    if (this.mode === 'json') {
      this.json({ event: 'interrupted', signal });
      return;
    }
    const again = signal === 'SIGINT' ? 'press Ctrl-C again' : 'send it again';
    this.note(`diffir: ${signal === 'SIGINT' ? 'interrupted' : 'terminated'}: stopping after the current step (${again} to quit at once)`);
  }

  summary(s: BatchSummary): void {
    this.close();
    if (this.mode === 'json') {
      this.json({ event: 'summary', restored: s.restored, failed: s.failed, skipped: s.skipped, not_processed: s.notProcessed, seconds: round3(s.seconds), interrupted: s.interrupted });
      return;
    }
    if (this.mode === 'quiet' && !s.interrupted) return;
    const parts = [`${s.restored} restored`, `${s.failed} failed`, `${s.skipped} skipped${s.skipped ? ' (output exists; pass --overwrite to replace)' : ''}`];
    if (s.notProcessed) parts.push(`${s.notProcessed} not processed`);
    const line = `${s.interrupted ? `stopped (${s.interrupted})` : 'done'}: ${parts.join(', ')} in ${fmtDuration(s.seconds)}`;
    if (this.mode === 'quiet') this.err.write(`diffir: ${line}\n`);
    else this.out.write(`${line}\n`);
  }

  /** Stops redrawing and erases the progress line. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.clearBar();
  }

  private clearBar(): void {
    if (this.barShown) this.err.write('\r\x1b[K');
    this.barShown = false;
  }

  /** Fraction of the current image done: tile runs when tiled, else estimated from the measured rate. */
  private currentFraction(c: Current, elapsed: number): number {
    switch (c.phase) {
      case 'tiles':
        return 0.03 + 0.95 * (c.done / Math.max(1, c.total));
      case 'done':
        return 0.99;
      default: {
        const rate = this.rate();
        return rate ? Math.min(0.95, elapsed / (rate * c.pixels)) : 0;
      }
    }
  }

  /** Seconds per input pixel measured so far, or null. */
  private rate(): number | null {
    if (this.spentPixels > 0) return this.spent / this.spentPixels;
    const c = this.cur;
    if (c && c.phase === 'tiles' && c.done > 0) return (this.now() - c.started) / ((0.03 + 0.95 * (c.done / c.total)) * c.pixels);
    return null;
  }

  /** Seconds left for the whole batch, or null when unknown yet. */
  eta(): number | null {
    const c = this.cur;
    const rate = this.rate();
    if (!c || rate === null) return null;
    const elapsed = this.now() - c.started;
    const f = this.currentFraction(c, elapsed);
    const curLeft = c.phase === 'tiles' && f > 0.05 ? (elapsed * (1 - f)) / f : Math.max(0, rate * c.pixels - elapsed);
    let rest = 0;
    const known = this.work.slice(0, this.total).filter((w, i) => i > c.index && w > 0);
    const avg = known.length ? known.reduce((a, b) => a + b, 0) / known.length : c.pixels;
    for (let i = c.index + 1; i < this.total; i++) rest += this.work[i] === undefined ? avg : this.work[i]!;
    return curLeft + rate * rest;
  }

  private drawBar(): void {
    if (this.mode !== 'tty' || !this.cur) return;
    const c = { ...this.cur, file: escapeUnsafe(this.cur.file) };
    this.lastDraw = this.now();
    const elapsed = this.lastDraw - c.started;
    const f = this.currentFraction(c, elapsed);
    const width = 20;
    const filled = Math.round(f * width);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const what = c.phase === 'tiles' ? `tile runs ${c.done}/${c.total}` : c.phase === 'prior' ? 'prior' : c.phase === 'done' ? 'saving' : c.phase === 'load' ? 'starting' : 'network';
    const eta = this.eta();
    const head = `[${c.index + 1}/${this.total}] `;
    const cols = Math.max(20, (this.err.columns || 80) - 1);
    // Drop details from the right until the line fits, then shorten the file name.
    const parts = [` ${bar} ${String(Math.floor(f * 100)).padStart(3)}%`, `  ${what}`, `  ${fmtDuration(elapsed)}`, eta !== null ? `  ETA ${fmtDuration(eta)}` : ''];
    const minName = Math.min(c.file.length, 16);
    while (parts.length > 1 && head.length + minName + parts.join('').length > cols) parts.splice(parts.length > 3 ? 2 : parts.length - 1, 1);
    const tail = parts.join('');
    const room = Math.max(1, cols - head.length - tail.length);
    const name = c.file.length > room ? `…${c.file.slice(c.file.length - room + 1)}` : c.file;
    this.err.write(`\r\x1b[K${head}${name}${tail}`);
    this.barShown = true;
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
