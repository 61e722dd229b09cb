/** Execution providers we can ask ORT for. */
export type Device = 'cpu' | 'cuda' | 'webgpu';
