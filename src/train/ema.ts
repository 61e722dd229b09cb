/**
 * Exponential moving average of the weights, as BasicSR's `model_ema`:
 * ema ← decay·ema + (1 − decay)·p, over the flat buffer in one ORT pass.
 */
import * as op from '../graph/ops.js';
import { FlatKernel } from './flat-kernel.js';
import type { SessionOptions } from '../runtime/session.js';

/** EMA of a flat parameter buffer. */
export class Ema {
  private constructor(private readonly kernel: FlatKernel, public weights: Float32Array, readonly decay: number) {}

  /** Starts the average at a copy of `params`. */
  static async create(params: Float32Array, decay = 0.999, session: SessionOptions = {}): Promise<Ema> {
    if (!(decay >= 0 && decay <= 1)) throw new Error(`EMA decay must be in [0, 1], got ${decay}`);
    const kernel = await FlatKernel.create(params.length, ['ema', 'p'], ['decay'], (_g, f, s) => ({
      ema_out: op.add(op.mul(f.ema!, s.decay!), op.mul(f.p!, op.sub(1, s.decay!))),
    }), session);
    return new Ema(kernel, Float32Array.from(params), decay);
  }

  /** Folds the current parameters into the average (in place: `weights` keeps its buffer). */
  async update(params: Float32Array, decay = this.decay): Promise<void> {
    await this.kernel.run({ ema: this.weights, p: params }, { decay }, { ema_out: this.weights });
  }

  /** Frees the compiled kernel. */
  async release(): Promise<void> {
    await this.kernel.release();
  }
}
