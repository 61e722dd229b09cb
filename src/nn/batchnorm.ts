/**
 * `nn.BatchNorm2d` as plain differentiable ops, so that first- and second-order gradients
 * (the R1 penalty differentiates D's gradient) go through its batch statistics.
 *
 * Training mode (what PyTorch Lightning leaves every module in): normalise with the batch
 * mean and the biased variance over (B, H, W); each call also updates the running
 * statistics as PyTorch does — `running ← (1−momentum)·running + momentum·stat` with the
 * UNBIASED variance for `running_var`, and `num_batches_tracked += 1`. The running
 * statistics are graph inputs and their updated values graph outputs ({@link BatchNormState}),
 * chained through every call of the same layer in one graph (D is called twice per step).
 * Eval mode normalises with the running statistics.
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';

/** BatchNorm settings (PyTorch defaults). */
export interface BatchNormOptions {
  readonly eps?: number;
  readonly momentum?: number;
  /** Whether the layer has `<prefix>.weight` / `<prefix>.bias` (PyTorch `affine`, default true). */
  readonly affine?: boolean;
}

/** The state names of one BatchNorm layer, besides its parameters. */
export const BN_BUFFERS = ['running_mean', 'running_var', 'num_batches_tracked'] as const;

/**
 * Running statistics of the BatchNorm layers of one graph: `train` mode reads each layer's
 * `<prefix>.running_mean|running_var` from graph inputs (declared on first use) and
 * chains every call's update; `eval` mode reads them and leaves them alone; `batch-only`
 * uses batch statistics without tracking (for a frozen network whose running statistics
 * nobody reads).
 */
export class BatchNormState {
  /** Per layer prefix: the current running mean and variance and the number of calls. */
  readonly layers = new Map<string, { mean: Value; var: Value; calls: number }>();
  constructor(
    readonly graph: Graph,
    readonly mode: 'train' | 'eval' | 'batch-only',
  ) {}

  /** The layer's current running statistics (graph inputs on first use). */
  current(prefix: string, channels: number): { mean: Value; var: Value; calls: number } {
    let l = this.layers.get(prefix);
    if (!l) {
      l = {
        mean: this.graph.input(`${prefix}.running_mean`, [channels]),
        var: this.graph.input(`${prefix}.running_var`, [channels]),
        calls: 0,
      };
      this.layers.set(prefix, l);
    }
    return l;
  }
}

/**
 * `BatchNorm2d(<prefix>)` of NCHW `x` with `<prefix>.weight` and `<prefix>.bias`. In
 * `train` and `batch-only` mode the batch statistics normalise; `train` also chains the
 * running-statistics update into `state`.
 */
export function batchNorm2d(g: Graph, prefix: string, x: Value, state: BatchNormState, o: BatchNormOptions = {}): Value {
  const eps = o.eps ?? 1e-5;
  const momentum = o.momentum ?? 0.1;
  const c = x.sdim(1);
  const bshape = [1, c, 1, 1];
  let y: Value;
  if (state.mode === 'eval') {
    const l = state.current(prefix, c);
    const mean = op.reshape(l.mean, bshape);
    const inv = op.reciprocal(op.sqrt(op.add(op.reshape(l.var, bshape), eps)));
    y = op.mul(op.sub(x, mean), inv);
  } else {
    const mean = op.reduceMean(x, [0, 2, 3], true);
    const d = op.sub(x, mean);
    const v = op.reduceMean(op.mul(d, d), [0, 2, 3], true);
    y = op.div(d, op.sqrt(op.add(v, eps)));
    if (state.mode === 'train') {
      const l = state.current(prefix, c);
      const n = x.sdim(0) * x.sdim(2) * x.sdim(3);
      if (n < 2) throw new Error(`BatchNorm ${prefix}: training mode needs more than one value per channel, got input ${x}`);
      // PyTorch: running = momentum·stat + (1 − momentum)·running.
      l.mean = op.add(op.mul(op.reshape(mean, [c]), momentum), op.mul(l.mean, 1 - momentum));
      l.var = op.add(op.mul(op.reshape(v, [c]), (momentum * n) / (n - 1)), op.mul(l.var, 1 - momentum));
      l.calls++;
    }
  }
  if (o.affine === false) return y;
  const w = g.param(`${prefix}.weight`, [c]);
  const b = g.param(`${prefix}.bias`, [c]);
  return op.add(op.mul(y, op.reshape(w, bshape)), op.reshape(b, bshape));
}
