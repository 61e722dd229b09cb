// Builds the page (web/) into dist/web: static files for any host. onnxruntime-web's
// WebAssembly files are copied next to it (ort/) and loaded from there, never from a CDN;
// the built-in model and the sample photo are copied too (`diffir web` serves the model
// from models/ directly, so a retrained one needs no rebuild).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defaultClientConditions } from 'vite';

const root = fileURLToPath(new URL('..', import.meta.url));
const copies = [
  ['ort/ort-wasm-simd-threaded.jsep.mjs', 'node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.jsep.mjs'],
  ['ort/ort-wasm-simd-threaded.jsep.wasm', 'node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.jsep.wasm'],
  ['models/default-realsr-x4.safetensors', 'models/default-realsr-x4.safetensors'],
  ['samples/cat.jpg', 'samples/cat.jpg'],
];

export default {
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  // The ORT build that loads its .wasm/.mjs from env.wasm.wasmPaths (our ort/ folder):
  // its threads' workers then load ORT's own small script, not our bundle.
  resolve: { conditions: ['onnxruntime-web-use-extern-wasm', ...defaultClientConditions] },
  worker: { format: 'es' },
  build: { outDir: `${root}dist/web`, emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 1200 },
  plugins: [
    {
      name: 'diffir-copy-runtime-files',
      generateBundle() {
        for (const [fileName, from] of copies) this.emitFile({ type: 'asset', fileName, source: readFileSync(`${root}${from}`) });
      },
    },
  ],
};
