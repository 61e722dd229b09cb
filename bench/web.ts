/**
 * Browser vs Node: restoration time of the built-in default model and of an official-width
 * model (realsr-x4 preset, random weights) on a 64×64 → 256×256 image, in headless
 * Chromium's WebAssembly backend (the page, served by `diffir web`, cross-origin isolated,
 * multi-threaded) and in Node (onnxruntime-node), on the same machine, alternating.
 * "cold" is the first restoration (it builds the ORT session); "warm" the median of the rest.
 *
 *   npm run bench:web [-- --runs 3 --size 64 --threads 2]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MODEL_PATH } from '../src/models/default-model.js';
import { loadCheckpoint, type DiffIRCheckpoint } from '../src/models/checkpoint.js';
import { preset } from '../src/models/config.js';
import { parameterCount } from '../src/models/params.js';
import { DiffIRS2 } from '../src/models/diffir.js';
import { initParams } from '../src/nn/init.js';
import { Restorer } from '../src/restore/restore.js';
import type { LoadedImage } from '../src/image/io.js';
import { ensurePageBuilt, launchChromium, startWebServer } from '../test/helpers/web.js';
import { flag, machine, median } from './util.js';

interface Timing {
  first: number;
  times: number[];
}

function image(size: number): LoadedImage {
  const n = size * size;
  const data = new Float32Array(3 * n);
  let x = 7;
  for (let i = 0; i < data.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    data[i] = x / 2 ** 32;
  }
  return { rgb: { dtype: 'float32', shape: [1, 3, size, size], data }, alpha: null, gray: false, bitDepth: 8, format: 'png', width: size, height: size, orientationApplied: false };
}

async function nodeRun(ck: DiffIRCheckpoint, size: number, runs: number, threads: number): Promise<Timing> {
  const r = Restorer.load(ck, { threads });
  const img = image(size);
  const times: number[] = [];
  let first = 0;
  for (let i = 0; i <= runs; i++) {
    const t0 = performance.now();
    await r.restore(img, { seed: 0, tile: 0 });
    const t = (performance.now() - t0) / 1000;
    if (i === 0) first = t;
    else times.push(t);
  }
  await r.release();
  return { first, times };
}

async function main(): Promise<void> {
  const runs = Number(flag('runs', '3'));
  const size = Number(flag('size', '64'));
  const threads = Number(flag('threads', '2'));
  ensurePageBuilt();
  const server = await startWebServer();
  const profile = mkdtempSync(join(tmpdir(), 'diffir-bench-web-'));
  const ctx = await launchChromium(profile);
  try {
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    await page.goto(`${server.url}?threads=${threads}`, { timeout: 600_000 });
    await page.waitForFunction(() => document.documentElement.dataset.model, null, { timeout: 600_000 });
    const backend = await page.textContent('#backend');
    const official = preset('realsr-x4');
    const cases: { name: string; ck: DiffIRCheckpoint; presetName?: string }[] = [
      { name: 'default model (2.2 M)', ck: loadCheckpoint(DEFAULT_MODEL_PATH) },
      {
        name: `realsr-x4 official width (${(parameterCount(official, 2) / 1e6).toFixed(1)} M, random)`,
        ck: { file: 'realsr-x4', config: official, stage: 2, presets: ['realsr-x4'], weights: initParams(DiffIRS2(official), 1), parameterCount: parameterCount(official, 2) },
        presetName: 'realsr-x4',
      },
    ];
    console.log(`bench/web: ${size}×${size} → ${4 * size}×${4 * size}, ${runs} warm runs; ${machine()}; Chromium: ${backend}; Node: onnxruntime-node, ${threads} threads`);
    console.log('| model | Chromium wasm cold s | warm s | Node cold s | warm s | wasm / Node (warm) |');
    console.log('|---|---|---|---|---|---|');
    for (const c of cases) {
      const node = await nodeRun(c.ck, size, runs, threads);
      const web = (await page.evaluate(([s, r, p]) => (window as unknown as { diffirBench(s: number, r: number, p?: string): Promise<Timing> }).diffirBench(s, r, p), [size, runs, c.presetName] as const)) as Timing;
      const [wm, nm] = [median(web.times), median(node.times)];
      console.log(`| ${c.name} | ${web.first.toFixed(2)} | ${wm.toFixed(2)} | ${node.first.toFixed(2)} | ${nm.toFixed(2)} | ${(wm / nm).toFixed(1)}× |`);
    }
  } finally {
    await ctx.close();
    server.stop();
    rmSync(profile, { recursive: true, force: true });
  }
}

await main();
