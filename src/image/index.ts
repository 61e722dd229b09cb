/** Image IO on sharp: loading, saving, masks and resizing of host tensors. */
export { DEFAULT_MAX_PIXELS, MAX_OUTPUT_SIDE, checkOutputSize, loadImage, quantize, saveImage } from './io.js';
export { checkImageFile, probeImage } from './decode.js';
export type { ImageHeader } from './decode.js';
export type { DecodeOptions, FailOn, ImageFormat, LoadedImage, LoadOptions, SaveableImage, SaveOptions, SaveResult } from './io.js';
export { loadMask } from './mask.js';
export type { MaskOptions } from './mask.js';
export { resizeAlpha, resizeRgb } from './resize.js';
export type { ResizeKernel, ResizeOptions } from './resize.js';
