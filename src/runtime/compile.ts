/**
 * Turns a graph into a runnable ORT session in one step.
 */
import type { Graph } from '../graph/ir.js';
import { toOnnx, type OnnxWriteOptions } from '../graph/onnx.js';
import { Session, type SessionOptions } from './session.js';

/** Serialises `graph` and opens an ORT session on it. */
export async function compile(graph: Graph, write: OnnxWriteOptions, session: SessionOptions = {}): Promise<Session> {
  return Session.create(toOnnx(graph, write), session);
}
