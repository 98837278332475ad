/**
 * The flow store: the last hours of edges (one set per collection interval)
 * and of recent connection records, behind one query interface. The HTTP API
 * (src/server/api.ts) asks only what is here, so the embedded store of
 * `bpfagent run` (memory-store.ts) and the ClickHouse-backed store of
 * `bpfagent hub` (src/hub/clickhouse-store.ts) serve the same API. Queries
 * may answer at once or with a promise (a database); a store that cannot
 * answer (its database down) throws StoreUnavailable, which the API turns
 * into 503 with the reason.
 *
 * Windows are on interval ends: an interval belongs to the window (from, to]
 * when its end is in it. A record belongs to it when its `ts` is.
 */
import type { TcpRecord, UdpRecord } from '../events/records.js';
import { type Edge, type EdgeEnd, type TrafficTotals, recordEnds } from '../flows/edge-table.js';
import { RTT_BOUNDS_US } from '../flows/histogram.js';

export type FlowRecord = TcpRecord | UdpRecord;

export interface HistogramData {
  bounds: readonly number[];
  counts: number[];
  sum: number;
  count: number;
}

/** Which sides reported an edge's connections (a hub's edges: connections or, for UDP, flows). */
export interface EdgeViews {
  /** seen by both the client's and the server's agent (counted once: the client's counts) */
  both: number;
  /** by the client's agent alone (the server untraced, or its record unmatched) */
  client: number;
  /** by the server's agent alone (the caller untraced) */
  server: number;
}

/** One edge's counts summed over the intervals of a window. */
export type StoredEdge = Omit<Edge, 'rttUs' | 'observedBy'> & {
  /** `proto|observedBy|source.id|destination.id|port`, as the flow table keys it (a hub: what finds its records) */
  key: string;
  /** the side whose agent reported it; `both` when a hub matched the two sides' records of its connections */
  observedBy: 'client' | 'server' | 'both';
  /** a hub's edges: how many connections each side reported */
  views?: EdgeViews;
  /** a hub's edges: bytes (sent + received) by locality, where its connections differ (pods of one workload in several zones) */
  bytesByLocality?: Partial<Record<string, number>>;
  rttUs: HistogramData;
  /** the remote end's addresses seen (the backend's, behind DNAT) */
  remoteAddrs: string[];
  /** first and last interval end (ms since the epoch) it was in */
  firstSeen: number;
  lastSeen: number;
};

/**
 * A client edge and a server edge that carried the same connections: both
 * ends were on this host (loopback, or namespaces joined by veth), so each
 * side reported them. Found by the connections' 5-tuples.
 */
export interface EdgePair {
  clientKey: string;
  serverKey: string;
}

/** What /api/status says of any store. */
export interface StoreStatus {
  retentionMs: number;
  /** oldest data held, ms since the epoch; null when empty */
  oldest: number | null;
  [k: string]: unknown;
}

/** What a query may also narrow to: one cluster (a hub's store; the embedded one holds one node's data only). */
export interface StoreScope {
  cluster?: string;
}

/** The store cannot answer now (its database is down or refuses): the API answers 503 with the message. */
export class StoreUnavailable extends Error {}

export type MaybePromise<T> = T | Promise<T>;

export interface StoreStats extends StoreStatus {
  /** intervals held */
  intervals: number;
  /** edges held, summed over the intervals */
  edges: number;
  /** connection records held */
  connections: number;
  /** edges not kept because an interval had more than maxEdgesPerInterval */
  edgesDropped: number;
  /** intervals dropped before their time because the store held maxEdges */
  intervalsEvicted: number;
  /** records pushed out by newer ones (maxConnections) */
  connectionsEvicted: number;
  /** oldest interval end held, ms since the epoch; null when empty */
  oldest: number | null;
  retentionMs: number;
  /** on-disk size, for a persistent store */
  bytes?: number;
  /** intervals a persistent store could not write (kept in memory all the same) */
  writeErrors?: number;
  /** SQLite: writes the file still owes (failed, kept to replay with the next write) */
  owedWrites?: number;
  lastWriteError?: string;
}

/** What the API asks of a store. */
export interface FlowStore {
  readonly retentionMs: number;
  /** changes whenever what the queries answer may have changed (an interval kept, pruned or compacted): for caches */
  readonly version?: number;
  /** Every edge of intervals ending in (fromMs, toMs], summed per key. */
  edges(fromMs: number, toMs: number, scope?: StoreScope): MaybePromise<StoredEdge[]>;
  /** Client/server edge pairs seen in intervals ending in (fromMs, toMs]. */
  pairs(fromMs: number, toMs: number, scope?: StoreScope): MaybePromise<EdgePair[]>;
  /** Records of the edges with these keys whose ts is in (fromMs, toMs], newest first, at most `limit`. */
  connections(keys: readonly string[], fromMs: number, toMs: number, limit: number): MaybePromise<FlowRecord[]>;
  stats(): MaybePromise<StoreStatus>;
  close(): void | Promise<void>;
}

/** A store an agent fills, interval by interval (the embedded one). */
export interface RecordingFlowStore extends FlowStore {
  /**
   * One interval: the edges the flow table drained at `endMs`, and the
   * interval's TCP and UDP records (DNS records are ignored). `recordsDropped`:
   * records the caller could not keep before handing them over (counted).
   */
  addInterval(endMs: number, intervalMs: number, edges: readonly Edge[], records: readonly FlowRecord[], recordsDropped?: number): void;
}

export function edgeKey(e: { proto: string; observedBy: string; source: { id: string }; destination: { id: string }; port: number }): string {
  return `${e.proto}|${e.observedBy}|${e.source.id}|${e.destination.id}|${e.port}`;
}

/** Which side of a record is the client, and the server's port, as the flow table decides. */
function recordSide(r: FlowRecord): { clientIsLocal: boolean; port: number } {
  const clientIsLocal = r.direction === 'outbound';
  const port = clientIsLocal ? (r.proto === 'tcp' && r.remote.reached ? r.remote.reached.port : r.remote.port) : r.local.port;
  return { clientIsLocal, port };
}

/** The flow-table key of the edge a record went into (the overflow edge aside). */
export function recordEdgeKey(r: FlowRecord): string {
  const { clientIsLocal, port } = recordSide(r);
  const { source, destination } = recordEnds(r, clientIsLocal);
  return edgeKey({ proto: r.proto, observedBy: clientIsLocal ? 'client' : 'server', source, destination, port });
}

/**
 * The connection a record is one side of, written the same from both sides:
 * proto, client address and port, server address and port (the backend's,
 * behind DNAT).
 */
export function connectionTuple(r: FlowRecord): string {
  const { clientIsLocal } = recordSide(r);
  const remote = r.proto === 'tcp' && r.remote.reached ? r.remote.reached : r.remote;
  const local = `${r.local.addr}|${r.local.port}`;
  const rem = `${remote.addr}|${remote.port}`;
  return clientIsLocal ? `${r.proto}|${local}|${rem}` : `${r.proto}|${rem}|${local}`;
}

/**
 * Pairs client and server edges by the 5-tuples of their records. `carry`
 * holds the unmatched tuples of the previous call (a connection's two records
 * may fall in consecutive intervals); the function replaces its contents with
 * this call's unmatched ones.
 */
export function pairRecords(records: readonly FlowRecord[], carry: Map<string, { key: string; client: boolean }>): EdgePair[] {
  const pairs = new Map<string, EdgePair>();
  const previous = new Map(carry);
  carry.clear();
  for (const r of records) {
    const tuple = connectionTuple(r);
    const key = recordEdgeKey(r);
    const client = key.split('|', 2)[1] === 'client';
    const other = carry.get(tuple) ?? previous.get(tuple);
    if (other && other.client !== client) {
      const p = client ? { clientKey: key, serverKey: other.key } : { clientKey: other.key, serverKey: key };
      pairs.set(`${p.clientKey}\n${p.serverKey}`, p);
      carry.delete(tuple);
      previous.delete(tuple);
    } else {
      carry.set(tuple, { key, client });
    }
  }
  return [...pairs.values()];
}

export function emptyHistogram(): HistogramData {
  return { bounds: RTT_BOUNDS_US, counts: new Array<number>(RTT_BOUNDS_US.length + 1).fill(0), sum: 0, count: 0 };
}

export function addHistogram(into: HistogramData, h: HistogramData): void {
  if (h.counts.length !== into.counts.length) return;
  for (let i = 0; i < into.counts.length; i++) into.counts[i]! += h.counts[i]!;
  into.sum += h.sum;
  into.count += h.count;
}

/** The traffic counts of a stored edge: what two views of the same edge add up. */
export type EdgeCounts = TrafficTotals & { rttUs: HistogramData };

/** An edge's traffic totals, as a copy of its own (the failure counts included). */
export function copyTotals(e: TrafficTotals): TrafficTotals {
  return {
    connections: e.connections,
    failed: { ...e.failed },
    bytesSent: e.bytesSent,
    bytesReceived: e.bytesReceived,
    packetsSent: e.packetsSent,
    packetsReceived: e.packetsReceived,
    retransmits: e.retransmits,
  };
}

export function addEdgeCounts(into: EdgeCounts, e: EdgeCounts): void {
  into.connections += e.connections;
  into.failed.refused += e.failed.refused;
  into.failed.timeout += e.failed.timeout;
  into.failed.reset += e.failed.reset;
  into.bytesSent += e.bytesSent;
  into.bytesReceived += e.bytesReceived;
  into.packetsSent += e.packetsSent;
  into.packetsReceived += e.packetsReceived;
  into.retransmits += e.retransmits;
  addHistogram(into.rttUs, e.rttUs);
}

/** A stored edge from a flow-table edge of one interval. */
export function storedEdge(e: Edge, endMs: number): StoredEdge & { observedBy: 'client' | 'server' } {
  const h = e.rttUs.toJSON();
  const remote = e.observedBy === 'client' ? e.destination : e.source;
  return {
    key: edgeKey(e),
    proto: e.proto,
    observedBy: e.observedBy,
    // the ends are shared, never changed (sumEdges copies them)
    source: e.source,
    destination: e.destination,
    port: e.port,
    ...(e.locality !== undefined ? { locality: e.locality } : {}),
    ...copyTotals(e),
    rttUs: { bounds: h.bounds, counts: h.counts, sum: h.sum, count: h.count },
    remoteAddrs: remote.addr !== undefined ? [remote.addr] : [],
    firstSeen: endMs,
    lastSeen: endMs,
  };
}

/** Sum stored edges (of many intervals) per key. */
export function sumEdges(edges: Iterable<StoredEdge>): StoredEdge[] {
  const out = new Map<string, StoredEdge>();
  for (const e of edges) {
    const t = out.get(e.key);
    if (!t) {
      out.set(e.key, {
        ...e,
        source: { ...e.source },
        destination: { ...e.destination },
        failed: { ...e.failed },
        rttUs: { ...e.rttUs, counts: [...e.rttUs.counts] },
        remoteAddrs: [...e.remoteAddrs],
      });
      continue;
    }
    addEdgeCounts(t, e);
    for (const a of e.remoteAddrs) if (!t.remoteAddrs.includes(a) && t.remoteAddrs.length < 64) t.remoteAddrs.push(a);
    // the newest interval's view of the ends and locality wins (e.g. a pod that got its service later)
    if (e.lastSeen >= t.lastSeen) {
      Object.assign(t.source, e.source);
      Object.assign(t.destination, e.destination);
      if (e.locality !== undefined) t.locality = e.locality;
    }
    t.firstSeen = Math.min(t.firstSeen, e.firstSeen);
    t.lastSeen = Math.max(t.lastSeen, e.lastSeen);
  }
  return [...out.values()];
}
