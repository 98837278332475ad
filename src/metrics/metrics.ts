/**
 * Every Prometheus metric `bpfagent run` serves on /metrics, in one place.
 *
 * Traffic metrics are counters fed each interval from the flow table's
 * drained edges (each edge's counts are that interval's deltas) and from DNS
 * records; their label sets are bounded per family (`maxSeriesPerMetric`),
 * past which values go to a series labelled "(overflow)", counted in
 * bpfagent_metrics_overflow_total. The agent's own health is read at scrape
 * time from the collector, the enrichment caches and the sinks, plus
 * prom-client's process metrics (CPU, memory, ...) prefixed `bpfagent_`.
 */
import { collectDefaultMetrics, Registry, type Metric } from 'prom-client';
import type { AgentRecord } from '../events/records.js';
import type { Edge } from '../flows/edge-table.js';
import { RTT_BOUNDS_US } from '../flows/histogram.js';
import type { SinkStats } from '../sinks/sink.js';
import { BoundedCounter, BoundedHistogram, CallbackFamily, OVERFLOW, type Bounded } from './families.js';
import { LOSS_COUNTERS } from '../agent/loss-counters.js';

export const DEFAULT_MAX_SERIES_PER_METRIC = 2_000;

/** Labels of every per-edge metric (see docs/metrics.md). */
export const EDGE_LABELS = [
  'source',
  'source_namespace',
  'destination',
  'destination_namespace',
  'destination_service',
  'port',
  'protocol',
  'locality',
  'observed_by',
] as const;

export type EdgeLabels = Record<(typeof EDGE_LABELS)[number], string>;

export function edgeLabels(e: Edge): EdgeLabels {
  return {
    source: e.source.id,
    source_namespace: e.source.namespace ?? '',
    destination: e.destination.id,
    destination_namespace: e.destination.namespace ?? '',
    destination_service: e.destination.service ?? '',
    port: e.source.id === OVERFLOW ? OVERFLOW : String(e.port),
    protocol: e.proto,
    locality: e.locality ?? '',
    observed_by: e.observedBy,
  };
}

/** Where the health metrics are read from at scrape time; each is optional. */
export interface HealthSources {
  /** Collector.stats(): records made and lost */
  collector?: () => Record<string, number>;
  /** Enrichment.stats(): cache sizes */
  enrichment?: () => Record<string, number>;
  sinks?: () => ReadonlyArray<{ name: string; ready: boolean; stats: SinkStats }>;
  /** edges in the flow table now, records folded into its overflow edge since start */
  flows?: () => { tracked: number; overflowed: number };
  /** HTTP requests refused by the access checks, by reason */
  httpRefused?: () => Record<string, number>;
  /** exceptions caught in the per-batch path, by stage (StageGuard) */
  pipelineErrors?: () => Readonly<Record<string, number>>;
  /** the API's query cache (QueryCache.stats) */
  api?: () => { computed: number; cached: number; shared: number; busy: number; computeMs: number };
}

export interface MetricsOptions {
  maxSeriesPerMetric?: number;
  health?: HealthSources;
  /** prom-client's process metrics (default on) */
  processMetrics?: boolean;
}

/** collector stats key -> `kind` label of bpfagent_events_read_total */
const READ_KINDS: Record<string, string> = {
  records: 'tcp_connection',
  tcpOpenRecords: 'tcp_open_connection',
  udpRecords: 'udp_flow',
  dnsPackets: 'dns_packet',
};

/** enrichment / collector stats key -> `cache` label of bpfagent_enrichment_cache_entries */
const CACHES: Record<string, string> = {
  processCacheSize: 'process',
  containerCacheSize: 'cgroup',
  hostAddresses: 'host_address',
  nameCacheSize: 'dns_name',
};

export class AgentMetrics {
  readonly registry = new Registry();
  readonly maxSeriesPerMetric: number;
  private readonly overflows = new Map<string, number>();
  private readonly bounded: Bounded[] = [];

  readonly tcpConnections: BoundedCounter;
  readonly tcpFailed: BoundedCounter;
  readonly tcpBytes: BoundedCounter;
  readonly tcpRetransmits: BoundedCounter;
  readonly tcpRtt: BoundedHistogram;
  readonly udpPackets: BoundedCounter;
  readonly udpBytes: BoundedCounter;
  readonly dnsLookups: BoundedCounter;
  readonly dnsFailures: BoundedCounter;

  constructor(opts: MetricsOptions = {}) {
    const limit = (this.maxSeriesPerMetric = opts.maxSeriesPerMetric ?? DEFAULT_MAX_SERIES_PER_METRIC);
    const overflow = (family: string): void => void this.overflows.set(family, (this.overflows.get(family) ?? 0) + 1);
    const counter = (name: string, help: string, labels: readonly string[]): BoundedCounter =>
      this.add(new BoundedCounter(name, help, labels, limit, overflow));

    this.tcpConnections = counter('bpfagent_tcp_connections_total', 'TCP connections and attempts, counted when they end, per edge', EDGE_LABELS);
    this.tcpFailed = counter(
      'bpfagent_tcp_connections_failed_total',
      'TCP connections that failed, per edge and outcome: refused (RST to the SYN), timeout (unanswered), reset (RST after establishment)',
      [...EDGE_LABELS, 'outcome'],
    );
    this.tcpBytes = counter(
      'bpfagent_tcp_bytes_total',
      'TCP payload bytes per edge, in the interval they moved (open connections too); direction "sent" is from source (caller) to destination (callee), "received" back',
      [...EDGE_LABELS, 'direction'],
    );
    this.tcpRetransmits = counter('bpfagent_tcp_retransmits_total', 'TCP segments retransmitted, per edge', EDGE_LABELS);
    this.tcpRtt = this.add(
      new BoundedHistogram(
        'bpfagent_tcp_rtt_seconds',
        'Smoothed round-trip time of TCP connections at their end, per edge',
        EDGE_LABELS,
        RTT_BOUNDS_US.map((us) => us / 1e6),
        limit,
        overflow,
      ),
    );
    this.udpPackets = counter('bpfagent_udp_packets_total', 'UDP datagrams per edge; direction as for bytes', [...EDGE_LABELS, 'direction']);
    this.udpBytes = counter(
      'bpfagent_udp_bytes_total',
      'UDP payload bytes per edge; direction "sent" is from source (the client: the end that sent the flow\'s first datagram) to destination',
      [...EDGE_LABELS, 'direction'],
    );
    this.dnsLookups = counter('bpfagent_dns_lookups_total', 'DNS lookups made by local clients, by name asked and record type', ['name', 'qtype']);
    this.dnsFailures = counter(
      'bpfagent_dns_failures_total',
      'DNS lookups that failed (any rcode but NOERROR, TIMEOUT when unanswered), by name and rcode',
      ['name', 'qtype', 'rcode'],
    );

    this.callback('bpfagent_metrics_overflow_total', `Updates that went to a metric's "(overflow)" series, past ${limit} label sets`, 'counter', () =>
      [...this.overflows].map(([metric, value]) => ({ labels: { metric }, value })),
    );
    this.callback('bpfagent_metrics_series', 'Label sets (series) held per bounded metric', 'gauge', () =>
      this.bounded.map((b) => ({ labels: { metric: b.name }, value: b.seriesCount })),
    );
    this.health(opts.health ?? {});
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'bpfagent_' });
  }

  private add<T extends Bounded>(m: T): T {
    this.bounded.push(m);
    this.registry.registerMetric(m as unknown as Metric);
    return m;
  }

  private callback(name: string, help: string, type: 'counter' | 'gauge', read: () => Array<{ labels?: Record<string, string>; value: number }>): void {
    this.registry.registerMetric(new CallbackFamily(name, help, type, read) as unknown as Metric);
  }

  private health(h: HealthSources): void {
    const pick = (src: (() => Record<string, number>) | undefined, keys: Record<string, string>, label: string) => () => {
      const s = src?.() ?? {};
      return Object.entries(keys)
        .filter(([k]) => s[k] !== undefined)
        .map(([k, v]) => ({ labels: { [label]: v }, value: s[k]! }));
    };
    this.callback('bpfagent_events_read_total', 'Records read from the kernel and decoded, by kind', 'counter', pick(h.collector, READ_KINDS, 'kind'));
    this.callback(
      'bpfagent_events_lost_total',
      `Events the agent saw but could not report (or reported incompletely), by reason and the side that counts it (kernel or agent): ${LOSS_COUNTERS.map((c) => `${c.reason}: ${c.help}`).join('; ')}`,
      'counter',
      () => {
        const s = h.collector?.() ?? {};
        return LOSS_COUNTERS.filter((c) => s[c.key] !== undefined).map((c) => ({ labels: { reason: c.reason, side: c.side }, value: s[c.key]! }));
      },
    );
    this.callback('bpfagent_tracing', 'Whether TCP tracing goes on (1) or stopped (0: reading the ring buffer failed; see the log)', 'gauge', () => {
      const v = h.collector?.().tracingStopped;
      return v === undefined ? [] : [{ value: v ? 0 : 1 }];
    });
    this.callback('bpfagent_tcp_untracked_closes_total', 'Connections opened before the agent started, not reported', 'counter', () => {
      const v = h.collector?.().untrackedClose;
      return v === undefined ? [] : [{ value: v }];
    });
    this.callback('bpfagent_clock_steps_total', 'Wall-clock steps (set back or forward by 1 s or more against the monotonic clock) the agent followed', 'counter', () => {
      const v = h.collector?.().clockSteps;
      return v === undefined ? [] : [{ value: v }];
    });
    this.callback('bpfagent_dns_lookups_seen_total', 'DNS lookups paired (query with answer or timeout)', 'counter', () => {
      const v = h.collector?.().dnsLookups;
      return v === undefined ? [] : [{ value: v }];
    });
    this.callback('bpfagent_enrichment_cache_entries', 'Entries in the enrichment caches: process, cgroup, host_address, dns_name', 'gauge', () => [
      ...pick(h.enrichment, CACHES, 'cache')(),
      ...pick(h.collector, CACHES, 'cache')(),
    ]);
    this.callback('bpfagent_flows_tracked', "Edges in the flow table's current interval", 'gauge', () => {
      const f = h.flows?.();
      return f ? [{ value: f.tracked }] : [];
    });
    this.callback('bpfagent_flows_overflowed_total', "Records folded into the flow table's overflow edge (past flows.maxEdges)", 'counter', () => {
      const f = h.flows?.();
      return f ? [{ value: f.overflowed }] : [];
    });
    this.callback('bpfagent_http_requests_refused_total', 'HTTP requests refused: host (a Host header not naming loopback, on a loopback listener), token (missing or wrong bearer token)', 'counter', () =>
      Object.entries(h.httpRefused?.() ?? {}).map(([reason, value]) => ({ labels: { reason }, value })),
    );
    this.callback(
      'bpfagent_pipeline_errors_total',
      'Exceptions caught in the per-batch path, by stage (decode, enrich, interval, metrics, flows, store, sink, deliver): what that stage did for the batch (or record) is lost; tracing goes on',
      'counter',
      () => Object.entries(h.pipelineErrors?.() ?? {}).map(([stage, value]) => ({ labels: { stage }, value })),
    );
    this.callback('bpfagent_api_queries_total', 'API queries (/api/graph, edges, external, localities) by answer: computed, cached (from an earlier computation in the interval), shared (a computation under way), busy (503)', 'counter', () => {
      const a = h.api?.();
      return a ? (['computed', 'cached', 'shared', 'busy'] as const).map((answer) => ({ labels: { answer }, value: a[answer] })) : [];
    });
    this.callback('bpfagent_api_query_compute_seconds_total', 'Time the event loop spent computing and serialising API answers', 'counter', () => {
      const a = h.api?.();
      return a ? [{ value: a.computeMs / 1000 }] : [];
    });
    const sinks = (field: keyof SinkStats) => () =>
      (h.sinks?.() ?? []).map((s) => ({ labels: { sink: s.name }, value: Number(s.stats[field] ?? 0) }));
    this.callback('bpfagent_sink_queue_depth', 'Records waiting in each sink', 'gauge', sinks('queued'));
    this.callback('bpfagent_sink_exported_total', 'Records each sink delivered', 'counter', sinks('exported'));
    this.callback('bpfagent_sink_dropped_total', 'Records each sink dropped (queue full, or given up on at shutdown)', 'counter', sinks('dropped'));
    this.callback('bpfagent_sink_failures_total', 'Failed delivery attempts per sink (each retried)', 'counter', sinks('failures'));
    this.callback('bpfagent_sink_ready', 'Whether each sink is initialised (1) or not (0)', 'gauge', () =>
      (h.sinks?.() ?? []).map((s) => ({ labels: { sink: s.name }, value: s.ready ? 1 : 0 })),
    );
  }

  /** One interval's drained edges: counters add each edge's counts. */
  addEdges(edges: readonly Edge[]): void {
    for (const e of edges) {
      const l = edgeLabels(e);
      if (e.proto === 'tcp') {
        this.tcpConnections.inc(l, e.connections);
        for (const outcome of ['refused', 'timeout', 'reset'] as const)
          if (e.failed[outcome] > 0) this.tcpFailed.inc({ ...l, outcome }, e.failed[outcome]);
        this.tcpBytes.inc({ ...l, direction: 'sent' }, e.bytesSent);
        this.tcpBytes.inc({ ...l, direction: 'received' }, e.bytesReceived);
        this.tcpRetransmits.inc(l, e.retransmits);
        if (e.rttUs.count > 0) this.tcpRtt.add(l, e.rttUs.counts, e.rttUs.sum / 1e6, e.rttUs.count);
      } else {
        this.udpPackets.inc({ ...l, direction: 'sent' }, e.packetsSent);
        this.udpPackets.inc({ ...l, direction: 'received' }, e.packetsReceived);
        this.udpBytes.inc({ ...l, direction: 'sent' }, e.bytesSent);
        this.udpBytes.inc({ ...l, direction: 'received' }, e.bytesReceived);
      }
    }
  }

  /** Records as they come: DNS lookups count here (connections and flows go through the flow table). */
  addRecords(records: readonly AgentRecord[]): void {
    for (const r of records) {
      if (r.proto !== 'dns') continue;
      const l = { name: r.query, qtype: r.qtype };
      this.dnsLookups.inc(l, 1);
      if (r.rcode !== 'NOERROR') this.dnsFailures.inc({ ...l, rcode: r.rcode }, 1);
    }
  }

  /** Updates that went to overflow series, per family. */
  overflowCount(family: string): number {
    return this.overflows.get(family) ?? 0;
  }

  /** The exposition text for /metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
