/**
 * The sinks `bpfagent run` knows, by the name of their section under `sinks:`
 * in the configuration. A sink plugs in with one line in SINKS below: its
 * configuration schema (zod, strict, with its defaults) and a factory. The
 * sink runs when its section is present; `run` validates the section with the
 * schema at start (errors name the key), calls `create`, then `start()`.
 *
 *   // src/sinks/example.ts
 *   export const exampleSink = defineSink(z.object({ url: z.string().url() }).strict(), (cfg, ctx) => new ExampleSink(cfg, ctx));
 *   // here:
 *   get example() { return exampleSink; },
 */
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { FlowSink } from './sink.js';
import { clickhouseSink } from './clickhouse.js';
import { jsonlSink } from './jsonl.js';
import { kafkaSink } from './kafka.js';
import { otlpSink } from './otlp.js';

/** What a sink is given besides its own configuration section. */
export interface SinkContext {
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
  /** Make the sink (no I/O yet: `start()` connects). Throw a UsageError for a configuration that cannot work. */
  create(config: z.output<S>, ctx: SinkContext): FlowSink;
}

/** Typed helper: `defineSink(schema, (config, ctx) => new MySink(config, ctx))`. */
export function defineSink<S extends z.ZodTypeAny>(schema: S, create: (config: z.output<S>, ctx: SinkContext) => FlowSink): SinkPlugin<S> {
  return { schema, create };
}

export type SinkRegistry = Readonly<Record<string, SinkPlugin>>;

/** Every sink of this build, one line each: `get name() { return plugin; },` (the name is the key under `sinks:`). */
export const SINKS: SinkRegistry = {
  // getters: read when the configuration is loaded, so a sink module may import this one (defineSink) without a cycle biting
  get clickhouse() { return clickhouseSink; },
  get jsonl() { return jsonlSink; },
  get kafka() { return kafkaSink; },
  get otlp() { return otlpSink; },
};
