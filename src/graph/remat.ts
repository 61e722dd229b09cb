/**
 * Rematerialisation of cheap activations in a training graph. The backward pass
 * keeps every forward value its rules read until it is used, so an elementwise
 * chain such as a LayerNorm's affine output or GELU(x1)·x2 holds several
 * full-size tensors per block across the whole forward pass. When such a value can
 * be recomputed from tensors the backward keeps anyway (or from small, broadcast
 * ones), the backward reads a recomputed copy instead, built just before its first
 * backward use, and the forward value dies with its last forward consumer.
 *
 * The copies give the same values bit for bit: commutative ops swap their
 * operands (so ONNX Runtime's common-subexpression elimination does not merge the
 * copy back into the forward node), and `a − b` with a small `b` becomes
 * `a + (−b)`, which IEEE arithmetic computes exactly alike.
 */
import { isStaticShape, staticNumel } from './dim.js';
import type { Graph, Node, Value } from './ir.js';

/** Elementwise ops cheap enough to recompute. */
const CHEAP = new Set(['Add', 'Mul', 'Sub', 'Div', 'Erf', 'Neg']);
const COMMUTATIVE = new Set(['Add', 'Mul']);
/** Longest chain of recomputed ops behind one value. */
const MAX_DEPTH = 6;

/** What `rematerialize` changed. */
export interface RematReport {
  /** Forward values the backward now recomputes. */
  readonly values: number;
  /** Their total size in bytes (float32), no longer kept from the forward to the backward. */
  readonly bytes: number;
  /** Nodes added to recompute them. */
  readonly nodes: number;
}

const numel = (v: Value): number => (isStaticShape(v.shape) ? staticNumel(v.shape) : Infinity);

/**
 * Rewrites the backward nodes of `graph` (those from index `backwardFrom` on) to read
 * recomputed copies of cheap forward activations. Call it once, after the gradients
 * (and any outputs built from them) are in the graph.
 */
export function rematerialize(graph: Graph, backwardFrom: number): RematReport {
  const forward = graph.nodes.slice(0, backwardFrom);
  const backward = graph.nodes.slice(backwardFrom);
  const outputs = new Set(graph.outputs);
  const isForward = new Set(forward);
  const saved = new Set<Value>();
  for (const n of backward) for (const v of n.inputs) if (v && v.producer && isForward.has(v.producer)) saved.add(v);

  // Plan, in forward order: depth[v] > 0 when v can be recomputed (chain length).
  const depth = new Map<Value, number>();
  const remat = new Set<Value>();
  const kept = (u: Value) => saved.has(u) && !remat.has(u);
  /** Small beside `v` (a broadcast operand): read as it is, whether or not the backward keeps it. */
  const small = (u: Value, v: Value) => numel(u) * 8 <= numel(v);
  /** An input a copy of `v` can read directly; any other must be recomputed too. */
  const direct = (u: Value, v: Value) => u.kind !== 'node' || kept(u) || small(u, v);
  for (const p of forward) {
    if (!CHEAP.has(p.op) || p.outputs.length !== 1 || p.domain) continue;
    const v = p.outputs[0]!;
    if (v.dtype !== 'float32' || !Number.isFinite(numel(v)) || outputs.has(v)) continue;
    let d = 0;
    let cloned = false;
    let ok = true;
    for (const u of p.inputs) {
      if (!u) continue;
      if (direct(u, v)) continue;
      const du = depth.get(u);
      if (!du) {
        ok = false;
        break;
      }
      d = Math.max(d, du);
      cloned = true;
    }
    if (!ok || d + 1 > MAX_DEPTH) continue;
    // A copy with the same op and the same inputs would be merged back by CSE.
    if (!cloned && !COMMUTATIVE.has(p.op) && !(p.op === 'Sub' && small(p.in(1), v))) continue;
    depth.set(v, d + 1);
    if (saved.has(v)) remat.add(v);
  }
  if (remat.size === 0) return { values: 0, bytes: 0, nodes: 0 };

  // Build the copies lazily, each just before the first backward node that needs it.
  const copies = new Map<Value, Value>();
  let added = 0;
  const copyOf = (v: Value): Value => {
    const hit = copies.get(v);
    if (hit) return hit;
    const p = v.producer!;
    const ins = p.inputs.map((u) => (u && !direct(u, v) ? copyOf(u) : u));
    const anyCopy = ins.some((u, i) => u !== p.inputs[i]);
    const make = (op: string, inputs: (Value | null)[]) => {
      added++;
      return graph.node(op, inputs, p.attrs, [{ dtype: v.dtype, shape: v.shape }])[0]!;
    };
    let c: Value;
    if (anyCopy) c = make(p.op, ins);
    else if (COMMUTATIVE.has(p.op)) c = make(p.op, [...ins].reverse());
    else c = make('Add', [ins[0]!, make('Neg', [ins[1]!])]); // Sub with a small subtrahend
    copies.set(v, c);
    return c;
  };
  const order: Node[] = [...forward];
  graph.scope('backward.remat', () => {
    for (const n of backward) {
      const before = graph.nodes.length;
      const inputs = n.inputs.map((v) => (v && remat.has(v) ? copyOf(v) : v));
      order.push(...graph.nodes.slice(before));
      (n as { inputs: readonly (Value | null)[] }).inputs = inputs;
      order.push(n);
    }
  });
  graph.nodes.length = 0;
  graph.nodes.push(...order);
  let bytes = 0;
  for (const v of remat) bytes += numel(v) * 4;
  return { values: remat.size, bytes, nodes: added };
}
