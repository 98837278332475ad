/**
 * `bpfagent run`: the agent as a service. Probes -> records -> the flow table
 * (edges each interval -> Prometheus counters) and every configured sink;
 * HTTP for /metrics, /healthz and /readyz.
 *
 * Start-up order, so that nothing is half-started: configuration (already
 * validated by the caller), privileges, sinks made (their sections checked),
 * the HTTP listener bound (a port in use stops here, exit 2, before any
 * probe), enrichment, sinks started, probes attached, then "ready".
 * Stop (SIGTERM/SIGINT): not ready at once; probes detached and drained; the
 * last interval into metrics and sinks; every sink shut down in parallel
 * within `shutdownTimeout`; the listener closed; a summary logged; exit 0.
 */
import os from 'node:os';
import type { Logger } from 'pino';
import { checkPrivileges, Collector, runUntilSignalled } from '../agent/collector.js';
import { startEnrichment, type Enrichment } from '../agent/enrichment.js';
import { SinkSet } from '../agent/sink-set.js';
import type { AgentConfig } from '../config/schema.js';
import type { AgentRecord } from '../events/records.js';
import { EdgeTable, recordEnds } from '../flows/edge-table.js';
import { AgentMetrics } from '../metrics/metrics.js';
import { startHttpServer, type HttpServer } from '../server/http.js';
import { SINKS, type SinkRegistry } from '../sinks/registry.js';
import type { ShippedRecord } from '../sinks/sink.js';

/** How long start-up waits for the sinks to connect before going on (they keep trying). */
const SINK_START_WAIT_MS = 15_000;

export interface RunOptions {
  /** the sinks `cfg.sinks` may name (default: every sink of this build) */
  registry?: SinkRegistry;
  /** how long start-up waits for the sinks to start before announcing ready (default 15 s) */
  sinkStartWaitMs?: number;
}

export async function runAgent(cfg: AgentConfig, log: Logger, { registry = SINKS, sinkStartWaitMs = SINK_START_WAIT_MS }: RunOptions = {}): Promise<number> {
  checkPrivileges();
  const node = cfg.nodeName ?? process.env.NODE_NAME ?? os.hostname();
  const sinks = SinkSet.create(cfg.sinks as Record<string, unknown>, registry, { node, log, intervalMs: cfg.interval });
  const table = new EdgeTable(recordEnds, cfg.flows.maxEdges);
  let collector: Collector | undefined;
  let enrichment: Enrichment | undefined;
  let stopping = false;

  const metrics = new AgentMetrics({
    maxSeriesPerMetric: cfg.metrics.maxSeriesPerMetric,
    health: {
      collector: () => (collector?.info.attach !== undefined ? collector.stats() : {}),
      enrichment: () => enrichment?.stats() ?? {},
      sinks: () => sinks.stats(),
      flows: () => ({ tracked: table.size, overflowed: table.overflowed }),
    },
  });
  const probesAttached = (): boolean => collector?.info.attach !== undefined && !stopping;

  const server: HttpServer = await startHttpServer({
    host: cfg.listen.host,
    port: cfg.listen.port,
    log,
    metrics: async () => ({ text: await metrics.text(), contentType: metrics.contentType }),
    readiness: () => {
      const checks = { probes: probesAttached(), ...sinks.readiness() };
      return { ready: Object.values(checks).every(Boolean), checks };
    },
  });
  // (no "ready" in this line: whoever waits for the word must wait for the probes)
  log.info({ listen: server.address }, `HTTP listening on http://${server.address}: metrics, liveness and readiness endpoints`);

  // not ready from the first signal on; registered with runUntilSignalled's own handlers (until then a signal just ends start-up)
  const onSignal = (): void => void (stopping = true);

  try {
    enrichment = await startEnrichment({ kubeconfig: cfg.kubernetes.kubeconfig, clusterCidrs: cfg.kubernetes.clusterCidrs, nodeName: cfg.nodeName }, log);
    await sinks.start(sinkStartWaitMs);

    let intervalStart = Date.now();
    const onRecords = (records: AgentRecord[], intervalEnd: boolean): void => {
      metrics.addRecords(records);
      for (const r of records) table.add(r);
      if (sinks.sinks.length && records.length) sinks.export(ship(records, node, intervalStart, cfg.interval));
      if (intervalEnd) {
        metrics.addEdges(table.drain());
        intervalStart = Date.now();
      }
    };
    collector = new Collector(
      {
        attach: cfg.trace.attach,
        btf: cfg.trace.btf,
        maxConnections: cfg.trace.maxConnections,
        ringbufBytes: cfg.trace.ringbufSize,
        pollMs: cfg.trace.pollInterval,
        intervalMs: cfg.interval,
        maxUdpFlows: cfg.trace.maxUdpFlows,
        debug: cfg.trace.debug,
      },
      log,
      onRecords,
      enrichment.enricher,
    );
    Object.assign(collector.info, { node, listen: server.address, sinks: sinks.names, sinksReady: sinks.ready });
    const started = enrichment;
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    return await runUntilSignalled(
      collector,
      log,
      async () => {
        stopping = true;
        if (table.overflowed) log.warn({ edgesOverflowed: table.overflowed }, `${table.overflowed} records went to the overflow edge`);
        const outcome = await sinks.shutdown(cfg.shutdownTimeout);
        if (sinks.sinks.length) log.info({ sinks: outcome, stats: Object.fromEntries(sinks.stats().map((s) => [s.name, s.stats])) }, 'sinks shut down');
        await server.close();
      },
      undefined,
      started,
    );
  } catch (e) {
    // nothing half-started: undo what was started, then report
    stopping = true;
    await sinks.shutdown(Math.min(cfg.shutdownTimeout, 2000)).catch(() => undefined);
    await enrichment?.stop().catch(() => undefined);
    await server.close().catch(() => undefined);
    throw e;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

/**
 * Records as sinks take them. TCP and DNS records carry the interval in
 * progress (its start, and the configured length); a UDP record carries the
 * interval its counts cover.
 */
export function ship(records: readonly AgentRecord[], node: string, intervalStartMs: number, intervalMs: number): ShippedRecord[] {
  const start = new Date(intervalStartMs).toISOString();
  return records.map((r) =>
    r.proto === 'udp'
      ? { ...r, node, intervalStart: new Date(Date.parse(r.ts) - r.intervalMs).toISOString(), intervalMs: r.intervalMs }
      : { ...r, node, intervalStart: start, intervalMs },
  );
}
