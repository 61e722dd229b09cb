/**
 * A fuzzing worker (a child process of the harness): generates each case it is sent, runs the
 * reader on it and reports the outcome, its time and the process's peak memory. The harness
 * runs it under a memory limit and kills it when a case runs past its time limit.
 */
import { generate, type FuzzKind } from './generators.js';
import { classifyError, type Outcome } from './classify.js';
import { loadPth } from '../../src/weights/pth.js';
import { extractStateDict } from '../../src/weights/statedict.js';
import { parseSafetensors } from '../../src/weights/safetensors.js';
import { decodePixels } from '../../src/image/decode.js';

/** A case request from the harness. */
export interface CaseRequest {
  readonly id: number;
  readonly kind: FuzzKind;
  readonly seed: number;
  readonly index: number;
}

/** A worker's report on one case. */
export interface CaseReport extends Outcome {
  readonly id: number;
  readonly recipe: string;
  readonly size: number;
  readonly ms: number;
  /** CPU time of the reader (user + system), which a loaded machine inflates far less than wall time. */
  readonly cpuMs: number;
  /** Peak resident memory of the worker so far (bytes). */
  readonly maxRss: number;
  /** Pixels the image header declares (images only), for the image memory bound. */
  readonly pixels?: number;
}

/** The name each kind is read under (what a good error message must start with). */
export const CASE_NAME: Readonly<Record<FuzzKind, string>> = { 'pth-zip': 'case.pth', 'pth-legacy': 'case.pth', safetensors: 'case.safetensors', image: 'case.img' };

async function read(kind: FuzzKind, bytes: Uint8Array): Promise<Outcome> {
  const name = CASE_NAME[kind];
  if (kind === 'safetensors') {
    parseSafetensors(bytes, name);
  } else if (kind === 'image') {
    await decodePixels(bytes, { name });
  } else {
    const v = loadPth(bytes, { name });
    // The state-dict step sees whatever the unpickler let through; its errors must be as clean.
    try {
      extractStateDict(v, name);
    } catch (e) {
      const o = classifyError(e, name);
      if (o.cls === 'bad') return o;
    }
  }
  return { cls: 'clean' };
}

function imagePixels(bytes: Uint8Array): number | undefined {
  // PNG IHDR, JPEG SOF, GIF screen: enough to size the image memory bound of a case.
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length > 24 && bytes[0] === 0x89 && bytes[1] === 0x50) return v.getUint32(16) * v.getUint32(20);
  if (bytes.length > 4 && bytes[0] === 0xff && bytes[1] === 0xd8) {
    for (let i = 2; i + 9 < bytes.length; i++) if (bytes[i] === 0xff && bytes[i + 1]! >= 0xc0 && bytes[i + 1]! <= 0xcf && bytes[i + 1] !== 0xc4 && bytes[i + 1] !== 0xc8 && bytes[i + 1] !== 0xcc) return v.getUint16(i + 5) * v.getUint16(i + 7);
  }
  if (bytes.length > 10 && bytes[0] === 0x47 && bytes[1] === 0x49) return v.getUint16(6, true) * v.getUint16(8, true);
  return undefined;
}

process.on('message', (m: CaseRequest) => {
  void (async () => {
    const c = await generate(m.kind, m.seed, m.index);
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    let o: Outcome;
    try {
      o = await read(c.kind, c.bytes);
    } catch (e) {
      o = classifyError(e, CASE_NAME[c.kind]);
    }
    const pixels = c.kind === 'image' ? imagePixels(c.bytes) : undefined;
    const report: CaseReport = {
      id: m.id,
      ...o,
      recipe: c.recipe,
      size: c.bytes.length,
      ms: performance.now() - t0,
      cpuMs: (() => {
        const c1 = process.cpuUsage(c0);
        return (c1.user + c1.system) / 1000;
      })(),
      maxRss: process.resourceUsage().maxRSS * 1024,
      ...(pixels !== undefined ? { pixels } : {}),
    };
    process.send!(report);
  })();
});
process.send!({ ready: true, rss: process.memoryUsage().rss });
