/**
 * The Kafka sink: every shipped record is one message on one topic, produced
 * with kafkajs. The value is the record's JSON line (the same text as the
 * JSON-lines sink, without the newline); the key is the record's source
 * workload, so one caller's records stay in one partition, in order.
 *
 * Batching, the bounded queue, retries with back-off and drop counting are
 * BatchingSink's: kafkajs's own retries are off (one attempt per send), so a
 * broker outage costs one failed attempt per back-off step, never a pile of
 * client-side retries. An error the broker says is not worth retrying
 * (MESSAGE_TOO_LARGE, TOPIC_AUTHORIZATION_FAILED, INVALID_RECORD, ...: the
 * protocol's non-retriable codes) drops that batch, counted, instead of
 * retrying it forever in front of everything queued behind it.
 */
import { CompressionTypes, Kafka, Partitioners, logLevel, type LogEntry, type Message, type Producer } from 'kafkajs';
import type { Logger } from 'pino';
import { BatchingSink } from './batching-sink.js';
import { shippedLine } from './jsonl.js';
import { recordEnds } from '../flows/edge-table.js';
import type { ShippedRecord, SinkStats } from './sink.js';

import { kafkaSinkSchema, type KafkaSinkConfig, type KafkaSinkOptions } from './sink-configs.js';

/**
 * The record's source: its caller, as specific as what is known. The caller is
 * the local end of outbound TCP and UDP and of a DNS lookup; the remote end
 * otherwise. Its key is the edge tables' source id:
 * "namespace/workload" for a Kubernetes workload, else "process:<comm>" for a
 * local process, else (a remote caller) its DNS name, node or address.
 */
export function sourceKey(r: ShippedRecord): string {
  if (r.proto === 'dns') {
    const k = r.local.k8s;
    return k?.workload !== undefined ? `${k.namespace ?? ''}/${k.workload}` : `process:${r.local.comm}`;
  }
  const clientIsLocal = r.direction === 'outbound';
  return recordEnds(r, clientIsLocal).source.id;
}

/** The message a record becomes. */
export function kafkaMessage(r: ShippedRecord): Message {
  const ms = Date.parse(r.ts);
  return {
    key: sourceKey(r),
    value: shippedLine(r).slice(0, -1),
    ...(Number.isFinite(ms) ? { timestamp: String(ms) } : {}),
  };
}

export class KafkaSink extends BatchingSink {
  readonly name: string;
  private readonly producer: Producer;
  private readonly config: KafkaSinkConfig;
  /** records the broker refused for good (a non-retriable error) */
  private rejected = 0;
  private lastErr: string | undefined;

  /** `ctx.log`: where kafkajs's warnings and errors go (nowhere unless given) */
  constructor(options: KafkaSinkOptions, ctx: { log?: Logger } = {}) {
    const config = kafkaSinkSchema.parse(options);
    super(config.batching);
    this.config = config;
    const log = ctx.log;
    this.name = `kafka:${config.topic}`;
    const kafka = new Kafka({
      clientId: config.clientId,
      brokers: config.brokers,
      connectionTimeout: config.connectionTimeoutMs,
      requestTimeout: config.requestTimeoutMs,
      // BatchingSink retries, with its back-off; kafkajs makes one attempt
      retry: { retries: 0 },
      // failures are in stats().lastError; kafkajs would log to the console
      logLevel: log ? logLevel.WARN : logLevel.NOTHING,
      ...(log
        ? {
            logCreator:
              () =>
              ({ namespace, level, log: { message, timestamp: _t, logger: _l, ...rest } }: LogEntry) =>
                log[level <= logLevel.ERROR ? 'error' : 'warn']({ kafkajs: namespace, ...rest }, message),
          }
        : {}),
    });
    this.producer = kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
      idempotent: false,
      retry: { retries: 0 },
    });
  }

  protected async open(): Promise<void> {
    try {
      await this.producer.connect();
    } catch (e) {
      throw new Error(`kafka sink: cannot connect to ${this.config.brokers.join(',')}: ${(e as Error).message}`);
    }
  }

  protected async send(batch: ShippedRecord[]): Promise<void> {
    try {
      await this.producer.send({
        topic: this.config.topic,
        messages: batch.map(kafkaMessage),
        acks: this.config.acks,
        timeout: this.config.ackTimeoutMs,
        compression: this.config.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
      });
    } catch (e) {
      const root = rootCause(e);
      this.lastErr = root.message;
      if (root.name === 'KafkaJSProtocolError' && (root as { retriable?: unknown }).retriable === false) {
        this.rejected += batch.length;
        this.lastErr = `${root.message}; ${batch.length} records dropped`;
        return;
      }
      throw e;
    }
  }

  override stats(): SinkStats {
    const s = super.stats();
    const lastError = this.lastErr ?? s.lastError;
    return {
      exported: s.exported - this.rejected,
      dropped: s.dropped + this.rejected,
      queued: s.queued,
      failures: s.failures,
      ...(lastError !== undefined ? { lastError } : {}),
    };
  }

  protected async close(): Promise<void> {
    await this.producer.disconnect();
  }
}

/** The innermost error kafkajs wrapped (its retriers wrap what they give up on). */
function rootCause(e: unknown): Error {
  let err = e instanceof Error ? e : new Error(String(e));
  for (let i = 0; i < 10; i++) {
    const next = (err as { cause?: unknown; originalError?: unknown }).cause ?? (err as { originalError?: unknown }).originalError;
    if (!(next instanceof Error) || next === err) break;
    err = next;
  }
  return err;
}

/** `sinks.kafka` in the configuration of `bpfagent run`. */
