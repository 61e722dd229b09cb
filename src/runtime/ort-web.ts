/**
 * ONNX Runtime for browsers (onnxruntime-web): `cpu` is its WebAssembly backend
 * (multi-threaded when the page is cross-origin isolated), `webgpu` is there when the
 * browser exposes `navigator.gpu`. See `ort-node.ts`.
 */
import * as ortWeb from 'onnxruntime-web';
import type * as OrtNode from 'onnxruntime-node';
import type { Device } from './devices.js';

// Both packages export onnxruntime-common's API; the session code is typed against the Node one.
export const ort = ortWeb as unknown as typeof OrtNode;

/** Which runtime package this is. */
export const RUNTIME: string = 'onnxruntime-web';

/** `cpu` (WebAssembly) always; `webgpu` when the browser has the WebGPU API (an adapter may still be refused). */
export function runtimeDevices(): Device[] {
  return 'gpu' in (globalThis.navigator ?? {}) ? ['cpu', 'webgpu'] : ['cpu'];
}

/** What to do to get a device that is missing. */
export function deviceHint(device: Device): string {
  return device === 'webgpu' ? 'this browser has no WebGPU; use the cpu (WebAssembly) device' : 'use the cpu (WebAssembly) device';
}
