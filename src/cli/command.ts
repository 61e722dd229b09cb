/**
 * The contract between `main.ts` (the dispatcher) and each subcommand module. It lives
 * apart from `main.ts` so that subcommands never import the dispatcher (imports run one way).
 */

/** A subcommand: its one-line summary and its entry point (argv after the command name). */
export interface Command {
  summary: string;
  run(argv: string[]): Promise<void>;
}
