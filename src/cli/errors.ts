/**
 * User-facing errors: every failure the CLI reports is one line naming the problem
 * and the fix. Unexpected errors are reduced to their first line; the stack is shown
 * only with DIFFIR_DEBUG=1.
 */
import { firstLine } from '../errors.js';

/** An error whose message is meant for the user as is (exit code 2 for usage errors). */
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'UserError';
  }
}

/** The one-line text to print for any thrown value. */
export function oneLine(e: unknown): string {
  return firstLine(e) || 'unknown error';
}
