/**
 * The ClickHouse tables of the flow sink, and how a shipped record becomes a
 * row of them. Kept to types and statements that ClickHouse 18.16 (Debian 12's
 * package) and current releases both accept: DateTime (no DateTime64: the
 * milliseconds are a column of their own), String rather than LowCardinality,
 * '' and 0 for what a record does not say, Nullable only for DNS latency,
 * plain arrays for DNS answers. The TTL clause (ClickHouse >= 19.6) is added
 * only when the server supports it.
 */
import type { DnsRecord, K8sInfo, LocalEndpoint, TcpRecord, UdpRecord } from '../events/records.js';
import { recordEnds } from '../flows/edge-table.js';
import type { ShippedRecord } from './sink.js';

export interface TableNames {
  /** `database.prefixflows`: TCP connections and UDP flows */
  flows: string;
  /** `database.prefixdns`: DNS lookups */
  dns: string;
}

export function tableNames(database: string, prefix: string): TableNames {
  return { flows: `${quoteIdent(database)}.${quoteIdent(`${prefix}flows`)}`, dns: `${quoteIdent(database)}.${quoteIdent(`${prefix}dns`)}` };
}

/** Backquoted identifier (ClickHouse accepts backquotes in every version). */
export function quoteIdent(name: string): string {
  return '`' + name.replace(/\\/g, '\\\\').replace(/`/g, '\\`') + '`';
}

/** A string literal, quoted and escaped. */
export function quoteString(s: string): string {
  return "'" + s.replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";
}

/** The local end's address, process and container, in both tables. */
const LOCAL_COLUMNS: readonly string[] = [
  'local_addr String',
  'local_port UInt16',
  'local_pid UInt32',
  'local_comm String',
  'local_exe String',
  'local_cgroup_id UInt64',
  'local_netns UInt64',
  'local_container_id String',
];

/** The text fields of a K8sInfo and their columns, in table order (each column as `local_` or `remote_` and the name). */
export const K8S_FIELDS = [
  ['namespace', 'namespace'],
  ['pod', 'pod'],
  ['workload', 'workload'],
  ['workloadKind', 'workload_kind'],
  ['service', 'service'],
  ['node', 'node'],
  ['zone', 'zone'],
] as const;

/** Each side's K8S_FIELDS as [field, column name]: the names made once, not per row. */
export const K8S_SIDE_COLUMNS = {
  local: K8S_FIELDS.map(([field, column]) => [field, `local_${column}`] as const),
  remote: K8S_FIELDS.map(([field, column]) => [field, `remote_${column}`] as const),
};

const K8S_COLUMNS = (side: 'local' | 'remote'): string[] => K8S_SIDE_COLUMNS[side].map(([, name]) => `${name} String`);

/** Columns of the flows table, in order (tables made before a column existed get it added at the end: ensureColumns). */
export const FLOW_COLUMNS: readonly string[] = [
  'cluster String',
  'node String',
  "ts DateTime('UTC')",
  'ts_ms UInt16',
  "interval_start DateTime('UTC')",
  'interval_ms UInt32',
  'proto String',
  'family UInt8',
  'direction String',
  'direction_from String',
  'outcome String',
  'state String',
  'observed_by String',
  'src_id String',
  'dst_id String',
  'server_port UInt16',
  ...LOCAL_COLUMNS,
  'local_container_runtime String',
  ...K8S_COLUMNS('local'),
  'local_host_network UInt8',
  'remote_addr String',
  'remote_port UInt16',
  'remote_name String',
  'remote_reached_addr String',
  'remote_reached_port UInt16',
  ...K8S_COLUMNS('remote'),
  'locality String',
  'bytes_sent UInt64',
  'bytes_received UInt64',
  'packets_sent UInt64',
  'packets_received UInt64',
  'retransmits UInt32',
  'srtt_us UInt32',
  'duration_ms Float64',
];

/** Columns of the DNS table, in order. */
export const DNS_COLUMNS: readonly string[] = [
  'cluster String',
  'node String',
  "ts DateTime('UTC')",
  'ts_ms UInt16',
  "interval_start DateTime('UTC')",
  'query String',
  'qtype String',
  'rcode String',
  'answer_name Array(String)',
  'answer_type Array(String)',
  'answer_ttl Array(UInt32)',
  'answer_data Array(String)',
  'latency_ms Nullable(Float64)',
  'transport String',
  ...LOCAL_COLUMNS,
  ...K8S_COLUMNS('local'),
  'remote_addr String',
  'remote_port UInt16',
];

/**
 * Flows: a day per partition (what retention drops), sorted first by the hour
 * so a time window reads only its granules, then by cluster (one cluster's
 * rows of an hour are adjacent: a hub asking for one cluster reads only
 * those), then by the edge key (caller, callee, server port, protocol) so the
 * rows of one edge are adjacent and `GROUP BY` of the service map reads them
 * in order. Tables made before the cluster column keep the sorting key they
 * were made with (ClickHouse cannot change it): the same queries work, only a
 * cluster filter prunes less.
 */
export const FLOW_PARTITION_BY = 'toYYYYMMDD(ts)';
export const FLOW_ORDER_BY = '(toStartOfHour(ts), cluster, src_id, dst_id, server_port, proto, ts)';
/** DNS: by hour, then cluster, then the name asked, then time. */
export const DNS_PARTITION_BY = 'toYYYYMMDD(ts)';
export const DNS_ORDER_BY = '(toStartOfHour(ts), cluster, query, ts)';

/**
 * What a table made by an older bpfagent lacks: the columns of `columns`
 * (name and type, as above) not among `existing` (the names the table has),
 * each as an `ADD COLUMN` that gives old rows the type's empty value ('' or
 * 0). Columns are only ever added, never changed or dropped.
 */
export function missingColumnStatements(table: string, columns: readonly string[], existing: ReadonlySet<string>): string[] {
  return columns
    .map((c) => [c.slice(0, c.indexOf(' ')), c.slice(c.indexOf(' ') + 1)] as const)
    .filter(([name]) => !existing.has(name))
    .map(([name, type]) => `ALTER TABLE ${table} ADD COLUMN ${quoteIdent(name)} ${type}`);
}

export function createTableStatement(
  table: string,
  columns: readonly string[],
  partitionBy: string,
  orderBy: string,
  ttl: { days: number; onlyDropParts: boolean } | undefined,
): string {
  const cols = columns.map((c) => {
    const sp = c.indexOf(' ');
    return `  ${quoteIdent(c.slice(0, sp))} ${c.slice(sp + 1)}`;
  });
  let sql = `CREATE TABLE IF NOT EXISTS ${table} (\n${cols.join(',\n')}\n) ENGINE = MergeTree PARTITION BY ${partitionBy} ORDER BY ${orderBy}`;
  if (ttl) sql += ` ${ttlClause(ttl.days)}`;
  const settings = ['index_granularity = 8192'];
  if (ttl?.onlyDropParts) settings.push('ttl_only_drop_parts = 1');
  return `${sql} SETTINGS ${settings.join(', ')}`;
}

export function ttlClause(days: number): string {
  return `TTL ts + INTERVAL ${Math.trunc(days)} DAY`;
}

/** `ts` (UTC seconds, as ClickHouse's DateTime text) and its milliseconds, from an ISO-8601 time. */
export function splitTime(iso: string): { ts: string; ms: number } {
  let t = Date.parse(iso);
  if (!Number.isFinite(t)) t = 0;
  const d = new Date(t);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return {
    ts: `${p(d.getUTCFullYear(), 4)}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`,
    ms: d.getUTCMilliseconds(),
  };
}

function k8sColumns(side: 'local' | 'remote', k: K8sInfo | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [field, name] of K8S_SIDE_COLUMNS[side]) out[name] = k?.[field] ?? '';
  return out;
}

/** A non-negative integer for an unsigned column (JSON numbers beyond 2^53 are not expected here). */
function u(n: number | undefined): number {
  return n !== undefined && Number.isFinite(n) && n > 0 ? Math.trunc(n) : 0;
}

export type FlowRow = Record<string, string | number>;
export type DnsRow = Record<string, string | number | null | string[] | number[]>;

/** A TCP or UDP record as a row of the flows table (edge key computed as `bpfagent flows` does). */
export function flowRow(r: ShippedRecord & (TcpRecord | UdpRecord)): FlowRow {
  const { ts, ms } = splitTime(r.ts);
  const clientIsLocal = r.direction === 'outbound';
  const serverPort = clientIsLocal ? (r.remote.reached ? r.remote.reached.port : r.remote.port) : r.local.port;
  const { source, destination } = recordEnds(r, clientIsLocal);
  return {
    cluster: r.cluster ?? '',
    node: r.node,
    ts,
    ts_ms: ms,
    interval_start: splitTime(r.intervalStart).ts,
    interval_ms: u(r.intervalMs),
    proto: r.proto,
    family: r.family,
    direction: r.direction,
    direction_from: r.proto === 'udp' ? r.directionFrom : '',
    outcome: r.proto === 'tcp' ? (r.outcome ?? '') : '',
    state: r.proto === 'tcp' && r.state === 'open' ? 'open' : '',
    observed_by: clientIsLocal ? 'client' : 'server',
    src_id: source.id,
    dst_id: destination.id,
    server_port: u(serverPort),
    ...localColumns(r.local),
    local_container_runtime: r.local.containerRuntime ?? '',
    ...k8sColumns('local', r.local.k8s),
    local_host_network: r.local.k8s?.hostNetwork ? 1 : 0,
    remote_addr: r.remote.addr,
    remote_port: u(r.remote.port),
    remote_name: r.remote.name ?? '',
    remote_reached_addr: r.remote.reached?.addr ?? '',
    remote_reached_port: u(r.remote.reached?.port),
    ...k8sColumns('remote', r.remote.k8s),
    locality: r.locality ?? '',
    bytes_sent: u(r.bytesSent),
    bytes_received: u(r.bytesReceived),
    packets_sent: r.proto === 'udp' ? u(r.packetsSent) : 0,
    packets_received: r.proto === 'udp' ? u(r.packetsReceived) : 0,
    retransmits: r.proto === 'tcp' ? u(r.retransmits) : 0,
    srtt_us: r.proto === 'tcp' ? u(r.srttUs) : 0,
    duration_ms: r.proto === 'tcp' && Number.isFinite(r.durationMs) ? Math.max(0, r.durationMs) : 0,
  };
}

/** The LOCAL_COLUMNS of a row. */
function localColumns(l: LocalEndpoint) {
  return {
    local_addr: l.addr,
    local_port: u(l.port),
    local_pid: u(l.pid),
    local_comm: l.comm,
    local_exe: l.exe ?? '',
    local_cgroup_id: u(l.cgroupId),
    local_netns: u(l.netns),
    local_container_id: l.containerId ?? '',
  };
}

/** A DNS record as a row of the DNS table. */
export function dnsRow(r: ShippedRecord & DnsRecord): DnsRow {
  const { ts, ms } = splitTime(r.ts);
  return {
    cluster: r.cluster ?? '',
    node: r.node,
    ts,
    ts_ms: ms,
    interval_start: splitTime(r.intervalStart).ts,
    query: r.query,
    qtype: r.qtype,
    rcode: r.rcode,
    answer_name: r.answers.map((a) => a.name),
    answer_type: r.answers.map((a) => a.type),
    answer_ttl: r.answers.map((a) => u(a.ttl)),
    answer_data: r.answers.map((a) => a.data),
    latency_ms: r.latencyMs !== null && Number.isFinite(r.latencyMs) ? r.latencyMs : null,
    transport: r.transport,
    ...localColumns(r.local),
    ...k8sColumns('local', r.local.k8s),
    remote_addr: r.remote.addr,
    remote_port: u(r.remote.port),
  };
}
