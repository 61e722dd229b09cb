/**
 * The page: picks or drops images (and checkpoints), sends them to the restoration
 * worker one at a time, and shows per-image progress with an ETA, Cancel, a zoomable
 * before/after comparison and downloads. Test hooks: the image input is
 * `input[type=file]`; finished results are `img[data-testid=result]` whose `src` is the
 * restored PNG (blob: URL); `<html data-backend="webgpu|wasm">` names the backend.
 */
import type { FromWorker, ModelSource, ToWorker } from './protocol.js';

const $ = <T extends HTMLElement>(sel: string, root: ParentNode = document): T => root.querySelector(sel) as T;
const params = new URLSearchParams(location.search);
const BASE = new URL('./', location.href);
const DEFAULT_MODEL_URL = new URL('models/default-realsr-x4.safetensors', BASE).href;
const CHECKPOINT_EXT = /\.(pth|pt|ckpt|safetensors|bin)$/i;

interface Job {
  id: number;
  file: File;
  card: HTMLElement;
  started: number;
  pixels: number;
  urls: string[];
  done: boolean;
}

let worker: Worker;
let nextId = 1;
let currentModel: ModelSource = { kind: 'default', url: DEFAULT_MODEL_URL };
/** The last model that loaded (what a restarted worker loads again when a new one fails). */
let goodModel: ModelSource = currentModel;
let modelReady = false;
/** Name of the model the worker holds (kept when loading another one fails). */
let loadedModel: string | null = null;
const jobs = new Map<number, Job>();
const pending: Job[] = [];
let active: Job | null = null;
/** Seconds per output megapixel measured on this machine (for the ETA of whole-image runs). */
let secPerMpx: number | null = null;

function showError(msg: string | null): void {
  const el = $<HTMLParagraphElement>('#error');
  el.hidden = msg === null;
  el.textContent = msg ?? '';
}

function send(m: ToWorker, transfer: Transferable[] = []): void {
  worker.postMessage(m, transfer);
}

function startWorker(): void {
  worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
  worker.onmessage = (ev: MessageEvent<FromWorker>) => onMessage(ev.data);
  worker.onerror = (ev) => showError(`the restoration worker failed to start (${ev.message || 'unknown error'}); reload the page`);
  const backend = params.get('backend') === 'wasm' ? 'wasm' : 'auto';
  const threads = Number(params.get('threads')) || undefined;
  send({ type: 'init', ortUrl: new URL('ort/', BASE).href, backend, ...(threads ? { threads } : {}) });
  loadModel(currentModel);
}

function loadModel(src: ModelSource): void {
  modelReady = false;
  $('#model-status').textContent = 'loading the model…';
  showError(null);
  // The bytes are copied, not transferred: a restarted worker (after Cancel) needs them again.
  send({ type: 'model', source: src.kind === 'file' ? { ...src, bytes: src.bytes.slice(0) } : src });
}

function onMessage(m: FromWorker): void {
  switch (m.type) {
    case 'ready':
      document.documentElement.dataset.backend = m.backend;
      $('#backend').textContent = `${m.backend === 'webgpu' ? 'WebGPU' : `WebAssembly, ${m.threads} thread${m.threads > 1 ? 's' : ''}`}`;
      $('#backend').title = `${m.note}; cross-origin isolated: ${m.isolated}`;
      break;
    case 'model':
      modelReady = true;
      loadedModel = m.name;
      goodModel = currentModel;
      $('#model-status').textContent = `model: ${m.name} (${m.description.split(' dim')[0]}, ${(m.parameters / 1e6).toFixed(1)} M parameters, loaded in ${m.seconds.toFixed(1)} s)`;
      document.documentElement.dataset.model = m.name;
      pump();
      break;
    case 'started': {
      const j = jobs.get(m.id);
      if (!j) return;
      j.pixels = m.outWidth * m.outHeight;
      $('.size', j.card).textContent = `${m.width}×${m.height} ${m.format.toUpperCase()}${m.alpha ? ' with alpha' : ''} → ${m.outWidth}×${m.outHeight}`;
      break;
    }
    case 'progress':
      onProgress(m);
      break;
    case 'result':
      onResult(m);
      break;
    case 'error':
      if (m.id === null) {
        showError(m.message);
        if (!modelReady && m.model) {
          // The worker keeps the model it had: go on with it, and show it as the chosen one.
          modelReady = loadedModel !== null;
          currentModel = goodModel;
          const sel = $<HTMLSelectElement>('#model');
          const fileOpt = [...sel.options].find((o) => o.value === 'file');
          if (goodModel.kind === 'file') fileOpt!.textContent = `checkpoint: ${goodModel.name}`;
          else fileOpt?.remove();
          sel.value = goodModel.kind === 'file' ? 'file' : 'default';
          $('#model-status').textContent = loadedModel ? `model: still ${loadedModel}` : 'no model loaded';
          pump();
        }
        return;
      }
      finish(m.id, 'failed', m.message);
      break;
    case 'bench':
      (window as unknown as { benchResult?: unknown }).benchResult = m;
      break;
  }
}

function fmtTime(s: number): string {
  return s < 60 ? `${s.toFixed(s < 10 ? 1 : 0)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function onProgress(m: Extract<FromWorker, { type: 'progress' }>): void {
  const j = jobs.get(m.id);
  if (!j) return;
  const elapsed = (performance.now() - j.started) / 1000;
  const bar = $<HTMLDivElement>('.progress', j.card);
  let frac: number | null = null;
  let label = '';
  if (m.phase === 'tiles') {
    frac = 0.05 + (0.95 * m.done) / Math.max(1, m.total);
    label = `exact tiles: run ${m.done} of ${m.total}`;
  } else if (m.phase === 'prior') label = 'computing the image prior (IPR)';
  else if (m.phase === 'network') label = 'restoring the whole image at once';
  if (frac === null && secPerMpx !== null && j.pixels) frac = Math.min(0.95, elapsed / (secPerMpx * (j.pixels / 1e6)));
  if (frac === null) bar.classList.add('busy');
  else {
    bar.classList.remove('busy');
    $<HTMLDivElement>('.bar', j.card).style.width = `${(100 * frac).toFixed(1)}%`;
  }
  const eta = frac && frac > 0.02 ? ` · about ${fmtTime(Math.max(0, elapsed / frac - elapsed))} left` : '';
  $('.state', j.card).textContent = `${label} · ${fmtTime(elapsed)} elapsed${eta}`;
}

function extFor(format: string): { ext: string; mime: string } | null {
  if (format === 'jpeg') return { ext: 'jpg', mime: 'image/jpeg' };
  if (format === 'webp') return { ext: 'webp', mime: 'image/webp' };
  if (format === 'png') return { ext: 'png', mime: 'image/png' };
  return null;
}

async function onResult(m: Extract<FromWorker, { type: 'result' }>): Promise<void> {
  const j = jobs.get(m.id);
  if (!j) return;
  secPerMpx = m.seconds / ((m.width * m.height) / 1e6);
  const png = new Blob([m.png], { type: 'image/png' });
  const pngUrl = URL.createObjectURL(png);
  j.urls.push(pngUrl);
  const stem = j.file.name.replace(/\.[^.]*$/, '') || 'image';
  // The download: PNG (exact), or the input's format encoded by the browser.
  let dl: Blob = png;
  let ext = 'png';
  const want = ($<HTMLSelectElement>('#format').value === 'same' && extFor(j.card.dataset.format ?? '')) || null;
  if (want && want.ext !== 'png') {
    const canvas = new OffscreenCanvas(m.width, m.height);
    canvas.getContext('2d')!.putImageData(new ImageData(new Uint8ClampedArray(m.rgba), m.width, m.height), 0, 0);
    dl = await canvas.convertToBlob({ type: want.mime, quality: 0.95 });
    ext = want.ext;
  }
  const dlUrl = dl === png ? pngUrl : URL.createObjectURL(dl);
  if (dlUrl !== pngUrl) j.urls.push(dlUrl);
  const a = $<HTMLAnchorElement>('.download', j.card);
  a.href = dlUrl;
  a.download = `${stem}_diffir.${ext}`;
  a.textContent = `Download ${ext.toUpperCase()} (${(dl.size / 1024).toFixed(0)} KB)`;
  a.hidden = false;
  const after = $<HTMLImageElement>('.after', j.card);
  const before = $<HTMLImageElement>('.before', j.card);
  const inUrl = URL.createObjectURL(j.file);
  j.urls.push(inUrl);
  before.src = inUrl;
  after.width = m.width;
  after.height = m.height;
  after.src = pngUrl;
  $('.compare', j.card).hidden = false;
  finish(m.id, 'done', `restored in ${fmtTime(m.seconds)}${m.tile ? ` (exact tiles of ${m.tile} px)` : ''} · ${m.width}×${m.height}`);
}

function finish(id: number, how: 'done' | 'failed' | 'cancelled', text: string): void {
  const j = jobs.get(id);
  if (!j || j.done) return;
  j.done = true;
  j.card.classList.add(how);
  $<HTMLButtonElement>('.cancel', j.card).hidden = true;
  const bar = $<HTMLDivElement>('.progress', j.card);
  bar.classList.remove('busy');
  $<HTMLDivElement>('.bar', j.card).style.width = how === 'done' ? '100%' : '0';
  $('.state', j.card).textContent = how === 'failed' ? `${j.file.name}: ${text}` : text;
  j.card.dataset.state = how;
  if (active === j) active = null;
  pump();
}

function pump(): void {
  if (active || !modelReady) return;
  const j = pending.shift();
  if (!j) return;
  active = j;
  j.started = performance.now();
  $('.state', j.card).textContent = 'reading the image…';
  $<HTMLDivElement>('.progress', j.card).classList.add('busy');
  void j.file.arrayBuffer().then((bytes) => {
    if (j.done) return;
    const seed = Math.max(0, Math.floor(Number($<HTMLInputElement>('#seed').value) || 0));
    const budget = Number(params.get('budget')) || undefined;
    const tile = params.get('tile');
    send(
      { type: 'restore', id: j.id, name: j.file.name, bytes, seed, ...(budget ? { memoryBudget: budget * 2 ** 20 } : {}), ...(tile ? { tile: Number(tile) } : {}) },
      [bytes],
    );
  });
}

function cancel(j: Job): void {
  if (j.done) return;
  const i = pending.indexOf(j);
  if (i >= 0) {
    pending.splice(i, 1);
    finish(j.id, 'cancelled', 'cancelled');
    return;
  }
  send({ type: 'cancel', id: j.id });
  // A run inside ONNX Runtime cannot be interrupted: if the worker has not stopped soon, replace it.
  setTimeout(() => {
    if (j.done) return;
    worker.terminate();
    finish(j.id, 'cancelled', 'cancelled');
    startWorker();
  }, 400);
}

function addImages(files: Iterable<File>): void {
  showError(null);
  for (const file of files) {
    if (CHECKPOINT_EXT.test(file.name)) {
      void useCheckpoint(file);
      continue;
    }
    const card = ($<HTMLTemplateElement>('#card').content.firstElementChild as HTMLElement).cloneNode(true) as HTMLElement;
    const job: Job = { id: nextId++, file, card, started: 0, pixels: 0, urls: [], done: false };
    card.dataset.format = file.type.replace('image/', '');
    $('.name', card).textContent = file.name;
    $('.state', card).textContent = 'waiting';
    $<HTMLButtonElement>('.cancel', card).onclick = () => cancel(job);
    const vp = $<HTMLDivElement>('.viewport', card);
    vp.classList.add('fit');
    $<HTMLSelectElement>('.zoom', card).onchange = (e) => {
      const z = (e.target as HTMLSelectElement).value;
      const after = $<HTMLImageElement>('.after', card);
      vp.classList.toggle('fit', z === 'fit');
      vp.classList.toggle('pixelated', z !== 'fit' && Number(z) > 1);
      after.style.width = z === 'fit' ? '' : `${after.naturalWidth * Number(z)}px`;
    };
    $<HTMLInputElement>('.split', card).oninput = (e) => {
      const v = Number((e.target as HTMLInputElement).value);
      $<HTMLImageElement>('.before', card).style.clipPath = `inset(0 ${100 - v}% 0 0)`;
      $<HTMLDivElement>('.divider', card).style.left = `${v}%`;
    };
    $('#images').prepend(card);
    jobs.set(job.id, job);
    pending.push(job);
  }
  pump();
}

async function useCheckpoint(file: File): Promise<void> {
  const bytes = await file.arrayBuffer();
  currentModel = { kind: 'file', name: file.name, bytes };
  const sel = $<HTMLSelectElement>('#model');
  let opt = [...sel.options].find((o) => o.value === 'file');
  if (!opt) {
    opt = new Option('', 'file');
    sel.add(opt);
  }
  opt.textContent = `checkpoint: ${file.name}`;
  sel.value = 'file';
  loadModel(currentModel);
}

function pickCheckpoint(): void {
  // A detached input, so that the page has a single input[type=file] (the images).
  const input = document.createElement('input');
  input.type = 'file';
  input.accept = '.pth,.pt,.safetensors';
  input.onchange = () => input.files?.[0] && void useCheckpoint(input.files[0]);
  input.click();
}

function setup(): void {
  const files = $<HTMLInputElement>('#files');
  files.onchange = () => {
    if (files.files) addImages([...files.files]);
    files.value = '';
  };
  const drop = $('#drop');
  for (const t of ['dragenter', 'dragover']) document.addEventListener(t, (e) => (e.preventDefault(), drop.classList.add('over')));
  for (const t of ['dragleave', 'drop']) document.addEventListener(t, () => drop.classList.remove('over'));
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    if (e.dataTransfer?.files.length) addImages([...e.dataTransfer.files]);
  });
  $<HTMLButtonElement>('#load-checkpoint').onclick = pickCheckpoint;
  $<HTMLSelectElement>('#model').onchange = (e) => {
    const v = (e.target as HTMLSelectElement).value;
    if (v === 'default') currentModel = { kind: 'default', url: DEFAULT_MODEL_URL };
    loadModel(currentModel);
  };
  $<HTMLButtonElement>('#sample').onclick = async () => {
    const r = await fetch(new URL('samples/cat.jpg', BASE));
    addImages([new File([await r.blob()], 'cat.jpg', { type: 'image/jpeg' })]);
  };
  // For benchmarks and tests: window.diffirBench(size, runs, preset?) resolves with the timings.
  Object.assign(window, {
    diffirBench: (size: number, runs: number, presetName?: string) =>
      new Promise((resolve) => {
        if (presetName) loadModel({ kind: 'random', preset: presetName, seed: 1 });
        (window as unknown as { benchResult?: unknown }).benchResult = undefined;
        send({ type: 'bench', size, runs, seed: 7 });
        const t = setInterval(() => {
          const r = (window as unknown as { benchResult?: unknown }).benchResult;
          if (r) {
            clearInterval(t);
            resolve(r);
          }
        }, 100);
      }),
  });
  startWorker();
}

setup();
