/**
 * The configuration of `bpfagent run`: every key, its default and the form it
 * takes. The agent runs with no configuration file at all: every key has a
 * default. Unknown keys are errors (a typo must not be silently ignored).
 *
 * Each leaf schema carries, as its description, the expected form that error
 * messages quote ("a duration from 100ms to 1h, such as 10s").
 */
import { z } from 'zod';
import { ATTACH_MODES } from '../bpf/tcp-tracer.js';
import { UDP_HOOK_NAMES } from '../bpf/net-tracer.js';
import { parseCidrs } from '../enrich/locality.js';
import { SINKS, type SinkRegistry } from '../sinks/registry.js';
import { clickhouseConnectionShape } from '../sinks/sink-configs.js';
import { parseDurationMs, parseSizeBytes } from '../util/units.js';

export const DEFAULT_PORT = 9745;
export const DEFAULT_LISTEN = `127.0.0.1:${DEFAULT_PORT}`;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** A duration written with its unit ("250ms", "10s", "1m"), to milliseconds. */
export function duration(minMs: number, maxMs: number, form: string) {
  return z
    .string()
    .transform((s, ctx) => {
      const n = parseDurationMs(s);
      if (n === undefined || n < minMs || n > maxMs) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: form });
        return z.NEVER;
      }
      return Math.round(n);
    })
    .describe(form);
}

/** A whole number in a range. */
export function whole(min: number, max: number, form = `a whole number from ${min} to ${max}`) {
  return z.number().int().min(min).max(max).describe(form);
}

/** A size in bytes: a number, or "8M", "256k" (binary units); a power of two when `pow2`. */
function size(minBytes: number, maxBytes: number, pow2: boolean, form: string) {
  return z
    .union([z.number(), z.string()])
    .transform((v, ctx) => {
      const n = typeof v === 'number' ? v : parseSizeBytes(v);
      if (n === undefined || !Number.isInteger(n) || n < minBytes || n > maxBytes || (pow2 && (n & (n - 1)) !== 0)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: form });
        return z.NEVER;
      }
      return n;
    })
    .describe(form);
}

export interface ListenAddress {
  host: string;
  port: number;
}

const LISTEN_FORM = `HOST:PORT, such as ${DEFAULT_LISTEN}, 0.0.0.0:${DEFAULT_PORT} or [::1]:${DEFAULT_PORT}`;

/** "127.0.0.1:9745", "[::]:9745", "localhost:9745" -> host and port. */
export function parseListen(s: string): ListenAddress | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(s.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? m[2]!, port };
}

const listen = z
  .string()
  .transform((s, ctx) => {
    const a = parseListen(s);
    if (!a) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: LISTEN_FORM });
      return z.NEVER;
    }
    return a;
  })
  .describe(LISTEN_FORM);

const CIDRS_FORM = 'a list of CIDRs, such as [10.244.0.0/16, 10.96.0.0/12] (or one string, comma-separated)';
const clusterCidrs = z
  .preprocess(
    (v) => (typeof v === 'string' ? v.split(',').map((c) => c.trim()).filter(Boolean) : v),
    z.array(z.string()).superRefine((list, ctx) => {
      for (const [i, c] of list.entries()) {
        try {
          parseCidrs([c]);
        } catch {
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: [i], message: 'a CIDR, such as 10.244.0.0/16 or fd00:10::/56' });
        }
      }
    }),
  )
  .describe(CIDRS_FORM);

const NODE_NAME_FORM = 'a Kubernetes node name (lowercase letters, digits, - and .)';
const CLUSTER_NAME_FORM = 'a cluster name (1 to 63 letters, digits, -, _ and ., starting and ending with a letter or digit), or null';

export const traceSchema = z
  .object({
    attach: z.enum(['auto', ...ATTACH_MODES]).default('auto').describe(`one of auto, ${ATTACH_MODES.join(', ')}`),
    btf: z.string().min(1).nullable().default(null).describe('a BTF file path, or null for /sys/kernel/btf/vmlinux'),
    maxConnections: whole(16, 16_777_216).default(65_536),
    ringbufSize: size(4096, 1024 ** 3, true, 'a power of two from 4k to 1G, such as 8M').default('8M'),
    pollInterval: duration(1, 5000, 'a duration from 1ms to 5s, such as 100ms').default('100ms'),
    maxUdpFlows: whole(16, 16_777_216).default(65_536),
    maxNatEntries: whole(16, 16_777_216).default(16_384),
    udpHook: z.enum(['auto', ...UDP_HOOK_NAMES]).default('auto').describe(`one of auto, ${UDP_HOOK_NAMES.join(', ')}`),
    debug: z.boolean().default(false).describe('true or false'),
    // only the records of processes in this cgroup v2 subtree (one of several nodes sharing a kernel); null: the host's
    cgroup: z.string().min(1).nullable().default(null).describe('a cgroup v2 directory (below the cgroup root, or relative to it), or null'),
  })
  .strict()
  .default({});

export const kubernetesSchema = z
  .object({
    kubeconfig: z.string().min(1).optional().describe('a kubeconfig file path'),
    clusterCidrs: clusterCidrs.default([]),
    // node: this node's pods and what resolves remote ends (Services, EndpointSlices, Nodes); cluster: everything
    watch: z.enum(['node', 'cluster']).default('node').describe('node or cluster'),
  })
  .strict()
  .default({});

/** The embedded flow store behind the HTTP API (docs/api.md). */
export const storeSchema = z
  .object({
    retention: duration(60_000, 168 * 3_600_000, 'a duration from 1m to 168h, such as 3h').default('3h'),
    dataDir: z.string().min(1).nullable().default(null).describe('a directory path, or null to keep the store in memory only'),
    maxEdgesPerInterval: whole(16, 10_000_000).default(10_000),
    maxEdges: whole(1000, 100_000_000).default(200_000),
    maxConnections: whole(0, 10_000_000).default(10_000),
  })
  .strict()
  .default({});

const PRICE_FORM = 'a price per GB (10^9 bytes), a number >= 0, or null for none';
const price = z.number().min(0).nullable().default(null).describe(PRICE_FORM);

/** `bpfagent hub` (docs/fleet.md): where the agents' ClickHouse tables are, how far back it answers, prices. */
export const hubSchema = z
  .object({
    clickhouse: z.object(clickhouseConnectionShape).strict().default({}),
    /** the longest window the API answers for (the `window` parameter's bound) */
    maxWindow: duration(60_000, 31 * 86_400_000, 'a duration from 1m to 744h, such as 24h').default('24h'),
    /** edges per answer at most, the busiest */
    maxEdges: whole(10, 1_000_000).default(10_000),
    /** price per GB by locality, for /api/cost's cost column (null: no cost for that locality) */
    pricePerGB: z
      .object({ sameHost: price, sameZone: price, crossZone: price, cluster: price, external: price })
      .strict()
      .default({}),
  })
  .strict()
  .default({});

/** Who may read the HTTP listener, and over what (src/server/access.ts, docs/run.md "Access"). */
export const serverSchema = z
  .object({
    tokenFile: z.string().min(1).nullable().default(null).describe('a file path holding the bearer token, or null for none'),
    openPaths: z
      .array(z.string().regex(/^\/[^\s?#]*$/))
      .default(['/metrics', '/healthz', '/readyz'])
      .describe('a list of paths, such as [/metrics, /healthz, /readyz]'),
    allowUnauthenticated: z.boolean().default(false).describe('true or false'),
    tls: z
      .object({
        certFile: z.string().min(1).nullable().default(null).describe('a PEM certificate (chain) file, or null'),
        keyFile: z.string().min(1).nullable().default(null).describe('a PEM private key file, or null'),
      })
      .strict()
      .default({})
      .refine((t) => (t.certFile === null) === (t.keyFile === null), { message: 'certFile and keyFile together (both set, or neither)' }),
  })
  .strict()
  .default({});

/** Command lines are read bounded and redacted by these patterns (src/enrich/redact.ts). */
export const privacySchema = z
  .object({
    redactCmdline: z
      .array(
        z
          .string()
          .min(1)
          .max(1000)
          .superRefine((p, ctx) => {
            try {
              new RegExp(p, 'gid');
            } catch (e) {
              ctx.addIssue({ code: z.ZodIssueCode.custom, message: `a regular expression (${(e as Error).message})` });
            }
          }),
      )
      .optional()
      .describe('a list of regular expressions (JavaScript syntax); the text of group 1, or of the whole match, becomes ***'),
  })
  .strict()
  .default({});

/** The whole configuration, with the sections of the sinks in `sinks` (each optional: present = on). */
export function configSchema(sinks: SinkRegistry = SINKS) {
  const sinkSections: Record<string, z.ZodTypeAny> = {};
  for (const [name, plugin] of Object.entries(sinks)) sinkSections[name] = plugin.schema.optional();
  return z
    .object({
      nodeName: z
        .string()
        .regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/)
        .optional()
        .describe(NODE_NAME_FORM),
      clusterName: z
        .string()
        .regex(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/)
        .nullable()
        .default(null)
        .describe(CLUSTER_NAME_FORM),
      listen: listen.default(DEFAULT_LISTEN),
      interval: duration(100, 3_600_000, 'a duration from 100ms to 1h, such as 10s').default('10s'),
      logLevel: z.enum(LOG_LEVELS).default('info').describe(`one of ${LOG_LEVELS.join(', ')}`),
      shutdownTimeout: duration(100, 300_000, 'a duration from 100ms to 5m, such as 10s').default('10s'),
      trace: traceSchema,
      kubernetes: kubernetesSchema,
      flows: z.object({ maxEdges: whole(16, 10_000_000).default(10_000) }).strict().default({}),
      metrics: z
        .object({
          maxSeriesPerMetric: whole(1, 10_000_000).default(2_000),
          // /metrics (with /healthz, /readyz) on a listener of its own, without the API: null = on `listen`
          listen: listen.nullable().default(null).describe(`${LISTEN_FORM}, or null to serve /metrics on listen`),
        })
        .strict()
        .default({}),
      store: storeSchema,
      server: serverSchema,
      privacy: privacySchema,
      sinks: z.object(sinkSections).strict().default({}),
      hub: hubSchema,
    })
    .strict();
}

export type AgentConfig = z.output<ReturnType<typeof configSchema>>;
