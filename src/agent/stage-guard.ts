/**
 * The per-batch path (decode, enrichment, metrics, the flow table, the
 * store, the sinks) runs on the event loop that reads the kernel's records:
 * an exception thrown by any stage would otherwise end the agent (a throw in
 * the ring buffer's callback is an uncaught exception). Each stage runs under
 * this guard: an exception is caught, counted by stage
 * (bpfagent_pipeline_errors_total), logged at most once per stage every
 * `logEveryMs` (with how many were not logged), and tracing goes on. What the
 * stage was doing for that batch is lost, and counted; the next batch is not.
 */
import type { Logger } from 'pino';

export const STAGES = ['decode', 'enrich', 'interval', 'metrics', 'flows', 'store', 'sink', 'deliver'] as const;
export type Stage = (typeof STAGES)[number];

export class StageGuard {
  /** exceptions caught, by stage */
  readonly errors: Record<Stage, number> = Object.fromEntries(STAGES.map((s) => [s, 0])) as Record<Stage, number>;
  private readonly lastLogged = new Map<Stage, number>();
  private readonly unlogged = new Map<Stage, number>();

  constructor(
    private readonly log: Logger,
    private readonly logEveryMs = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** `fn()`, or undefined when it threw (caught, counted, logged). */
  run<T>(stage: Stage, fn: () => T): T | undefined {
    try {
      return fn();
    } catch (e) {
      this.caught(stage, e);
      return undefined;
    }
  }

  /** An exception of `stage` caught elsewhere (a rejected promise, a per-record catch). */
  caught(stage: Stage, e: unknown, detail?: string): void {
    this.errors[stage]++;
    const now = this.now();
    const last = this.lastLogged.get(stage);
    if (last !== undefined && now - last < this.logEveryMs) {
      this.unlogged.set(stage, (this.unlogged.get(stage) ?? 0) + 1);
      return;
    }
    const suppressed = this.unlogged.get(stage) ?? 0;
    this.lastLogged.set(stage, now);
    this.unlogged.delete(stage);
    const err = e instanceof Error ? e : new Error(String(e));
    this.log.error(
      { stage, err: err.message, stack: err.stack?.split('\n').slice(1, 4).join(' | '), errors: this.errors[stage], notLogged: suppressed },
      `${stage}: exception caught, tracing goes on${detail ? ` (${detail})` : ''}: ${err.message}` +
        (suppressed ? ` (${suppressed} more since the last one logged)` : ''),
    );
  }

  get total(): number {
    let n = 0;
    for (const s of STAGES) n += this.errors[s];
    return n;
  }
}
