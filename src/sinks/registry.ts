/**
 * The sinks `bpfagent run` knows, by the name of their section under `sinks:`
 * in the configuration. A sink plugs in with one line in SINKS below: its
 * configuration schema (zod, strict, with its defaults, in sink-configs.ts)
 * and a factory that imports the sink's module. The sink runs when its
 * section is present; `run` validates the section with the schema at start
 * (errors name the key), calls `create`, then `start()`. Only the modules of
 * configured sinks are imported: their client libraries take ~200 ms to load.
 *
 *   // sink-configs.ts
 *   export const exampleSinkSchema = z.object({ url: z.string().url() }).strict();
 *   // here:
 *   example: defineSink(exampleSinkSchema, async (cfg, ctx) => new (await import('./example.js')).ExampleSink(cfg, ctx)),
 */
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { FlowSink } from './sink.js';
import { clickhouseSinkSchema, jsonlSinkSchema, kafkaSinkSchema, otlpSinkSchema } from './sink-configs.js';

/** What a sink is given besides its own configuration section. */
export interface SinkContext {
  /** the cluster (`clusterName`), null when not configured: also in every ShippedRecord */
  cluster: string | null;
  /** the node (host) this agent runs on: also in every ShippedRecord */
  node: string;
  /** a logger for the sink, with `sink: <name>` bound */
  log: Logger;
  /** the agent's collection interval (ms) */
  intervalMs: number;
}

export interface SinkPlugin<S extends z.ZodTypeAny = z.ZodTypeAny> {
  /** the schema of `sinks.<name>`: validated (and defaults filled in) before `create` */
  readonly schema: S;
  /**
   * Make the sink (no I/O yet: `start()` connects); may import its module
   * first. Throw a UsageError for a configuration that cannot work.
   */
  create(config: z.output<S>, ctx: SinkContext): FlowSink | Promise<FlowSink>;
}

/** Typed helper: `defineSink(schema, (config, ctx) => new MySink(config, ctx))`. */
export function defineSink<S extends z.ZodTypeAny>(schema: S, create: (config: z.output<S>, ctx: SinkContext) => FlowSink | Promise<FlowSink>): SinkPlugin<S> {
  return { schema, create };
}

export type SinkRegistry = Readonly<Record<string, SinkPlugin>>;

/** Every sink of this build, one line each: `get name() { return plugin; },` (the name is the key under `sinks:`). */
export const SINKS: SinkRegistry = {
  clickhouse: defineSink(clickhouseSinkSchema, async (config, ctx) => new (await import('./clickhouse.js')).ClickHouseSink(config, { log: ctx.log })),
  jsonl: defineSink(jsonlSinkSchema, async (config) => new (await import('./jsonl.js')).JsonlSink(config)),
  kafka: defineSink(kafkaSinkSchema, async (config, ctx) => new (await import('./kafka.js')).KafkaSink(config, { log: ctx.log })),
  otlp: defineSink(otlpSinkSchema, async (config, ctx) => new (await import('./otlp.js')).OtlpSink(config, { node: ctx.node, cluster: ctx.cluster })),
};
