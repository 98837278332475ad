/**
 * The sinks `bpfagent run` ships records to: made from the `sinks:` sections
 * through the registry, started together, fed the same batches, shut down
 * together within one bounded time.
 *
 * A sink whose start() fails with a UsageError is misconfigured: start-up
 * stops (exit 2). Any other failure (its destination is down) is logged and
 * start() retried with back-off while the agent runs; the sink is not ready
 * (nor is /readyz) until it succeeds. Records handed to it meanwhile are
 * queued by the sink, within its bound.
 */
import type { Logger } from 'pino';
import type { SinkContext, SinkRegistry } from '../sinks/registry.js';
import type { FlowSink, ShippedRecord, SinkStats } from '../sinks/sink.js';
import { UsageError } from '../util/errors.js';

export interface NamedSink {
  name: string;
  sink: FlowSink;
}

const RETRY_BASE_MS = 1000;
const RETRY_MAX_MS = 30_000;

export class SinkSet {
  private stopped = false;
  private retryTimers = new Set<NodeJS.Timeout>();

  constructor(
    readonly sinks: readonly NamedSink[],
    private readonly log: Logger,
  ) {}

  /** Make every configured sink (no I/O yet; each sink's module is imported now). */
  static async create(sections: Record<string, unknown>, registry: SinkRegistry, ctx: Omit<SinkContext, 'log'> & { log: Logger }): Promise<SinkSet> {
    const sinks: NamedSink[] = [];
    for (const [name, section] of Object.entries(sections)) {
      if (section === undefined) continue;
      const plugin = registry[name];
      if (!plugin) throw new UsageError(`config: sinks.${name}: unknown sink, expected one of: ${Object.keys(registry).join(', ') || '(none in this build)'}`);
      sinks.push({ name, sink: await plugin.create(section, { ...ctx, log: ctx.log.child({ sink: name }) }) });
    }
    return new SinkSet(sinks, ctx.log);
  }

  get names(): string[] {
    return this.sinks.map((s) => s.name);
  }

  /**
   * Start every sink; wait at most `waitMs` for them. Rejects with the first
   * UsageError (misconfigured); other failures are retried in the background.
   */
  async start(waitMs: number): Promise<void> {
    let waitedOut = false;
    const all = Promise.all(this.sinks.map((s) => this.startOne(s, RETRY_BASE_MS)));
    // a misconfiguration found after the wait can no longer stop start-up: say it loudly
    all.catch((e: unknown) => {
      if (waitedOut) this.log.error({ err: (e as Error).message }, (e as Error).message);
    });
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((r) => (timer = setTimeout(() => ((waitedOut = true), r()), waitMs)));
    try {
      await Promise.race([all, waited]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async startOne(s: NamedSink, delayMs: number): Promise<void> {
    try {
      await s.sink.start();
      this.log.info({ sink: s.name }, `sink ${s.name} started`);
    } catch (e) {
      if (e instanceof UsageError) throw new UsageError(`sinks.${s.name}: ${e.message}`, e.exitCode);
      if (this.stopped) return;
      this.log.warn({ sink: s.name, err: (e as Error).message, retryInMs: delayMs }, `sink ${s.name} could not start: ${(e as Error).message}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.retryTimers.delete(t);
          resolve();
        }, delayMs);
        this.retryTimers.add(t);
      });
      if (!this.stopped) await this.startOne(s, Math.min(delayMs * 2, RETRY_MAX_MS)).catch((err: unknown) => this.log.error({ sink: s.name, err: String(err) }, `sink ${s.name}: ${String(err)}`));
    }
  }

  /** `onError`: told of a sink whose export threw (else it is logged); the other sinks get the batch all the same. */
  export(batch: readonly ShippedRecord[], onError?: (sink: string, e: unknown) => void): void {
    if (!batch.length) return;
    for (const s of this.sinks) {
      try {
        s.sink.export(batch);
      } catch (e) {
        // the contract says export never throws; if one does, tracing and the other sinks go on
        if (onError) onError(s.name, e);
        else this.log.error({ sink: s.name, err: (e as Error).message }, `sink ${s.name}: export threw: ${(e as Error).message}`);
      }
    }
  }

  get ready(): boolean {
    return this.sinks.every((s) => s.sink.ready);
  }

  readiness(): Record<string, boolean> {
    return Object.fromEntries(this.sinks.map((s) => [`sink:${s.name}`, s.sink.ready]));
  }

  stats(): Array<{ name: string; ready: boolean; stats: SinkStats }> {
    return this.sinks.map((s) => ({ name: s.name, ready: s.sink.ready, stats: s.sink.stats() }));
  }

  /**
   * Shut every sink down in parallel, each given `timeoutMs`; a sink that
   * overruns it (by more than a short grace) is left behind, so this returns
   * within about `timeoutMs` whatever the sinks do. Returns each sink's fate.
   */
  async shutdown(timeoutMs: number): Promise<Record<string, string>> {
    this.stopped = true;
    for (const t of this.retryTimers) clearTimeout(t);
    this.retryTimers.clear();
    const grace = Math.min(1000, timeoutMs / 10);
    const outcome: Record<string, string> = {};
    await Promise.all(
      this.sinks.map(async (s) => {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<string>((r) => (timer = setTimeout(() => r('timed out'), timeoutMs + grace)));
        outcome[s.name] = await Promise.race([
          s.sink.shutdown(timeoutMs).then(
            () => 'flushed',
            (e: unknown) => `failed: ${e instanceof Error ? e.message : String(e)}`,
          ),
          late,
        ]);
        clearTimeout(timer);
      }),
    );
    return outcome;
  }
}
