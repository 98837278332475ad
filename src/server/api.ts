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
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import type { EdgeEnd, TrafficTotals } from '../flows/edge-table.js';
import { type EdgeCounts, type FlowRecord, type FlowStore, type HistogramData, type StoredEdge, addEdgeCounts, copyTotals, emptyHistogram } from '../store/flow-store.js';
import { parseDurationMs } from '../util/units.js';

export const LOCALITIES = ['same-host', 'same-zone', 'cross-zone', 'cluster', 'external'] as const;

export type NodeKind = 'workload' | 'process' | 'service' | 'dns' | 'node' | 'address';

export interface GraphNode {
  id: string;
  label: string;
  kind: NodeKind;
  namespace?: string;
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
  };
}

/**
 * The window's edges, with the two observations of a connection between two
 * ends of this host merged: the client edge keeps its counts and takes the
 * server edge's destination; the server edge goes.
 */
export function mergedEdges(store: FlowStore, fromMs: number, toMs: number): MergedEdge[] {
  const edges = store.edges(fromMs, toMs);
  const byKey = new Map(edges.map((e) => [e.key, e]));
  const serverOf = new Map<string, StoredEdge>();
  const pairedServers = new Set<string>();
  for (const p of store.pairs(fromMs, toMs)) {
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

export function nodeOf(end: EdgeEnd): GraphNode {
  const ns = end.namespace !== undefined && end.namespace !== '' ? { namespace: end.namespace } : {};
  if (end.workload !== undefined) return { id: end.id, label: end.workload, kind: 'workload', ...ns };
  if (end.id.startsWith('svc:')) return { id: end.id, label: end.service ?? end.id.slice(4), kind: 'service', ...ns };
  if (end.id.startsWith('dns:')) return { id: end.id, label: end.name ?? end.id.slice(4), kind: 'dns' };
  if (end.id.startsWith('node:')) return { id: end.id, label: end.node ?? end.id.slice(5), kind: 'node' };
  if (end.id.startsWith('process:')) return { id: end.id, label: end.process ?? end.id.slice(8), kind: 'process' };
  return { id: end.id, label: end.addr ?? end.id, kind: 'address' };
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

export function buildGraph(store: FlowStore, fromMs: number, toMs: number, filters: GraphFilters = {}): Graph {
  return graphOf(filterEdges(mergedEdges(store, fromMs, toMs), filters), fromMs, toMs);
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
export function externalDestinations(store: FlowStore, fromMs: number, toMs: number, limit: number): ExternalDestination[] {
  return externalSummary(mergedEdges(store, fromMs, toMs)).slice(0, limit);
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
export function localityTotals(store: FlowStore, fromMs: number, toMs: number): LocalityTotals {
  const totals = Object.fromEntries(LOCALITIES.map((l) => [l, { connections: 0, bytesSent: 0, bytesReceived: 0 }])) as LocalityTotals;
  for (const e of mergedEdges(store, fromMs, toMs)) {
    const t = totals[e.locality as keyof LocalityTotals];
    if (!t) continue;
    t.connections += e.connections;
    t.bytesSent += e.bytesSent;
    t.bytesReceived += e.bytesReceived;
  }
  return totals;
}

export function edgeConnections(store: FlowStore, id: string, fromMs: number, toMs: number, limit: number) {
  const e = mergedEdges(store, fromMs, toMs).find((m) => m.id === id);
  if (!e) return undefined;
  const connections: FlowRecord[] = store.connections(e.keys, fromMs, toMs, limit);
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
    .regex(/^\d{1,15}$/)
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
    if (k in params) continue;
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

export interface ApiOptions {
  store: FlowStore;
  /** the rest of /api/status: node, startedAt, attach, programs, features, udp, dns, kubernetes, loss, sinks */
  status: () => Record<string, unknown>;
  /** clock (tests) */
  now?: () => number;
}

export const DEFAULT_WINDOWS = { graph: '15m', connections: '15m', external: '1h', localities: '1h' };

/** The filters of an edge's identity, /api/graph's and /api/diff's. */
export const IDENTITY_PARAMS: Record<string, Param> = {
  namespace: text('a Kubernetes namespace'),
  workload: text('a workload or process name'),
  locality: { schema: z.enum(LOCALITIES), form: `one of ${LOCALITIES.join(', ')}` },
  proto: { schema: z.enum(['tcp', 'udp']), form: 'tcp or udp' },
};

/** A 400 for a bad parameter; anything else is thrown on. */
export function badParameter(reply: FastifyReply, e: unknown): FastifyReply {
  if (e instanceof BadParameter) return reply.code(400).send({ error: e.message });
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
  const graphParams: Record<string, Param> = {
    window,
    ...IDENTITY_PARAMS,
    failing: { schema: z.enum(['true', 'false']).transform((s) => s === 'true'), form: 'true or false' },
    minConnections: wholeParam(0, Number.MAX_SAFE_INTEGER),
    minBytes: wholeParam(0, Number.MAX_SAFE_INTEGER),
  };
  const bad = badParameter;
  const span = (q: Record<string, unknown>): [number, number] => {
    const to = now();
    return [to - (q.window as number), to];
  };

  app.get('/api/graph', async (req, reply) => {
    try {
      const q = parseQuery(req.query, graphParams, { window: def(DEFAULT_WINDOWS.graph) });
      const [from, to] = span(q);
      return reply.send(buildGraph(store, from, to, q as GraphFilters));
    } catch (e) {
      return bad(reply, e);
    }
  });

  app.get<{ Params: { id: string } }>('/api/edges/:id/connections', async (req, reply) => {
    try {
      const q = parseQuery(req.query, { window, limit: wholeParam(1, 1000) }, { window: def(DEFAULT_WINDOWS.connections), limit: '100' });
      const id = req.params.id;
      if (!/^[A-Za-z0-9_-]{1,4096}$/.test(id)) throw new BadParameter(`id: got ${JSON.stringify(id)}, expected an edge id from /api/graph (base64url)`);
      const [from, to] = span(q);
      const r = edgeConnections(store, id, from, to, q.limit as number);
      if (!r) return reply.code(404).send({ error: `id: no edge ${id} in the last ${formatDuration(q.window as number)}` });
      return reply.send(r);
    } catch (e) {
      return bad(reply, e);
    }
  });

  app.get('/api/external', async (req, reply) => {
    try {
      const q = parseQuery(req.query, { window, limit: wholeParam(1, 1000) }, { window: def(DEFAULT_WINDOWS.external), limit: '20' });
      const [from, to] = span(q);
      return reply.send({ window: { from: new Date(from).toISOString(), to: new Date(to).toISOString() }, destinations: externalDestinations(store, from, to, q.limit as number) });
    } catch (e) {
      return bad(reply, e);
    }
  });

  app.get('/api/localities', async (req, reply) => {
    try {
      const q = parseQuery(req.query, { window }, { window: def(DEFAULT_WINDOWS.localities) });
      const [from, to] = span(q);
      return reply.send({ window: { from: new Date(from).toISOString(), to: new Date(to).toISOString() }, totals: localityTotals(store, from, to) });
    } catch (e) {
      return bad(reply, e);
    }
  });

  app.get('/api/status', async (req, reply) => {
    try {
      parseQuery(req.query, {});
      return reply.send({ ...opts.status(), store: store.stats() });
    } catch (e) {
      return bad(reply, e);
    }
  });
}
