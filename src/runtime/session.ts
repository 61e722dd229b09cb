/**
 * ONNX Runtime sessions for our graphs: created from model bytes, with a chosen
 * execution provider and thread count, host tensors in and out without copies
 * where ORT allows, and explicit release.
 */
import { ort, runtimeDevices, deviceHint, RUNTIME } from '#ort';
import { collectGarbage, cpuCount } from '#host';
import type { DType, HostTensor } from '../tensor.js';
import { firstLine } from '../errors.js';

import type { Device } from './devices.js';

export type { Device };

// The process-wide logger too (environment creation): ORT's own lines would sit beside our one-line errors.
ort.env.logLevel = 'fatal';

/** Options for creating a session. */
export interface SessionOptions {
  /** Intra-op threads; default all cores. */
  threads?: number;
  /** Execution provider; default cpu. */
  device?: Device;
  /** ORT graph optimisation level; default 'all'. */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Let ORT reuse memory across runs (default true). */
  memoryArena?: boolean;
  /** Let ORT plan one block for a run's intermediates from the first run (default true). */
  memoryPattern?: boolean;
  /**
   * Let idle intra-op threads spin-wait for the next parallel section (ORT's default, true).
   * Off, they sleep: slower handoffs, but no core burnt waiting for a thread the OS has
   * descheduled, which on a busy machine made runs of many small ops cost twice the CPU.
   */
  spinning?: boolean;
  /** Write ORT's per-node profile to this file prefix (for benchmarks). */
  profilePrefix?: string;
}

/**
 * The channel block that convolutions run in on `device`: 8 for onnxruntime-node's CPU
 * kernels (NCHWc layout, AVX2 width), else 1. Graph builders use it to keep channel
 * counts on the block (see `DIRformerOptions.channelBlock`).
 */
export function convChannelBlock(device: Device = 'cpu'): number {
  return RUNTIME === 'onnxruntime-node' && device === 'cpu' ? 8 : 1;
}

/** Devices this build of ONNX Runtime can use. */
export function availableDevices(): Device[] {
  return runtimeDevices();
}

/** Throws a one-line error if `device` is not usable here. */
export function checkDevice(device: Device): void {
  if (!(['cpu', 'cuda', 'webgpu'] as readonly string[]).includes(device)) {
    throw new Error(`unknown device '${device}': use cpu, cuda or webgpu`);
  }
  const have = availableDevices();
  if (!have.includes(device)) {
    throw new Error(`device '${device}' is not available in this ${RUNTIME} build (have: ${have.join(', ')}); ${deviceHint(device)}`);
  }
}

const ORT_TYPE: Record<DType, ort.Tensor.Type> = {
  float32: 'float32',
  float16: 'float16',
  int64: 'int64',
  int32: 'int32',
  uint8: 'uint8',
  bool: 'bool',
};

/** Wraps a host tensor as an ORT tensor without copying its data. */
export function toOrt(t: HostTensor): ort.Tensor {
  return new ort.Tensor(ORT_TYPE[t.dtype], t.data as ort.Tensor.DataType, [...t.shape]);
}

/** Converts an ORT output tensor to a host tensor (sharing its buffer). */
export function fromOrt(t: ort.OnnxValue, name: string): HostTensor {
  const x = t as ort.Tensor;
  const dtype = (Object.keys(ORT_TYPE) as DType[]).find((k) => ORT_TYPE[k] === x.type);
  if (!dtype) throw new Error(`output '${name}' has unsupported ORT type ${x.type}`);
  return { dtype, shape: [...x.dims], data: x.data as HostTensor['data'] } as HostTensor;
}

/** Bytes of output copies returned for outputs written into caller buffers since the last collection. */
let outputCopyBytes = 0;
const OUTPUT_COPY_LAG = 128 * 2 ** 20;

/** A loaded ONNX Runtime session. */
export class Session {
  private constructor(
    private inner: ort.InferenceSession | null,
    /** Names of the model's inputs. */
    readonly inputNames: readonly string[],
    /** Names of the model's outputs. */
    readonly outputNames: readonly string[],
  ) {}

  /** Creates a session from ONNX model bytes. */
  static async create(model: Uint8Array, o: SessionOptions = {}): Promise<Session> {
    const device = o.device ?? 'cpu';
    checkDevice(device);
    const threads = o.threads ?? cpuCount();
    if (!Number.isInteger(threads) || threads < 1) throw new Error(`threads must be a positive integer, got ${threads}`);
    const opts: ort.InferenceSession.SessionOptions = {
      executionProviders: [device],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: o.optimization ?? 'all',
      enableCpuMemArena: o.memoryArena ?? true,
      enableMemPattern: o.memoryPattern ?? true,
      // Fatal only: ORT would otherwise print its own coloured line to stderr beside the error
      // it also throws, which we report as our one `diffir:` line.
      logSeverityLevel: 4,
    };
    if (o.spinning === false) opts.extra = { session: { intra_op: { allow_spinning: '0' } } };
    if (o.profilePrefix) {
      opts.enableProfiling = true;
      opts.profileFilePrefix = o.profilePrefix;
    }
    let s: ort.InferenceSession;
    try {
      s = await ort.InferenceSession.create(model, opts);
    } catch (e) {
      throw new Error(`ONNX Runtime could not load the model: ${firstLine(e)}`);
    }
    return new Session(s, s.inputNames, s.outputNames);
  }

  /**
   * Runs the model. Feeds are host tensors by input name; returns the requested
   * outputs (default all). Outputs given in `into` are written by ORT directly into
   * those tensors' buffers (which must have the output's exact size), and returned as them.
   */
  async run(
    feeds: Readonly<Record<string, HostTensor>>,
    outputs?: readonly string[],
    into?: Readonly<Record<string, HostTensor>>,
  ): Promise<Record<string, HostTensor>> {
    const s = this.inner;
    if (!s) throw new Error('session was released');
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const name of this.inputNames) {
      const t = feeds[name];
      if (!t) throw new Error(`missing input '${name}' (model inputs: ${this.inputNames.join(', ')})`);
      ortFeeds[name] = toOrt(t);
    }
    for (const name of Object.keys(feeds)) {
      if (!this.inputNames.includes(name)) throw new Error(`unknown input '${name}' (model inputs: ${this.inputNames.join(', ')})`);
    }
    let res: ort.InferenceSession.ReturnType;
    try {
      if (into) {
        const fetches: Record<string, ort.Tensor | null> = {};
        for (const name of outputs ?? this.outputNames) fetches[name] = into[name] ? toOrt(into[name]) : null;
        res = await s.run(ortFeeds, fetches);
      } else res = outputs ? await s.run(ortFeeds, [...outputs]) : await s.run(ortFeeds);
    } catch (e) {
      throw new Error(`ONNX Runtime run failed: ${firstLine(e)}`);
    }
    const out: Record<string, HostTensor> = {};
    for (const [k, v] of Object.entries(res)) {
      const given = into?.[k];
      if (!given) {
        out[k] = fromOrt(v, k);
        continue;
      }
      // The binding wrote into `given` and still returns a copy: drop the copy, and collect such
      // copies before they pile up (V8 frees large dead buffers late; 128 MB bounds the lag).
      out[k] = given;
      outputCopyBytes += given.data.byteLength;
      if (outputCopyBytes > OUTPUT_COPY_LAG) {
        outputCopyBytes = 0;
        collectGarbage();
      }
    }
    return out;
  }

  /** Frees native resources; the session cannot be used afterwards. */
  async release(): Promise<void> {
    const s = this.inner;
    this.inner = null;
    if (s) await s.release();
  }
}
