/**
 * The agent's HTTP endpoints (fastify): /healthz (liveness: the process
 * answers), /readyz (200 only when the probes are attached and every sink is
 * initialised; 503 otherwise, with what is missing), /metrics (Prometheus),
 * and the routes given (the service map's /api and the web UI).
 *
 * With `metricsListen`, /metrics is served on a listener of its own, with
 * /healthz and /readyz and nothing else: Prometheus and the kubelet can reach
 * it from other hosts while the API (process names, command lines,
 * connections) stays on the main listener, which then has no /metrics.
 * Access (token, Host check) is access.ts, on both listeners (the metrics
 * listener's own rule beyond loopback: metricsAccessPolicy); TLS from
 * certificate files, which are re-read when they change (a renewed
 * certificate needs no restart).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Server as HttpsServer } from 'node:https';
import type { Logger } from 'pino';
import type { ListenAddress } from '../config/schema.js';
import { UsageError } from '../util/errors.js';
import { accessPolicy, metricsAccessPolicy, registerAccess, showListen, type AccessPolicy, type AccessStats } from './access.js';
import { readTls, watchTls, type TlsFiles } from './tls.js';
import { registerUi } from './ui.js';

export interface Readiness {
  ready: boolean;
  /** each check by name: probes, sink:<name>, ... */
  checks: Record<string, boolean>;
}

export interface HttpServerOptions {
  host: string;
  port: number;
  /** a listener for /metrics, /healthz and /readyz alone; null or absent: /metrics on the main one */
  metricsListen?: ListenAddress | null;
  log: Logger;
  /** the exposition text and its content type */
  metrics: () => Promise<{ text: string; contentType: string }>;
  readiness: () => Readiness;
  /** more routes (the /api of the service map), registered before the server listens */
  routes?: (app: FastifyInstance) => void;
  /** serve the web UI at / (default true) */
  ui?: boolean;
  /** who may read what (see accessPolicy; default: no token, which a loopback host alone may have) */
  access?: AccessPolicy;
  /** serve HTTPS with these PEM files (both listeners) */
  tls?: TlsFiles | undefined;
  /** how often the TLS files are looked at for a renewal (default 30 s) */
  tlsRecheckMs?: number;
}

export interface HttpServer {
  readonly app: FastifyInstance;
  /** host:port actually bound (the port is the real one when 0 was asked for) */
  readonly address: string;
  readonly port: number;
  /** the metrics listener's host:port, when there is one */
  readonly metricsAddress: string | undefined;
  /** "http" or "https" */
  readonly scheme: string;
  /** requests refused by the access checks, on either listener */
  readonly accessStats: AccessStats;
  close(): Promise<void>;
}

/** /healthz and /readyz: on every listener. */
function registerHealth(app: FastifyInstance, opts: HttpServerOptions): void {
  app.get('/healthz', async (_req, reply) => reply.code(200).send({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const r = opts.readiness();
    return reply.code(r.ready ? 200 : 503).send({ status: r.ready ? 'ready' : 'not ready', checks: r.checks });
  });
}

function registerMetrics(app: FastifyInstance, opts: HttpServerOptions): void {
  app.get('/metrics', async (_req, reply) => {
    const m = await opts.metrics();
    return reply.code(200).header('content-type', m.contentType).send(m.text);
  });
}

function newApp(opts: HttpServerOptions, tls: { cert: Buffer; key: Buffer } | undefined): FastifyInstance {
  const app = tls
    ? (Fastify({ logger: false, forceCloseConnections: true, https: tls }) as unknown as FastifyInstance)
    : Fastify({ logger: false, forceCloseConnections: true });
  app.setErrorHandler((err, _req, reply) => {
    const message = err instanceof Error ? err.message : String(err);
    opts.log.warn({ err: message }, 'http: request failed');
    void reply.code(500).send({ error: message });
  });
  return app;
}

/** Bind `app`; a listen address that cannot be bound is a configuration error naming the key. Returns host:port bound. */
async function bind(app: FastifyInstance, host: string, port: number, key: string, flag: string): Promise<{ address: string; port: number }> {
  try {
    await app.listen({ host, port });
  } catch (e) {
    await app.close().catch(() => undefined);
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'EADDRINUSE'
        ? 'the address is in use (another bpfagent?)'
        : code === 'EADDRNOTAVAIL'
          ? 'no interface of this host has that address'
          : code === 'EACCES'
            ? 'permission denied'
            : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
              ? 'the host name does not resolve'
              : ((e as Error).message ?? String(e));
    throw new UsageError(`${key}: cannot bind ${showListen(host, port)}: ${why}; choose another with ${flag}'${key}:' in the configuration`);
  }
  const addr = app.server.address();
  const bound = addr && typeof addr === 'object' ? addr.port : port;
  return { address: showListen(host, bound), port: bound };
}

/** Bind and serve. A listen address that cannot be bound is a configuration error (exit 2). */
export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const separate = opts.metricsListen ?? null;
  // both checked before anything binds: a refusal is a configuration error
  const policy = opts.access ?? accessPolicy({ tokenFile: null, openPaths: [], allowUnauthenticated: false }, opts.host, showListen(opts.host, opts.port));
  const metricsPolicy = separate ? metricsAccessPolicy(policy, separate.host, showListen(separate.host, separate.port)) : undefined;
  const tls = opts.tls ? readTls(opts.tls) : undefined;
  const accessStats: AccessStats = { refused: { host: 0, token: 0 } };
  const app = newApp(opts, tls);
  registerAccess(app, policy, accessStats);
  registerHealth(app, opts);
  if (!separate) registerMetrics(app, opts);
  opts.routes?.(app);
  if (opts.ui !== false) registerUi(app); // the web UI: / and /ui/*
  let metricsApp: FastifyInstance | undefined;
  let metricsAddress: string | undefined;
  if (separate) {
    metricsApp = newApp(opts, tls);
    registerAccess(metricsApp, metricsPolicy!, accessStats);
    registerHealth(metricsApp, opts);
    registerMetrics(metricsApp, opts);
    metricsAddress = (await bind(metricsApp, separate.host, separate.port, 'metrics.listen', '')).address;
  }
  let main: { address: string; port: number };
  try {
    main = await bind(app, opts.host, opts.port, 'listen', '--listen or ');
  } catch (e) {
    await metricsApp?.close().catch(() => undefined);
    throw e;
  }
  const watching = opts.tls
    ? [app, metricsApp].filter((a): a is FastifyInstance => a !== undefined).map((a) => watchTls(a.server as unknown as HttpsServer, opts.tls!, opts.log, opts.tlsRecheckMs))
    : [];
  return {
    app,
    address: main.address,
    port: main.port,
    metricsAddress,
    scheme: tls ? 'https' : 'http',
    accessStats,
    close: async () => {
      for (const stop of watching) stop();
      await Promise.all([app.close(), metricsApp?.close()]);
    },
  };
}
