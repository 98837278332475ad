/**
 * Queries over the ClickHouse sink's tables, for the service map (and a
 * later HTTP API). Parameters are inlined as escaped literals: server-side
 * query parameters arrived after ClickHouse 18.16.
 *
 * "Edges in a window": who called whom, keyed exactly as `bpfagent flows`
 * keys its edges (README): caller and callee identity (workload, else
 * process, Service, DNS name, node or address), the server's port, the
 * protocol and the side that observed it; sums of connections, failures,
 * bytes and packets (caller to callee, and back), retransmits.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { quoteString } from './clickhouse-schema.js';
import type { TrafficTotals } from '../flows/edge-table.js';

export interface EdgeWindow {
  /** window start, inclusive */
  from: Date;
  /** window end, exclusive */
  to: Date;
  /** only what these nodes' agents observed */
  nodes?: string[];
  proto?: 'tcp' | 'udp';
  /** one side only: a connection between two traced hosts is reported by both */
  observedBy?: 'client' | 'server';
  /** at most this many edges, the busiest (by bytes) first when cut; default 10,000 */
  limit?: number;
}

export interface EdgeEndInfo {
  id: string;
  namespace: string;
  workload: string;
  service: string;
  /** the process (command name), when this end is local to the observing agent */
  process: string;
  /** DNS name dialled (destination only) */
  name: string;
  addr: string;
}

export interface EdgeSummary extends TrafficTotals {
  proto: 'tcp' | 'udp';
  observedBy: 'client' | 'server';
  source: EdgeEndInfo;
  destination: EdgeEndInfo;
  port: number;
  locality: string;
  /** rows summed: TCP connections and UDP flow intervals */
  records: number;
  /** mean smoothed RTT of the TCP connections that had one, µs; 0 when none */
  meanSrttUs: number;
  firstSeen: string;
  lastSeen: string;
}

/** ClickHouse DateTime literal (UTC) for a JS date, second precision. */
export function dateTimeLiteral(d: Date): string {
  const iso = new Date(Math.floor(d.getTime() / 1000) * 1000).toISOString();
  return `toDateTime(${quoteString(iso.slice(0, 19).replace('T', ' '))}, 'UTC')`;
}

/**
 * The SQL of "edges in a window" over a flows table (`database.table`,
 * quoted). The window is on `ts` (when a TCP connection ended, when a UDP
 * interval was shipped), to the second.
 */
export function edgesQuery(flowsTable: string, w: EdgeWindow): string {
  const conds = [`ts >= ${dateTimeLiteral(w.from)}`, `ts < ${dateTimeLiteral(w.to)}`];
  if (w.nodes) conds.push(w.nodes.length ? `node IN (${w.nodes.map(quoteString).join(', ')})` : '0');
  if (w.proto) conds.push(`proto = ${quoteString(w.proto)}`);
  if (w.observedBy) conds.push(`observed_by = ${quoteString(w.observedBy)}`);
  const limit = Math.max(1, Math.trunc(w.limit ?? 10_000));
  // the caller is the local end when the client observed it, the remote end otherwise
  const side = (local: string, remote: string, caller: boolean): string =>
    caller ? `if(observed_by = 'client', ${local}, ${remote})` : `if(observed_by = 'client', ${remote}, ${local})`;
  const end = (prefix: string, caller: boolean): string[] => [
    `any(${side('local_namespace', 'remote_namespace', caller)}) AS ${prefix}_namespace`,
    `any(${side('local_workload', 'remote_workload', caller)}) AS ${prefix}_workload`,
    `any(${side('local_service', 'remote_service', caller)}) AS ${prefix}_service`,
    `any(${side('local_comm', "''", caller)}) AS ${prefix}_process`,
    `any(${side("''", 'remote_name', caller)}) AS ${prefix}_name`,
    `any(${side('local_addr', "if(remote_reached_addr != '', remote_reached_addr, remote_addr)", caller)}) AS ${prefix}_addr`,
  ];
  return [
    'SELECT',
    '  proto, observed_by, src_id, dst_id, server_port AS port,',
    `  ${end('src', true).join(',\n  ')},`,
    `  ${end('dst', false).join(',\n  ')},`,
    '  any(locality) AS edge_locality,',
    '  count() AS records,',
    // a connection counts once, at its last record; open ones add bytes only
    "  countIf(proto = 'tcp' AND state != 'open') AS connections,",
    "  countIf(outcome = 'refused') AS refused,",
    "  countIf(outcome = 'timeout') AS timeouts,",
    "  countIf(outcome = 'reset') AS resets,",
    "  sum(if(observed_by = 'client', bytes_sent, bytes_received)) AS sent_bytes,",
    "  sum(if(observed_by = 'client', bytes_received, bytes_sent)) AS received_bytes,",
    "  sum(if(observed_by = 'client', packets_sent, packets_received)) AS sent_packets,",
    "  sum(if(observed_by = 'client', packets_received, packets_sent)) AS received_packets,",
    '  sum(retransmits) AS retransmit_count,',
    "  sumIf(srtt_us, srtt_us > 0 AND state != 'open') AS srtt_sum,",
    "  countIf(srtt_us > 0 AND state != 'open') AS srtt_count,",
    '  min(ts) AS first_seen,',
    '  max(ts) AS last_seen',
    `FROM ${flowsTable}`,
    `WHERE ${conds.join(' AND ')}`,
    'GROUP BY proto, observed_by, src_id, dst_id, server_port',
    // the busiest edges survive the limit; the order within is stable
    `ORDER BY sent_bytes + received_bytes DESC, src_id, dst_id, port, proto, observed_by`,
    `LIMIT ${limit}`,
  ].join('\n');
}

type Row = Record<string, string | number>;

const num = (v: string | number | undefined): number => (v === undefined ? 0 : Number(v));
const str = (v: string | number | undefined): string => (v === undefined ? '' : String(v));

function endInfo(r: Row, prefix: 'src' | 'dst'): EdgeEndInfo {
  return {
    id: str(r[`${prefix}_id`]),
    namespace: str(r[`${prefix}_namespace`]),
    workload: str(r[`${prefix}_workload`]),
    service: str(r[`${prefix}_service`]),
    process: str(r[`${prefix}_process`]),
    name: str(r[`${prefix}_name`]),
    addr: str(r[`${prefix}_addr`]),
  };
}

/** ClickHouse's 'YYYY-MM-DD hh:mm:ss' (UTC) as ISO-8601. */
function isoOf(v: string | number | undefined): string {
  return `${str(v).replace(' ', 'T')}Z`;
}

/** Run "edges in a window" (64-bit sums come back as strings: made numbers here). */
export async function edgesInWindow(client: ClickHouseClient, flowsTable: string, w: EdgeWindow): Promise<EdgeSummary[]> {
  const rs = await client.query({ query: edgesQuery(flowsTable, w), format: 'JSONEachRow' });
  const rows = await rs.json<Row>();
  return rows.map((r) => {
    const srttCount = num(r.srtt_count);
    return {
      proto: str(r.proto) as 'tcp' | 'udp',
      observedBy: str(r.observed_by) as 'client' | 'server',
      source: endInfo(r, 'src'),
      destination: endInfo(r, 'dst'),
      port: num(r.port),
      locality: str(r.edge_locality),
      records: num(r.records),
      connections: num(r.connections),
      failed: { refused: num(r.refused), timeout: num(r.timeouts), reset: num(r.resets) },
      bytesSent: num(r.sent_bytes),
      bytesReceived: num(r.received_bytes),
      packetsSent: num(r.sent_packets),
      packetsReceived: num(r.received_packets),
      retransmits: num(r.retransmit_count),
      meanSrttUs: srttCount ? num(r.srtt_sum) / srttCount : 0,
      firstSeen: isoOf(r.first_seen),
      lastSeen: isoOf(r.last_seen),
    };
  });
}
