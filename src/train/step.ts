/**
 * A compiled training step: one ONNX Runtime run computes the loss, any logged
 * values and the gradients of all trainable parameters, concatenated in the flat
 * layout of `ParamLayout` and written straight into a caller-owned buffer.
 * Trainable weights are graph inputs (fed as zero-copy views each step); frozen
 * weights are embedded as initializers so ORT can pre-pack them.
 */
import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { grad } from '../graph/autodiff.js';
import { rematerialize, type RematReport } from '../graph/remat.js';
import { toOnnx } from '../graph/onnx.js';
import { Session, type SessionOptions } from '../runtime/session.js';
import type { HostTensor, TensorMap } from '../tensor.js';
import { ParamLayout } from './params.js';

/** What a training step returns besides the gradients. */
export interface StepResult {
  loss: number;
  /** Global L2 norm of the gradient (for clipping and logging). */
  gradNorm: number;
  /** Values logged by the graph (e.g. the separate loss terms). */
  logs: Record<string, number>;
  /** The tensors asked for with the `outputs` option, by name. */
  outputs: Record<string, HostTensor>;
}

/** Options of `TrainStep.create`. */
export interface TrainStepOptions {
  /** Names of the parameters to train; default all parameters of the graph not in `frozen`. */
  trainable?: readonly string[];
  /** Weights of parameters that are not trained (embedded as constants). */
  frozen?: TensorMap;
  /** Scalar values to report each step. */
  logs?: Record<string, Value>;
  /** Parameters fed with the data at each run but not differentiated (e.g. the other network of a GAN). */
  fed?: readonly string[];
  /** Tensors to return besides the loss (e.g. the prediction, updated running statistics). */
  outputs?: Record<string, Value>;
  session?: SessionOptions;
  /** Recompute cheap activations in the backward instead of keeping them (default true; `graph/remat.ts`). */
  rematerialize?: boolean;
}

/** The training graph of a step, before compilation. */
export interface TrainingGraph {
  /** Flat layout of the trainable parameters (the gradient buffer's layout). */
  readonly layout: ParamLayout;
  readonly logNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Names of the `fed` parameters, fed like data at each run. */
  readonly fedNames: readonly string[];
  /** What rematerialisation changed (zeros when it was off). */
  readonly remat: RematReport;
  /** The ONNX model: trainable weights as inputs, frozen ones embedded. */
  model(): Uint8Array;
}

/**
 * Adds the backward pass to `graph` and the step's outputs: `loss`, `grads` (all gradients
 * concatenated in the layout's order), `grad_norm` and `log_<name>` for each logged value.
 * `TrainStep.create` compiles it; the profiling bench analyses it.
 */
export function buildTrainingGraph(graph: Graph, loss: Value, o: TrainStepOptions = {}): TrainingGraph {
  const frozen = o.frozen ?? new Map();
  const fed = new Set(o.fed ?? []);
  const names = o.trainable ?? [...graph.params.keys()].filter((n) => !frozen.has(n) && !fed.has(n));
  for (const n of names) if (!graph.params.has(n)) throw new Error(`trainable parameter '${n}' is not in the graph`);
  const trainableSet = new Set(names);
  for (const n of graph.params.keys()) {
    if (!trainableSet.has(n) && !frozen.has(n) && !fed.has(n)) throw new Error(`parameter '${n}' is neither trainable nor given as frozen (nor fed)`);
  }
  const values = names.map((n) => graph.params.get(n)!.value);
  const layout = new ParamLayout(names.map((n) => [n, graph.params.get(n)!.value.shape as number[]]));
  const backwardFrom = graph.nodes.length;
  const grads = graph.scope('backward', () => grad(loss, values));
  const flat = graph.scope('backward', () => flatInBackwardOrder(graph, grads, layout));
  const norm = graph.scope('backward', () => op.sqrt(op.reduceSum(op.mul(flat, flat), [0], false)));
  graph.output(op.reshape(loss, []), 'loss');
  graph.output(flat, 'grads');
  graph.output(norm, 'grad_norm');
  const logNames = Object.keys(o.logs ?? {});
  for (const [k, v] of Object.entries(o.logs ?? {})) graph.output(op.reshape(v, []), `log_${k}`);
  const outputNames = Object.keys(o.outputs ?? {});
  for (const [k, v] of Object.entries(o.outputs ?? {})) graph.output(v, `out_${k}`);
  const fedNames = [...graph.params.keys()].filter((n) => fed.has(n));
  const remat = o.rematerialize === false ? { values: 0, bytes: 0, nodes: 0 } : rematerialize(graph, backwardFrom);
  return { layout, logNames, outputNames, fedNames, remat, model: () => toOnnx(graph, { params: 'inputs', weights: frozen, embed: new Set(frozen.keys()) }) };
}

/**
 * All gradients as one flat vector in the layout's order. ONNX Runtime orders execution by a
 * depth-first walk from the outputs, visiting a node's inputs in order: a Concat in layout
 * order (first layer first) made it run the whole backward chain for the first parameter and
 * only then each weight-gradient GEMM, keeping every layer's output gradient alive until the
 * end. The gradients are therefore concatenated in the order the backward produces them
 * (last layer first), and that vector is permuted into the layout by slices.
 */
function flatInBackwardOrder(graph: Graph, grads: readonly Value[], layout: ParamLayout): Value {
  const index = new Map(graph.nodes.map((n, i) => [n, i]));
  const at = (g: Value) => (g.producer ? index.get(g.producer) ?? -1 : -1);
  const order = grads.map((_, i) => i).sort((a, b) => at(grads[a]!) - at(grads[b]!));
  if (order.every((k, i) => k === i)) return op.concat(grads.map((g) => op.reshape(g, [-1])), 0);
  const inner = op.concat(order.map((k) => op.reshape(grads[k]!, [-1])), 0);
  const start = new Array<number>(grads.length);
  let off = 0;
  for (const k of order) {
    start[k] = off;
    off += layout.slots[k]!.size;
  }
  return op.concat(layout.slots.map((s, k) => op.slice(inner, [start[k]!], [start[k]! + s.size], [0])), 0);
}

/** A compiled forward + backward pass. */
export class TrainStep {
  private constructor(
    private readonly session: Session,
    /** Flat layout of the trainable parameters (the gradient buffer's layout). */
    readonly layout: ParamLayout,
    private readonly logNames: readonly string[],
    /** Names of the data inputs (everything fed besides the trainable weights). */
    readonly dataInputs: readonly string[],
    private readonly outputNames: readonly string[] = [],
  ) {}

  /** Differentiates `loss` in `graph` and compiles the step. */
  static async create(graph: Graph, loss: Value, o: TrainStepOptions = {}): Promise<TrainStep> {
    const t = buildTrainingGraph(graph, loss, o);
    // No memory pattern: from the second run on ORT would allocate the planned pattern as one
    // more block while the arena keeps the first run's chunks, holding the activations twice
    // (deblur S1 128²: 6.1 GiB instead of 3.5; bench/train-profile --no-mem-pattern).
    const session = await Session.create(t.model(), { memoryPattern: false, ...o.session });
    return new TrainStep(session, t.layout, t.logNames, [...graph.inputs.map((v) => v.name), ...t.fedNames], t.outputNames);
  }

  /**
   * Runs forward and backward. `params` holds the trainable weights (views of a flat
   * buffer are fine), `data` the data inputs; the gradient lands in `gradsOut`.
   */
  async run(params: TensorMap, data: Readonly<Record<string, HostTensor>>, gradsOut: Float32Array): Promise<StepResult> {
    if (gradsOut.length !== this.layout.total) throw new Error(`gradient buffer has ${gradsOut.length} values, expected ${this.layout.total}`);
    const feeds: Record<string, HostTensor> = { ...data };
    for (const s of this.layout.slots) {
      const t = params.get(s.name);
      if (!t) throw new Error(`missing weight '${s.name}'`);
      feeds[s.name] = t;
    }
    const r = await this.session.run(feeds, undefined, { grads: { dtype: 'float32', shape: [this.layout.total], data: gradsOut } });
    const num = (k: string) => (r[k]!.data as Float32Array)[0]!;
    return {
      loss: num('loss'),
      gradNorm: num('grad_norm'),
      logs: Object.fromEntries(this.logNames.map((k) => [k, num(`log_${k}`)])),
      outputs: Object.fromEntries(this.outputNames.map((k) => [k, r[`out_${k}`]!])),
    };
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}
