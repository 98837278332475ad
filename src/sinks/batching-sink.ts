/**
 * What every network sink shares: a bounded queue, batches sent one at a
 * time, retries with exponential back-off, drop counting. A subclass only
 * says how to start and how to send one batch.
 *
 * When the queue is full, new records are dropped (and counted): what is
 * already buffered is delivered first once the destination is back. A batch
 * that keeps failing is retried for as long as the sink runs; only shutdown
 * gives up on it (and counts it).
 */
import type { FlowSink, ShippedRecord, SinkStats } from './sink.js';

export interface BatchingOptions {
  /** records held at most while the destination is slow or down */
  maxQueued: number;
  /** records per send */
  maxBatch: number;
  /** longest a record waits before a partial batch is sent */
  flushIntervalMs: number;
  /** back-off after a failed send: doubling from base to max */
  retryBaseMs: number;
  retryMaxMs: number;
}

export const DEFAULT_BATCHING: BatchingOptions = {
  maxQueued: 100_000,
  maxBatch: 5_000,
  flushIntervalMs: 1_000,
  retryBaseMs: 500,
  retryMaxMs: 30_000,
};

export abstract class BatchingSink implements FlowSink {
  abstract readonly name: string;
  private queue: ShippedRecord[] = [];
  private sending: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private retryAt = 0;
  private retryDelay = 0;
  private closed = false;
  /** records of the batch being sent (the head of the queue) */
  private inFlight = 0;
  /** records of a batch still out when shutdown dropped them */
  private abandoned = 0;
  protected started = false;
  private readonly counts = { exported: 0, dropped: 0, failures: 0 };
  private lastError: string | undefined;

  constructor(protected readonly batching: BatchingOptions = DEFAULT_BATCHING) {}

  /** Connect and prepare the destination (create tables...). */
  protected abstract open(): Promise<void>;
  /** Deliver one batch; reject to have it retried. */
  protected abstract send(batch: ShippedRecord[]): Promise<void>;
  /** Release connections. */
  protected abstract close(): Promise<void>;

  get ready(): boolean {
    return this.started;
  }

  async start(): Promise<void> {
    await this.open();
    this.started = true;
    this.timer = setInterval(() => this.pump(), this.batching.flushIntervalMs);
    this.timer.unref();
  }

  export(batch: readonly ShippedRecord[]): void {
    if (this.closed) {
      this.counts.dropped += batch.length;
      return;
    }
    const room = this.batching.maxQueued - this.queue.length;
    if (room < batch.length) this.counts.dropped += batch.length - Math.max(room, 0);
    for (let i = 0; i < Math.min(room, batch.length); i++) this.queue.push(batch[i]!);
    if (this.queue.length >= this.batching.maxBatch) this.pump();
  }

  /** Send the next batch unless one is in flight or a retry is pending. */
  private pump(): void {
    if (this.sending || !this.started || !this.queue.length || Date.now() < this.retryAt) return;
    const batch = this.queue.slice(0, this.batching.maxBatch);
    this.inFlight = batch.length;
    this.sending = this.send(batch).then(
      () => {
        if (this.closed) {
          // it arrived after shutdown had given up on it: counted once, as exported
          this.counts.dropped -= this.abandoned;
          this.counts.exported += this.abandoned;
          this.abandoned = 0;
          return;
        }
        // delivered: only now leave the queue
        this.queue.splice(0, batch.length);
        this.counts.exported += batch.length;
        this.retryDelay = 0;
        this.retryAt = 0;
      },
      (e: unknown) => {
        this.counts.failures++;
        if (this.closed) return; // shut down while it was out: already counted as dropped
        this.lastError = e instanceof Error ? e.message : String(e);
        this.retryDelay = Math.min(this.retryDelay ? this.retryDelay * 2 : this.batching.retryBaseMs, this.batching.retryMaxMs);
        this.retryAt = Date.now() + this.retryDelay;
      },
    );
    void this.sending.finally(() => {
      this.sending = undefined;
      if (this.queue.length >= this.batching.maxBatch) this.pump();
    });
  }

  async flush(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.queue.length || this.sending) && Date.now() < deadline) {
      if (!this.sending && Date.now() >= this.retryAt) this.pump();
      if (this.sending) await within(this.sending, deadline - Date.now());
      else await sleep(Math.min(50, Math.max(0, deadline - Date.now())));
    }
  }

  async shutdown(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    // a shutdown does not wait out back-off: one more try each remaining batch
    this.retryAt = 0;
    await this.flush(timeoutMs);
    this.closed = true;
    clearInterval(this.timer);
    // everything left is dropped now; a batch still out that arrives after all moves back to exported
    this.abandoned = this.sending ? this.inFlight : 0;
    this.counts.dropped += this.queue.length;
    this.queue = [];
    await this.close();
  }

  stats(): SinkStats {
    return { ...this.counts, queued: this.queue.length, ...(this.lastError !== undefined ? { lastError: this.lastError } : {}) };
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

/** `p`, or nothing after `ms`; the timer is cleared either way, so no deadline outlives its wait. */
function within(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, ms))))]).finally(() => clearTimeout(timer));
}
