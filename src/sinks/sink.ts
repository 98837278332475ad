/**
 * The contract every flow sink keeps (JSON lines, ClickHouse, Kafka, OTLP):
 * export a batch, flush, shut down. Exporting never blocks and never throws:
 * a sink queues what it is given, within a bound, and counts what it drops,
 * so a slow or absent destination never slows tracing down.
 */
import type { AgentRecord } from '../events/records.js';

/** A record of the `trace --json` contract, plus where and over which interval it was observed. */
export type ShippedRecord = AgentRecord & {
  /** the cluster the agent runs in (`clusterName`), null when not configured */
  cluster: string | null;
  /** the node (host) whose agent observed it */
  node: string;
  /** start of the collection interval the record was shipped in (ISO-8601) */
  intervalStart: string;
  /** that interval's length */
  intervalMs: number;
};

export interface SinkStats {
  /** records delivered */
  exported: number;
  /** records dropped: the queue was full, or a batch was given up on */
  dropped: number;
  /** records waiting */
  queued: number;
  /** delivery attempts that failed (each retried) */
  failures: number;
  lastError?: string;
}

export interface FlowSink {
  readonly name: string;
  /** initialised (database and tables created, connection made): for /readyz */
  readonly ready: boolean;
  /** Start: connect, create what is needed. Rejects with a clear message when misconfigured. */
  start(): Promise<void>;
  /** Hand over records; returns at once. */
  export(batch: readonly ShippedRecord[]): void;
  /** Deliver everything queued, waiting at most `timeoutMs`. */
  flush(timeoutMs: number): Promise<void>;
  /** Flush (within `timeoutMs`), then release everything; nothing is exported after. */
  shutdown(timeoutMs: number): Promise<void>;
  stats(): SinkStats;
}
