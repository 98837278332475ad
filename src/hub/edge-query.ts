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

/** The counts each side's rows are summed into, caller -> callee: [name, client-side expression, server-side expression]. */
const COUNTS: ReadonlyArray<readonly [string, string, string]> = [
  ['conns', "countIf(c AND proto = 'tcp' AND state != 'open')", "countIf(NOT c AND proto = 'tcp' AND state != 'open')"],
  ['refused', "countIf(c AND outcome = 'refused')", "countIf(NOT c AND outcome = 'refused')"],
  ['timeouts', "countIf(c AND outcome = 'timeout')", "countIf(NOT c AND outcome = 'timeout')"],
  ['resets', "countIf(c AND outcome = 'reset')", "countIf(NOT c AND outcome = 'reset')"],
  ['sent', 'sumIf(bytes_sent, c)', 'sumIf(bytes_received, NOT c)'],
  ['recv', 'sumIf(bytes_received, c)', 'sumIf(bytes_sent, NOT c)'],
  ['psent', 'sumIf(packets_sent, c)', 'sumIf(packets_received, NOT c)'],
  ['precv', 'sumIf(packets_received, c)', 'sumIf(packets_sent, NOT c)'],
  ['retr', 'sumIf(retransmits, c)', 'sumIf(retransmits, NOT c)'],
  ['rtt_sum', "sumIf(srtt_us, c AND srtt_us > 0 AND state != 'open')", "sumIf(srtt_us, NOT c AND srtt_us > 0 AND state != 'open')"],
  ['rtt_n', "countIf(c AND srtt_us > 0 AND state != 'open')", "countIf(NOT c AND srtt_us > 0 AND state != 'open')"],
];

/** What each side says of the connection: [name, client-side row expression, server-side row expression]. */
const FACTS: ReadonlyArray<readonly [string, string, string]> = [
  ['src', 'src_id', 'src_id'],
  ['dst', 'dst_id', 'dst_id'],
  ['src_svc', 'local_service', 'remote_service'],
  ['dst_svc', 'remote_service', 'local_service'],
  ['loc', 'locality', 'locality'],
  // the node and zone of the observing end
  ['node', "if(local_node != '', local_node, node)", "if(local_node != '', local_node, node)"],
  ['zone', 'local_zone', 'local_zone'],
  // the rows that hold the connection, for its records (connections of an edge)
  ['key', "concat(observed_by, '\\t', src_id, '\\t', dst_id, '\\t', toString(server_port))", "concat(observed_by, '\\t', src_id, '\\t', dst_id, '\\t', toString(server_port))"],
  ['port', 'server_port', 'server_port'],
  // the server's address as the client reached it; the client's as the server saw it
  ['raddr', 'saddr', 'caddr'],
  // step 2: the Service a client dialled without seeing the backend; the Service a server's pod is behind
  ['svc', "if(remote_reached_addr = '' AND remote_service != '' AND remote_pod = '', concat(remote_namespace, '/', remote_service), '')", "if(local_service != '', concat(local_namespace, '/', local_service), '')"],
];

const LOCALITIES = ['same-host', 'same-zone', 'cross-zone', 'cluster', 'external'] as const;
const col = (l: string): string => l.replace('-', '_');

/** The SQL of the hub's edges in a window over `table` (`db`.`flows`, quoted). */
export function hubEdgesQuery(table: string, w: HubEdgeWindow): string {
  const limit = Math.max(1, Math.trunc(w.limit));
  // level 1: rows -> connections
  const level1 = [
    'SELECT cluster, proto, k1, any(caddr) AS g_caddr, any(cport) AS g_cport,',
    "  countIf(c) AS c_rows, countIf(NOT c) AS s_rows, min(ts) AS t_first, max(ts) AS t_last,",
    ...COUNTS.flatMap(([n, cs, ss]) => [`  ${cs} AS c1_${n},`, `  ${ss} AS s1_${n},`]),
    `  sumForEachIf(hist, c AND srtt_us > 0 AND state != 'open') AS c1_hist,`,
    `  sumForEachIf(hist, NOT c AND srtt_us > 0 AND state != 'open') AS s1_hist,`,
    FACTS.flatMap(([n, cs, ss]) => [`  anyIf(${cs}, c) AS c1_${n}`, `  anyIf(${ss}, NOT c) AS s1_${n}`]).join(',\n'),
    'FROM (',
    '  SELECT *,',
    "    observed_by = 'client' AS c,",
    '    if(c, local_addr, remote_addr) AS caddr,',
    '    if(c, local_port, remote_port) AS cport,',
    "    if(c, if(remote_reached_addr != '', remote_reached_addr, remote_addr), local_addr) AS saddr,",
    '    cityHash64(caddr, cport, saddr, server_port) AS k1,',
    `    arrayFirstIndex(b -> srtt_us <= b, [${RTT_BOUNDS_US.join(', ')}]) AS rtt_bucket,`,
    `    ${HIST} AS hist`,
    `  FROM ${table}`,
    `  WHERE ${windowCondition(w)}`,
    ')',
    'GROUP BY cluster, proto, k1',
  ].join('\n');
  // level 2: a client alone that dialled a Service, and a server alone behind it, from the same client address and port
  const k2 =
    "if(c_rows > 0 AND s_rows = 0 AND c1_svc != '', cityHash64('svc', g_caddr, g_cport, c1_svc), " +
    "if(s_rows > 0 AND c_rows = 0 AND s1_svc != '', cityHash64('svc', g_caddr, g_cport, s1_svc), k1))";
  const level2 = [
    'SELECT cluster, proto, any(g_caddr) AS caddr, sum(c_rows) AS cr, sum(s_rows) AS sr, min(t_first) AS first, max(t_last) AS last,',
    ...COUNTS.flatMap(([n]) => [`  sum(c1_${n}) AS c_${n},`, `  sum(s1_${n}) AS s_${n},`]),
    '  sumForEach(c1_hist) AS c_hist, sumForEach(s1_hist) AS s_hist,',
    FACTS.flatMap(([n]) => [`  anyIf(c1_${n}, c_rows > 0) AS c_${n}`, `  anyIf(s1_${n}, s_rows > 0) AS s_${n}`]).join(',\n'),
    `FROM (${level1})`,
    `GROUP BY cluster, proto, ${k2}`,
  ].join('\n');
  // level 3: connections -> edges; the client's counts and caller, the server's callee when seen
  const pick = (n: string): string => `if(cr > 0, c_${n}, s_${n})`;
  const callee = (n: string): string => `if(sr > 0, s_${n}, c_${n})`;
  const loc =
    "multiIf(cr > 0 AND sr > 0 AND c_node = s_node, 'same-host', " +
    "cr > 0 AND sr > 0 AND c_zone != '' AND s_zone != '', if(c_zone = s_zone, 'same-zone', 'cross-zone'), " +
    'cr > 0, c_loc, s_loc)';
  const units = `if(proto = 'tcp', ${pick('conns')}, 1)`;
  const bytes = `(${pick('sent')} + ${pick('recv')})`;
  return [
    'SELECT cluster, proto,',
    `  ${pick('src')} AS src, ${callee('dst')} AS dst, ${callee('port')} AS port,`,
    `  max(${pick('src_svc')}) AS src_service, max(${callee('dst_svc')}) AS dst_service,`,
    ...COUNTS.map(([n]) => `  sum(${pick(n)}) AS ${n},`),
    `  sumForEach(${pick('hist')}) AS hist,`,
    `  sumIf(${units}, cr > 0 AND sr > 0) AS v_both, sumIf(${units}, cr > 0 AND sr = 0) AS v_client, sumIf(${units}, cr = 0) AS v_server,`,
    ...LOCALITIES.map((l) => `  sumIf(${bytes}, ${loc} = '${l}') AS b_${col(l)}, sumIf(${units}, ${loc} = '${l}') AS u_${col(l)},`),
    `  arraySlice(groupUniqArray(${pick('raddr')}), 1, 16) AS raddrs,`,
    `  arraySlice(groupUniqArray(${pick('key')}), 1, 64) AS row_keys,`,
    '  toUInt64(min(first)) AS first_s, toUInt64(max(last)) AS last_s',
    `FROM (${level2})`,
    'GROUP BY cluster, proto, src, dst, port',
    'ORDER BY sent + recv DESC, conns DESC, cluster, src, dst, port, proto',
    `LIMIT ${limit}`,
  ].join('\n');
}

/** One row of hubEdgesQuery, as JSONEachRow gives it (64-bit sums as strings). */
export type HubEdgeRow = Record<string, string | number | string[] | number[]>;

export { LOCALITIES as HUB_LOCALITIES, col as localityColumn };
