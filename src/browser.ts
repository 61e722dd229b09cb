/**
 * The browser entry point of the package (`diffir/browser`): the graph builder, the
 * models, the checkpoint readers (bytes in), the tiled executor and the restore pipeline,
 * running on onnxruntime-web. Bundlers pick the browser side of the `#host`, `#ort` and
 * `#codec` adapters (package.json `imports`, `browser` condition), so nothing here needs
 * Node. Call {@link configureRuntime} before the first session.
 */
import { ort } from '#ort';

export type { DType, HostTensor, TensorMap } from './tensor.js';
export { f32, numel } from './tensor.js';
export { Rng } from './random.js';

export { Graph, Value, Node } from './graph/ir.js';
export * as ops from './graph/ops.js';
export { sym, type Dim, type Shape } from './graph/dim.js';
export { toOnnx, type OnnxWriteOptions } from './graph/onnx.js';

export { Session, availableDevices, type Device, type SessionOptions } from './runtime/session.js';
export { compile } from './runtime/compile.js';

export type { DiffIRConfig, Task, Stage, PresetName } from './models/config.js';
export { PRESETS, PRESET_NAMES, preset, describeConfig, padMultiple, outputScale } from './models/config.js';
export { DiffIRS1, DiffIRS2, IO_NAMES } from './models/diffir.js';
export { detectArchitecture } from './models/detect.js';
export { parameterCount } from './models/params.js';
export { parseCheckpoint, type DiffIRCheckpoint } from './models/checkpoint.js';
export { initParams } from './nn/init.js';

export { parseStateDict } from './weights/statedict.js';
export { loadPth } from './weights/pth.js';
export { parseSafetensors, encodeSafetensors } from './weights/safetensors.js';

export type { LoadedImage } from './image/io.js';
export { decodeImage, sniffImageFormat, upscaleAlpha } from './image/codec-web.js';
export { pack, quantize } from './image/pixels.js';
export { encodePng } from './image/png.js';

export { Restorer, restore, type MemoryPlan, type RestoreOptions, type RestoredImage, type RestoreProgress, type RestorerOptions } from './restore/restore.js';
export { TiledDIRformer } from './restore/tiled.js';
export { defaultMemoryBudget, fmtBytes } from './restore/memory.js';

/** Settings of onnxruntime-web, set once before the first session. */
export interface RuntimeSettings {
  /** URL of the folder holding onnxruntime-web's `.wasm`/`.mjs` files (default: next to the bundle). */
  readonly wasmPaths?: string;
  /** WebAssembly threads (default: the cores, when the page is cross-origin isolated; else 1). */
  readonly threads?: number;
}

/** Configures onnxruntime-web's WebAssembly backend; returns the thread count used. */
export function configureRuntime(s: RuntimeSettings = {}): number {
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  const threads = isolated ? Math.max(1, s.threads ?? globalThis.navigator?.hardwareConcurrency ?? 1) : 1;
  const wasm = ort.env.wasm;
  wasm.numThreads = threads;
  if (s.wasmPaths !== undefined) wasm.wasmPaths = s.wasmPaths;
  return threads;
}
