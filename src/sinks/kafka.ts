/**
 * The Kafka sink: every shipped record is one message on one topic, produced
 * with kafkajs. The value is the record's JSON line (the same text as the
 * JSON-lines sink, without the newline); the key is the record's source
 * workload, so one caller's records stay in one partition, in order.
 *
 * Batching, the bounded queue, retries with back-off and drop counting are
 * BatchingSink's: kafkajs's own retries are off (one attempt per send), so a
 * broker outage costs one failed attempt per back-off step, never a pile of
 * client-side retries.
 */
import { z } from 'zod';
import { CompressionTypes, Kafka, Partitioners, logLevel, type Message, type Producer } from 'kafkajs';
import { BatchingSink } from './batching-sink.js';
import { batchingSchema, shippedLine } from './jsonl.js';
import { recordEnds, udpClientIsLocal } from '../flows/edge-table.js';
import type { ShippedRecord } from './sink.js';
import { defineSink } from './registry.js';

export const kafkaSinkSchema = z
  .object({
    /** bootstrap brokers, host:port */
    brokers: z.array(z.string().regex(/^[^\s:]+:\d+$/, 'expected host:port')).min(1),
    topic: z.string().min(1).max(249).regex(/^[a-zA-Z0-9._-]+$/, 'a Kafka topic name: letters, digits, ".", "_", "-"'),
    clientId: z.string().min(1).default('bpfagent'),
    /** gzip is built into kafkajs; snappy, lz4 and zstd need codec packages that bpfagent does not ship */
    compression: z.enum(['none', 'gzip']).default('gzip'),
    /** -1: all in-sync replicas; 1: the leader; 0: no acknowledgement */
    acks: z.union([z.literal(-1), z.literal(0), z.literal(1)]).default(-1),
    /** how long the broker may wait for the acks */
    ackTimeoutMs: z.number().int().positive().default(30_000),
    connectionTimeoutMs: z.number().int().positive().default(3_000),
    requestTimeoutMs: z.number().int().positive().default(30_000),
    batching: batchingSchema({ maxBatch: 1_000 }),
  })
  .strict();

/** The configuration as written (defaults may be left out). */
export type KafkaSinkOptions = z.input<typeof kafkaSinkSchema>;
export type KafkaSinkConfig = z.output<typeof kafkaSinkSchema>;

/**
 * The record's source: its caller, as specific as what is known. The caller is
 * the local end of outbound TCP, of a DNS lookup and of UDP from an ephemeral
 * port; the remote end otherwise. Its key is the edge tables' source id:
 * "namespace/workload" for a Kubernetes workload, else "process:<comm>" for a
 * local process, else (a remote caller) its DNS name, node or address.
 */
export function sourceKey(r: ShippedRecord): string {
  if (r.proto === 'dns') {
    const k = r.local.k8s;
    return k?.workload !== undefined ? `${k.namespace ?? ''}/${k.workload}` : `process:${r.local.comm}`;
  }
  const clientIsLocal = r.proto === 'tcp' ? r.direction === 'outbound' : udpClientIsLocal(r);
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

  constructor(options: KafkaSinkOptions) {
    const config = kafkaSinkSchema.parse(options);
    super(config.batching);
    this.config = config;
    this.name = `kafka:${config.topic}`;
    const kafka = new Kafka({
      clientId: config.clientId,
      brokers: config.brokers,
      connectionTimeout: config.connectionTimeoutMs,
      requestTimeout: config.requestTimeoutMs,
      // BatchingSink retries, with its back-off; kafkajs makes one attempt
      retry: { retries: 0 },
      // failures are in stats().lastError; kafkajs would log to the console
      logLevel: logLevel.NOTHING,
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
    await this.producer.send({
      topic: this.config.topic,
      messages: batch.map(kafkaMessage),
      acks: this.config.acks,
      timeout: this.config.ackTimeoutMs,
      compression: this.config.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
    });
  }

  protected async close(): Promise<void> {
    await this.producer.disconnect();
  }
}

/** `sinks.kafka` in the configuration of `bpfagent run`. */
export const kafkaSink = defineSink(kafkaSinkSchema, (config) => new KafkaSink(config));
