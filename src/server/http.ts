/**
 * The agent's HTTP endpoints (fastify): /healthz (liveness: the process
 * answers), /readyz (200 only when the probes are attached and every sink is
 * initialised; 503 otherwise, with what is missing), /metrics (Prometheus).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { UsageError } from '../util/errors.js';
import { registerUi } from './ui.js';

export interface Readiness {
  ready: boolean;
  /** each check by name: probes, sink:<name>, ... */
  checks: Record<string, boolean>;
}

export interface HttpServerOptions {
  host: string;
  port: number;
  log: Logger;
  /** the exposition text and its content type */
  metrics: () => Promise<{ text: string; contentType: string }>;
  readiness: () => Readiness;
  /** more routes (the /api of the service map), registered before the server listens */
  routes?: (app: FastifyInstance) => void;
}

export interface HttpServer {
  readonly app: FastifyInstance;
  /** host:port actually bound (the port is the real one when 0 was asked for) */
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Bind and serve. A listen address that cannot be bound is a configuration error (exit 2). */
export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const app = Fastify({ logger: false, forceCloseConnections: true });
  app.get('/healthz', async (_req, reply) => reply.code(200).send({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const r = opts.readiness();
    return reply.code(r.ready ? 200 : 503).send({ status: r.ready ? 'ready' : 'not ready', checks: r.checks });
  });
  app.get('/metrics', async (_req, reply) => {
    const m = await opts.metrics();
    return reply.code(200).header('content-type', m.contentType).send(m.text);
  });
  opts.routes?.(app);
  registerUi(app); // the web UI: / and /ui/*
  app.setErrorHandler((err, _req, reply) => {
    const message = err instanceof Error ? err.message : String(err);
    opts.log.warn({ err: message }, 'http: request failed');
    void reply.code(500).send({ error: message });
  });

  const shown = opts.host.includes(':') ? `[${opts.host}]:${opts.port}` : `${opts.host}:${opts.port}`;
  try {
    await app.listen({ host: opts.host, port: opts.port });
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
    throw new UsageError(`listen: cannot bind ${shown}: ${why}; choose another with --listen or 'listen:' in the configuration`);
  }
  const addr = app.server.address();
  const port = addr && typeof addr === 'object' ? addr.port : opts.port;
  const address = opts.host.includes(':') ? `[${opts.host}]:${port}` : `${opts.host}:${port}`;
  return { app, address, port, close: () => app.close() };
}
