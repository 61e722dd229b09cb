/**
 * Adam / AdamW with PyTorch's semantics (torch.optim.Adam, amsgrad off), over a
 * whole model's flat parameter buffer in one ONNX Runtime pass per step.
 *
 *   g ← g + λ·p                         (Adam's L2 weight decay)
 *   p ← p·(1 − lr·λ)                    (AdamW's decoupled weight decay instead)
 *   m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²
 *   p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)
 */
import * as op from '../graph/ops.js';
import { FlatKernel } from './flat-kernel.js';
import type { SessionOptions } from '../runtime/session.js';

/** Adam hyper-parameters. */
export interface AdamOptions {
  lr: number;
  betas?: readonly [number, number];
  eps?: number;
  weightDecay?: number;
  /** AdamW (decoupled) weight decay instead of L2. */
  decoupled?: boolean;
  /**
   * Compile a gradient scale into the update (`g ← s·g` first), so that gradient clipping and
   * averaging over accumulated micro-batches cost no extra pass; `update` then takes `s`.
   */
  gradScale?: boolean;
}

/** Serializable optimizer state (moments and step count). */
export interface AdamState {
  step: number;
  m: Float32Array;
  v: Float32Array;
}

/** Adam over flat buffers, updated in place (the kernel runs in chunks; no spare copies). */
export class Adam {
  /** Current learning rate (schedulers set it before each step). */
  lr: number;
  readonly betas: readonly [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly decoupled: boolean;
  readonly gradScale: boolean;
  private state: AdamState;

  private constructor(private readonly kernel: FlatKernel, o: AdamOptions, n: number) {
    this.lr = o.lr;
    this.betas = o.betas ?? [0.9, 0.999];
    this.eps = o.eps ?? 1e-8;
    this.weightDecay = o.weightDecay ?? 0;
    this.decoupled = o.decoupled ?? false;
    this.gradScale = o.gradScale ?? false;
    this.state = { step: 0, m: new Float32Array(n), v: new Float32Array(n) };
  }

  /** Compiles the update for `length` parameters. */
  static async create(length: number, o: AdamOptions, session: SessionOptions = {}): Promise<Adam> {
    const [b1, b2] = o.betas ?? [0.9, 0.999];
    const eps = o.eps ?? 1e-8;
    const wd = o.weightDecay ?? 0;
    const decoupled = o.decoupled ?? false;
    const scalars = ['step_size', 'inv_sqrt_bc2', 'decay', ...(o.gradScale ? ['grad_scale'] : [])];
    const kernel = await FlatKernel.create(length, ['p', 'g', 'm', 'v'], scalars, (_g, f, s) => {
      let g = f.g!;
      if (o.gradScale) g = op.mul(g, s.grad_scale!);
      let p = f.p!;
      if (wd !== 0 && !decoupled) g = op.add(g, op.mul(p, wd));
      if (wd !== 0 && decoupled) p = op.mul(p, s.decay!);
      const m = op.add(op.mul(f.m!, b1), op.mul(g, 1 - b1));
      const v = op.add(op.mul(f.v!, b2), op.mul(op.mul(g, g), 1 - b2));
      const denom = op.add(op.mul(op.sqrt(v), s.inv_sqrt_bc2!), eps);
      return { p_out: op.sub(p, op.mul(op.div(m, denom), s.step_size!)), m_out: m, v_out: v };
    }, session);
    return new Adam(kernel, o, length);
  }

  /** Number of steps taken. */
  get step(): number {
    return this.state.step;
  }

  /**
   * Applies one update to `params` in place and returns it (the same buffer).
   * `gradScale` multiplies the gradient first (needs the `gradScale` option).
   */
  async update(params: Float32Array, grads: Float32Array, gradScale = 1): Promise<Float32Array> {
    if (gradScale !== 1 && !this.gradScale) throw new Error('Adam: a gradient scale needs the gradScale option');
    const t = this.state.step + 1;
    const [b1, b2] = this.betas;
    const { m, v } = this.state;
    const scalars: Record<string, number> = { step_size: this.lr / (1 - b1 ** t), inv_sqrt_bc2: 1 / Math.sqrt(1 - b2 ** t), decay: 1 - this.lr * this.weightDecay };
    if (this.gradScale) scalars.grad_scale = gradScale;
    await this.kernel.run({ p: params, g: grads, m, v }, scalars, { p_out: params, m_out: m, v_out: v });
    this.state = { step: t, m, v };
    return params;
  }

  /**
   * Updates `params` in place (e.g. parameters that live inside a larger buffer).
   * @deprecated `update` updates in place too; kept for callers of the library API.
   */
  async updateInPlace(params: Float32Array, grads: Float32Array, gradScale = 1): Promise<void> {
    await this.update(params, grads, gradScale);
  }

  /** The optimizer state (shares buffers; copy before mutating). */
  getState(): AdamState {
    return this.state;
  }

  /** Restores a saved state. */
  setState(s: AdamState): void {
    if (s.m.length !== this.kernel.length || s.v.length !== this.kernel.length) throw new Error('optimizer state does not match the model size');
    this.state = { step: s.step, m: Float32Array.from(s.m), v: Float32Array.from(s.v) };
  }

  /** Frees the compiled kernel. */
  async release(): Promise<void> {
    await this.kernel.release();
  }
}
