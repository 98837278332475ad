/**
 * The configuration sections of the built-in sinks (`sinks.<name>` in the
 * agent's configuration), apart from the sinks themselves: the configuration
 * is checked at start with these alone, and a sink's module, with its client
 * library (kafkajs, OpenTelemetry, @clickhouse/client), is imported only when
 * its section is present (see registry.ts).
 */
import { z } from 'zod';
import { DEFAULT_BATCHING, type BatchingOptions } from './batching-sink.js';

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The `batching` section every sink's configuration accepts (see
 * BatchingSink), with that sink's defaults.
 */
export function batchingSchema(defaults: Partial<BatchingOptions> = {}) {
  const d = { ...DEFAULT_BATCHING, ...defaults };
  return z
    .object({
      /** records held at most while the destination is slow or down; beyond, dropped and counted */
      maxQueued: z.number().int().positive().default(d.maxQueued),
      /** records per send */
      maxBatch: z.number().int().positive().default(d.maxBatch),
      /** longest a record waits before a partial batch is sent */
      flushIntervalMs: z.number().int().positive().default(d.flushIntervalMs),
      /** back-off after a failed send, doubling from retryBaseMs up to retryMaxMs */
      retryBaseMs: z.number().int().positive().default(d.retryBaseMs),
      retryMaxMs: z.number().int().positive().default(d.retryMaxMs),
    })
    .strict()
    .default({});
}

export const jsonlSinkSchema = z
  .object({
    /** a file path, or "-" for stdout */
    path: z.string().min(1).default('-'),
    /** a file is rotated before a write would take it past this size (a single longer line gets a file of its own) */
    maxBytes: z.number().int().positive().default(100 * 1024 * 1024),
    /** files kept, the current one included: path, path.1, ..., path.<maxFiles-1> */
    maxFiles: z.number().int().min(1).max(1000).default(5),
    batching: batchingSchema({ flushIntervalMs: 200 }),
  })
  .strict();

/** The configuration as written (defaults may be left out). */
export type JsonlSinkOptions = z.input<typeof jsonlSinkSchema>;
export type JsonlSinkConfig = z.output<typeof jsonlSinkSchema>;

/** Where the ClickHouse tables are: the sink writes them, the hub reads them (`hub.clickhouse`). */
export const clickhouseConnectionShape = {
  /** the server's HTTP interface */
  url: z.string().url().default('http://127.0.0.1:8123'),
  database: z.string().regex(IDENT, 'a database name: letters, digits and _').default('bpfagent'),
  /** default: the URL's user, else `default` */
  username: z.string().optional(),
  /** default: the URL's password, else none */
  password: z.string().optional(),
  /** prepended to the table names (`flows`, `dns`) */
  tablePrefix: z.string().regex(/^[A-Za-z0-9_]*$/, 'letters, digits and _').default(''),
  /** one HTTP request at most this long */
  requestTimeoutMs: z.number().int().positive().default(30_000),
};

export const clickhouseSinkSchema = z
  .object({
    ...clickhouseConnectionShape,
    /** rows older than this are deleted (TTL, or partition drops on servers before 19.6); 0 keeps them */
    ttlDays: z.number().int().min(0).default(7),
    batching: batchingSchema(),
  })
  .strict();

/** A ClickHouse connection as configured (the sink's section, or the hub's). */
export type ClickHouseConnection = { url: string; database: string; username?: string | undefined; password?: string | undefined; tablePrefix: string; requestTimeoutMs: number };

/** The sink's configuration as written (defaults may be left out). */
export type ClickHouseSinkOptions = z.input<typeof clickhouseSinkSchema>;
export type ClickHouseSinkConfig = z.output<typeof clickhouseSinkSchema>;

export const kafkaSinkSchema = z
  .object({
    /** bootstrap brokers, host:port */
    brokers: z.array(z.string().regex(/^[^\s:]+:\d+$/, 'expected host:port')).min(1),
    topic: z.string().min(1).max(249).regex(/^[a-zA-Z0-9._-]+$/, 'a Kafka topic name: letters, digits, ".", "_", "-"'),
    clientId: z.string().min(1).default('bpfagent'),
    /** gzip is built into kafkajs; snappy, lz4 and zstd need codec packages that bpfagent does not ship */
    compression: z.enum(['none', 'gzip']).default('gzip'),
    /** -1: all in-sync replicas; 1: the leader; 0: no acknowledgement */
    acks: z.number().int().min(-1, 'one of -1, 0, 1').max(1, 'one of -1, 0, 1').default(-1),
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

export const otlpSinkSchema = z
  .object({
    /** the receiver's base URL: logs go to <endpoint>/v1/logs, metrics to <endpoint>/v1/metrics */
    endpoint: z.string().url().default('http://127.0.0.1:4318'),
    /**
     * extra HTTP headers, e.g. { authorization: "Bearer ..." }; from the
     * environment or a flag as name=value pairs (see parseKeyValues)
     */
    headers: z
      .record(z.string())
      .default({})
      .describe('a mapping of header names to values; in the environment name=value pairs, comma-separated, values URL-encoded (e.g. authorization=Bearer%20abc)'),
    /** one HTTP export (with the exporter's own quick retries inside it) gives up after this */
    timeoutMs: z.number().int().positive().default(10_000),
    logs: z.boolean().default(true),
    metrics: z.boolean().default(true),
    metricsIntervalMs: z.number().int().min(100).default(10_000),
    batching: batchingSchema({ maxBatch: 1_000 }),
  })
  .strict();

/** The configuration as written (defaults may be left out). */
export type OtlpSinkOptions = z.input<typeof otlpSinkSchema>;
export type OtlpSinkConfig = z.output<typeof otlpSinkSchema>;
