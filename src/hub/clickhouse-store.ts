/**
 * The hub's flow store: the FlowStore the HTTP API reads (src/store/flow-store.ts),
 * answered from the ClickHouse tables every agent writes. Edges come from
 * one query (edge-query.ts) that counts each connection once and says which
 * sides saw it, so there are no client/server pairs left to merge here; an
 * edge's connections are read back from the rows that made it.
 *
 * Ends are qualified by their cluster: `<cluster>:<id>` (agents without
 * clusterName: the bare id), so that one hub can hold several clusters whose
 * namespaces and workloads share names.
 *
 * Anything ClickHouse cannot answer (down, refusing the login, out of
 * memory, a timeout) is StoreUnavailable with its reason: 503, never a crash.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { LOCALITIES } from '../events/records.js';
import type { EdgeEnd } from '../flows/edge-table.js';
import { RTT_BOUNDS_US } from '../flows/histogram.js';
import { quoteString, type FlowRow, type TableNames } from '../sinks/clickhouse-schema.js';
import {
  type EdgePair,
  type FlowRecord,
  type FlowStore,
  type StoreScope,
  type StoreStatus,
  type StoredEdge,
  StoreUnavailable,
} from '../store/flow-store.js';
import { hubEdgesQuery, localityColumn, windowCondition, type HubEdgeRow } from './edge-query.js';
import { chunkWindow, EdgeSum } from './edge-chunks.js';
import { num, rowRecord, str } from './row-record.js';

export interface ClickHouseStoreOptions {
  client: ClickHouseClient;
  tables: TableNames;
  /** database and table names unquoted, for system tables */
  database: string;
  flowsTable: string;
  /** the URL without credentials, for messages */
  where: string;
  /** the longest window answered */
  retentionMs: number;
  /** edges per answer at most */
  maxEdges: number;
  /** windows longer than this are read a chunk at a time (default an hour; edge-chunks.ts) */
  chunkMs?: number;
  /** how long /api/status's ClickHouse facts are kept (default 10 s) */
  statusTtlMs?: number;
  now?: () => number;
}

/** What a hub edge's key holds: enough to find its rows again. */
interface EdgeRows {
  cluster: string;
  proto: string;
  /** `observed_by \t src_id \t dst_id \t server_port` of the rows counted */
  rows: string[];
}

const HOUR_MS = 3_600_000;
/** a chunk's edges at most, in multiples of maxEdges: an edge outside every chunk's busiest is left out of the answer */
const CHUNK_EDGES = 4;

/** An end from its id as the agents key it (and the Service of a workload), qualified by its cluster. */
export function endOf(id: string, service: string, cluster: string, addr?: string): EdgeEnd {
  const end: EdgeEnd = { id: cluster ? `${cluster}:${id}` : id };
  if (cluster) end.cluster = cluster;
  if (id.startsWith('svc:')) {
    const [namespace = '', name = ''] = id.slice(4).split('/');
    Object.assign(end, { namespace, service: name });
  } else if (id.startsWith('dns:')) {
    end.name = id.slice(4);
    if (addr) end.addr = addr;
  } else if (id.startsWith('node:')) {
    end.node = id.slice(5);
    if (addr) end.addr = addr;
  } else if (id.startsWith('process:')) {
    end.process = id.slice(8);
  } else if (id.includes('/')) {
    const slash = id.indexOf('/');
    Object.assign(end, { namespace: id.slice(0, slash), workload: id.slice(slash + 1) });
    if (service) end.service = service;
  } else {
    end.addr = id;
  }
  return end;
}

/** The cumulative histogram of the query's per-bucket counts (the last +Inf). */
function histogram(buckets: unknown, sum: number, count: number): StoredEdge['rttUs'] {
  const b = Array.isArray(buckets) ? buckets.map(Number) : [];
  const counts = new Array<number>(RTT_BOUNDS_US.length + 1).fill(0);
  let acc = 0;
  for (let i = 0; i < counts.length; i++) counts[i] = acc += b[i] ?? 0;
  return { bounds: RTT_BOUNDS_US, counts, sum, count };
}

export function edgeOfRow(r: HubEdgeRow): StoredEdge {
  const cluster = str(r.cluster);
  const proto = str(r.proto) === 'udp' ? 'udp' : 'tcp';
  const raddrs = (Array.isArray(r.raddrs) ? r.raddrs.map(String) : []).sort();
  const views = { both: num(r.v_both), client: num(r.v_client), server: num(r.v_server) };
  const observedBy = views.both > 0 ? 'both' : views.client > 0 ? 'client' : 'server';
  const source = endOf(str(r.src), str(r.src_service), cluster, observedBy === 'server' ? raddrs[0] : undefined);
  const destination = endOf(str(r.dst), str(r.dst_service), cluster, observedBy === 'server' ? undefined : raddrs[0]);
  const bytesByLocality: Record<string, number> = {};
  // the edge's locality: that of most of its bytes (of its connections, when it moved none)
  let locality: string | undefined;
  let best = -1;
  for (const l of LOCALITIES) {
    const b = num(r[`b_${localityColumn(l)}`]);
    if (b > 0) bytesByLocality[l] = b;
    const weight = b * 1e6 + num(r[`u_${localityColumn(l)}`]);
    if (weight > best && (b > 0 || num(r[`u_${localityColumn(l)}`]) > 0)) {
      best = weight;
      locality = l;
    }
  }
  const key: EdgeRows = { cluster, proto, rows: Array.isArray(r.row_keys) ? r.row_keys.map(String).sort() : [] };
  return {
    key: JSON.stringify(key),
    proto,
    observedBy,
    source,
    destination,
    port: num(r.port),
    ...(locality !== undefined ? { locality } : {}),
    connections: num(r.conns),
    failed: { refused: num(r.refused), timeout: num(r.timeouts), reset: num(r.resets) },
    bytesSent: num(r.sent),
    bytesReceived: num(r.recv),
    packetsSent: num(r.psent),
    packetsReceived: num(r.precv),
    retransmits: num(r.retr),
    rttUs: histogram(r.hist, num(r.rtt_sum), num(r.rtt_n)),
    remoteAddrs: raddrs,
    firstSeen: num(r.first_s) * 1000,
    lastSeen: num(r.last_s) * 1000,
    views,
    ...(Object.keys(bytesByLocality).length > 1 ? { bytesByLocality } : {}),
  };
}

export class ClickHouseFlowStore implements FlowStore {
  readonly retentionMs: number;
  private status: { at: number; value: Promise<Record<string, unknown>> } | undefined;
  /** queries answered and failed, for /metrics */
  readonly counters = { queries: 0, failures: 0, lastError: undefined as string | undefined };

  constructor(private readonly o: ClickHouseStoreOptions) {
    this.retentionMs = o.retentionMs;
  }

  private async rows<T>(query: string): Promise<T[]> {
    this.counters.queries++;
    try {
      const rs = await this.o.client.query({ query, format: 'JSONEachRow' });
      return await rs.json<T>();
    } catch (e) {
      this.counters.failures++;
      const why = e instanceof Error ? e.message.split('\n')[0]! : String(e);
      this.counters.lastError = why;
      throw new StoreUnavailable(`clickhouse at ${this.o.where}: ${why}`);
    }
  }

  async edges(fromMs: number, toMs: number, scope: StoreScope = {}): Promise<StoredEdge[]> {
    const cluster = scope.cluster !== undefined ? { cluster: scope.cluster } : {};
    const chunks = chunkWindow(fromMs, toMs, this.o.chunkMs ?? HOUR_MS);
    if (chunks.length === 1) return (await this.rows<HubEdgeRow>(hubEdgesQuery(this.o.tables.flows, { fromMs, toMs, ...cluster, limit: this.o.maxEdges }))).map(edgeOfRow);
    // one chunk at a time: the memory of one chunk's connections at most (edge-chunks.ts)
    const sum = new EdgeSum();
    for (const c of chunks) sum.add(await this.rows<HubEdgeRow>(hubEdgesQuery(this.o.tables.flows, { ...c.read, ...(c.own ? { own: c.own } : {}), ...cluster, limit: CHUNK_EDGES * this.o.maxEdges })));
    return sum.top(this.o.maxEdges).map(edgeOfRow);
  }

  /** The query has matched both sides already. */
  pairs(): EdgePair[] {
    return [];
  }

  async connections(keys: readonly string[], fromMs: number, toMs: number, limit: number): Promise<FlowRecord[]> {
    const terms: string[] = [];
    for (const k of keys) {
      let e: EdgeRows;
      try {
        e = JSON.parse(k) as EdgeRows;
      } catch {
        continue; // not one of ours
      }
      const tuples = e.rows
        .map((row) => row.split('\t'))
        .filter((p) => p.length === 4)
        .map(([side, src, dst, port]) => `(${quoteString(side!)}, ${quoteString(src!)}, ${quoteString(dst!)}, ${Math.trunc(Number(port))})`);
      if (tuples.length) terms.push(`(cluster = ${quoteString(e.cluster)} AND proto = ${quoteString(e.proto)} AND (observed_by, src_id, dst_id, server_port) IN (${tuples.join(', ')}))`);
    }
    if (!terms.length) return [];
    const rows = await this.rows<FlowRow>(
      `SELECT * FROM ${this.o.tables.flows} WHERE ${windowCondition({ fromMs, toMs })} AND (${terms.join(' OR ')}) ORDER BY ts DESC, ts_ms DESC LIMIT ${Math.max(1, Math.trunc(limit))}`,
    );
    return rows.map(rowRecord);
  }

  /**
   * What /api/status says of ClickHouse: reachable or not (and why), its
   * version, the flows table's rows and bytes, the clusters that wrote in
   * the last hour. Kept a few seconds (the UI asks every 15 s); never throws.
   */
  stats(): Promise<StoreStatus> {
    const now = (this.o.now ?? Date.now)();
    if (!this.status || now - this.status.at > (this.o.statusTtlMs ?? 10_000)) this.status = { at: now, value: this.readStatus(now) };
    return this.status.value.then((clickhouse) => ({ retentionMs: this.retentionMs, oldest: null, clickhouse }));
  }

  private async readStatus(now: number): Promise<Record<string, unknown>> {
    const base = { url: this.o.where, table: this.o.tables.flows };
    try {
      const [[v], parts, clusters] = await Promise.all([
        this.rows<{ version: string }>('SELECT version() AS version'),
        this.rows<{ rows: string; bytes: string }>(
          `SELECT sum(rows) AS rows, sum(bytes_on_disk) AS bytes FROM system.parts WHERE active AND database = ${quoteString(this.o.database)} AND table = ${quoteString(this.o.flowsTable)}`,
        ),
        this.rows<{ cluster: string; nodes: string }>(
          `SELECT cluster, uniq(node) AS nodes FROM ${this.o.tables.flows} WHERE ${windowCondition({ fromMs: now - 3_600_000, toMs: now })} GROUP BY cluster ORDER BY cluster`,
        ),
      ]);
      return {
        ...base,
        reachable: true,
        version: v?.version ?? '',
        rows: num(parts[0]?.rows),
        bytes: num(parts[0]?.bytes),
        clustersLastHour: clusters.map((c) => ({ cluster: c.cluster, nodes: num(c.nodes) })),
      };
    } catch (e) {
      return { ...base, reachable: false, error: (e as Error).message };
    }
  }

  /** undefined when ClickHouse answers `SELECT 1`, else why not. */
  async ping(): Promise<string | undefined> {
    try {
      await this.rows('SELECT 1 AS one');
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  }

  async close(): Promise<void> {
    await this.o.client.close();
  }
}
