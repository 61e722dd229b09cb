/**
 * Evaluates the built-in default model on held-out photos for the three kinds of input it is
 * meant for (src/data/eval-pairs.ts): clean bicubic ×1/4, mild (blur 0.8, ×1/4, JPEG 80) and
 * heavy (Real-ESRGAN second order). Prints mean PSNR-Y (crop 4, as BasicSR) of MATLAB bicubic,
 * previous default models (`--old`, comma-separated, labelled by file name), the current one and optionally UpscalerJS esrgan-thick
 * (`--upscalerjs <folder>`: a folder where `npm install @upscalerjs/esrgan-thick @tensorflow/tfjs
 * @tensorflow/tfjs-backend-wasm` was run; not a dependency of this project), the margins over
 * bicubic against the goals, and the whole-process time of `diffir restore` at 64→256 and
 * 256→1024 (median of `--runs`).
 *
 *   node dist/bench/default-model.js [--photos dir-or-file,...] [--crops 2] [--old v1.safetensors,v2.safetensors]
 *     [--weights W] [--upscalerjs DIR] [--picture out.jpg] [--picture-of chelsea] [--runs 3] [--no-timing]
 *     [--timing-only] [--baseline DIR] [--dim 32]
 *
 * Speed against another build (`--baseline DIR`: a checkout of this project with `dist/` built,
 * e.g. `git worktree add DIR main && ln -s $PWD/node_modules DIR/ && (cd DIR && npx tsc)`): the
 * two builds run alternately in the same run, whole process (`diffir restore`, wall and CPU
 * seconds of the child) and restore only (in this process: the first image of a size, which
 * builds the session, and the next ones), medians and ratios new / baseline. CPU seconds
 * (user + sys) are quoted because wall time on a shared machine depends on the other jobs.
 * `--dim N` times a random-weight model of the default model's configuration at width N
 * instead of the shipped weights (for a wider model before it is trained). `--timing-only`
 * skips the quality table.
 *
 * The photos default to ../shared/data/images (never trained on); add the held-out share of the
 * training collection with `--photos ../shared/data/images,<work>/photos/heldout`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { type LoadedImage, loadImage } from '../src/image/io.js';
import { imresize } from '../src/data/degrade/resize.js';
import { evalPairs, EVAL_KINDS, EVAL_KIND_LABEL, type EvalKind } from '../src/data/eval-pairs.js';
import { measure } from '../src/metrics/psnr-ssim.js';
import { Restorer } from '../src/restore/restore.js';
import { DEFAULT_MODEL_PATH } from '../src/models/default-model.js';
import { loadCheckpoint } from '../src/models/checkpoint.js';
import { DiffIRS2 } from '../src/models/diffir.js';
import { initParams } from '../src/nn/init.js';
import { writeSafetensors } from '../src/weights/safetensors.js';
import { f32, type HostTensor } from '../src/tensor.js';
import { flag, machine, median } from './util.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The issue's goals: PSNR-Y margin over bicubic per kind of input. */
const GOAL: Readonly<Record<EvalKind, number>> = { clean: 1.0, mild: 0.4, heavy: 1.0 };

type Upscale = (lq: HostTensor<'float32'>) => Promise<HostTensor<'float32'>>;
/** The tfjs backend UpscalerJS ran on. */
let backend = '';

/** A tfjs IOHandler reading a layers model (model.json + weight shards) from disk. */
function tfFileHandler(tf: any, modelJson: string): unknown {
  return {
    load: async () => {
      const j = JSON.parse(readFileSync(modelJson, 'utf8'));
      const specs = j.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights);
      const bufs = j.weightsManifest.flatMap((g: { paths: string[] }) => g.paths.map((p) => readFileSync(join(dirname(modelJson), p))));
      const all = Buffer.concat(bufs);
      return { modelTopology: j.modelTopology, weightSpecs: specs, weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength), format: j.format, generatedBy: j.generatedBy, convertedBy: j.convertedBy };
    },
  };
  void tf;
}

function asImage(rgb: HostTensor<'float32'>): LoadedImage {
  const [, , h, w] = rgb.shape as number[];
  return { rgb, alpha: null, gray: false, bitDepth: 8, format: 'png', width: w!, height: h!, orientationApplied: false };
}

async function diffir(weights: string): Promise<{ run: Upscale; release: () => Promise<void> }> {
  const r = Restorer.load(weights, { threads: 2 });
  return { run: async (lq) => (await r.restore(asImage(lq), { seed: 0 })).rgb, release: () => r.release() };
}

/** UpscalerJS esrgan-thick ×4 on tfjs (wasm backend if installed, else pure JS), from a folder outside this project. */
async function upscalerjs(dir: string): Promise<Upscale> {
  // Loaded from the given folder (CommonJS builds), never from this project's dependencies.
  const req = createRequire(join(resolve(dir), 'package.json'));
  const tf = req('@tensorflow/tfjs');
  try {
    req('@tensorflow/tfjs-backend-wasm');
    await tf.setBackend('wasm');
  } catch {
    await tf.setBackend('cpu');
  }
  await tf.ready();
  backend = tf.getBackend();
  const def = req('@upscalerjs/esrgan-thick/4x');
  const d = (def.default ?? def) as { path?: string; _internals?: { path: string }; setup?: (tf: unknown) => void };
  d.setup?.(tf);
  const modelJson = join(dirname(req.resolve('@upscalerjs/esrgan-thick/4x')).replace(/dist[\\/].*$/, ''), d._internals?.path ?? d.path ?? 'models/x4/model.json');
  const model = await tf.loadLayersModel(tfFileHandler(tf, modelJson));
  return async (lq) => {
    const [, , h, w] = lq.shape as number[];
    const hwc = new Float32Array(h! * w! * 3);
    for (let c = 0; c < 3; c++) for (let p = 0; p < h! * w!; p++) hwc[p * 3 + c] = lq.data[c * h! * w! + p]!; // esrgan-thick's inputRange is [0, 1]
    const y = tf.tidy(() => model.predict(tf.tensor4d(hwc, [1, h!, w!, 3])));
    const out = (await y.data()) as Float32Array;
    y.dispose();
    const H = 4 * h!;
    const W = 4 * w!;
    const chw = new Float32Array(3 * H * W);
    for (let c = 0; c < 3; c++) for (let p = 0; p < H * W; p++) chw[c * H * W + p] = Math.min(1, Math.max(0, out[p * 3 + c]!));
    return f32([1, 3, H, W], chw);
  };
}

async function png(t: HostTensor<'float32'>, nearest = 1): Promise<Buffer> {
  const [, , h, w] = t.shape as number[];
  const px = Buffer.alloc(h! * w! * 3);
  for (let y = 0; y < h!; y++) for (let x = 0; x < w!; x++) for (let c = 0; c < 3; c++) px[(y * w! + x) * 3 + c] = Math.round(Math.min(1, Math.max(0, t.data[(c * h! + y) * w! + x]!)) * 255);
  return sharp(px, { raw: { width: w!, height: h!, channels: 3 } }).resize(w! * nearest, h! * nearest, { kernel: 'nearest' }).png().toBuffer();
}

/** CPU seconds (user + sys) of this process's waited-for children (Linux /proc; NaN elsewhere). */
function childrenCpu(): number {
  try {
    const f = readFileSync('/proc/self/stat', 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    // Fields 16 and 17 (cutime, cstime) counted from field 3, which is rest[0]; clock ticks of 1/100 s.
    return (Number(rest[13]) + Number(rest[14])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** A `size`² crop of `photo` as a PNG in `dir`. */
async function cropFile(photo: string, size: number, dir: string): Promise<string> {
  const input = join(dir, `in${size}.png`);
  if (!existsSync(input)) await sharp(photo).resize(size, size, { fit: 'cover' }).png().toFile(input);
  return input;
}

/**
 * One whole-process run (node start, load, restore, save) on `input`: `diffir restore` of the
 * build at `cli` (default this one), or UpscalerJS through this script's child mode when
 * `upDir` is given. Returns wall and CPU seconds.
 */
function restoreProcess(input: string, outDir: string, weights: string | null, upDir = '', cli = join(root, 'dist/src/cli/main.js')): { wall: number; cpu: number } {
  const t0 = performance.now();
  const c0 = childrenCpu();
  const args = upDir
    ? [fileURLToPath(import.meta.url), '--upscalerjs', upDir, '--upscalerjs-file', input]
    : [cli, 'restore', input, '-o', outDir, '--overwrite', '-q', ...(weights ? ['--weights', weights] : [])];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${upDir ? 'UpscalerJS' : 'diffir restore'} failed: ${r.stderr.trim().split('\n').at(-1)}`);
  return { wall: (performance.now() - t0) / 1000, cpu: childrenCpu() - c0 };
}

/** Whole-process seconds of `runs` runs on a crop of `size`² of `photo` (see {@link restoreProcess}). */
async function timeRestore(photo: string, size: number, runs: number, weights: string | null, upDir = ''): Promise<number[]> {
  const dir = mkdtempSync(join(tmpdir(), 'diffir-bench-'));
  try {
    const input = await cropFile(photo, size, dir);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) times.push(restoreProcess(input, join(dir, 'out'), weights, upDir).wall);
    return times;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Medians of wall and CPU seconds. */
interface Timing {
  wall: number;
  cpu: number;
}

function medians(xs: readonly { wall: number; cpu: number }[]): Timing {
  return { wall: median(xs.map((x) => x.wall)), cpu: median(xs.map((x) => x.cpu)) };
}

/** A Restorer class loaded from a build's `dist/src/restore/restore.js`. */
type RestorerClass = typeof Restorer;

/**
 * This build against the build in `baseDir`, alternately in the same run, on a crop of
 * `size`² of `photo`: whole process (`diffir restore`, `runs` each) and restore only (in
 * this process, 2 threads, max(2, ⌈runs/2⌉) fresh restorers each: the first image, which
 * builds the session, then two more), medians.
 */
async function versusBaseline(photo: string, size: number, runs: number, weights: string, baseDir: string): Promise<{ process: [Timing, Timing]; first: [Timing, Timing]; next: [Timing, Timing] }> {
  const dir = mkdtempSync(join(tmpdir(), 'diffir-bench-'));
  const baseCli = join(resolve(baseDir), 'dist/src/cli/main.js');
  const Base = ((await import(join(resolve(baseDir), 'dist/src/restore/restore.js'))) as { Restorer: RestorerClass }).Restorer;
  const builds = [Restorer, Base] as const;
  try {
    const input = await cropFile(photo, size, dir);
    const w = weights === DEFAULT_MODEL_PATH ? null : weights;
    const proc: { wall: number; cpu: number }[][] = [[], []];
    for (let i = 0; i < runs; i++) {
      proc[0]!.push(restoreProcess(input, join(dir, 'out'), w));
      proc[1]!.push(restoreProcess(input, join(dir, 'out'), w, '', baseCli));
    }
    const lq = await loadImage(input);
    const first: { wall: number; cpu: number }[][] = [[], []];
    const next: { wall: number; cpu: number }[][] = [[], []];
    const timed = async (fn: () => Promise<unknown>) => {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await fn();
      const c = process.cpuUsage(c0);
      return { wall: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6 };
    };
    // Fresh restorers per round, so the first image pays the session as a new process would;
    // the order alternates, so that neither build always pays the process's first session.
    for (let i = 0; i < Math.max(2, Math.ceil(runs / 2)); i++) {
      for (const b of i % 2 ? [1, 0] : [0, 1]) {
        const r = builds[b]!.load(weights, { threads: 2 });
        first[b]!.push(await timed(() => r.restore(lq, { seed: 0 })));
        for (let k = 0; k < 2; k++) next[b]!.push(await timed(() => r.restore(lq, { seed: 0 })));
        await r.release();
      }
    }
    return {
      process: [medians(proc[0]!), medians(proc[1]!)],
      first: [medians(first[0]!), medians(first[1]!)],
      next: [medians(next[0]!), medians(next[1]!)],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A random-weight checkpoint of the default model's configuration at width `dim`, written to a temp file. */
function randomWidthModel(dim: number): string {
  const cfg = { ...loadCheckpoint(DEFAULT_MODEL_PATH).config, dim };
  const file = join(mkdtempSync(join(tmpdir(), 'diffir-bench-model-')), `random-dim${dim}.safetensors`);
  writeSafetensors(file, initParams(DiffIRS2(cfg), 1));
  return file;
}

// Child mode for timing UpscalerJS as a whole process: load tfjs and the model, upscale one PNG, write it.
const upscaleOnly = flag('upscalerjs-file', '');
if (upscaleOnly) {
  const { saveImage } = await import('../src/image/io.js');
  const run = await upscalerjs(flag('upscalerjs', ''));
  await saveImage(`${upscaleOnly}.x4.png`, { rgb: await run((await loadImage(upscaleOnly)).rgb) }, { overwrite: true });
  process.exit(0);
}

const photoArgs = flag('photos', resolve(root, '../shared/data/images')).split(',').filter(Boolean);
const photos = photoArgs.flatMap((p) => (statSync(p).isDirectory() ? readdirSync(p).filter((f) => /\.(png|jpe?g)$/i.test(f)).sort().map((f) => join(p, f)) : [p]));
const crops = Number(flag('crops', '2'));
const dimFlag = Number(flag('dim', '0'));
const weights = dimFlag ? randomWidthModel(dimFlag) : flag('weights', DEFAULT_MODEL_PATH);
const baseline = flag('baseline', '');
const timingOnly = process.argv.includes('--timing-only');
const olds = flag('old', '').split(',').filter(Boolean);
const upDir = flag('upscalerjs', '');
const picture = flag('picture', '');
/** Photo (stem) whose first crop the picture shows, one row per kind of input. */
const pictureOf = flag('picture-of', 'chelsea');
const runs = Number(flag('runs', '3'));
const timing = !process.argv.includes('--no-timing');

if (!timingOnly) await qualityTable();

/** The PSNR-Y table (and picture) on held-out photos. */
async function qualityTable(): Promise<void> {
  const pairs = await evalPairs(photos, { crops, size: 256 });
  const methods: { name: string; run: Upscale; release?: () => Promise<void> }[] = [{ name: 'bicubic (MATLAB imresize)', run: (lq) => imresize(lq, 4) }];
  for (const o of olds) methods.push({ name: `old default model (${basename(o)})`, ...(await diffir(o)) });
  const current = await diffir(weights);
  methods.push({ name: 'DiffIR default model', ...current });
  if (upDir) methods.push({ name: 'UpscalerJS esrgan-thick', run: await upscalerjs(upDir) });
  if (backend) console.log(`# UpscalerJS esrgan-thick on tfjs backend '${backend}' (from ${upDir})`);

  const sums = new Map<string, Record<EvalKind, number>>(methods.map((m) => [m.name, { clean: 0, mild: 0, heavy: 0 }]));
  const counts: Record<EvalKind, number> = { clean: 0, mild: 0, heavy: 0 };
  const tiles: Buffer[][] = [];
  for (const p of pairs) {
    counts[p.kind]++;
    const inPicture = picture !== '' && p.name === `${pictureOf}_0`;
    const row: Buffer[] = inPicture ? [await png(p.lq, 4)] : [];
    for (const m of methods) {
      const out = await m.run(p.lq);
      sums.get(m.name)![p.kind] += measure(out, p.gt, { type: 'psnr', cropBorder: 4, testYChannel: true });
      if (inPicture) row.push(await png(out));
    }
    if (inPicture) tiles.push([...row, await png(p.gt)]);
  }
  for (const m of methods) await m.release?.();

  const mean = (name: string, k: EvalKind) => sums.get(name)![k] / counts[k];
  console.log(`# default model on held-out photos: ${photos.length} photos × ${crops} crops of 256² (LQ 64²), mean PSNR-Y (crop 4); weights ${weights}`);
  console.log(`# machine: ${machine()} (shared with other jobs)`);
  console.log(`| input | ${methods.map((m) => m.name).join(' | ')} | margin over bicubic | goal | met |`);
  console.log(`|---|${methods.map(() => '---|').join('')}---|---|---|`);
  for (const k of EVAL_KINDS) {
    const margin = mean('DiffIR default model', k) - mean(methods[0]!.name, k);
    console.log(`| ${EVAL_KIND_LABEL[k]} | ${methods.map((m) => mean(m.name, k).toFixed(2)).join(' | ')} | ${margin >= 0 ? '+' : ''}${margin.toFixed(2)} dB | +${GOAL[k].toFixed(1)} dB | ${margin >= GOAL[k] ? 'yes' : `no (${(margin - GOAL[k]).toFixed(2)} dB)`} |`);
  }
  if (picture && tiles.length) {
    const size = 256;
    const cols = tiles[0]!.length;
    const composite = tiles.flatMap((row, i) => row.map((input, j) => ({ input, left: j * (size + 4), top: i * (size + 4) })));
    await sharp({ create: { width: cols * (size + 4) - 4, height: tiles.length * (size + 4) - 4, channels: 3, background: '#fff' } }).composite(composite).jpeg({ quality: 85 }).toFile(picture);
    console.log(`wrote ${picture} (rows: clean, mild, heavy; columns: LQ ×4 nearest, ${methods.map((m) => m.name).join(', ')}, ground truth)`);
  }
}

if (timing) {
  console.log(`# whole-process 'diffir restore' (node start, load, restore, save), median of ${runs}:`);
  for (const size of [64, 256]) {
    const t = median(await timeRestore(photos[0]!, size, runs, weights === DEFAULT_MODEL_PATH ? null : weights));
    const u = upDir ? median(await timeRestore(photos[0]!, size, runs, null, upDir)) : null;
    console.log(`restore ${size}→${size * 4}: DiffIR default model ${t.toFixed(2)} s${u !== null ? `, UpscalerJS esrgan-thick ${u.toFixed(2)} s (${(u / t).toFixed(1)}× ours)` : ''}`);
  }
}
if (baseline) {
  const fmt = (t: Timing) => `${t.wall.toFixed(2)} s, ${t.cpu.toFixed(2)} CPU s`;
  const ratio = (a: Timing, b: Timing) => `${(a.wall / b.wall).toFixed(2)} wall, ${(a.cpu / b.cpu).toFixed(2)} CPU`;
  console.log(`# this build vs the build in ${baseline}, alternately in one run (${runs} whole processes, restore-only medians); weights ${basename(weights)}; machine shared with other jobs`);
  console.log('| case | this build | baseline | this / baseline |');
  console.log('|---|---|---|---|');
  for (const size of [64, 256]) {
    const v = await versusBaseline(photos[0]!, size, runs, weights, baseline);
    const rows: [string, [Timing, Timing]][] = [
      [`${size}→${size * 4} whole process`, v.process],
      [`${size}→${size * 4} restore, first image (session built)`, v.first],
      [`${size}→${size * 4} restore, next images`, v.next],
    ];
    for (const [name, [a, b]] of rows) console.log(`| ${name} | ${fmt(a)} | ${fmt(b)} | ${ratio(a, b)} |`);
  }
}
if (dimFlag) rmSync(dirname(weights), { recursive: true, force: true });
