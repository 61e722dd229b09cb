/** Image-quality metrics computed exactly as BasicSR does (PSNR, SSIM, Y channel). */
export { asFloat, cropBorder, toUint8, yChannel, type Image8, type ImageF } from './color.js';
export { measure, psnr, ssim, type MetricName, type MetricOptions, type MetricSpec } from './psnr-ssim.js';
