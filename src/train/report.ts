/**
 * Training logs and the report: a JSONL log (one record per line: start, train windows,
 * validations, checkpoints, phase changes, end) and `report.html`, a single self-contained
 * page with the loss, learning-rate and metric curves (inline SVG) and sample restorations
 * from the latest validation (LQ, output, GT, inline PNG) that anyone can open in a browser.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import sharp from 'sharp';
import { quantize } from '../image/io.js';
import { writeFileAtomicSync as writeFileAtomic } from '../fs/atomic.js';
import type { Planar } from './data.js';
import type { Sample } from './validate.js';

/** A record of the training log. */
export type LogRecord =
  | { event: 'start' | 'resume'; iter: number; time: string; name: string; options: string; stage: number; total_iter: number; params: number }
  | { event: 'train'; iter: number; epoch: number; phase: string; lr: number; losses: Record<string, number>; sec_per_iter: number; eta_s: number; grad_norm: number }
  | { event: 'val'; iter: number; dataset: string; metrics: Record<string, number>; best: Record<string, { value: number; iter: number }> }
  | { event: 'checkpoint'; iter: number; files: string[] }
  | { event: 'phase'; iter: number; phase: string; detail: string }
  | { event: 'end' | 'interrupted'; iter: number; time: string };

/** Appends records to a JSONL file. */
export class JsonlLog {
  constructor(readonly path: string) {}
  write(r: LogRecord): void {
    appendFileSync(this.path, `${JSON.stringify(r)}\n`);
  }
  /** All records (unreadable lines, e.g. one cut by a crash, are skipped). */
  read(): LogRecord[] {
    if (!existsSync(this.path)) return [];
    const out: LogRecord[] = [];
    for (const line of readFileSync(this.path, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as LogRecord);
      } catch {
        /* a partial last line */
      }
    }
    return out;
  }
  /** Drops records past `iter` (a resumed run repeats them), atomically. */
  truncateAfter(iter: number): void {
    const keep = this.read().filter((r) => r.iter <= iter);
    writeFileAtomic(this.path, [new TextEncoder().encode(keep.map((r) => `${JSON.stringify(r)}\n`).join(''))]);
  }
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : Number(v.toPrecision(4)).toString();
}

/** A line chart as inline SVG: series of (x, y) points, optional log-scale y. */
export function lineChart(title: string, series: { name: string; points: [number, number][] }[], o: { logY?: boolean; width?: number; height?: number } = {}): string {
  const W = o.width ?? 640;
  const H = o.height ?? 260;
  const L = 64;
  const R = 12;
  const T = 28;
  const B = 36;
  const pts = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y) && (!o.logY || y > 0));
  if (pts.length === 0) return `<figure><figcaption>${esc(title)}</figcaption><p class="empty">no data yet</p></figure>`;
  const ty = (y: number) => (o.logY ? Math.log10(y) : y);
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => ty(p[1]))), Math.max(...pts.map((p) => ty(p[1])))];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) [y0, y1] = [y0 - (Math.abs(y0) || 1) * 0.05, y1 + (Math.abs(y1) || 1) * 0.05];
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y: number) => T + (1 - (ty(y) - y0) / (y1 - y0)) * (H - T - B);
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`];
  parts.push(`<text x="${L}" y="16" font-size="13" font-weight="bold">${esc(title)}</text>`);
  parts.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#999"/>`);
  for (let i = 0; i <= 4; i++) {
    const yv = y0 + ((y1 - y0) * i) / 4;
    const py = T + (1 - i / 4) * (H - T - B);
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${py}" y2="${py}" stroke="#eee"/><text x="${L - 4}" y="${py + 4}" text-anchor="end">${esc(fmt(o.logY ? 10 ** yv : yv))}</text>`);
    const xv = x0 + ((x1 - x0) * i) / 4;
    const px = L + (i / 4) * (W - L - R);
    parts.push(`<text x="${px}" y="${H - B + 14}" text-anchor="middle">${esc(fmt(Math.round(xv)))}</text>`);
  }
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">iteration</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length]!;
    const ps = s.points.filter(([, y]) => Number.isFinite(y) && (!o.logY || y > 0));
    if (ps.length === 0) return;
    const d = ps.map(([x, y], j) => `${j ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join('');
    parts.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="1.5"/>`);
    if (ps.length === 1) parts.push(`<circle cx="${sx(ps[0]![0])}" cy="${sy(ps[0]![1])}" r="3" fill="${c}"/>`);
    parts.push(`<text x="${W - R - 4}" y="${T + 14 + 13 * i}" text-anchor="end" fill="${c}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return `<figure>${parts.join('')}</figure>`;
}

/** A planar float image as a PNG data URI (8-bit, quantised like the saved images), at most `max` pixels wide. */
export async function pngDataUri(img: Planar, max = 256): Promise<string> {
  const { height: h, width: w } = img;
  const hw = h * w;
  const rgb = Buffer.alloc(3 * hw);
  for (let p = 0; p < hw; p++) for (let c = 0; c < 3; c++) rgb[3 * p + c] = quantize(img.data[c * hw + p]!, 255);
  let pipe = sharp(rgb, { raw: { width: w, height: h, channels: 3 } });
  if (w > max) pipe = pipe.resize({ width: max, kernel: 'nearest' });
  const png = await pipe.png().toBuffer();
  return `data:image/png;base64,${png.toString('base64')}`;
}

/** What the report shows besides the log. */
export interface ReportInfo {
  readonly name: string;
  readonly options: string;
  readonly model: string;
  readonly status: string;
  readonly samples: readonly { dataset: string; iter: number; samples: readonly Sample[] }[];
}

/** Writes `report.html` from the log records, atomically. */
export async function writeReport(path: string, records: readonly LogRecord[], info: ReportInfo): Promise<void> {
  const train = records.filter((r): r is Extract<LogRecord, { event: 'train' }> => r.event === 'train');
  const vals = records.filter((r): r is Extract<LogRecord, { event: 'val' }> => r.event === 'val');
  const lossKeys = [...new Set(train.flatMap((r) => Object.keys(r.losses)))];
  const charts: string[] = [];
  charts.push(lineChart('training losses (mean over each logging window)', lossKeys.map((k) => ({ name: k, points: train.filter((r) => k in r.losses).map((r) => [r.iter, r.losses[k]!] as [number, number]) })), { logY: true }));
  charts.push(lineChart('learning rate', [{ name: 'lr', points: train.map((r) => [r.iter, r.lr] as [number, number]) }], { logY: true }));
  const datasets = [...new Set(vals.map((v) => v.dataset))];
  const metricNames = [...new Set(vals.flatMap((v) => Object.keys(v.metrics)))];
  for (const m of metricNames) {
    charts.push(lineChart(`validation ${m}`, datasets.map((d) => ({ name: d, points: vals.filter((v) => v.dataset === d && m in v.metrics).map((v) => [v.iter, v.metrics[m]!] as [number, number]) }))));
  }
  const last = vals.at(-1);
  const bestRows = datasets.flatMap((d) => {
    const v = [...vals].reverse().find((x) => x.dataset === d);
    return v ? Object.entries(v.best).map(([k, b]) => `<tr><td>${esc(d)}</td><td>${esc(k)}</td><td>${fmt(b.value)}</td><td>${b.iter}</td></tr>`) : [];
  });
  const sampleHtml: string[] = [];
  for (const group of info.samples) {
    for (const s of group.samples) {
      const [lq, out, gt] = await Promise.all([pngDataUri(s.lq, 256), pngDataUri(s.out, 256), pngDataUri(s.gt, 256)]);
      sampleHtml.push(
        `<div class="sample"><h3>${esc(group.dataset)} / ${esc(s.name)} (iteration ${group.iter})</h3>` +
          `<figure><img src="${lq}" alt="LQ"><figcaption>input (LQ)</figcaption></figure>` +
          `<figure><img src="${out}" alt="output"><figcaption>restored</figcaption></figure>` +
          `<figure><img src="${gt}" alt="GT"><figcaption>ground truth</figcaption></figure></div>`,
      );
    }
  }
  const lastTrain = train.at(-1);
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(info.name)} — DiffIR training report</title>
<style>
body{font-family:sans-serif;margin:24px;color:#222;max-width:1400px}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
figure{display:inline-block;margin:8px;vertical-align:top}figcaption{text-align:center;font-size:12px;color:#555}
.sample img{width:256px;image-rendering:pixelated;border:1px solid #ccc}.empty{color:#999}
</style></head><body>
<h1>${esc(info.name)}</h1>
<table>
<tr><th>options</th><td>${esc(info.options)}</td></tr>
<tr><th>model</th><td>${esc(info.model)}</td></tr>
<tr><th>status</th><td>${esc(info.status)}</td></tr>
${lastTrain ? `<tr><th>last logged</th><td>iteration ${lastTrain.iter}, ${fmt(lastTrain.sec_per_iter)} s/iter, ${Object.entries(lastTrain.losses).map(([k, v]) => `${esc(k)} ${fmt(v)}`).join(', ')}</td></tr>` : ''}
${last ? `<tr><th>last validation</th><td>iteration ${last.iter}: ${vals.filter((v) => v.iter === last.iter).map((v) => `${esc(v.dataset)} ${Object.entries(v.metrics).map(([k, x]) => `${esc(k)} ${fmt(x)}`).join(', ')}`).join('; ')}</td></tr>` : ''}
</table>
<h2>Curves</h2>
${charts.join('\n')}
${bestRows.length ? `<h2>Best validation results</h2><table><tr><th>dataset</th><th>metric</th><th>value</th><th>iteration</th></tr>${bestRows.join('')}</table>` : ''}
<h2>Sample restorations</h2>
${sampleHtml.length ? sampleHtml.join('\n') : '<p class="empty">no validation yet</p>'}
</body></html>
`;
  writeFileAtomic(path, [new TextEncoder().encode(html)]);
}
