/**
 * The hub's edges over the flows table every agent writes (one SQL query,
 * ClickHouse 18.16 and later: literals inlined, no query parameters).
 *
 * A connection between two traced nodes is in the table twice: the client's
 * agent's row and the server's. The query counts it once:
 *
 * 1. rows -> connections: grouped by cluster, protocol, client address and
 *    port, server address and port (the backend's, behind a DNAT the client
 *    saw), which both sides' rows name alike. A client port reused for the
 *    same server within the window folds those connections into one group:
 *    harmless, as each side's counts are summed and the client's kept.
 *    Rows of a connection still open (`state = 'open'`, an interval's bytes)
 *    add their bytes; the connection is counted at its final row.
 * 2. a client that dialled a Service and did not see the DNAT (done on
 *    another host) names the ClusterIP, its server the pod: a client group
 *    alone with a Service dialled and a server group alone behind that
 *    Service, with the same client address and port, are one connection.
 * 3. connections -> edges: the client's view gives the counts and the
 *    caller; the server's, when there is one, gives the callee (the workload
 *    that answered, which the client may not know: its agent watches its own
 *    node) and its port; locality is recomputed from both ends' nodes and
 *    zones when both are seen, else is the observer's. Each edge says how
 *    many of its connections each side saw (views).
 *
 * Costs: reads the window's rows once (the time prunes by hour, a cluster
 * filter within the hour on tables that have it in their key); the first
 * GROUP BY holds one entry per connection in the window (bench/README.md).
 */
import { LOCALITIES } from '../events/records.js';
import { RTT_BOUNDS_US } from '../flows/histogram.js';
import { quoteString } from '../sinks/clickhouse-schema.js';

export interface HubEdgeWindow {
  /** window (fromMs, toMs], on the rows' ts (to the millisecond) */
  fromMs: number;
  toMs: number;
  cluster?: string;
  /** the busiest edges (by bytes) at most */
  limit: number;
}

/** A DateTime literal for whole seconds since the epoch. */
const seconds = (s: number): string => `toDateTime(${Math.trunc(s)}, 'UTC')`;

/**
 * The window on `ts`: its hours first, which the primary key (by
 * toStartOfHour(ts)) prunes on (18.16 does not derive them from a condition on
 * ts itself: without them every granule of the day is read); then whole
 * seconds, then exact to the millisecond.
 */
export function windowCondition(w: { fromMs: number; toMs: number; cluster?: string }): string {
  const conds = [
    `toStartOfHour(ts) >= toStartOfHour(${seconds(Math.floor(w.fromMs / 1000))})`,
    `toStartOfHour(ts) <= toStartOfHour(${seconds(Math.ceil(w.toMs / 1000))})`,
    `ts >= ${seconds(Math.floor(w.fromMs / 1000))}`,
    `ts <= ${seconds(Math.ceil(w.toMs / 1000))}`,
    `toUInt64(ts) * 1000 + ts_ms > ${Math.trunc(w.fromMs)}`,
    `toUInt64(ts) * 1000 + ts_ms <= ${Math.trunc(w.toMs)}`,
  ];
  if (w.cluster !== undefined) conds.push(`cluster = ${quoteString(w.cluster)}`);
  return conds.join(' AND ');
}

/** The RTT bucket of a row, one-hot over RTT_BOUNDS_US and +Inf (the flow table's histogram, cumulated in TypeScript). */
const HIST = `arrayMap(i -> toUInt64(i = if(rtt_bucket = 0, ${RTT_BOUNDS_US.length + 1}, rtt_bucket)), arrayMap(i -> i + 1, range(${RTT_BOUNDS_US.length + 1})))`;

/** The counts each side's owned rows are summed into, caller -> callee: [name, client-side expression, server-side expression]. */
const COUNTS: ReadonlyArray<readonly [string, string, string]> = [
  ['conns', "countIf(c AND o AND proto = 'tcp' AND state != 'open')", "countIf(NOT c AND o AND proto = 'tcp' AND state != 'open')"],
  ['refused', "countIf(c AND o AND outcome = 'refused')", "countIf(NOT c AND o AND outcome = 'refused')"],
  ['timeouts', "countIf(c AND o AND outcome = 'timeout')", "countIf(NOT c AND o AND outcome = 'timeout')"],
  ['resets', "countIf(c AND o AND outcome = 'reset')", "countIf(NOT c AND o AND outcome = 'reset')"],
  ['sent', 'sumIf(bytes_sent, c AND o)', 'sumIf(bytes_received, NOT c AND o)'],
  ['recv', 'sumIf(bytes_received, c AND o)', 'sumIf(bytes_sent, NOT c AND o)'],
  ['psent', 'sumIf(packets_sent, c AND o)', 'sumIf(packets_received, NOT c AND o)'],
  ['precv', 'sumIf(packets_received, c AND o)', 'sumIf(packets_sent, NOT c AND o)'],
  ['retr', 'sumIf(retransmits, c AND o)', 'sumIf(retransmits, NOT c AND o)'],
  ['rtt_sum', "sumIf(srtt_us, c AND o AND srtt_us > 0 AND state != 'open')", "sumIf(srtt_us, NOT c AND o AND srtt_us > 0 AND state != 'open')"],
  ['rtt_n', "countIf(c AND o AND srtt_us > 0 AND state != 'open')", "countIf(NOT c AND o AND srtt_us > 0 AND state != 'open')"],
];

/**
 * What one side says of a connection, kept once per connection: the caller's
 * side (`p`: the client's when it was seen, else the server's: argMax by
 * side) or the callee's (`q`: the server's when seen, else the client's).
 * [name, which side, row expression].
 */
const FACTS: ReadonlyArray<readonly [string, 'p' | 'q', string]> = [
  ['src', 'p', 'src_id'],
  ['src_svc', 'p', 'if(c, local_service, remote_service)'],
  ['loc', 'p', 'locality'],
  // the rows that hold the connection, for its records (connections of an edge): the caller side's dst_id and port
  ['kdst', 'p', 'dst_id'],
  ['kport', 'p', 'server_port'],
  // the server's address as the client reached it; the client's as the server saw it
  ['raddr', 'p', 'if(c, saddr, caddr)'],
  ['dst', 'q', 'dst_id'],
  ['dst_svc', 'q', 'if(c, remote_service, local_service)'],
  ['port', 'q', 'server_port'],
];

const col = (l: string): string => l.replace('-', '_');

/** A window of rows to read, and within it the rows whose counts are this query's (default: all of them). */
export interface HubEdgeChunk extends HubEdgeWindow {
  own?: { fromMs: number; toMs: number };
}

const msOf = '(toUInt64(ts) * 1000 + ts_ms)';

/**
 * The SQL of the hub's edges in a window over `table` (`db`.`flows`, quoted).
 * `own`: only rows in it are counted, those of the rest of the window only
 * match a connection's sides (a chunk of a longer window, see chunkWindow).
 */
export function hubEdgesQuery(table: string, w: HubEdgeChunk): string {
  const limit = Math.max(1, Math.trunc(w.limit));
  const own = w.own ? `${msOf} > ${Math.trunc(w.own.fromMs)} AND ${msOf} <= ${Math.trunc(w.own.toMs)}` : '1';
  // per row: the connection's ends as both sides name them, only the columns used
  const rows = [
    'SELECT cluster, proto, state, outcome, bytes_sent, bytes_received, packets_sent, packets_received, retransmits, srtt_us, ts,',
    '  src_id, dst_id, server_port, locality, local_service, remote_service,',
    "  observed_by = 'client' AS c,",
    `  ${own} AS o,`,
    '  if(c, local_addr, remote_addr) AS caddr,',
    '  if(c, local_port, remote_port) AS cport,',
    "  if(c, if(remote_reached_addr != '', remote_reached_addr, remote_addr), local_addr) AS saddr,",
    '  cityHash64(caddr, cport, saddr, server_port) AS k1,',
    // step 2: the Service a client dialled without seeing the backend; the Service a server's pod is behind
    "  if(c, if(remote_reached_addr = '' AND remote_service != '' AND remote_pod = '', cityHash64('svc', caddr, cport, remote_namespace, remote_service), 0),",
    "    if(local_service != '', cityHash64('svc', caddr, cport, local_namespace, local_service), 0)) AS k2,",
    // the observing end's node and zone, for locality from both ends
    "  cityHash64(if(local_node != '', local_node, node)) AS node_h,",
    "  if(local_zone = '', toUInt64(0), cityHash64(local_zone)) AS zone_h,",
    `  arrayFirstIndex(b -> srtt_us <= b, [${RTT_BOUNDS_US.join(', ')}]) AS rtt_bucket,`,
    `  ${HIST} AS hist`,
    `FROM ${table}`,
    `WHERE ${windowCondition(w)}`,
  ].join('\n');
  // level 1: rows -> connections
  const level1 = [
    'SELECT cluster, proto, k1, countIf(c) AS c_rows, countIf(NOT c) AS s_rows, countIf(o) AS o_rows, max(k2) AS g_k2,',
    "  minIf(toUInt64(ts), o) AS t_first, maxIf(toUInt64(ts), o) AS t_last,",
    ...COUNTS.flatMap(([n, cs, ss]) => [`  ${cs} AS c1_${n},`, `  ${ss} AS s1_${n},`]),
    `  sumForEachIf(hist, c AND o AND srtt_us > 0 AND state != 'open') AS c1_hist,`,
    `  sumForEachIf(hist, NOT c AND o AND srtt_us > 0 AND state != 'open') AS s1_hist,`,
    '  anyIf(node_h, c) AS c1_node, anyIf(node_h, NOT c) AS s1_node, anyIf(zone_h, c) AS c1_zone, anyIf(zone_h, NOT c) AS s1_zone,',
    FACTS.map(([n, side, e]) => `  argMax(${e}, ${side === 'p' ? 'c' : 'NOT c'}) AS g1_${n}`).join(',\n'),
    `FROM (${rows})`,
    'GROUP BY cluster, proto, k1',
  ].join('\n');
  // level 2: a client alone that dialled a Service, and a server alone behind it, from the same client address and port
  const k2 = 'if((c_rows = 0) != (s_rows = 0) AND g_k2 != 0, g_k2, k1)';
  const level2 = [
    'SELECT cluster, proto, sum(c_rows) AS cr, sum(s_rows) AS sr, minIf(t_first, o_rows > 0) AS first, max(t_last) AS last,',
    ...COUNTS.flatMap(([n]) => [`  sum(c1_${n}) AS c_${n},`, `  sum(s1_${n}) AS s_${n},`]),
    '  sumForEach(c1_hist) AS c_hist, sumForEach(s1_hist) AS s_hist,',
    '  anyIf(c1_node, c_rows > 0) AS c_node, anyIf(s1_node, s_rows > 0) AS s_node, anyIf(c1_zone, c_rows > 0) AS c_zone, anyIf(s1_zone, s_rows > 0) AS s_zone,',
    FACTS.map(([n, side]) => `  argMax(g1_${n}, ${side === 'p' ? 'c_rows' : 's_rows'} > 0) AS g_${n}`).join(',\n'),
    `FROM (${level1})`,
    `GROUP BY cluster, proto, ${k2}`,
    // connections of the rest of the window only: counted by another chunk
    'HAVING sum(o_rows) > 0',
  ].join('\n');
  // level 3: connections -> edges; the client's counts and caller, the server's callee when seen
  const pick = (n: string): string => `if(cr > 0, c_${n}, s_${n})`;
  const loc =
    "multiIf(cr > 0 AND sr > 0 AND c_node = s_node, 'same-host', " +
    "cr > 0 AND sr > 0 AND c_zone != 0 AND s_zone != 0, if(c_zone = s_zone, 'same-zone', 'cross-zone'), " +
    'g_loc)';
  const units = `if(proto = 'tcp', ${pick('conns')}, 1)`;
  const bytes = `(${pick('sent')} + ${pick('recv')})`;
  return [
    'SELECT cluster, proto, g_src AS src, g_dst AS dst, g_port AS port,',
    '  max(g_src_svc) AS src_service, max(g_dst_svc) AS dst_service,',
    ...COUNTS.map(([n]) => `  sum(${pick(n)}) AS ${n},`),
    `  sumForEach(${pick('hist')}) AS hist,`,
    `  sumIf(${units}, cr > 0 AND sr > 0) AS v_both, sumIf(${units}, cr > 0 AND sr = 0) AS v_client, sumIf(${units}, cr = 0) AS v_server,`,
    ...LOCALITIES.map((l) => `  sumIf(${bytes}, ${loc} = '${l}') AS b_${col(l)}, sumIf(${units}, ${loc} = '${l}') AS u_${col(l)},`),
    '  arraySlice(groupUniqArray(g_raddr), 1, 16) AS raddrs,',
    "  arraySlice(groupUniqArray(concat(if(cr > 0, 'client', 'server'), '\\t', g_src, '\\t', g_kdst, '\\t', toString(g_kport))), 1, 64) AS row_keys,",
    '  min(first) AS first_s, max(last) AS last_s',
    `FROM (${level2})`,
    'GROUP BY cluster, proto, src, dst, port',
    'ORDER BY sent + recv DESC, conns DESC, cluster, src, dst, port, proto',
    `LIMIT ${limit}`,
  ].join('\n');
}

/** One row of hubEdgesQuery, as JSONEachRow gives it (64-bit sums as strings). */
export type HubEdgeRow = Record<string, string | number | string[] | number[]>;

export { col as localityColumn };
