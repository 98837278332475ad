/**
 * `bpfagent run`: the agent as a service. Probes -> records -> the flow table
 * (edges each interval -> Prometheus counters) and every configured sink;
 * HTTP for /metrics, /healthz and /readyz.
 *
 * Start-up order, so that nothing is half-started: configuration (already
 * validated by the caller), privileges, sinks made (their sections checked),
 * the HTTP listener bound (a port in use stops here, exit 2, before any
 * probe is attached), enrichment, sinks started, probes attached, then
 * "ready". The probes may load meanwhile (`probes`, begun by the caller).
 * Stop (SIGTERM/SIGINT): not ready at once; probes detached and drained; the
 * last interval into metrics and sinks; every sink shut down in parallel
 * within `shutdownTimeout`; the listener closed; a summary logged; exit 0.
 */
import os from 'node:os';
import type { Logger } from 'pino';
import { Collector, runUntilSignalled } from '../agent/collector.js';
import { checkPrivileges, discardProbes, type LoadedProbes } from '../bpf/probe-load.js';
import { startEnrichment, type Enrichment } from '../agent/enrichment.js';
import { SinkSet } from '../agent/sink-set.js';
import { StageGuard } from '../agent/stage-guard.js';
import { MonotonicClock } from '../util/clock.js';
import type { AgentConfig } from '../config/schema.js';
import type { AgentRecord } from '../events/records.js';
import { EdgeTable, recordEnds } from '../flows/edge-table.js';
import { AgentMetrics } from '../metrics/metrics.js';
import { registerApi } from '../server/api.js';
import { registerDiffApi } from '../server/diff.js';
import { QueryCache } from '../server/query-cache.js';
import type { AccessPolicy } from '../server/access.js';
import { startHttpServer, type HttpServer } from '../server/http.js';
import { runAccessPolicy, tlsFiles } from './run-access.js';
import type { FlowRecord } from '../store/flow-store.js';
import { openFlowStore } from '../store/open.js';
import { SINKS, type SinkRegistry } from '../sinks/registry.js';
import type { ShippedRecord } from '../sinks/sink.js';
import { collectorOptions } from './run-options.js';
import { lossStatus } from '../agent/loss-counters.js';

/** How long start-up waits for the sinks to connect before going on (they keep trying). */
const SINK_START_WAIT_MS = 15_000;

export interface RunOptions {
  /** the sinks `cfg.sinks` may name (default: every sink of this build) */
  registry?: SinkRegistry;
  /** how long start-up waits for the sinks to start before announcing ready (default 15 s) */
  sinkStartWaitMs?: number;
  /** the probes' loading, begun by the caller (see beginProbeLoad); default: loaded when the collector starts */
  probes?: Promise<LoadedProbes>;
  /** the listener's access policy, checked by the caller (default: made from cfg.server here) */
  access?: AccessPolicy;
}

export async function runAgent(cfg: AgentConfig, log: Logger, opts: RunOptions = {}): Promise<number> {
  const handover = { done: false };
  try {
    return await startAndRun(cfg, log, opts, handover);
  } catch (e) {
    // loaded for a collector that never started: nobody else will close them
    if (opts.probes && !handover.done) discardProbes(opts.probes);
    throw e;
  }
}

async function startAndRun(
  cfg: AgentConfig,
  log: Logger,
  { registry = SINKS, sinkStartWaitMs = SINK_START_WAIT_MS, probes, access = runAccessPolicy(cfg) }: RunOptions,
  handover: { done: boolean },
): Promise<number> {
  checkPrivileges();
  const node = cfg.nodeName ?? process.env.NODE_NAME ?? os.hostname();
  const sinks = await SinkSet.create(cfg.sinks as Record<string, unknown>, registry, { cluster: cfg.clusterName, node, log, intervalMs: cfg.interval });
  const table = new EdgeTable(recordEnds, cfg.flows.maxEdges);
  const store = openFlowStore(cfg.store, log);
  const startedAt = new Date().toISOString();
  // the interval's connection records for the store, at most maxConnections (the newest), the rest counted
  let intervalRecords: FlowRecord[] = [];
  let intervalRecordsDropped = 0;
  let collector: Collector | undefined;
  let enrichment: Enrichment | undefined;
  let stopping = false;
  let stopped = false;
  const guard = new StageGuard(log);
  // the API's answers, computed at most once per interval and key (the store changes at interval ends)
  const queries = new QueryCache({ ttlMs: cfg.interval, version: () => store.version });

  const metrics = new AgentMetrics({
    maxSeriesPerMetric: cfg.metrics.maxSeriesPerMetric,
    health: {
      collector: () => (collector?.info.attach !== undefined ? collector.stats() : {}),
      enrichment: () => enrichment?.stats() ?? {},
      sinks: () => sinks.stats(),
      flows: () => ({ tracked: table.size, overflowed: table.overflowed }),
      httpRefused: () => server?.accessStats.refused ?? {},
      pipelineErrors: () => guard.errors,
      api: () => queries.stats,
    },
  });
  const probesAttached = (): boolean => collector?.info.attach !== undefined && !stopping;

  // read by the metrics (refused requests) before it is assigned
  let server: HttpServer | undefined;
  server = await startHttpServer({
    host: cfg.listen.host,
    port: cfg.listen.port,
    metricsListen: cfg.metrics.listen,
    log,
    access,
    tls: tlsFiles(cfg),
    metrics: async () => ({ text: await metrics.text(), contentType: metrics.contentType }),
    readiness: () => {
      // tracing: false once the ring buffer's reader has failed (the probes are attached, but nothing is read)
      const checks = { probes: probesAttached(), tracing: collector?.tracing ?? true, ...sinks.readiness() };
      return { ready: Object.values(checks).every(Boolean), checks };
    },
    routes: (app) => {
      registerApi(app, {
        store,
        cache: queries,
        status: () => {
          const info = collector?.info ?? {};
          const kube = enrichment?.kube;
          return {
            node,
            startedAt,
            attach: info.attach ?? null,
            programs: info.programs ?? null,
            features: info.features ?? null,
            udp: info.udp ?? false,
            dns: info.dns ?? false,
            hooks: info.hooks ?? null,
            missing: info.missing ?? [],
            kubernetes: { enabled: !!kube, synced: kube?.synced ?? false, ...(kube?.stats ?? {}) },
            loss: collector?.info.attach !== undefined && !stopped ? collector.stats() : {},
            // what "lost" means (src/agent/loss-counters.ts): the total the UI shows, and each reason
            lost: lossStatus(collector?.info.attach !== undefined && !stopped ? collector.stats() : {}),
            tracing: { ok: collector?.tracing ?? true, error: collector?.tracingError ?? null },
            sinks: Object.fromEntries(sinks.stats().map((s) => [s.name, { ready: s.ready, ...s.stats }])),
            flows: { tracked: table.size, overflowed: table.overflowed },
            api: { ...queries.stats, computeMs: Math.round(queries.stats.computeMs), cachedAnswers: queries.size },
          };
        },
      });
      registerDiffApi(app, { store, cache: queries });
    },
  });
  // (no "ready" in this line: whoever waits for the word must wait for the probes)
  log.info(
    { listen: server.address, metricsListen: server.metricsAddress ?? null, tls: server.scheme === 'https', token: cfg.server.tokenFile !== null },
    server.metricsAddress
      ? `HTTP listening on ${server.scheme}://${server.address}: API, web UI, liveness and readiness; metrics on ${server.scheme}://${server.metricsAddress}`
      : `HTTP listening on ${server.scheme}://${server.address}: API, web UI, metrics, liveness and readiness endpoints`,
  );

  // not ready from the first signal on; registered with runUntilSignalled's own handlers (until then a signal just ends start-up)
  const onSignal = (): void => void (stopping = true);

  try {
    enrichment = await startEnrichment(
      {
        kubeconfig: cfg.kubernetes.kubeconfig,
        clusterCidrs: cfg.kubernetes.clusterCidrs,
        nodeName: cfg.nodeName,
        kubeWatch: cfg.kubernetes.watch,
        cgroupScope: cfg.trace.cgroup,
        redactCmdline: cfg.privacy.redactCmdline,
      },
      log,
    );
    // neither the sinks nor the Kubernetes lists hold tracing up: the probes attach now, the ready line waits (bounded)
    const sinksStarted = sinks.start(sinkStartWaitMs);
    sinksStarted.catch(() => undefined); // awaited below, after the probes are attached

    // internal time (monotonic, util/clock.ts): interval lengths never jump; what is shipped is on the wall clock
    const clock = new MonotonicClock();
    let intervalStart = clock.nowMs();
    // every stage guarded: an exception in one costs that stage its batch (counted), never the agent
    const onRecords = (records: AgentRecord[], intervalEnd: boolean): void => {
      guard.run('metrics', () => metrics.addRecords(records));
      for (const r of records) {
        try {
          table.add(r);
        } catch (e) {
          guard.caught('flows', e);
        }
        if (r.proto !== 'dns' && store.bounds.maxConnections > 0) intervalRecords.push(r);
      }
      if (intervalRecords.length > 2 * store.bounds.maxConnections) {
        const cut = intervalRecords.length - store.bounds.maxConnections;
        intervalRecords = intervalRecords.slice(cut);
        intervalRecordsDropped += cut;
      }
      if (sinks.sinks.length && records.length)
        guard.run('sink', () =>
          sinks.export(ship(records, { cluster: cfg.clusterName, node }, clock.wallMs(intervalStart), cfg.interval), (name, e) => guard.caught('sink', e, `sink ${name}`)),
        );
      if (intervalEnd) {
        const edges = guard.run('flows', () => table.drain()) ?? [];
        guard.run('metrics', () => metrics.addEdges(edges));
        const end = clock.nowMs();
        guard.run('store', () => store.addInterval(clock.wallMs(end), end - intervalStart, edges, intervalRecords, intervalRecordsDropped));
        intervalRecords = [];
        intervalRecordsDropped = 0;
        intervalStart = end;
      }
    };
    collector = new Collector(collectorOptions(cfg), log, onRecords, enrichment.enricher, enrichment.scope, guard, clock);
    Object.assign(collector.info, {
      node,
      listen: server.address,
      url: `${server.scheme}://${server.address}`,
      metricsListen: server.metricsAddress ?? null,
      sinks: sinks.names,
      sinksReady: sinks.ready,
    });
    const started = enrichment;
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    handover.done = true; // the collector owns the probes from here on
    return await runUntilSignalled(
      collector,
      log,
      async () => {
        stopping = true;
        stopped = true; // the collector is closed: its counters are gone
        if (table.overflowed) log.warn({ edgesOverflowed: table.overflowed }, `${table.overflowed} records went to the overflow edge`);
        const outcome = await sinks.shutdown(cfg.shutdownTimeout);
        if (sinks.sinks.length) log.info({ sinks: outcome, stats: Object.fromEntries(sinks.stats().map((s) => [s.name, s.stats])) }, 'sinks shut down');
        await server.close();
        store.close();
      },
      undefined,
      started,
      probes,
      Promise.all([sinksStarted, started.synced]),
    );
  } catch (e) {
    // nothing half-started: undo what was started, then report
    stopping = true;
    await sinks.shutdown(Math.min(cfg.shutdownTimeout, 2000)).catch(() => undefined);
    await enrichment?.stop().catch(() => undefined);
    await server.close().catch(() => undefined);
    store.close();
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
export function ship(records: readonly AgentRecord[], where: { cluster: string | null; node: string }, intervalStartMs: number, intervalMs: number): ShippedRecord[] {
  const start = new Date(intervalStartMs).toISOString();
  const { cluster, node } = where;
  return records.map((r) =>
    r.proto === 'udp'
      ? { ...r, cluster, node, intervalStart: new Date(Date.parse(r.ts) - r.intervalMs).toISOString(), intervalMs: r.intervalMs }
      : { ...r, cluster, node, intervalStart: start, intervalMs },
  );
}
