/**
 * Training data: degradations (Real-ESRGAN second order, MATLAB bicubic), LaMa
 * inpainting masks, datasets that synthesise their inputs, and a worker-thread prefetcher.
 */
export * from './rng.js';
export * from './tensor-ops.js';
export * from './folder.js';
export * from './masks.js';
export * from './datasets.js';
export * from './prefetch.js';
export * from './adapters.js';
export * from './degrade/kernels.js';
export * from './degrade/resize.js';
export * from './degrade/noise.js';
export * from './degrade/jpeg.js';
export * from './degrade/realesrgan.js';
export { filter2D, usmSharp, separableMap, setDataThreads, releaseDataSessions, USM_RADIUS } from './degrade/runtime.js';
