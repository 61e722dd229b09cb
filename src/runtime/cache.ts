/**
 * A cache of sessions keyed by graph identity and shapes, so that running the same
 * model on the same input size reuses one session (building and optimising a
 * session costs far more than a run).
 */
import { Session, type SessionOptions } from './session.js';

/** Builds model bytes for a cache key on first use. */
export type ModelBuilder = () => Uint8Array;

/** A bounded least-recently-used cache of sessions. */
export class SessionCache {
  private entries = new Map<string, Promise<Session>>();
  constructor(
    private readonly options: SessionOptions = {},
    /** Sessions kept alive; older ones are released. */
    readonly capacity = 4,
  ) {}

  /** The session for `key`, building it with `build` when absent. */
  async get(key: string, build: ModelBuilder): Promise<Session> {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const p = Session.create(build(), this.options);
    this.entries.set(key, p);
    p.catch(() => this.entries.delete(key));
    while (this.entries.size > this.capacity) {
      const [oldKey, old] = this.entries.entries().next().value as [string, Promise<Session>];
      this.entries.delete(oldKey);
      void old.then((s) => s.release(), () => undefined);
    }
    return p;
  }

  /** Number of live sessions. */
  get size(): number {
    return this.entries.size;
  }

  /** Releases every session. */
  async clear(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((p) => p.then((s) => s.release(), () => undefined)));
  }
}
