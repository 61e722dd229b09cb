/**
 * Ctrl-C and SIGTERM for long-running commands: the first signal aborts the work through
 * an AbortController (the command finishes the step in progress, cleans up and reports
 * what was done); a second one exits at once, after removing temporary files.
 * The exit status is 128 + the signal number: 130 for SIGINT, 143 for SIGTERM.
 */
import { removeTempFiles } from './files.js';

const SIGNALS = { SIGINT: 130, SIGTERM: 143 } as const;
export type StopSignal = keyof typeof SIGNALS;

/** The reason an interrupted operation is aborted with. */
export class Interrupted extends Error {
  constructor(readonly signal: StopSignal) {
    super(`interrupted (${signal})`);
    this.name = 'Interrupted';
  }
}

/** Signal handling for one command run; call {@link dispose} when the command ends. */
export class InterruptHandler {
  private readonly controller = new AbortController();
  private readonly listeners: [StopSignal, () => void][] = [];
  /** Outputs being written now, whose temporary files a forced exit removes. */
  readonly writing = new Set<string>();
  private received: StopSignal | null = null;

  constructor(
    /** Called on the first signal (e.g. to tell the user the command is stopping). */
    onFirst: (signal: StopSignal) => void,
  ) {
    for (const sig of Object.keys(SIGNALS) as StopSignal[]) {
      const fn = () => {
        if (this.received) {
          removeTempFiles(this.writing);
          process.exit(SIGNALS[sig]);
        }
        this.received = sig;
        this.controller.abort(new Interrupted(sig));
        onFirst(sig);
      };
      process.on(sig, fn);
      this.listeners.push([sig, fn]);
    }
  }

  /** Aborted on the first signal. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The signal received, or null. */
  get stoppedBy(): StopSignal | null {
    return this.received;
  }

  /** The exit status for the signal received (130 for SIGINT, 143 for SIGTERM). */
  get exitCode(): number {
    return this.received ? SIGNALS[this.received] : 0;
  }

  /** Removes the signal listeners (default handling again). */
  dispose(): void {
    for (const [sig, fn] of this.listeners) process.off(sig, fn);
    this.listeners.length = 0;
  }
}
