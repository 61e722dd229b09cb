/**
 * User-facing errors: every failure the CLI reports is one line naming the problem
 * and the fix. Unexpected errors are reduced to their first line; the stack is shown
 * only with DIFFIR_DEBUG=1.
 */
import { firstLine, sanitize } from '../errors.js';

/** An error whose message is meant for the user as is (exit code 2 for usage errors). */
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'UserError';
  }
}

/** The one-line text to print for any thrown value (control and bidi characters escaped, at most 2000 characters). */
export function oneLine(e: unknown): string {
  return sanitize(firstLine(e), 2000) || 'unknown error';
}
