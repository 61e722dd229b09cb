/** Image-quality metrics exactly as the reference tools compute them: PSNR, SSIM, NIQE (BasicSR), LPIPS (lpips), FID (pytorch-fid). */
export { asFloat, cropBorder, toUint8, yChannel, type Image8, type ImageF } from './color.js';
export { measure, psnr, ssim, type MetricName, type MetricOptions, type MetricSpec } from './psnr-ssim.js';
export { readImage8 } from './color.js';
export { Lpips, lpipsGraph, type LpipsNet, type LpipsResult } from './lpips.js';
export { FidInception, FID_DIM, inceptionGraph } from './inception.js';
export { fidStatistics, frechetDistance, loadFidStats, saveFidStats, type FidStats, type FrechetParts } from './frechet.js';
export { loadNiqeParams, niqe, niqeOfY, type NiqeParams } from './niqe.js';
export { Evaluator, EVAL_METRICS, meanScores, parseMetrics, type EvalMetric, type EvalPair, type EvaluatorOptions, type ImageScores } from './evaluate.js';
export { findMetricFile, METRIC_FILES, torchHome, type MetricFile } from './weights.js';
export { readNpz, parseNpz, parseNpy, encodeNpy, writeNpz, type NdArray } from './npy.js';
