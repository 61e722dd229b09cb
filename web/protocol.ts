/** Messages between the page (main.ts) and the restoration worker (worker.ts). */

/** A model to load: the built-in default (fetched from the page's folder) or a checkpoint file's bytes. */
export type ModelSource = { kind: 'default'; url: string } | { kind: 'file'; name: string; bytes: ArrayBuffer } | { kind: 'random'; preset: string; seed: number };

export type ToWorker =
  | { type: 'init'; ortUrl: string; threads?: number; backend?: 'auto' | 'wasm' }
  | { type: 'model'; source: ModelSource }
  | { type: 'restore'; id: number; name: string; bytes: ArrayBuffer; seed: number; memoryBudget?: number; tile?: number | 'auto' }
  | { type: 'cancel'; id: number }
  | { type: 'bench'; size: number; runs: number; seed: number };

export type FromWorker =
  | { type: 'ready'; backend: 'webgpu' | 'wasm'; threads: number; isolated: boolean; note: string }
  | { type: 'model'; name: string; description: string; parameters: number; scale: number; seconds: number }
  | { type: 'started'; id: number; width: number; height: number; outWidth: number; outHeight: number; format: string; alpha: boolean }
  | { type: 'progress'; id: number; phase: string; done: number; total: number }
  | {
      type: 'result';
      id: number;
      png: ArrayBuffer;
      /** RGBA samples of the result, for encoding other formats in the page. */
      rgba: ArrayBuffer;
      width: number;
      height: number;
      seconds: number;
      tile: number;
    }
  | { type: 'bench'; times: number[]; first: number }
  | { type: 'error'; id: number | null; message: string; /** The failure was loading a model. */ model?: boolean };
