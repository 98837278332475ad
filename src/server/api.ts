/**
 * The live service map's HTTP API (JSON), over a FlowStore. docs/api.md.
 *
 * Contract notes for the web UI (decided here, within the agreed contract):
 * - edge ids: base64url (RFC 4648 §5, no padding) of
 *   `proto|source.id|destination.id|port|observedBy`: URL-safe as they are.
 * - edge `observedBy`: 'client', 'server', or 'both' when the client's and the
 *   server's observations of the same connections (both ends on this host)
 *   were merged into one edge (the client's counts kept, the server's end as
 *   the destination: the process or workload that answered); its locality
 *   is 'same-host'.
 * - node ids are EdgeEnd ids, as `bpfagent flows` and the metrics name ends.
 * - /api/graph also gives `links`: the edges summed per caller and callee,
 *   what the map draws (one line per pair of nodes, whatever the ports).
 * - health: 'failing' when failed (refused + timeout + reset) >= 50% of the
 *   connections; else 'degraded' when any failed or any retransmit; else 'ok'.
 * - `failing=true` keeps the edges with at least one failed connection.
 * - `minConnections` counts TCP connections (a UDP edge has none);
 *   `minBytes` counts bytesSent + bytesReceived.
 * - edge `rttUs.p50`/`p99`: the upper bound (µs) of the histogram bucket
 *   holding that quantile; null when the edge has no RTT (UDP, failed only).
 * - /api/edges/:id/connections also gives `source` and `target` (the two
 *   nodes); an edge not in the window is 404 `{ error }`.
 * - /api/external and /api/localities also give `window: { from, to }`.
 * - /api/status also gives `flows: { tracked, overflowed }`; `store` also
 *   carries edgesDropped, intervalsEvicted, connectionsEvicted, oldest,
 *   retentionMs, and with a dataDir bytes and writeErrors.
 * - a window reaching past 10 minutes (1 hour) starts on a minute (5-minute)
 *   boundary: older intervals are kept summed (docs/api.md).
 * - a store that cannot answer (the hub's ClickHouse down) is 503 `{ error }`
 *   with its reason; bad parameters are 400 before the store is asked.
 * - with `clusters` (the hub), every route takes `cluster`, and node ids of
 *   ends in a named cluster are `<cluster>:<id>` (GraphNode.cluster says which).
 * - /api/callers, /api/dependencies and /api/cost: api-usage.ts.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { LOCALITIES } from '../events/records.js';
import type { EdgeEnd, TrafficTotals } from '../flows/edge-table.js';
import {
  type EdgeCounts,
  type EdgeViews,
  type FlowRecord,
  type FlowStore,
  type HistogramData,
  type StoreScope,
  type StoredEdge,
  StoreUnavailable,
  addEdgeCounts,
  copyTotals,
  emptyHistogram,
} from '../store/flow-store.js';
import { parseDurationMs } from '../util/units.js';
import { callersOf, costOf, dependenciesOf, type PricePerGB } from './api-usage.js';
import { BusyError, QueryCache } from './query-cache.js';

export { LOCALITIES };

export type NodeKind = 'workload' | 'process' | 'service' | 'dns' | 'node' | 'address';

export interface GraphNode {
  id: string;
  label: string;
  kind: NodeKind;
  namespace?: string;
  /** a hub's nodes: the cluster */
  cluster?: string;
}

export type Health = 'ok' | 'degraded' | 'failing';

export interface GraphEdge extends TrafficTotals {
  id: string;
  source: string;
  target: string;
  port: number;
  proto: 'tcp' | 'udp';
  observedBy: 'client' | 'server' | 'both';
  rttUs: { p50: number | null; p99: number | null; count: number };
  locality?: string;
  health: Health;
  connectionsPerSec: number;
  /** a hub's edges: which sides reported its connections */
  views?: EdgeViews;
}

/** A graph edge with what the API needs behind it. */
export type MergedEdge = Omit<StoredEdge, 'key' | 'observedBy' | 'firstSeen' | 'lastSeen'> & {
  id: string;
  observedBy: 'client' | 'server' | 'both';
  /** store keys whose records are this edge's connections (the client's when merged) */
  keys: string[];
};

/**
 * What the map draws between two nodes: one line per caller and callee,
 * whatever the ports and protocols between them, with their counts summed
 * (the RTT percentiles from the summed histograms). `edges`: the ids of the
 * edges it sums (one per port and protocol), busiest first.
 */
export interface GraphLink extends TrafficTotals {
  id: string;
  source: string;
  target: string;
  edges: string[];
  /** the protocols of its edges: 'tcp', 'udp', or both */
  protos: Array<'tcp' | 'udp'>;
  rttUs: { p50: number | null; p99: number | null; count: number };
  /** when all its edges have the same */
  locality?: string;
  health: Health;
  connectionsPerSec: number;
}

/** A link's id: base64url of `source|target` (URL-safe, like edge ids). */
export function linkId(source: string, target: string): string {
  return Buffer.from(`${source}|${target}`, 'utf8').toString('base64url');
}

export function edgeId(proto: string, source: string, destination: string, port: number, observedBy: string): string {
  return Buffer.from(`${proto}|${source}|${destination}|${port}|${observedBy}`, 'utf8').toString('base64url');
}

export function healthOf(e: { connections: number; failed: { refused: number; timeout: number; reset: number }; retransmits: number }): Health {
  const failed = e.failed.refused + e.failed.timeout + e.failed.reset;
  if (failed > 0 && failed * 2 >= e.connections) return 'failing';
  if (failed > 0 || e.retransmits > 0) return 'degraded';
  return 'ok';
}

/** The smallest bucket bound holding quantile q of the observations (null when none; the largest bound for +Inf). */
export function quantileBound(h: HistogramData, q: number): number | null {
  if (!h.count) return null;
  const rank = q * h.count;
  for (let i = 0; i < h.bounds.length; i++) if (h.counts[i]! >= rank) return h.bounds[i]!;
  return h.bounds[h.bounds.length - 1] ?? null;
}

function fromStored(e: StoredEdge, observedBy: MergedEdge['observedBy'], destination: EdgeEnd): MergedEdge {
  return {
    id: edgeId(e.proto, e.source.id, destination.id, e.port, observedBy),
    proto: e.proto,
    observedBy,
    source: e.source,
    destination,
    port: e.port,
    ...(e.locality !== undefined ? { locality: e.locality } : {}),
    ...copyTotals(e),
    rttUs: { ...e.rttUs, counts: [...e.rttUs.counts] },
    remoteAddrs: [...e.remoteAddrs],
    keys: [e.key],
    ...(e.views ? { views: { ...e.views } } : {}),
    ...(e.bytesByLocality ? { bytesByLocality: { ...e.bytesByLocality } } : {}),
  };
}

/**
 * The window's edges, with the two observations of a connection between two
 * ends of this host merged: the client edge keeps its counts and takes the
 * server edge's destination; the server edge goes.
 */
export async function mergedEdges(store: FlowStore, fromMs: number, toMs: number, scope: StoreScope = {}): Promise<MergedEdge[]> {
  const [edges, pairs] = await Promise.all([store.edges(fromMs, toMs, scope), store.pairs(fromMs, toMs, scope)]);
  const byKey = new Map(edges.map((e) => [e.key, e]));
  const serverOf = new Map<string, StoredEdge>();
  const pairedServers = new Set<string>();
  for (const p of pairs) {
    const c = byKey.get(p.clientKey);
    const s = byKey.get(p.serverKey);
    if (!c || !s || serverOf.has(p.clientKey)) continue;
    serverOf.set(p.clientKey, s);
    pairedServers.add(p.serverKey);
  }
  const out = new Map<string, MergedEdge>();
  for (const e of edges) {
    if (pairedServers.has(e.key)) continue;
    const server = serverOf.get(e.key);
    const m = server ? fromStored(e, 'both', server.destination) : fromStored(e, e.observedBy, e.destination);
    // both ends seen here: on this host, whatever the client's first record said before the server's address was learned
    if (server) m.locality = 'same-host';
    const t = out.get(m.id);
    if (!t) {
      out.set(m.id, m);
      continue;
    }
    addEdgeCounts(t, m);
    for (const a of m.remoteAddrs) if (!t.remoteAddrs.includes(a)) t.remoteAddrs.push(a);
    t.keys.push(...m.keys);
  }
  return [...out.values()];
}

/** An end's id without its cluster prefix (a hub's ends: `<cluster>:<id>`). */
export function bareId(end: EdgeEnd): string {
  return end.cluster ? end.id.slice(end.cluster.length + 1) : end.id;
}

export function nodeOf(end: EdgeEnd): GraphNode {
  const ns = end.namespace !== undefined && end.namespace !== '' ? { namespace: end.namespace } : {};
  const cl = end.cluster ? { cluster: end.cluster } : {};
  const id = bareId(end);
  if (end.workload !== undefined) return { id: end.id, label: end.workload, kind: 'workload', ...ns, ...cl };
  if (id.startsWith('svc:')) return { id: end.id, label: end.service ?? id.slice(4), kind: 'service', ...ns, ...cl };
  if (id.startsWith('dns:')) return { id: end.id, label: end.name ?? id.slice(4), kind: 'dns', ...cl };
  if (id.startsWith('node:')) return { id: end.id, label: end.node ?? id.slice(5), kind: 'node', ...cl };
  if (id.startsWith('process:')) return { id: end.id, label: end.process ?? id.slice(8), kind: 'process', ...cl };
  return { id: end.id, label: end.addr ?? id, kind: 'address', ...cl };
}

const perSec = (n: number, windowMs: number): number => Math.round((n / (windowMs / 1000)) * 1000) / 1000;

function graphEdge(e: MergedEdge, windowMs: number): GraphEdge {
  return {
    id: e.id,
    source: e.source.id,
    target: e.destination.id,
    port: e.port,
    proto: e.proto,
    observedBy: e.observedBy,
    connections: e.connections,
    failed: e.failed,
    bytesSent: e.bytesSent,
    bytesReceived: e.bytesReceived,
    packetsSent: e.packetsSent,
    packetsReceived: e.packetsReceived,
    retransmits: e.retransmits,
    rttUs: { p50: quantileBound(e.rttUs, 0.5), p99: quantileBound(e.rttUs, 0.99), count: e.rttUs.count },
    ...(e.locality !== undefined ? { locality: e.locality } : {}),
    health: healthOf(e),
    connectionsPerSec: perSec(e.connections, windowMs),
    ...(e.views ? { views: e.views } : {}),
  };
}

/** Counts that nothing was added to yet. */
export function zeroCounts(): EdgeCounts {
  return { connections: 0, failed: { refused: 0, timeout: 0, reset: 0 }, bytesSent: 0, bytesReceived: 0, packetsSent: 0, packetsReceived: 0, retransmits: 0, rttUs: emptyHistogram() };
}

/** The edges (busiest first) summed per caller and callee, busiest first. */
export function graphLinks(edges: readonly MergedEdge[], windowMs: number): GraphLink[] {
  interface Pair {
    source: string;
    target: string;
    edges: string[];
    protos: Set<'tcp' | 'udp'>;
    localities: Set<string | undefined>;
    counts: EdgeCounts;
  }
  const byPair = new Map<string, Pair>();
  for (const e of edges) {
    const id = linkId(e.source.id, e.destination.id);
    let p = byPair.get(id);
    if (!p) byPair.set(id, (p = { source: e.source.id, target: e.destination.id, edges: [], protos: new Set(), localities: new Set(), counts: zeroCounts() }));
    addEdgeCounts(p.counts, e);
    p.edges.push(e.id);
    p.protos.add(e.proto);
    p.localities.add(e.locality);
  }
  const out = [...byPair].map(([id, p]): GraphLink => {
    const [locality] = p.localities;
    return {
      id,
      source: p.source,
      target: p.target,
      edges: p.edges,
      protos: [...p.protos].sort(),
      ...copyTotals(p.counts),
      rttUs: { p50: quantileBound(p.counts.rttUs, 0.5), p99: quantileBound(p.counts.rttUs, 0.99), count: p.counts.rttUs.count },
      ...(p.localities.size === 1 && locality !== undefined ? { locality } : {}),
      health: healthOf(p.counts),
      connectionsPerSec: perSec(p.counts.connections, windowMs),
    };
  });
  return out.sort((a, b) => b.bytesSent + b.bytesReceived - (a.bytesSent + a.bytesReceived) || b.connections - a.connections || (a.id < b.id ? -1 : 1));
}

export interface GraphFilters {
  namespace?: string;
  workload?: string;
  locality?: string;
  proto?: 'tcp' | 'udp';
  failing?: boolean;
  minConnections?: number;
  minBytes?: number;
}

const endMatches = (e: EdgeEnd, f: (e: EdgeEnd) => boolean): boolean => f(e);

export function filterEdges(edges: MergedEdge[], f: GraphFilters): MergedEdge[] {
  return edges.filter((e) => {
    if (f.namespace !== undefined && !(e.source.namespace === f.namespace || e.destination.namespace === f.namespace)) return false;
    if (f.workload !== undefined) {
      const w = f.workload;
      const hit = (x: EdgeEnd): boolean => x.workload === w || x.process === w || x.id === w;
      if (!endMatches(e.source, hit) && !endMatches(e.destination, hit)) return false;
    }
    if (f.locality !== undefined && e.locality !== f.locality) return false;
    if (f.proto !== undefined && e.proto !== f.proto) return false;
    if (f.failing && e.failed.refused + e.failed.timeout + e.failed.reset === 0) return false;
    if (f.minConnections !== undefined && e.connections < f.minConnections) return false;
    if (f.minBytes !== undefined && e.bytesSent + e.bytesReceived < f.minBytes) return false;
    return true;
  });
}

export interface Graph {
  window: { from: string; to: string };
  nodes: GraphNode[];
  edges: GraphEdge[];
  links: GraphLink[];
}

export async function buildGraph(store: FlowStore, fromMs: number, toMs: number, filters: GraphFilters = {}, scope: StoreScope = {}): Promise<Graph> {
  return graphOf(filterEdges(await mergedEdges(store, fromMs, toMs, scope), filters), fromMs, toMs);
}

/** The graph of a window's edges (merged and filtered; sorted here, busiest first). */
export function graphOf(edges: MergedEdge[], fromMs: number, toMs: number): Graph {
  const nodes = new Map<string, GraphNode>();
  for (const e of edges) {
    for (const end of [e.source, e.destination]) {
      const n = nodeOf(end);
      const had = nodes.get(n.id);
      if (!had || (had.namespace === undefined && n.namespace !== undefined)) nodes.set(n.id, n);
    }
  }
  const order = (a: MergedEdge, b: MergedEdge): number => b.bytesSent + b.bytesReceived - (a.bytesSent + a.bytesReceived) || b.connections - a.connections || (a.id < b.id ? -1 : 1);
  edges.sort(order);
  return {
    window: { from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() },
    nodes: [...nodes.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    edges: edges.map((e) => graphEdge(e, toMs - fromMs)),
    links: graphLinks(edges, toMs - fromMs),
  };
}

export interface ExternalDestination {
  name: string;
  addrs: string[];
  connections: number;
  failed: number;
  bytesSent: number;
  bytesReceived: number;
}

/** The end of an edge that is not on this host: the callee, unless only the server's side saw it. */
export const remoteOf = (e: MergedEdge): EdgeEnd => (e.observedBy === 'server' ? e.source : e.destination);

/** Remote ends with locality external, by DNS name (or address when unnamed), busiest first. */
export async function externalDestinations(store: FlowStore, fromMs: number, toMs: number, limit: number, scope: StoreScope = {}): Promise<ExternalDestination[]> {
  return externalSummary(await mergedEdges(store, fromMs, toMs, scope)).slice(0, limit);
}

/** The external ends of these edges, by DNS name (or address when unnamed), busiest first. */
export function externalSummary(edges: readonly MergedEdge[]): ExternalDestination[] {
  const out = new Map<string, ExternalDestination>();
  for (const e of edges) {
    if (e.locality !== 'external') continue;
    const remote = remoteOf(e);
    const name = remote.name ?? remote.addr ?? remote.id;
    let d = out.get(name);
    if (!d) out.set(name, (d = { name, addrs: [], connections: 0, failed: 0, bytesSent: 0, bytesReceived: 0 }));
    for (const a of e.remoteAddrs) if (!d.addrs.includes(a)) d.addrs.push(a);
    d.connections += e.connections;
    d.failed += e.failed.refused + e.failed.timeout + e.failed.reset;
    d.bytesSent += e.bytesSent;
    d.bytesReceived += e.bytesReceived;
  }
  for (const d of out.values()) d.addrs.sort();
  return [...out.values()].sort((a, b) => b.bytesSent + b.bytesReceived - (a.bytesSent + a.bytesReceived) || b.connections - a.connections || (a.name < b.name ? -1 : 1));
}

export type LocalityTotals = Record<(typeof LOCALITIES)[number], { connections: number; bytesSent: number; bytesReceived: number }>;

/** Connections and bytes by the remote end's locality (merged edges: nothing counted twice). */
export async function localityTotals(store: FlowStore, fromMs: number, toMs: number, scope: StoreScope = {}): Promise<LocalityTotals> {
  const totals = Object.fromEntries(LOCALITIES.map((l) => [l, { connections: 0, bytesSent: 0, bytesReceived: 0 }])) as LocalityTotals;
  for (const e of await mergedEdges(store, fromMs, toMs, scope)) {
    const t = totals[e.locality as keyof LocalityTotals];
    if (!t) continue;
    t.connections += e.connections;
    t.bytesSent += e.bytesSent;
    t.bytesReceived += e.bytesReceived;
  }
  return totals;
}

export async function edgeConnections(store: FlowStore, id: string, fromMs: number, toMs: number, limit: number, scope: StoreScope = {}) {
  const e = (await mergedEdges(store, fromMs, toMs, scope)).find((m) => m.id === id);
  if (!e) return undefined;
  const connections: FlowRecord[] = await store.connections(e.keys, fromMs, toMs, limit);
  return {
    edge: graphEdge(e, toMs - fromMs),
    source: nodeOf(e.source),
    target: nodeOf(e.destination),
    connections,
    failures: { ...e.failed },
    rttUs: { bounds: e.rttUs.bounds, counts: e.rttUs.counts, sum: e.rttUs.sum, count: e.rttUs.count },
  };
}

// ---- parameters ------------------------------------------------------------

/** A query parameter's check: its schema (strings in) and the form quoted in errors. */
export interface Param {
  schema: z.ZodTypeAny;
  form: string;
}

const wholeParam = (min: number, max: number): Param => ({
  schema: z
    .string()
    .regex(/^\d{1,16}$/)
    .transform(Number)
    .pipe(z.number().int().min(min).max(max)),
  form: `a whole number from ${min} to ${max}`,
});

export const text = (what: string): Param => ({ schema: z.string().min(1).max(253), form: `${what} (1 to 253 characters)` });

export function windowParam(retentionMs: number): Param {
  const max = formatDuration(retentionMs);
  const form = `a duration from 1s to ${max} (the store's retention), such as 15m or 1h`;
  return {
    schema: z.string().transform((s, ctx) => {
      const n = parseDurationMs(s);
      if (n === undefined || n < 1000 || n > retentionMs) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: form });
        return z.NEVER;
      }
      return Math.round(n);
    }),
    form,
  };
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

export class BadParameter extends Error {}

/** Validate a query string against the route's parameters: every error names the parameter, the value and the form expected. */
export function parseQuery(query: unknown, params: Record<string, Param>, defaults: Record<string, string> = {}): Record<string, unknown> {
  const q = (query ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(q)) {
    // own keys only: 'constructor' or 'toString' is not a parameter because every object has one
    if (Object.hasOwn(params, k)) continue;
    const known = Object.keys(params);
    throw new BadParameter(`${k}: unknown parameter, expected ${known.length ? `one of: ${known.join(', ')}` : 'none'}`);
  }
  for (const [k, p] of Object.entries(params)) {
    let v = q[k];
    if (Array.isArray(v)) throw new BadParameter(`${k}: given ${v.length} times, expected it once`);
    if (v === undefined || v === '') v = defaults[k];
    if (v === undefined) continue;
    const r = p.schema.safeParse(v);
    if (!r.success) throw new BadParameter(`${k}: got ${JSON.stringify(v)}, expected ${p.form}`);
    out[k] = r.data;
  }
  return out;
}

// ---- routes ----------------------------------------------------------------

/** The JSON text of a route's answer: through the cache when there is one (query-cache.ts), else computed for this request. */
export async function answerText(cache: QueryCache | undefined, key: string, compute: () => unknown): Promise<string> {
  return cache ? cache.get(key, compute) : JSON.stringify(await compute());
}

/** A route's answer (see answerText) sent as JSON. */
export async function sendAnswer(reply: FastifyReply, cache: QueryCache | undefined, key: string, compute: () => unknown): Promise<FastifyReply> {
  return reply.type('application/json; charset=utf-8').send(await answerText(cache, key, compute));
}

export interface ApiOptions {
  store: FlowStore;
  /** the rest of /api/status: node, startedAt, attach, programs, features, udp, dns, kubernetes, loss, sinks (a hub: its own) */
  status: () => Record<string, unknown> | Promise<Record<string, unknown>>;
  /** clock (tests) */
  now?: () => number;
  /** the store holds several clusters (the hub): every route takes `cluster` */
  clusters?: boolean;
  /** price per GB (10^9 bytes) by locality, for /api/cost's cost column; none: no cost */
  pricePerGB?: PricePerGB | null;
  /** where answers are computed and kept (bpfagent run: per interval, see query-cache.ts); none: computed per request */
  cache?: QueryCache;
}

export const DEFAULT_WINDOWS = { graph: '15m', connections: '15m', external: '1h', localities: '1h', usage: '1h' };

const CLUSTER_FORM = 'a cluster name (1 to 63 letters, digits, -, _ and .)';

/** A hub's routes take `cluster` (one cluster's edges); a node's do not. */
export const clusterParams = (clusters: boolean | undefined): Record<string, Param> =>
  clusters ? { cluster: { schema: z.string().regex(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/), form: CLUSTER_FORM } } : {};

/** The store scope a parsed query asks for. */
export const scopeOf = (q: Record<string, unknown>): StoreScope => (typeof q.cluster === 'string' ? { cluster: q.cluster } : {});
const endId = (what: string): Param => ({ schema: z.string().min(1).max(600), form: `${what} (an id from /api/graph)` });

/** The filters of an edge's identity, /api/graph's and /api/diff's. */
export const IDENTITY_PARAMS: Record<string, Param> = {
  namespace: text('a Kubernetes namespace'),
  workload: text('a workload or process name'),
  locality: { schema: z.enum(LOCALITIES), form: `one of ${LOCALITIES.join(', ')}` },
  proto: { schema: z.enum(['tcp', 'udp']), form: 'tcp or udp' },
};

/** A route's failure answered: a bad parameter 400, a store that cannot answer (the hub's ClickHouse down) 503, each with its reason. */
export function badParameter(reply: FastifyReply, e: unknown): FastifyReply {
  if (e instanceof BadParameter) return reply.code(400).send({ error: e.message });
  if (e instanceof StoreUnavailable) return reply.code(503).send({ error: e.message });
  if (e instanceof BusyError) return reply.code(503).header('retry-after', '1').send({ error: e.message });
  throw e;
}

/** A default window, cut to the store's retention when longer. */
export const defaultWindow = (d: string, retentionMs: number): string => ((parseDurationMs(d) ?? 0) > retentionMs ? formatDuration(retentionMs) : d);

/** Register the /api routes (before the server listens). */
export function registerApi(app: FastifyInstance, opts: ApiOptions): void {
  const now = opts.now ?? Date.now;
  const { store } = opts;
  const window = windowParam(store.retentionMs);
  const def = (d: string): string => defaultWindow(d, store.retentionMs);
  // the hub: one cluster, or all
  const scoped = clusterParams(opts.clusters);
  const graphParams: Record<string, Param> = {
    ...scoped,
    window,
    ...IDENTITY_PARAMS,
    failing: { schema: z.enum(['true', 'false']).transform((s) => s === 'true'), form: 'true or false' },
    minConnections: wholeParam(0, Number.MAX_SAFE_INTEGER),
    minBytes: wholeParam(0, Number.MAX_SAFE_INTEGER),
  };
  const cache = opts.cache;
  const bad = badParameter;
  const windowOf = (from: number, to: number) => ({ from: new Date(from).toISOString(), to: new Date(to).toISOString() });
  const span = (q: Record<string, unknown>): [number, number] => {
    const to = now();
    return [to - (q.window as number), to];
  };

  app.get('/api/graph', async (req, reply) => {
    try {
      const q = parseQuery(req.query, graphParams, { window: def(DEFAULT_WINDOWS.graph) });
      return await sendAnswer(reply, cache, `graph ${JSON.stringify(q)}`, () => {
        const [from, to] = span(q);
        return buildGraph(store, from, to, q as GraphFilters, scopeOf(q));
      });
    } catch (e) {
      return bad(reply, e);
    }
  });

  app.get<{ Params: { id: string } }>('/api/edges/:id/connections', async (req, reply) => {
    try {
      const q = parseQuery(req.query, { ...scoped, window, limit: wholeParam(1, 1000) }, { window: def(DEFAULT_WINDOWS.connections), limit: '100' });
      const id = req.params.id;
      if (!/^[A-Za-z0-9_-]{1,4096}$/.test(id)) throw new BadParameter(`id: got ${JSON.stringify(id)}, expected an edge id from /api/graph (base64url)`);
      const compute = async () => {
        const [from, to] = span(q);
        return (await edgeConnections(store, id, from, to, q.limit as number, scopeOf(q))) ?? null;
      };
      const body = await answerText(cache, `connections ${id} ${JSON.stringify(q)}`, compute);
      if (body === 'null') return reply.code(404).send({ error: `id: no edge ${id} in the last ${formatDuration(q.window as number)}` });
      return reply.type('application/json; charset=utf-8').send(body);
    } catch (e) {
      return bad(reply, e);
    }
  });

  app.get('/api/external', async (req, reply) => {
    try {
      const q = parseQuery(req.query, { ...scoped, window, limit: wholeParam(1, 1000) }, { window: def(DEFAULT_WINDOWS.external), limit: '20' });
      return await sendAnswer(reply, cache, `external ${JSON.stringify(q)}`, async () => {
        const [from, to] = span(q);
        return { window: windowOf(from, to), destinations: await externalDestinations(store, from, to, q.limit as number, scopeOf(q)) };
      });
    } catch (e) {
      return bad(reply, e);
    }
  });

  app.get('/api/localities', async (req, reply) => {
    try {
      const q = parseQuery(req.query, { ...scoped, window }, { window: def(DEFAULT_WINDOWS.localities) });
      return await sendAnswer(reply, cache, `localities ${JSON.stringify(q)}`, async () => {
        const [from, to] = span(q);
        return { window: windowOf(from, to), totals: await localityTotals(store, from, to, scopeOf(q)) };
      });
    } catch (e) {
      return bad(reply, e);
    }
  });

  // who calls a service (or any end), and what a workload (or any end) depends on
  for (const [route, what, usage] of [
    ['/api/callers', 'a Service, workload or other end', callersOf],
    ['/api/dependencies', 'a workload, process or other end', dependenciesOf],
  ] as const) {
    app.get(route, async (req, reply) => {
      try {
        const q = parseQuery(req.query, { ...scoped, window, of: endId(what), limit: wholeParam(1, 1000) }, { window: def(DEFAULT_WINDOWS.usage), limit: '100' });
        if (q.of === undefined) throw new BadParameter(`of: missing, expected ${what} (an id from /api/graph)`);
        return await sendAnswer(reply, cache, `${route} ${JSON.stringify(q)}`, async () => {
          const [from, to] = span(q);
          const edges = await mergedEdges(store, from, to, scopeOf(q));
          return { window: windowOf(from, to), of: q.of, ...usage(edges, q.of as string, q.limit as number) };
        });
      } catch (e) {
        return bad(reply, e);
      }
    });
  }

  app.get('/api/cost', async (req, reply) => {
    try {
      const q = parseQuery(req.query, { ...scoped, window, limit: wholeParam(1, 1000) }, { window: def(DEFAULT_WINDOWS.usage), limit: '50' });
      return await sendAnswer(reply, cache, `cost ${JSON.stringify(q)}`, async () => {
        const [from, to] = span(q);
        const edges = await mergedEdges(store, from, to, scopeOf(q));
        return { window: windowOf(from, to), ...costOf(edges, opts.pricePerGB ?? null, q.limit as number) };
      });
    } catch (e) {
      return bad(reply, e);
    }
  });

  app.get('/api/status', async (req, reply) => {
    try {
      parseQuery(req.query, {});
      const [status, stats] = await Promise.all([opts.status(), store.stats()]);
      return reply.send({ ...status, store: stats });
    } catch (e) {
      return bad(reply, e);
    }
  });
}
