/**
 * ONNX Runtime for Node (onnxruntime-node). `session.ts` imports the runtime through
 * `#ort` (package.json `imports`): this file in Node, `ort-web.ts` in browser bundles.
 */
import * as ort from 'onnxruntime-node';
import type { Device } from './devices.js';

export { ort };

/** Which runtime package this is. */
export const RUNTIME: string = 'onnxruntime-node';

/** Devices this build of onnxruntime-node can use. */
export function runtimeDevices(): Device[] {
  const names = new Set(ort.listSupportedBackends().filter((b) => b.bundled || b.name === 'cpu').map((b) => b.name));
  return (['cpu', 'cuda', 'webgpu'] as const).filter((d) => names.has(d));
}

/** What to do to get a device that is missing. */
export function deviceHint(device: Device): string {
  return device === 'cuda'
    ? 'install onnxruntime-node with its CUDA files (npm install without onnxruntime-node-install=skip) on a machine with CUDA 12'
    : 'use --device cpu';
}
