/**
 * An OTLP/HTTP receiver on 127.0.0.1: POST /v1/logs and /v1/metrics with
 * `content-type: application/x-protobuf` (gzip content-encoding accepted),
 * each body decoded by protobufjs as an ExportLogsServiceRequest or
 * ExportMetricsServiceRequest and kept; answered with an empty protobuf
 * Export*ServiceResponse (full success), or with a status set by the test.
 *
 * The schema below is the part of opentelemetry-proto (v1) these messages
 * use, with its field numbers; fields it leaves out (exemplars, exponential
 * histograms, summaries, trace context of logs) are skipped by the decoder as
 * unknown fields.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';
import protobuf from 'protobufjs';
import { closeServer, listenLocal } from './listen.js';

const OTLP_PROTO = `
syntax = "proto3";
package otlp;

message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }

message ExportLogsServiceRequest { repeated ResourceLogs resource_logs = 1; }
message ResourceLogs { Resource resource = 1; repeated ScopeLogs scope_logs = 2; string schema_url = 3; }
message ScopeLogs { InstrumentationScope scope = 1; repeated LogRecord log_records = 2; string schema_url = 3; }
message LogRecord {
  fixed64 time_unix_nano = 1;
  fixed64 observed_time_unix_nano = 11;
  int32 severity_number = 2;
  string severity_text = 3;
  AnyValue body = 5;
  repeated KeyValue attributes = 6;
  uint32 dropped_attributes_count = 7;
  fixed32 flags = 8;
  bytes trace_id = 9;
  bytes span_id = 10;
  string event_name = 12;
}

message ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
message ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; string schema_url = 3; }
message ScopeMetrics { InstrumentationScope scope = 1; repeated Metric metrics = 2; string schema_url = 3; }
message Metric {
  string name = 1;
  string description = 2;
  string unit = 3;
  oneof data {
    Gauge gauge = 5;
    Sum sum = 7;
    Histogram histogram = 9;
  }
}
message Gauge { repeated NumberDataPoint data_points = 1; }
message Sum { repeated NumberDataPoint data_points = 1; int32 aggregation_temporality = 2; bool is_monotonic = 3; }
message Histogram { repeated HistogramDataPoint data_points = 1; int32 aggregation_temporality = 2; }
message NumberDataPoint {
  repeated KeyValue attributes = 7;
  fixed64 start_time_unix_nano = 2;
  fixed64 time_unix_nano = 3;
  oneof value {
    double as_double = 4;
    sfixed64 as_int = 6;
  }
  uint32 flags = 8;
}
message HistogramDataPoint {
  repeated KeyValue attributes = 9;
  fixed64 start_time_unix_nano = 2;
  fixed64 time_unix_nano = 3;
  fixed64 count = 4;
  double sum = 5;
  repeated fixed64 bucket_counts = 6;
  repeated double explicit_bounds = 7;
  uint32 flags = 10;
  double min = 11;
  double max = 12;
}
`;

const root = protobuf.parse(OTLP_PROTO, { keepCase: true }).root;
const LogsRequest = root.lookupType('otlp.ExportLogsServiceRequest');
const MetricsRequest = root.lookupType('otlp.ExportMetricsServiceRequest');

/** AnyValue -> plain JS value. */
export type Plain = string | number | boolean | null | Plain[] | { [k: string]: Plain };
export function anyValue(v: Record<string, unknown> | undefined): Plain {
  if (!v) return null;
  if ('string_value' in v) return v.string_value as string;
  if ('bool_value' in v) return v.bool_value as boolean;
  if ('int_value' in v) return Number(v.int_value);
  if ('double_value' in v) return v.double_value as number;
  if ('array_value' in v) return ((v.array_value as { values?: Record<string, unknown>[] }).values ?? []).map(anyValue);
  if ('kvlist_value' in v) return attrs((v.kvlist_value as { values?: KV[] }).values);
  if ('bytes_value' in v) return String(v.bytes_value);
  return null;
}
type KV = { key: string; value?: Record<string, unknown> };
export function attrs(kvs: KV[] | undefined): { [k: string]: Plain } {
  return Object.fromEntries((kvs ?? []).map((kv) => [kv.key, anyValue(kv.value)]));
}

/** A log record as received, made plain. */
export interface ReceivedLog {
  resource: { [k: string]: Plain };
  scope: string;
  timeUnixNano: string;
  severityNumber: number;
  severityText: string;
  eventName: string;
  body: Plain;
  attributes: { [k: string]: Plain };
}

/** One data point of a sum metric, as received, made plain. */
export interface ReceivedPoint {
  resource: { [k: string]: Plain };
  metric: string;
  unit: string;
  monotonic: boolean;
  temporality: number;
  attributes: { [k: string]: Plain };
  value: number;
}

export class OtlpReceiver {
  /** decoded requests, as protobufjs objects (longs as strings) */
  readonly logRequests: Record<string, unknown>[] = [];
  readonly metricRequests: Record<string, unknown>[] = [];
  /** every request: "POST /v1/logs 200" */
  readonly requests: string[] = [];
  /** answer every request with this status instead of 200 */
  status = 200;
  private server: Server | undefined;
  private sockets = new Set<Socket>();
  port = 0;

  async start(port = this.port): Promise<number> {
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.port = await listenLocal(server, port);
    this.server = server;
    return this.port;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    await closeServer(server, this.sockets);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const done = (status: number, body: Buffer | string = Buffer.alloc(0)) => {
        this.requests.push(`${req.method} ${req.url} ${status}`);
        res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/x-protobuf' }).end(body);
      };
      const type = req.url === '/v1/logs' ? LogsRequest : req.url === '/v1/metrics' ? MetricsRequest : undefined;
      if (req.method !== 'POST' || !type) return done(404, 'not found');
      if (req.headers['content-type'] !== 'application/x-protobuf') return done(415, `unsupported content-type ${req.headers['content-type']}`);
      if (this.status !== 200) return done(this.status, `status set to ${this.status}`);
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      let decoded: Record<string, unknown>;
      try {
        decoded = type.toObject(type.decode(body), { longs: String, enums: Number, bytes: String, oneofs: false, defaults: false });
      } catch (e) {
        return done(400, `undecodable protobuf: ${(e as Error).message}`);
      }
      (type === LogsRequest ? this.logRequests : this.metricRequests).push({ ...decoded, headers: req.headers });
      done(200); // an empty Export*ServiceResponse
    });
  }

  /** Every log record received, in order. */
  logs(): ReceivedLog[] {
    const out: ReceivedLog[] = [];
    for (const req of this.logRequests as { resource_logs?: { resource?: { attributes?: KV[] }; scope_logs?: { scope?: { name?: string }; log_records?: Record<string, unknown>[] }[] }[] }[]) {
      for (const rl of req.resource_logs ?? []) {
        for (const sl of rl.scope_logs ?? []) {
          for (const lr of sl.log_records ?? []) {
            out.push({
              resource: attrs(rl.resource?.attributes),
              scope: sl.scope?.name ?? '',
              timeUnixNano: String(lr.time_unix_nano ?? '0'),
              severityNumber: Number(lr.severity_number ?? 0),
              severityText: String(lr.severity_text ?? ''),
              eventName: String(lr.event_name ?? ''),
              body: anyValue(lr.body as Record<string, unknown> | undefined),
              attributes: attrs(lr.attributes as KV[] | undefined),
            });
          }
        }
      }
    }
    return out;
  }

  /** The sum data points of the last metrics request (cumulative sums carry the totals). */
  lastSums(): ReceivedPoint[] {
    const req = this.metricRequests.at(-1) as
      | { resource_metrics?: { resource?: { attributes?: KV[] }; scope_metrics?: { metrics?: Record<string, unknown>[] }[] }[] }
      | undefined;
    const out: ReceivedPoint[] = [];
    for (const rm of req?.resource_metrics ?? []) {
      for (const sm of rm.scope_metrics ?? []) {
        for (const m of sm.metrics ?? []) {
          const sum = m.sum as { data_points?: Record<string, unknown>[]; is_monotonic?: boolean; aggregation_temporality?: number } | undefined;
          for (const p of sum?.data_points ?? []) {
            out.push({
              resource: attrs(rm.resource?.attributes),
              metric: String(m.name),
              unit: String(m.unit ?? ''),
              monotonic: sum!.is_monotonic ?? false,
              temporality: sum!.aggregation_temporality ?? 0,
              attributes: attrs(p.attributes as KV[] | undefined),
              value: p.as_int !== undefined ? Number(p.as_int) : Number(p.as_double ?? 0),
            });
          }
        }
      }
    }
    return out;
  }
}
