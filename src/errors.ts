/**
 * Helpers for turning thrown values into the one-line messages this project reports.
 */

/** The `code` of a Node system error (ENOENT, EACCES, …), if any. */
export function errCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null ? (e as { code?: string }).code : undefined;
}

/** What an aborted operation throws: the signal's reason when it is an Error, else "cancelled". */
export function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('cancelled');
}

/** The first line of any thrown value's message, trimmed. */
export function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return (msg.split('\n')[0] ?? '').trim();
}

/** Longest text taken from a file (a tensor name, a key, a string) that a message shows before cutting it. */
export const MAX_SHOWN = 200;

// C0 and C1 controls, DEL, line/paragraph separators, bidi embeddings / overrides / isolates and
// marks, zero-width characters and the BOM, and lone surrogates: anything that can move the
// cursor, recolour or reorder a terminal line, or hide text in it.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * Makes text that came from a file or the file system safe for a one-line message: control,
 * bidi and invisible characters become `\uXXXX` escapes and values longer than `max` UTF-16
 * units are cut (with `…` and the full length). The one sanitiser for every name, key and
 * string a reader or command puts in a message.
 */
export function sanitize(s: string, max = MAX_SHOWN): string {
  return escapeUnsafe(s.length > max ? `${s.slice(0, max).replace(/[\ud800-\udbff]$/, '')}…(${s.length} chars)` : s);
}

/**
 * Escapes control, bidi and invisible characters as `\uXXXX` without cutting anything: for
 * whole lines just before they reach a terminal, and for JSON text (where the escapes are
 * valid and parse back to the original characters).
 */
export function escapeUnsafe(s: string): string {
  return s.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
