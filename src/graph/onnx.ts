/**
 * Serialises a graph to a standard ONNX model (opset 17). Parameters become
 * initializers (inference: ORT pre-packs them) or graph inputs (training: weights
 * are fed each step). Nodes that no output needs are dropped.
 */
import type { DType, HostTensor, TensorMap } from '../tensor.js';
import { isStatic } from './dim.js';
import { Graph, Node, Value, type Attr } from './ir.js';
import { ONNX_DTYPE_CODE } from './ops.js';
import { ModelProto } from './onnx-schema.js';

/** The ONNX opset our graphs use. */
export const OPSET = 17;

/** How parameters appear in the model. */
export interface OnnxWriteOptions {
  /** 'initializers' embeds weights (from `weights`, else each param's init); 'inputs' makes them graph inputs. */
  params: 'initializers' | 'inputs';
  /** Weights by official name, used when params are initializers. */
  weights?: TensorMap;
  /** With params 'inputs': parameters embedded as initializers anyway (frozen ones, from `weights`). */
  embed?: ReadonlySet<string>;
  /** Free-form metadata stored in the model (e.g. task, scale). */
  metadata?: Record<string, string>;
  /** Stored as the model's doc string. */
  docString?: string;
}

function bytesOf(t: HostTensor): Uint8Array {
  const d = t.data;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

function tensorProto(name: string, t: HostTensor): Record<string, unknown> {
  return { name, dims: [...t.shape], dataType: ONNX_DTYPE_CODE[t.dtype], rawData: bytesOf(t) };
}

function attrProto(name: string, a: Attr): Record<string, unknown> {
  switch (a.type) {
    case 'int':
      return { name, type: 2, i: a.v };
    case 'float':
      return { name, type: 1, f: a.v };
    case 'string':
      return { name, type: 3, s: new TextEncoder().encode(a.v) };
    case 'ints':
      return { name, type: 7, ints: [...a.v] };
    case 'floats':
      return { name, type: 6, floats: [...a.v] };
    case 'tensor':
      return { name, type: 4, t: tensorProto('', a.v) };
  }
}

function valueInfo(v: Value, name = v.name): Record<string, unknown> {
  return {
    name,
    type: {
      tensorType: {
        elemType: ONNX_DTYPE_CODE[v.dtype as DType],
        shape: { dim: v.shape.map((d) => (isStatic(d) ? { dimValue: d } : { dimParam: String(d) })) },
      },
    },
  };
}

/** Standard ONNX (opset 17) operators that our graphs may contain. */
export const KNOWN_OPS: ReadonlySet<string> = new Set(
  (
    'Abs Add And ArgMax AveragePool Cast Ceil Clip Concat ConstantOfShape Conv ConvTranspose Div Equal Erf Exp Expand Flatten Floor ' +
    'Gather Gemm GlobalAveragePool Greater GreaterOrEqual Identity LeakyRelu Less LessOrEqual Log LogSoftmax MatMul Max MaxPool Min Mod Mul ' +
    'Neg Not Or Pad Pow Reciprocal ReduceMax ReduceMean ReduceSum ReduceSumSquare Relu Reshape Resize Round ScatterElements Shape Sigmoid Sign Slice ' +
    'Softmax Softplus Split Sqrt Squeeze Sub Sum Tanh Transpose Unsqueeze Where'
  ).split(' '),
);

/** Nodes needed to compute `outputs`, in graph order. */
export function liveNodes(graph: Graph, outputs: readonly Value[] = graph.outputs): Node[] {
  const live = new Set<Node>();
  const stack = [...outputs];
  while (stack.length) {
    const v = stack.pop()!;
    const n = v.producer;
    if (!n || live.has(n)) continue;
    live.add(n);
    for (const i of n.inputs) if (i) stack.push(i);
  }
  return graph.nodes.filter((n) => live.has(n));
}

/** Encodes `graph` as ONNX model bytes. */
export function toOnnx(graph: Graph, opts: OnnxWriteOptions): Uint8Array {
  if (graph.outputs.length === 0) throw new Error(`graph '${graph.name}' has no outputs`);
  const nodes = liveNodes(graph);
  for (const n of nodes) {
    if (!n.domain && !KNOWN_OPS.has(n.op)) throw new Error(`node ${n.name}: unknown op '${n.op}' (not a supported ONNX opset ${OPSET} operator)`);
  }
  const used = new Set<Value>();
  for (const n of nodes) for (const i of n.inputs) if (i) used.add(i);
  for (const o of graph.outputs) used.add(o);

  const inputs = graph.inputs.map((v) => valueInfo(v));
  const initializer: Record<string, unknown>[] = [];
  for (const [name, p] of graph.params) {
    if (opts.params === 'inputs' && !opts.embed?.has(name)) {
      inputs.push(valueInfo(p.value, name));
      continue;
    }
    if (!used.has(p.value)) continue;
    const t = opts.weights?.get(name) ?? p.init;
    if (!t) throw new Error(`parameter '${name}' has no value: load weights or give it an initial value`);
    const want = p.value.shape as number[];
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new Error(`parameter '${name}': weight has shape [${t.shape.join(',')}] but the model needs [${want.join(',')}]`);
    }
    if (t.dtype !== 'float32') throw new Error(`parameter '${name}': weight dtype ${t.dtype}, expected float32`);
    initializer.push(tensorProto(name, t));
  }
  for (const [v, t] of graph.constants) if (used.has(v)) initializer.push(tensorProto(v.name, t));

  const nodeProtos = nodes.map((n) => ({
    name: n.name,
    opType: n.op,
    domain: n.domain || undefined,
    input: n.inputs.map((i) => (i ? i.name : '')),
    output: n.outputs.map((o) => o.name),
    attribute: Object.entries(n.attrs).map(([k, a]) => attrProto(k, a)),
  }));

  const msg = ModelProto.fromObject({
    irVersion: 8,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: 'diffir-ts',
    producerVersion: '0.1.0',
    docString: opts.docString ?? '',
    metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: graph.name,
      node: nodeProtos,
      initializer,
      input: inputs,
      output: graph.outputs.map((v) => valueInfo(v)),
    },
  });
  return ModelProto.encode(msg).finish();
}

/** A decoded ONNX model as a plain object (for inspection and tests). */
export interface OnnxModelSummary {
  opset: number;
  inputs: { name: string; dims: (number | string)[] }[];
  outputs: { name: string; dims: (number | string)[] }[];
  initializers: string[];
  ops: string[];
  metadata: Record<string, string>;
}

interface DecodedDim {
  dimValue?: number | { toNumber(): number };
  dimParam?: string;
}
interface DecodedValueInfo {
  name: string;
  type?: { tensorType?: { shape?: { dim?: DecodedDim[] } } };
}

/** Decodes ONNX bytes into a summary: inputs, outputs, initializer names, op types, metadata. */
export function readOnnxSummary(bytes: Uint8Array): OnnxModelSummary {
  const m = ModelProto.toObject(ModelProto.decode(bytes), { longs: Number, defaults: false }) as {
    opsetImport?: { domain?: string; version?: number }[];
    metadataProps?: { key: string; value: string }[];
    graph?: { input?: DecodedValueInfo[]; output?: DecodedValueInfo[]; initializer?: { name: string }[]; node?: { opType: string }[] };
  };
  const dims = (v: DecodedValueInfo) => (v.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam !== undefined ? d.dimParam : Number(d.dimValue ?? 0)));
  return {
    opset: Number(m.opsetImport?.find((o) => !o.domain)?.version ?? 0),
    inputs: (m.graph?.input ?? []).map((v) => ({ name: v.name, dims: dims(v) })),
    outputs: (m.graph?.output ?? []).map((v) => ({ name: v.name, dims: dims(v) })),
    initializers: (m.graph?.initializer ?? []).map((t) => t.name),
    ops: (m.graph?.node ?? []).map((n) => n.opType),
    metadata: Object.fromEntries((m.metadataProps ?? []).map((p) => [p.key, p.value])),
  };
}
