/**
 * The OTLP sink: OTLP over HTTP with protobuf payloads, through the
 * OpenTelemetry JS SDK and its exporters. Two signals:
 *
 * - logs: one log record per shipped record. Its body is the record's JSON
 *   text, exactly the JSON-lines sink's line (the `trace --json` schema plus
 *   node and interval), so every sink carries one schema; a few attributes
 *   are copied out for filtering (`bpfagent.proto`, `bpfagent.source`,
 *   `bpfagent.destination`). Time is the record's `ts`.
 * - metrics: cumulative counters per edge (source, destination, server port,
 *   proto, observing side), exported every `metricsIntervalMs` and on flush.
 *
 * Resource: service.name=bpfagent, host.name=<node>, k8s.cluster.name=<clusterName> when set, plus the SDK's
 * telemetry.sdk.* attributes.
 *
 * Logs go through BatchingSink, which bounds the queue, batches, retries with
 * back-off and counts drops: a log batch is emitted through the SDK's logger
 * and handed straight to the OTLP log exporter (no BatchLogRecordProcessor,
 * whose queue would drop silently behind our back). Network errors, timeouts
 * and the statuses OTLP calls retryable (429, 502, 503, 504) are retried;
 * any other HTTP status (400, 401, 403, 404, 413, 500, ...) means the
 * receiver will not take that batch: it is dropped, counted, and its status
 * kept in lastError, as the OTLP specification asks.
 *
 * Metrics are counted when records are exported (never dropped with the log
 * queue). The SDK bounds their memory: at most 2000 attribute sets per
 * instrument, the rest folded into one `otel.metric.overflow` series. A
 * failed metric export is not queued: the next export carries the
 * cumulative totals.
 */
import { hostname } from 'node:os';
import { ValueType, type Attributes, type Counter } from '@opentelemetry/api';
import { SeverityNumber, type Logger } from '@opentelemetry/api-logs';
import { LoggerProvider, type LogRecordProcessor, type ReadableLogRecord, type SdkLogRecord } from '@opentelemetry/sdk-logs';
import { MeterProvider, PeriodicExportingMetricReader, type AggregationTemporality, type InstrumentType, type PushMetricExporter, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { BatchingSink } from './batching-sink.js';
import { shippedLine } from './jsonl.js';
import { recordEnds } from '../flows/edge-table.js';
import type { ShippedRecord, SinkStats } from './sink.js';

import { otlpSinkSchema, type OtlpSinkConfig, type OtlpSinkOptions } from './sink-configs.js';

const SUCCESS = 0; // ExportResultCode.SUCCESS (@opentelemetry/core)

/** Catches what the logger emits, synchronously, for send() to export itself. */
class Catcher implements LogRecordProcessor {
  caught: ReadableLogRecord[] | undefined;
  onEmit(r: SdkLogRecord): void {
    this.caught?.push(r as unknown as ReadableLogRecord);
  }
  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

/** The ends of a record's edge and the caller's side. */
function edgeOf(r: ShippedRecord): { source: string; destination: string; port: number; clientIsLocal: boolean } | undefined {
  if (r.proto === 'dns') return undefined;
  const clientIsLocal = r.direction === 'outbound';
  const { source, destination } = recordEnds(r, clientIsLocal);
  const port = clientIsLocal ? (r.remote.reached?.port ?? r.remote.port) : r.local.port;
  return { source: source.id, destination: destination.id, port, clientIsLocal };
}

/** A metric exporter that counts its failures. */
class CountingExporter implements PushMetricExporter {
  failures = 0;
  lastError: string | undefined;
  constructor(private readonly inner: OTLPMetricExporter) {}
  export(metrics: ResourceMetrics, done: (r: { code: number; error?: Error }) => void): void {
    this.inner.export(metrics, (r) => {
      if (r.code !== SUCCESS) {
        this.failures++;
        this.lastError = `metrics: ${r.error?.message ?? 'export failed'}`;
      }
      done(r);
    });
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
  selectAggregationTemporality(t: InstrumentType): AggregationTemporality {
    return this.inner.selectAggregationTemporality(t);
  }
}

export class OtlpSink extends BatchingSink {
  readonly name: string;
  private readonly loggerProvider: LoggerProvider | undefined;
  private readonly logger: Logger | undefined;
  private readonly catcher = new Catcher();
  private readonly logExporter: OTLPLogExporter | undefined;
  private readonly meterProvider: MeterProvider | undefined;
  private readonly metricExporter: CountingExporter | undefined;
  private counters: Record<'connections' | 'bytesSent' | 'bytesReceived' | 'packetsSent' | 'packetsReceived' | 'retransmits' | 'dnsLookups', Counter> | undefined;
  /** records the receiver refused for good (non-retryable status) */
  private rejected = 0;
  private lastErr: string | undefined;

  private readonly config: OtlpSinkConfig;

  /**
   * `ctx.node`: the node name, resource attribute host.name (the host name unless given);
   * `ctx.cluster`: the cluster name, resource attribute k8s.cluster.name (none when null)
   */
  constructor(options: OtlpSinkOptions = {}, ctx: { node?: string; cluster?: string | null } = {}) {
    const config = otlpSinkSchema.parse(options);
    super(config.batching);
    this.config = config;
    const node = ctx.node ?? hostname();
    this.name = `otlp:${config.endpoint}`;
    const base = config.endpoint.replace(/\/+$/, '');
    const resource = defaultResource().merge(resourceFromAttributes({ 'service.name': 'bpfagent', 'host.name': node, ...(ctx.cluster ? { 'k8s.cluster.name': ctx.cluster } : {}) }));
    const http = { headers: config.headers, timeoutMillis: config.timeoutMs, concurrencyLimit: 1 };
    if (config.logs) {
      this.logExporter = new OTLPLogExporter({ url: `${base}/v1/logs`, ...http });
      this.loggerProvider = new LoggerProvider({ resource, processors: [this.catcher] });
      this.logger = this.loggerProvider.getLogger('bpfagent');
    }
    if (config.metrics) {
      this.metricExporter = new CountingExporter(new OTLPMetricExporter({ url: `${base}/v1/metrics`, ...http }));
      this.meterProvider = new MeterProvider({
        resource,
        readers: [
          new PeriodicExportingMetricReader({
            exporter: this.metricExporter,
            exportIntervalMillis: config.metricsIntervalMs,
            exportTimeoutMillis: Math.min(config.timeoutMs, config.metricsIntervalMs),
          }),
        ],
      });
      const meter = this.meterProvider.getMeter('bpfagent');
      const counter = (name: string, unit: string, description: string) => meter.createCounter(name, { unit, description, valueType: ValueType.INT });
      this.counters = {
        connections: counter('bpfagent.flow.connections', '{connection}', 'TCP connections and attempts, by outcome (failed: refused, timeout, reset)'),
        bytesSent: counter('bpfagent.flow.bytes_sent', 'By', 'payload bytes the caller (source) sent'),
        bytesReceived: counter('bpfagent.flow.bytes_received', 'By', 'payload bytes the caller (source) received'),
        packetsSent: counter('bpfagent.flow.packets_sent', '{packet}', 'UDP datagrams the caller (source) sent'),
        packetsReceived: counter('bpfagent.flow.packets_received', '{packet}', 'UDP datagrams the caller (source) received'),
        retransmits: counter('bpfagent.flow.retransmits', '{segment}', 'TCP segments retransmitted'),
        dnsLookups: counter('bpfagent.dns.lookups', '{lookup}', 'DNS lookups by local clients, by answer code'),
      };
    }
  }

  protected async open(): Promise<void> {}

  override export(batch: readonly ShippedRecord[]): void {
    if (this.counters) for (const r of batch) this.count(r);
    if (this.logger) super.export(batch);
  }

  private count(r: ShippedRecord): void {
    const c = this.counters!;
    if (r.proto === 'dns') {
      c.dnsLookups.add(1, { source: sourceOfDns(r), rcode: r.rcode, qtype: r.qtype });
      return;
    }
    const e = edgeOf(r)!;
    const attrs: Attributes = { proto: r.proto, source: e.source, destination: e.destination, port: e.port, observed_by: e.clientIsLocal ? 'client' : 'server' };
    const [sent, received] = e.clientIsLocal ? [r.bytesSent, r.bytesReceived] : [r.bytesReceived, r.bytesSent];
    if (sent) c.bytesSent.add(sent, attrs);
    if (received) c.bytesReceived.add(received, attrs);
    if (r.proto === 'tcp') {
      if (r.outcome !== undefined) c.connections.add(1, { ...attrs, outcome: r.outcome }); // once, at its end
      if (r.retransmits) c.retransmits.add(r.retransmits, attrs);
    } else {
      const [ps, pr] = e.clientIsLocal ? [r.packetsSent, r.packetsReceived] : [r.packetsReceived, r.packetsSent];
      if (ps) c.packetsSent.add(ps, attrs);
      if (pr) c.packetsReceived.add(pr, attrs);
    }
  }

  protected async send(batch: ShippedRecord[]): Promise<void> {
    const caught: ReadableLogRecord[] = [];
    this.catcher.caught = caught;
    try {
      for (const r of batch) {
        const e = edgeOf(r);
        this.logger!.emit({
          timestamp: new Date(r.ts),
          severityNumber: SeverityNumber.INFO,
          severityText: 'INFO',
          eventName: `bpfagent.${r.proto}`,
          body: shippedLine(r).slice(0, -1),
          attributes: {
            'bpfagent.proto': r.proto,
            'bpfagent.source': e?.source ?? sourceOfDns(r as Extract<ShippedRecord, { proto: 'dns' }>),
            ...(e ? { 'bpfagent.destination': e.destination } : {}),
          },
        });
      }
    } finally {
      this.catcher.caught = undefined;
    }
    const result = await new Promise<{ code: number; error?: Error }>((resolve) => this.logExporter!.export(caught, resolve));
    if (result.code === SUCCESS) return;
    const status = (result.error as { code?: unknown } | undefined)?.code;
    const message = result.error?.message || 'export failed';
    if (typeof status === 'number' && status >= 300 && ![429, 502, 503, 504].includes(status)) {
      // the receiver refused this batch for good: do not retry it forever
      this.rejected += batch.length;
      this.lastErr = `logs: HTTP ${status} ${message}; ${batch.length} records dropped`;
      return;
    }
    this.lastErr = `logs: ${message}`;
    throw new Error(this.lastErr);
  }

  /** Deliver queued logs, then export the metrics. */
  override async flush(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await super.flush(timeoutMs);
    if (this.meterProvider) await withTimeout(this.meterProvider.forceFlush({ timeoutMillis: Math.max(1, deadline - Date.now()) }), deadline);
  }

  /** After shutdown's flush: a last metrics export, bounded (1 s), so shutdown stays within its budget. */
  protected async close(): Promise<void> {
    const deadline = Date.now() + Math.min(1000, this.config.timeoutMs);
    await withTimeout(
      Promise.allSettled([
        this.meterProvider?.shutdown({ timeoutMillis: Math.max(1, deadline - Date.now()) }),
        this.loggerProvider?.shutdown(),
        this.logExporter?.shutdown(),
      ]).then(() => {}),
      deadline,
    );
  }

  override stats(): SinkStats {
    const s = super.stats();
    const metricErr = this.metricExporter?.lastError;
    const lastError = this.lastErr ?? metricErr;
    return {
      exported: s.exported - this.rejected,
      dropped: s.dropped + this.rejected,
      queued: s.queued,
      failures: s.failures + (this.metricExporter?.failures ?? 0),
      ...(lastError !== undefined ? { lastError } : {}),
    };
  }
}

function sourceOfDns(r: Extract<ShippedRecord, { proto: 'dns' }>): string {
  const k = r.local.k8s;
  return k?.workload !== undefined ? `${k.namespace ?? ''}/${k.workload}` : `process:${r.local.comm}`;
}

async function withTimeout(p: Promise<void>, deadline: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => {}), new Promise<void>((r) => (t = setTimeout(r, Math.max(0, deadline - Date.now()))))]);
  clearTimeout(t);
}

/** `sinks.otlp` in the configuration of `bpfagent run`. */
