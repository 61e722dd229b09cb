/**
 * Helpers for turning thrown values into the one-line messages this project reports.
 */

/** The `code` of a Node system error (ENOENT, EACCES, …), if any. */
export function errCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null ? (e as { code?: string }).code : undefined;
}

/** The first line of any thrown value's message, trimmed. */
export function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return (msg.split('\n')[0] ?? '').trim();
}
