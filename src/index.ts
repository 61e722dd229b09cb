/**
 * DiffIR for TypeScript: the public API.
 */
export type { DType, HostTensor, TensorMap } from './tensor.js';
export { f32, numel } from './tensor.js';
export { Rng } from './random.js';

export { Graph, Value, Node } from './graph/ir.js';
export * as ops from './graph/ops.js';
export { sym, type Dim, type Shape } from './graph/dim.js';
export { grad, vjp } from './graph/autodiff.js';
export { toOnnx, readOnnxSummary, type OnnxWriteOptions } from './graph/onnx.js';

export { Session, availableDevices, type Device, type SessionOptions } from './runtime/session.js';
export { SessionCache } from './runtime/cache.js';
export { compile } from './runtime/compile.js';

export type { DiffIRConfig, Task, Stage, PresetName } from './models/config.js';
export { PRESETS, PRESET_NAMES, preset, describeConfig, padMultiple, outputScale } from './models/config.js';
export { DiffIRS1, DiffIRS2, IO_NAMES } from './models/diffir.js';
export { detectArchitecture } from './models/detect.js';
export { parameterCount } from './models/params.js';
export { loadCheckpoint, type DiffIRCheckpoint } from './models/checkpoint.js';

export { loadStateDict } from './weights/statedict.js';
export { loadPth, writePth } from './weights/pth.js';
export { readSafetensors, writeSafetensors } from './weights/safetensors.js';
export { loadImage, saveImage } from './image/io.js';

export { TrainStep } from './train/step.js';
export { Adam, type AdamOptions } from './train/adam.js';
export { Ema } from './train/ema.js';
export { ParamLayout } from './train/params.js';

export { Restorer, restore, type MemoryPlan, type RestoreOptions, type RestoredImage, type RestoreProgress, type RestorerOptions } from './restore/restore.js';
export { exportOnnx, exportGraph } from './restore/export.js';
export { DEFAULT_MODEL_PATH } from './models/default-model.js';
export { loadMask } from './image/mask.js';

export { Trainer } from './train/trainer.js';
export { readOptions, resolveOptions } from './train/options.js';
export { psnr, ssim, measure } from './metrics/psnr-ssim.js';
export { Evaluator, Lpips, FidInception, niqe, loadNiqeParams, fidStatistics, frechetDistance, loadFidStats, saveFidStats, findMetricFile, readImage8, type EvalMetric, type FidStats, type Image8 } from './metrics/index.js';

export { degradeRealESRGAN, DIFFIR_REALSR_OPTIONS, TrainingPairPool } from './data/degrade/realesrgan.js';
export { imresize } from './data/degrade/resize.js';
export { mixedMask, irregularMask, boxMask, DIFFIR_TRAIN_MASKS } from './data/masks.js';
