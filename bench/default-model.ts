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
 *
 * The photos default to ../shared/data/images (never trained on); add the held-out share of the
 * training collection with `--photos ../shared/data/images,<work>/photos/heldout`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import type { LoadedImage } from '../src/image/io.js';
import { imresize } from '../src/data/degrade/resize.js';
import { evalPairs, EVAL_KINDS, EVAL_KIND_LABEL, type EvalKind } from '../src/data/eval-pairs.js';
import { measure } from '../src/metrics/psnr-ssim.js';
import { Restorer } from '../src/restore/restore.js';
import { DEFAULT_MODEL_PATH } from '../src/models/default-model.js';
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

/**
 * Whole-process seconds (node start, load, restore, save) on a crop of `size`² of the first photo:
 * `diffir restore`, or UpscalerJS through this script's child mode when `upDir` is given.
 */
function timeRestore(photo: string, size: number, runs: number, weights: string | null, upDir = ''): Promise<number[]> {
  return (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'diffir-bench-'));
    try {
      const input = join(dir, `in${size}.png`);
      await sharp(photo).resize(size, size, { fit: 'cover' }).png().toFile(input);
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        const args = upDir
          ? [fileURLToPath(import.meta.url), '--upscalerjs', upDir, '--upscalerjs-file', input]
          : [join(root, 'dist/src/cli/main.js'), 'restore', input, '-o', join(dir, 'out'), '--overwrite', '-q', ...(weights ? ['--weights', weights] : [])];
        const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`${upDir ? 'UpscalerJS' : 'diffir restore'} failed: ${r.stderr.trim().split('\n').at(-1)}`);
        times.push((performance.now() - t0) / 1000);
      }
      return times;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
}

// Child mode for timing UpscalerJS as a whole process: load tfjs and the model, upscale one PNG, write it.
const upscaleOnly = flag('upscalerjs-file', '');
if (upscaleOnly) {
  const { loadImage, saveImage } = await import('../src/image/io.js');
  const run = await upscalerjs(flag('upscalerjs', ''));
  await saveImage(`${upscaleOnly}.x4.png`, { rgb: await run((await loadImage(upscaleOnly)).rgb) }, { overwrite: true });
  process.exit(0);
}

const photoArgs = flag('photos', resolve(root, '../shared/data/images')).split(',').filter(Boolean);
const photos = photoArgs.flatMap((p) => (statSync(p).isDirectory() ? readdirSync(p).filter((f) => /\.(png|jpe?g)$/i.test(f)).sort().map((f) => join(p, f)) : [p]));
const crops = Number(flag('crops', '2'));
const weights = flag('weights', DEFAULT_MODEL_PATH);
const olds = flag('old', '').split(',').filter(Boolean);
const upDir = flag('upscalerjs', '');
const picture = flag('picture', '');
/** Photo (stem) whose first crop the picture shows, one row per kind of input. */
const pictureOf = flag('picture-of', 'chelsea');
const runs = Number(flag('runs', '3'));
const timing = !process.argv.includes('--no-timing');

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
if (timing) {
  console.log(`# whole-process 'diffir restore' (node start, load, restore, save), median of ${runs}:`);
  for (const size of [64, 256]) {
    const t = median(await timeRestore(photos[0]!, size, runs, weights === DEFAULT_MODEL_PATH ? null : weights));
    const u = upDir ? median(await timeRestore(photos[0]!, size, runs, null, upDir)) : null;
    console.log(`restore ${size}→${size * 4}: DiffIR default model ${t.toFixed(2)} s${u !== null ? `, UpscalerJS esrgan-thick ${u.toFixed(2)} s (${(u / t).toFixed(1)}× ours)` : ''}`);
  }
}
