/**
 * `bpfagent hub`: the service map of a fleet (docs/fleet.md). The HTTP API
 * and web UI of `bpfagent run` (src/server/) over the ClickHouse tables the
 * agents write (src/hub/clickhouse-store.ts), for every cluster or one.
 *
 * Start-up binds the listeners (a port in use: exit 2) and logs "ready";
 * ClickHouse need not answer yet: /readyz is 503 and the API answers 503 with
 * the reason until it does, checked every 5 s (SELECT 1). SIGTERM/SIGINT:
 * the listeners close, the client is released, exit 0.
 */
import type { Logger } from 'pino';
import type { AgentConfig } from '../config/schema.js';
import { HubMetrics } from '../hub/hub-metrics.js';
import { openHubStore, pricesOf } from '../hub/open.js';
import { registerApi } from '../server/api.js';
import { registerDiffApi } from '../server/diff.js';
import { startHttpServer } from '../server/http.js';
import { redactUrl } from '../sinks/clickhouse-client.js';
import { runAccessPolicy, tlsFiles } from './run-access.js';

const CHECK_EVERY_MS = 5_000;

export async function runHub(cfg: AgentConfig, log: Logger, opts: { stopOn?: Promise<unknown> } = {}): Promise<number> {
  // who may read the map, as for `bpfagent run` (server: token, open paths, TLS): refused before anything opens
  const access = runAccessPolicy(cfg);
  const store = openHubStore(cfg.hub);
  const startedAt = new Date().toISOString();
  let up = false;
  let lastError: string | undefined;
  const check = async (): Promise<void> => {
    const error = await store.ping();
    if ((error === undefined) !== up) log[error === undefined ? 'info' : 'warn']({ err: error }, error === undefined ? 'clickhouse answers' : `clickhouse does not answer: ${error}`);
    up = error === undefined;
    lastError = error;
  };
  const metrics = new HubMetrics(() => store.counters, () => up);
  const prices = pricesOf(cfg.hub);
  let server;
  try {
    server = await startHttpServer({
      host: cfg.listen.host,
      port: cfg.listen.port,
      metricsListen: cfg.metrics.listen,
      log,
      access,
      tls: tlsFiles(cfg),
      metrics: () => metrics.text(),
      readiness: () => ({ ready: up, checks: { clickhouse: up } }),
      routes: (app) => {
        registerApi(app, {
          store,
          clusters: true,
          pricePerGB: prices,
          status: () => ({ node: 'hub', hub: true, startedAt, clickhouseUp: up, ...(lastError ? { lastError } : {}), pricePerGB: prices }),
        });
        // the UI's Changes view, over the fleet's edges as /api/graph reads them
        registerDiffApi(app, { store, clusters: true });
      },
    });
  } catch (e) {
    await store.close();
    throw e;
  }
  await check();
  const timer = setInterval(() => void check(), CHECK_EVERY_MS);
  log.info(
    { listen: server.address, metricsListen: server.metricsAddress ?? null, clickhouse: redactUrl(cfg.hub.clickhouse.url), clickhouseUp: up },
    `ready: hub serving ${server.scheme}://${server.address} over ClickHouse (${up ? 'answering' : `not answering yet: ${lastError ?? ''}`})`,
  );
  const signalled = new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  const why = await Promise.race([signalled, opts.stopOn ?? new Promise<never>(() => {})]);
  clearInterval(timer);
  log.info({ signal: why }, 'hub stopping');
  await server.close();
  await store.close();
  log.info('hub stopped');
  return 0;
}
