/**
 * How the fuzzing harness judges a reader's outcome: `clean` (it read the file), `error` (it
 * refused with one safe line naming the file), or `bad` (anything else: a crash, a stack or
 * multi-line message, unescaped control or bidi characters, an engine error such as a failed
 * allocation, a message that does not name the file; the harness adds time and memory).
 */
import { escapeUnsafe } from '../../src/errors.js';

/** The three classes of results. */
export type FuzzClass = 'clean' | 'error' | 'bad';

/** A classified outcome, with the message or the reason it is bad. */
export interface Outcome {
  readonly cls: FuzzClass;
  readonly detail?: string;
}

// Engine and programming errors that a reader must never let through, even inside its own message.
const INTERNAL = /allocation failed|invalid (typed )?array length|maximum call stack|out of memory|cannot read propert|is not a function|is not iterable|undefined is not|cannot convert|reading '|buffer_too_large|ERR_[A-Z_]+/i;

/** Classifies what a reader threw while reading the file shown as `name`. */
export function classifyError(e: unknown, name: string): Outcome {
  if (!(e instanceof Error)) return { cls: 'bad', detail: `threw a non-Error: ${String(e).slice(0, 200)}` };
  const msg = e.message;
  const show = JSON.stringify(msg.slice(0, 300));
  if (/[\n\r]/.test(msg)) return { cls: 'bad', detail: `multi-line message ${show}` };
  if (escapeUnsafe(msg) !== msg) return { cls: 'bad', detail: `unescaped control/bidi characters in ${show}` };
  if (!msg.startsWith(`${name}: `)) return { cls: 'bad', detail: `message does not start with the file name: ${e.name}: ${show}` };
  if (INTERNAL.test(msg)) return { cls: 'bad', detail: `engine error: ${show}` };
  if (msg.length > 1000) return { cls: 'bad', detail: `message of ${msg.length} characters` };
  return { cls: 'error', detail: msg };
}
