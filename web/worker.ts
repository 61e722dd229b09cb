/**
 * The restoration worker: holds the model and runs the library (graph builder, models,
 * checkpoint readers, tiled executor, restore pipeline) on onnxruntime-web, off the
 * page's main thread. WebGPU when the browser has an adapter, else WebAssembly
 * (multi-threaded when the page is cross-origin isolated).
 */
import {
  DiffIRS2,

  Restorer,
  configureRuntime,
  decodeImage,
  encodePng,
  initParams,
  pack,
  parseCheckpoint,
  parameterCount,
  preset,
  describeConfig,
  outputScale,
  type DiffIRCheckpoint,
  type LoadedImage,
} from 'diffir/browser';
import type { FromWorker, ModelSource, ToWorker } from './protocol.js';

const post = (m: FromWorker, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(m, transfer);

let device: 'cpu' | 'webgpu' = 'cpu';
let restorer: Restorer | null = null;
const running = new Map<number, AbortController>();

/** A one-sentence message for anything thrown while restoring. */
function sentence(e: unknown): string {
  const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0]!.trim();
  if (e instanceof RangeError || /out of memory|allocat|memory access out of bounds|Aborted\(/i.test(msg)) {
    return 'the browser ran out of memory for this image; try a smaller image, a lower memory budget (it makes smaller tiles), or close other tabs';
  }
  return msg || 'unknown error';
}

async function chooseBackend(want: 'auto' | 'wasm'): Promise<{ backend: 'webgpu' | 'wasm'; note: string }> {
  const gpu = (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (want === 'wasm') return { backend: 'wasm', note: 'WebAssembly (chosen)' };
  if (!gpu) return { backend: 'wasm', note: 'no WebGPU in this browser' };
  try {
    if (!(await gpu.requestAdapter())) return { backend: 'wasm', note: 'WebGPU has no adapter here (no GPU, or GPU disabled)' };
  } catch (e) {
    return { backend: 'wasm', note: `WebGPU adapter refused (${sentence(e)})` };
  }
  return { backend: 'webgpu', note: 'WebGPU adapter found' };
}

async function loadModel(src: ModelSource): Promise<DiffIRCheckpoint> {
  if (src.kind === 'random') {
    const config = preset(src.preset);
    return { file: `${src.preset} (random weights)`, config, stage: 2, presets: [], weights: initParams(DiffIRS2(config), src.seed), parameterCount: parameterCount(config, 2) };
  }
  let bytes: Uint8Array;
  let name: string;
  if (src.kind === 'default') {
    const r = await fetch(src.url);
    if (!r.ok) throw new Error(`the built-in model could not be loaded (${r.status} ${r.statusText} for ${src.url})`);
    bytes = new Uint8Array(await r.arrayBuffer());
    name = 'default-realsr-x4.safetensors';
  } else {
    bytes = new Uint8Array(src.bytes);
    name = src.name;
  }
  return parseCheckpoint(bytes, name);
}

async function restoreOne(m: Extract<ToWorker, { type: 'restore' }>): Promise<void> {
  if (!restorer) throw new Error('no model is loaded yet');
  const ctl = new AbortController();
  running.set(m.id, ctl);
  try {
    const img: LoadedImage = await decodeImage(new Uint8Array(m.bytes));
    const s = outputScale(restorer.config);
    post({ type: 'started', id: m.id, width: img.width, height: img.height, outWidth: img.width * s, outHeight: img.height * s, format: img.format, alpha: img.alpha !== null });
    const t0 = performance.now();
    const out = await restorer.restore(img, {
      seed: m.seed,
      signal: ctl.signal,
      ...(m.memoryBudget ? { memoryBudget: m.memoryBudget } : {}),
      ...(m.tile !== undefined ? { tile: m.tile } : {}),
      onProgress: (p) => post({ type: 'progress', id: m.id, ...p }),
    });
    const seconds = (performance.now() - t0) / 1000;
    const hw = out.width * out.height;
    const packed = pack(out.rgb.data, 3, out.alpha ? out.alpha.data : null, hw, false, 255);
    const png = encodePng(packed, out.width, out.height);
    const rgba = out.alpha ? (packed.data as Uint8Array) : withOpaqueAlpha(packed.data as Uint8Array, hw);
    post({ type: 'result', id: m.id, png: png.buffer as ArrayBuffer, rgba: rgba.buffer as ArrayBuffer, width: out.width, height: out.height, seconds, tile: out.tile }, [png.buffer as ArrayBuffer, rgba.buffer as ArrayBuffer]);
  } finally {
    running.delete(m.id);
  }
}

function withOpaqueAlpha(rgb: Uint8Array, hw: number): Uint8Array {
  const out = new Uint8Array(4 * hw);
  for (let p = 0; p < hw; p++) {
    out[4 * p] = rgb[3 * p]!;
    out[4 * p + 1] = rgb[3 * p + 1]!;
    out[4 * p + 2] = rgb[3 * p + 2]!;
    out[4 * p + 3] = 255;
  }
  return out;
}

/** Times restorations of a size×size random image (the first one includes building the sessions). */
async function bench(m: Extract<ToWorker, { type: 'bench' }>): Promise<void> {
  if (!restorer) throw new Error('no model is loaded yet');
  const n = m.size * m.size;
  const data = new Float32Array(3 * n);
  let x = m.seed >>> 0 || 1;
  for (let i = 0; i < data.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    data[i] = x / 2 ** 32;
  }
  const img: LoadedImage = { rgb: { dtype: 'float32', shape: [1, 3, m.size, m.size], data }, alpha: null, gray: false, bitDepth: 8, format: 'png', width: m.size, height: m.size, orientationApplied: false };
  const times: number[] = [];
  let first = 0;
  for (let r = 0; r <= m.runs; r++) {
    const t0 = performance.now();
    await restorer.restore(img, { seed: 0 });
    const t = (performance.now() - t0) / 1000;
    if (r === 0) first = t;
    else times.push(t);
  }
  post({ type: 'bench', times, first });
}

let queue: Promise<void> = Promise.resolve();

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  if (m.type === 'cancel') {
    running.get(m.id)?.abort(new Error('cancelled'));
    return;
  }
  // One job at a time, in order: the model is loaded before images that follow it.
  queue = queue.then(async () => {
    try {
      if (m.type === 'init') {
        const threads = configureRuntime({ wasmPaths: m.ortUrl, ...(m.threads ? { threads: m.threads } : {}) });
        const b = await chooseBackend(m.backend ?? 'auto');
        device = b.backend === 'webgpu' ? 'webgpu' : 'cpu';
        post({ type: 'ready', backend: b.backend, threads, isolated: self.crossOriginIsolated, note: b.note });
      } else if (m.type === 'model') {
        const t0 = performance.now();
        const ck = await loadModel(m.source);
        if (ck.stage !== 2) throw new Error(`${ck.file} is a stage-1 (DiffIRS1) checkpoint, which needs the ground truth; load a stage-2 (DiffIRS2) checkpoint`);
        if (ck.config.task === 'inpaint') throw new Error(`${ck.file} is an inpainting model, which needs a mask; this page restores with super-resolution and deblurring models`);
        await restorer?.release();
        restorer = Restorer.load(ck, { device });
        post({ type: 'model', name: ck.file, description: describeConfig(ck.config), parameters: ck.parameterCount, scale: outputScale(ck.config), seconds: (performance.now() - t0) / 1000 });
      } else if (m.type === 'restore') await restoreOne(m);
      else if (m.type === 'bench') await bench(m);
    } catch (e) {
      post({ type: 'error', id: m.type === 'restore' ? m.id : null, message: sentence(e), ...(m.type === 'model' ? { model: true } : {}) });
    }
  });
};

