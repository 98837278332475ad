/**
 * The API's answers, computed at most once per key while the store has not
 * changed and for at most `ttlMs` (the flow table's interval: the store only
 * changes at interval ends), one computation at a time, each begun after a
 * turn of the event loop. The loop that serves HTTP is the loop that reads
 * the kernel's records: ten browser tabs polling three endpoints every 2 s
 * must cost a few computations per interval, not thirty, and between two
 * computations the ring buffer's batches get their turn.
 *
 * Answers are kept as their JSON text (serialising is part of the cost),
 * within `maxBytes`, least recently used out first. Past `maxWaiting`
 * computations queued, a request is answered 503 at once (BusyError).
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';

export class BusyError extends Error {}

export interface QueryCacheStats {
  /** answers computed */
  computed: number;
  /** answered from the cache */
  cached: number;
  /** answered by a computation another request had begun */
  shared: number;
  /** refused: too many computations waiting */
  busy: number;
  /** time spent computing (with awaiting the store's answer) and serialising, ms */
  computeMs: number;
}

interface Entry {
  body: string;
  version: number;
  atMs: number;
}

export interface QueryCacheOptions {
  ttlMs: number;
  /** the store's version (FlowStore.version): an answer computed before a change is not used after it */
  version: () => number;
  maxBytes?: number;
  maxWaiting?: number;
  now?: () => number;
}

export class QueryCache {
  readonly stats: QueryCacheStats = { computed: 0, cached: 0, shared: 0, busy: 0, computeMs: 0 };
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private readonly pending = new Map<string, Promise<string>>();
  private chain: Promise<unknown> = Promise.resolve();
  private readonly maxBytes: number;
  private readonly maxWaiting: number;
  private readonly now: () => number;

  constructor(private readonly opts: QueryCacheOptions) {
    this.maxBytes = opts.maxBytes ?? 32 * 1024 * 1024;
    this.maxWaiting = opts.maxWaiting ?? 32;
    this.now = opts.now ?? (() => performance.now());
  }

  /**
   * The JSON text of `compute()` for `key`: cached, shared with a computation under way, or computed in turn.
   * `compute` may answer with a promise (a database-backed store); its rejection is the request's, not cached.
   */
  get(key: string, compute: () => unknown): Promise<string> {
    const hit = this.entries.get(key);
    if (hit && hit.version === this.opts.version() && this.now() - hit.atMs < this.opts.ttlMs) {
      this.stats.cached++;
      // most recently used last
      this.entries.delete(key);
      this.entries.set(key, hit);
      return Promise.resolve(hit.body);
    }
    const under = this.pending.get(key);
    if (under) {
      this.stats.shared++;
      return under;
    }
    if (this.pending.size >= this.maxWaiting) {
      this.stats.busy++;
      return Promise.reject(new BusyError(`busy: ${this.pending.size} queries are being answered; retry in a second`));
    }
    const p = this.chain.then(async () => {
      await yieldToLoop();
      const version = this.opts.version();
      const t0 = performance.now();
      const body = JSON.stringify(await compute());
      this.stats.computeMs += performance.now() - t0;
      this.stats.computed++;
      this.keep(key, { body, version, atMs: this.now() });
      return body;
    });
    this.chain = p.catch(() => undefined);
    this.pending.set(key, p);
    void p.finally(() => this.pending.delete(key)).catch(() => undefined);
    return p;
  }

  private keep(key: string, e: Entry): void {
    const old = this.entries.get(key);
    if (old) {
      this.bytes -= old.body.length;
      this.entries.delete(key);
    }
    if (e.body.length > this.maxBytes) return;
    this.entries.set(key, e);
    this.bytes += e.body.length;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= v.body.length;
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
