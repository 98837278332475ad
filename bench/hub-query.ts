/**
 * The hub's edge query (src/hub/edge-query.ts) over synthetic rows of a
 * 100-node cluster, generated into a real ClickHouse (the one the tests
 * start: Debian's 18.16 here) by INSERT ... SELECT FROM numbers(): --pods
 * pods on --nodes nodes in 3 zones, 5 pods per Deployment, each pod calling
 * the pods behind 3 other Deployments' Services; --rate connections per
 * second cluster-wide, each written by both its client's and its server's
 * agent (DNAT seen by the client), plus 5% to external names (client side
 * only). Then the query over the last hour and over the last 24 hours:
 * wall time (median of --reps, the first run apart: cold caches), rows and
 * bytes read (ClickHouse's own statistics), edges returned, and the
 * query's peak memory. Prints a table.
 *
 *   node dist/bench/hub-query.js [--nodes 100] [--pods 2000] [--rate 200] [--reps 3] [--hours 24]
 *                                [--url URL [--reuse]]
 *
 * --url: a ClickHouse already running (its query_log on, for the memory
 * column) instead of one of the tests' own; --reuse: query the rows a
 * previous run left there (same options) instead of generating them again.
 */
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { ClickHouseSink } from '../src/sinks/clickhouse.js';
import { FLOW_COLUMNS } from '../src/sinks/clickhouse-schema.js';
import { chunkWindow, EdgeSum } from '../src/hub/edge-chunks.js';
import { hubEdgesQuery, windowCondition, type HubEdgeRow } from '../src/hub/edge-query.js';
import { ClickHouseServer } from '../test/helpers/clickhouse-server.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '100' },
    pods: { type: 'string', default: '2000' },
    rate: { type: 'string', default: '200' },
    reps: { type: 'string', default: '3' },
    hours: { type: 'string', default: '24' },
    url: { type: 'string' },
    reuse: { type: 'boolean', default: false },
  },
});
const NODES = Number(values.nodes);
const PODS = Number(values.pods);
const RATE = Number(values.rate);
const REPS = Number(values.reps);
const HOURS = Number(values.hours);
const DEPLOYMENTS = Math.floor(PODS / 5);
const DB = 'hubbench';

/** A connection to an external name (5%): its client's row only. */
const EXTERNAL = '(c % 20 = 0)';

/** Every column of a row of connection `c = intDiv(number, 2)`, side `number % 2` (0 client, 1 server), as SQL expressions. */
function rowExpressions(endS: number): Record<string, string> {
  const conns = RATE * HOURS * 3600;
  // connection c ends at endS - (conns - c) / RATE; its two rows within a millisecond
  const ts = `toDateTime(${endS} - intDiv((${conns} - c), ${RATE}), 'UTC')`;
  const client = `(c % ${PODS})`;
  const clientDep = `intDiv(${client}, 5)`;
  const external = EXTERNAL;
  // the Service called: one of three per caller Deployment
  const serverDep = `((${clientDep} * 7 + 1 + (c % 3) * 13) % ${DEPLOYMENTS})`;
  const serverPod = `(${serverDep} * 5 + (intDiv(c, 3) % 5))`;
  const nodeOf = (pod: string) => `concat('node-', toString(${pod} % ${NODES}))`;
  const zoneOf = (pod: string) => `concat('zone-', toString((${pod} % ${NODES}) % 3))`;
  const podIp = (pod: string) => `concat('10.', toString(100 + intDiv(${pod}, 65536)), '.', toString(intDiv(${pod}, 256) % 256), '.', toString(${pod} % 256))`;
  const ns = (dep: string) => `concat('team-', toString(${dep} % 40))`;
  const wl = (dep: string) => `concat('svc-', toString(${dep}))`;
  const id = (dep: string) => `concat(${ns(dep)}, '/', ${wl(dep)})`;
  const side = 'number % 2';
  // each client pod's successive connections on successive ephemeral ports (as Linux picks them): distinct within the day
  const cport = `toUInt16(32768 + (intDiv(c, ${PODS}) % 28000))`;
  const isClient = `${side} = 0`;
  const extName = `concat('api-', toString(c % 50), '.example.com')`;
  const locality = `if(${external}, 'external', if(${nodeOf(client)} = ${nodeOf(serverPod)}, 'same-host', if(${zoneOf(client)} = ${zoneOf(serverPod)}, 'same-zone', 'cross-zone')))`;
  return {
    cluster: `'prod'`,
    node: `if(${isClient}, ${nodeOf(client)}, ${nodeOf(serverPod)})`,
    ts,
    ts_ms: `toUInt16(c % 1000)`,
    interval_start: ts,
    interval_ms: '10000',
    proto: `'tcp'`,
    family: '4',
    direction: `if(${isClient}, 'outbound', 'inbound')`,
    direction_from: `''`,
    outcome: `if(c % 97 = 0, 'refused', 'closed')`,
    state: `''`,
    observed_by: `if(${isClient}, 'client', 'server')`,
    src_id: `if(${isClient}, ${id(clientDep)}, ${podIp(client)})`,
    dst_id: `if(${isClient}, if(${external}, concat('dns:', ${extName}), concat('svc:', ${id(serverDep)})), ${id(serverDep)})`,
    server_port: `toUInt16(if(${external}, 443, 8080))`,
    local_addr: `if(${isClient}, ${podIp(client)}, ${podIp(serverPod)})`,
    local_port: `if(${isClient}, ${cport}, toUInt16(8080))`,
    local_pid: `toUInt32(1000 + if(${isClient}, ${client}, ${serverPod}))`,
    local_comm: `if(${isClient}, ${wl(clientDep)}, ${wl(serverDep)})`,
    local_namespace: `if(${isClient}, ${ns(clientDep)}, ${ns(serverDep)})`,
    local_pod: `concat(if(${isClient}, ${wl(clientDep)}, ${wl(serverDep)}), '-x')`,
    local_workload: `if(${isClient}, ${wl(clientDep)}, ${wl(serverDep)})`,
    local_workload_kind: `'Deployment'`,
    local_service: `if(${isClient}, ${wl(clientDep)}, ${wl(serverDep)})`,
    local_node: `if(${isClient}, ${nodeOf(client)}, ${nodeOf(serverPod)})`,
    local_zone: `if(${isClient}, ${zoneOf(client)}, ${zoneOf(serverPod)})`,
    remote_addr: `if(${isClient}, if(${external}, '93.184.216.34', concat('10.96.', toString(intDiv(${serverDep}, 256)), '.', toString(${serverDep} % 256))), ${podIp(client)})`,
    remote_port: `if(${isClient}, toUInt16(if(${external}, 443, 80)), ${cport})`,
    remote_name: `if(${isClient} AND ${external}, ${extName}, '')`,
    remote_reached_addr: `if(${isClient} AND NOT ${external}, ${podIp(serverPod)}, '')`,
    remote_reached_port: `toUInt16(if(${isClient} AND NOT ${external}, 8080, 0))`,
    remote_namespace: `if(${isClient} AND NOT ${external}, ${ns(serverDep)}, '')`,
    remote_service: `if(${isClient} AND NOT ${external}, ${wl(serverDep)}, '')`,
    remote_node: `if(${isClient} AND NOT ${external}, ${nodeOf(serverPod)}, '')`,
    remote_zone: `if(${isClient} AND NOT ${external}, ${zoneOf(serverPod)}, '')`,
    locality,
    bytes_sent: `toUInt64(if(${isClient}, 200 + c % 1000, 5000 + c % 7000))`,
    bytes_received: `toUInt64(if(${isClient}, 5000 + c % 7000, 200 + c % 1000))`,
    packets_sent: `toUInt64(if(${isClient}, 4 + c % 3, 6 + c % 5))`,
    packets_received: `toUInt64(if(${isClient}, 6 + c % 5, 4 + c % 3))`,
    retransmits: `toUInt32(c % 211 = 0)`,
    srtt_us: `toUInt32(100 + (c % 50) * 37)`,
    duration_ms: `(c % 300) / 10`,
  };
}

interface Stats {
  elapsed: number;
  rows_read: number;
  bytes_read: number;
}

/** One statement over HTTP, no time limit (an hour of rows takes a while to make on a busy machine). */
async function sql(url: string, body: string, params = ''): Promise<string> {
  const res = await fetch(`${url}/${params}`, { method: 'POST', body });
  const text = await res.text();
  if (!res.ok) throw new Error(`ClickHouse ${res.status}: ${text.slice(0, 500)}`);
  return text;
}
const rowsOf = async <T>(url: string, q: string): Promise<T[]> =>
  (await sql(url, `${q} FORMAT JSONEachRow`))
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as T);

async function timed(url: string, query: string): Promise<{ stats: Stats; data: HubEdgeRow[]; memory: number }> {
  const tag = `hubbench-${Math.random().toString(36).slice(2)}`;
  // ClickHouse's own statistics ride along in the JSON format's answer
  // settings go in the URL (18.16 knows no SETTINGS after FORMAT); the tag finds the query in system.query_log
  const body = JSON.parse(await sql(url, `/* ${tag} */ ${query}\nFORMAT JSON`, '?log_queries=1&max_memory_usage=8000000000')) as { data: HubEdgeRow[]; statistics: Stats };
  return { stats: body.statistics, data: body.data, memory: await peakMemory(url, tag) };
}

interface WindowRun {
  /** wall time of the whole answer (every chunk, merged), and ClickHouse's own time */
  wallS: number;
  chS: number;
  rowsRead: number;
  bytesRead: number;
  /** the largest of its queries' peak memory */
  memory: number;
  queries: number;
  edges: number;
  connections: number;
  both: number;
}

/** The store's way (clickhouse-store.ts): one query per chunk of the window, the chunks' edges summed. */
async function edgesOver(url: string, table: string, fromMs: number, toMs: number, cluster: string | undefined): Promise<WindowRun> {
  const t0 = performance.now();
  const chunks = chunkWindow(fromMs, toMs, 3_600_000);
  const run: WindowRun = { wallS: 0, chS: 0, rowsRead: 0, bytesRead: 0, memory: 0, queries: chunks.length, edges: 0, connections: 0, both: 0 };
  const sum = new EdgeSum();
  for (const c of chunks) {
    const w = { ...c.read, ...(c.own ? { own: c.own } : {}), limit: chunks.length > 1 ? 40_000 : 10_000, ...(cluster ? { cluster } : {}) };
    const r = await timed(url, hubEdgesQuery(table, w));
    run.chS += r.stats.elapsed;
    run.rowsRead += r.stats.rows_read;
    run.bytesRead += r.stats.bytes_read;
    run.memory = Math.max(run.memory, r.memory);
    sum.add(r.data);
  }
  const edges = sum.top(10_000);
  run.wallS = (performance.now() - t0) / 1000;
  run.edges = edges.length;
  for (const e of edges) {
    run.connections += Number(e.conns);
    run.both += Number(e.v_both);
  }
  return run;
}

/** The query's peak memory from system.query_log, when the server keeps one (0 when not). */
async function peakMemory(url: string, tag: string): Promise<number> {
  try {
    await sql(url, 'SYSTEM FLUSH LOGS');
    const rows = await rowsOf<{ m: string }>(url, `SELECT max(memory_usage) AS m FROM system.query_log WHERE query LIKE '%${tag}%' AND type = 2`);
    return Number(rows[0]?.m ?? 0);
  } catch {
    return 0;
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function textTable(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n');
}

mkdirSync(os.tmpdir(), { recursive: true });
const server = values.url ? undefined : await ClickHouseServer.start({ queryLog: true });
const url = values.url ?? server!.url;
try {
  const version = (await sql(url, 'SELECT version()')).trim();
  const table = `${DB}.flows`;
  let endS: number;
  let genS = 0;
  if (values.reuse) {
    // the previous run's rows: the window ends at their last second
    const [last] = await rowsOf<{ s: string }>(url, `SELECT toUInt64(max(ts)) AS s FROM ${table}`);
    endS = Number(last?.s ?? 0);
    if (!endS) throw new Error(`--reuse: no rows in ${table} at ${url}`);
  } else {
    await sql(url, `DROP TABLE IF EXISTS ${table}`);
    // the table exactly as an agent's sink makes it
    const sink = new ClickHouseSink({ url, database: DB, ttlDays: 0 });
    await sink.start();
    await sink.shutdown(1000);
    endS = Math.floor(Date.now() / 1000);
    const exprs = rowExpressions(endS);
    const columns = FLOW_COLUMNS.map((c) => c.slice(0, c.indexOf(' '))).filter((c) => c in exprs);
    const t0 = performance.now();
    // in chunks: one INSERT ... SELECT per hour of connections
    const perHour = 2 * RATE * 3600;
    for (let h = 0; h < HOURS; h++) {
      await sql(
        url,
        `INSERT INTO ${table} (${columns.join(', ')}) SELECT ${columns.map((c) => exprs[c]).join(', ')} FROM (SELECT number, intDiv(number, 2) AS c FROM numbers(${h * perHour}, ${perHour})) WHERE NOT (number % 2 = 1 AND ${EXTERNAL})`,
      );
      process.stderr.write(`hub-query bench: ${Math.round(((h + 1) / HOURS) * 100)}% of ${HOURS} h of rows\r`);
    }
    await sql(url, `OPTIMIZE TABLE ${table}`).catch(() => undefined);
    genS = (performance.now() - t0) / 1000;
  }
  const [parts] = await rowsOf<{ rows: string; bytes: string }>(url, `SELECT sum(rows) AS rows, sum(bytes_on_disk) AS bytes FROM system.parts WHERE active AND database = '${DB}' AND table = 'flows'`);
  process.stderr.write(`\nhub-query bench: ${parts?.rows} rows (${(Number(parts?.bytes) / 2 ** 20).toFixed(0)} MiB on disk)${genS ? ` generated in ${genS.toFixed(0)} s` : ', reused'}\n`);

  const results: string[][] = [];
  const nowMs = endS * 1000;
  for (const [label, hours] of [['1 h', 1], ['24 h', Math.min(24, HOURS)]] as const) {
    const fromMs = nowMs - hours * 3_600_000;
    const toMs = nowMs + 1000;
    // what the answer must say: every connection ending in the window once (each has its client's row), those to pods seen by both sides
    const [want] = await rowsOf<{ conns: string; both: string }>(
      url,
      `SELECT countIf(observed_by = 'client') AS conns, countIf(observed_by = 'client' AND remote_name = '') AS both FROM ${table} WHERE ${windowCondition({ fromMs, toMs })}`,
    );
    for (const cluster of [undefined, 'prod'] as const) {
      const cold = await edgesOver(url, table, fromMs, toMs, cluster);
      const warm: WindowRun[] = [];
      for (let i = 0; i < REPS; i++) warm.push(await edgesOver(url, table, fromMs, toMs, cluster));
      for (const r of [cold, ...warm])
        if (r.connections !== Number(want!.conns) || r.both !== Number(want!.both))
          throw new Error(`${label}: ${r.connections} connections (${r.both} seen by both sides) in the edges, ${want!.conns} (${want!.both}) in the rows`);
      results.push([
        label + (cluster ? ', cluster=prod' : ''),
        String(want!.conns),
        String(cold.queries),
        cold.wallS.toFixed(1),
        median(warm.map((w) => w.wallS)).toFixed(1),
        `${(cold.rowsRead / 1e6).toFixed(1)}M`,
        `${(cold.bytesRead / 2 ** 20).toFixed(0)} MiB`,
        String(cold.edges),
        cold.memory ? `${(Math.max(cold.memory, ...warm.map((w) => w.memory)) / 2 ** 20).toFixed(0)} MiB` : 'n/a',
      ]);
    }
  }
  console.log(
    [
      `hub edge query: ClickHouse ${version}, ${NODES} nodes, ${PODS} pods (${DEPLOYMENTS} Deployments), ${RATE} connections/s cluster-wide, ${HOURS} h of rows (${parts?.rows} rows, both sides of each connection, 5% to external names client side only, ${(Number(parts?.bytes) / 2 ** 20).toFixed(0)} MiB on disk); ${os.cpus().length} CPUs`,
      textTable([
        ['window', 'connections (each counted once: checked)', 'queries', 'cold s', `warm s (median of ${REPS})`, 'rows read', 'bytes read', 'edges', 'peak memory of a query'],
        ...results,
      ]),
    ].join('\n'),
  );
} finally {
  await server?.kill();
}
