/**
 * What changed between two windows of the flow store (GET /api/diff,
 * docs/api.md): the edges that appeared, the edges that disappeared, the
 * external DNS names not called in the baseline, and the edges whose failure
 * ratio, bytes or p99 RTT moved past DIFF_THRESHOLDS, each with both
 * windows' numbers.
 *
 * Asked of the store only through its query interface (edges and pairs of a
 * window, as /api/graph asks them), so any FlowStore answers it, the
 * embedded one or one over ClickHouse.
 *
 * Edges are compared by caller, callee, port and protocol: whether one
 * window saw a connection from both ends and the other from one (observedBy)
 * is not a change of traffic.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { EdgeEnd, TrafficTotals } from '../flows/edge-table.js';
import { type EdgeCounts, type FlowStore, type StoreScope, addEdgeCounts, copyTotals } from '../store/flow-store.js';
import type { QueryCache } from './query-cache.js';
import {
  type ExternalDestination,
  type Graph,
  type GraphFilters,
  type GraphNode,
  type Health,
  type MergedEdge,
  type Param,
  BadParameter,
  IDENTITY_PARAMS,
  badParameter,
  clusterParams,
  defaultWindow,
  externalSummary,
  formatDuration,
  graphOf,
  filterEdges,
  healthOf,
  linkId,
  mergedEdges,
  nodeOf,
  parseQuery,
  quantileBound,
  remoteOf,
  scopeOf,
  sendAnswer,
  windowParam,
  zeroCounts,
} from './api.js';

/**
 * When an edge seen in both windows counts as changed (any one suffices).
 * Bytes are compared per second, so windows of different lengths compare fairly.
 */
export const DIFF_THRESHOLDS = {
  /** (refused + timeout + reset) / connections moved by at least this much (0.1 = 10 points); TCP edges with connections in both windows */
  failureRatio: 0.1,
  /** bytes (sent + received) per second at least doubled or halved ... */
  bytesFactor: 2,
  /** ... and by at least this many bytes over the window (the baseline's rate at the window's length) */
  bytesMin: 10_000,
  /** the p99 RTT (its histogram bucket's bound) at least doubled or halved ... */
  rttFactor: 2,
  /** ... and by at least this many microseconds ... */
  rttMinUs: 1000,
  /** ... with at least this many RTT samples in each window (over fewer, the p99 is little more than the slowest one) */
  rttMinSamples: 20,
} as const;

/** The window a diff looks at unless told: the last hour (against the hour before it). */
export const DEFAULT_DIFF_WINDOW = '1h';

/** The filters a diff takes: those of an edge's identity (a traffic filter would make edges come and go). */
export type DiffFilters = Pick<GraphFilters, 'namespace' | 'workload' | 'locality' | 'proto'>;

/** One window's numbers of an edge (zeros when it had none). */
export interface DiffNumbers extends TrafficTotals {
  /** failed / connections; null without connections */
  failureRatio: number | null;
  rttUs: { p50: number | null; p99: number | null; count: number };
  health: Health;
}

export type DiffMetric = 'failureRatio' | 'bytesPerSec' | 'rttP99Us';

export interface DiffChange {
  metric: DiffMetric;
  before: number;
  after: number;
}

export interface DiffEdge {
  /** base64url of `proto|source|target|port` */
  id: string;
  /** the /api/graph link (line of the map) it is part of */
  link: string;
  source: string;
  target: string;
  port: number;
  proto: 'tcp' | 'udp';
  /** its /api/graph edge ids in either window (one per observedBy) */
  edges: string[];
  before: DiffNumbers;
  after: DiffNumbers;
  /** what moved past the thresholds (changed edges only) */
  changes?: DiffChange[];
}

export interface Window {
  fromMs: number;
  toMs: number;
}

export interface DiffAnswer {
  window: { from: string; to: string };
  baseline: { from: string; to: string };
  thresholds: typeof DIFF_THRESHOLDS;
  appeared: DiffEdge[];
  disappeared: DiffEdge[];
  changed: DiffEdge[];
  /** external DNS names called in the window and not in the baseline, with the window's numbers */
  newNames: ExternalDestination[];
  /** the ends of the edges listed */
  nodes: GraphNode[];
  /** with graph=true: the window's graph, as /api/graph gives it under the same filters (what the map draws the diff over) */
  graph?: Graph;
}

/** An edge of one window, its observations summed. */
interface Side {
  proto: 'tcp' | 'udp';
  source: EdgeEnd;
  destination: EdgeEnd;
  port: number;
  ids: string[];
  counts: EdgeCounts;
}

const diffKey = (e: { proto: string; source: EdgeEnd; destination: EdgeEnd; port: number }): string => `${e.proto}|${e.source.id}|${e.destination.id}|${e.port}`;

function sides(edges: readonly MergedEdge[]): Map<string, Side> {
  const out = new Map<string, Side>();
  for (const e of edges) {
    const k = diffKey(e);
    let s = out.get(k);
    if (!s) out.set(k, (s = { proto: e.proto, source: e.source, destination: e.destination, port: e.port, ids: [], counts: zeroCounts() }));
    addEdgeCounts(s.counts, e);
    s.ids.push(e.id);
  }
  return out;
}

const failedOf = (c: EdgeCounts): number => c.failed.refused + c.failed.timeout + c.failed.reset;

function numbers(c: EdgeCounts): DiffNumbers {
  return {
    ...copyTotals(c),
    failureRatio: c.connections ? failedOf(c) / c.connections : null,
    rttUs: { p50: quantileBound(c.rttUs, 0.5), p99: quantileBound(c.rttUs, 0.99), count: c.rttUs.count },
    health: healthOf(c),
  };
}

/** x and y differ by at least `factor` times (either way) and by at least `min`. */
function moved(x: number, y: number, factor: number, min: number): boolean {
  if (Math.abs(x - y) < min) return false;
  const lo = Math.min(x, y);
  return lo === 0 || Math.max(x, y) / lo >= factor;
}

/** What moved past the thresholds between an edge's baseline and window counts. */
export function changesOf(before: EdgeCounts, after: EdgeCounts, baselineMs: number, windowMs: number): DiffChange[] {
  const t = DIFF_THRESHOLDS;
  const out: DiffChange[] = [];
  if (before.connections > 0 && after.connections > 0) {
    const r0 = failedOf(before) / before.connections;
    const r1 = failedOf(after) / after.connections;
    // rounded first: 0.3 - 0.2 is 0.09999... in floating point
    if (Math.round(Math.abs(r1 - r0) * 1e9) >= Math.round(t.failureRatio * 1e9)) out.push({ metric: 'failureRatio', before: r0, after: r1 });
  }
  const b0 = (before.bytesSent + before.bytesReceived) / (baselineMs / 1000);
  const b1 = (after.bytesSent + after.bytesReceived) / (windowMs / 1000);
  if (moved(b0, b1, t.bytesFactor, t.bytesMin / (windowMs / 1000))) out.push({ metric: 'bytesPerSec', before: round3(b0), after: round3(b1) });
  const p0 = quantileBound(before.rttUs, 0.99);
  const p1 = quantileBound(after.rttUs, 0.99);
  const sampled = before.rttUs.count >= t.rttMinSamples && after.rttUs.count >= t.rttMinSamples;
  if (sampled && p0 !== null && p1 !== null && moved(p0, p1, t.rttFactor, t.rttMinUs)) out.push({ metric: 'rttP99Us', before: p0, after: p1 });
  return out;
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;

function diffEdge(key: string, s: Side, before: EdgeCounts, after: EdgeCounts, ids: string[], changes?: DiffChange[]): DiffEdge {
  return {
    id: Buffer.from(key, 'utf8').toString('base64url'),
    link: linkId(s.source.id, s.destination.id),
    source: s.source.id,
    target: s.destination.id,
    port: s.port,
    proto: s.proto,
    edges: [...new Set(ids)],
    before: numbers(before),
    after: numbers(after),
    ...(changes ? { changes } : {}),
  };
}

const busiest = (n: (d: DiffEdge) => DiffNumbers) => (a: DiffEdge, b: DiffEdge): number =>
  n(b).bytesSent + n(b).bytesReceived - (n(a).bytesSent + n(a).bytesReceived) || n(b).connections - n(a).connections || (a.id < b.id ? -1 : 1);

/**
 * The diff of `window` against `baseline` (each (from, to], on interval ends as the store keeps them).
 * Both windows are asked of the store at once: a database-backed store may answer with promises.
 */
export async function computeDiff(store: FlowStore, window: Window, baseline: Window, filters: DiffFilters = {}, withGraph = false, scope: StoreScope = {}): Promise<DiffAnswer> {
  const [nowAll, thenAll] = await Promise.all([mergedEdges(store, window.fromMs, window.toMs, scope), mergedEdges(store, baseline.fromMs, baseline.toMs, scope)]);
  const nowEdges = filterEdges(nowAll, filters);
  const thenEdges = filterEdges(thenAll, filters);
  const now = sides(nowEdges);
  const then = sides(thenEdges);
  const windowMs = window.toMs - window.fromMs;
  const baselineMs = baseline.toMs - baseline.fromMs;
  const appeared: DiffEdge[] = [];
  const disappeared: DiffEdge[] = [];
  const changed: DiffEdge[] = [];
  const ends = new Map<string, EdgeEnd>();
  const keep = (s: Side): void => {
    ends.set(s.source.id, s.source);
    ends.set(s.destination.id, s.destination);
  };
  for (const [k, s] of now) {
    const b = then.get(k);
    if (!b) {
      appeared.push(diffEdge(k, s, zeroCounts(), s.counts, s.ids));
      keep(s);
      continue;
    }
    const changes = changesOf(b.counts, s.counts, baselineMs, windowMs);
    if (changes.length) {
      changed.push(diffEdge(k, s, b.counts, s.counts, [...b.ids, ...s.ids], changes));
      keep(s);
    }
  }
  for (const [k, b] of then) {
    if (now.has(k)) continue;
    disappeared.push(diffEdge(k, b, b.counts, zeroCounts(), b.ids));
    keep(b);
  }
  // names: the DNS names of the external ends, called now and not in the baseline
  const named = (edges: readonly MergedEdge[]): MergedEdge[] => edges.filter((e) => e.locality === 'external' && remoteOf(e).name !== undefined);
  const calledBefore = new Set(named(thenEdges).map((e) => remoteOf(e).name));
  const newNames = externalSummary(named(nowEdges).filter((e) => !calledBefore.has(remoteOf(e).name)));
  const nodes = new Map<string, GraphNode>();
  for (const end of ends.values()) nodes.set(end.id, nodeOf(end));
  return {
    window: { from: new Date(window.fromMs).toISOString(), to: new Date(window.toMs).toISOString() },
    baseline: { from: new Date(baseline.fromMs).toISOString(), to: new Date(baseline.toMs).toISOString() },
    thresholds: DIFF_THRESHOLDS,
    appeared: appeared.sort(busiest((d) => d.after)),
    disappeared: disappeared.sort(busiest((d) => d.before)),
    changed: changed.sort(busiest((d) => d.after)),
    newNames,
    nodes: [...nodes.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    ...(withGraph ? { graph: graphOf([...nowEdges], window.fromMs, window.toMs) } : {}),
  };
}

// ---- the route ---------------------------------------------------------------

const ISO_FORM = 'an ISO 8601 time with its offset, such as 2026-12-03T14:00:00Z';

const isoParam: Param = {
  schema: z
    .string()
    .datetime({ offset: true })
    .transform((s) => Date.parse(s)),
  form: ISO_FORM,
};

export interface DiffApiOptions {
  store: FlowStore;
  /** the store holds several clusters (the hub): the route takes `cluster` */
  clusters?: boolean;
  /** clock (tests) */
  now?: () => number;
  /** where answers are computed and kept, shared with the other /api routes (see query-cache.ts); default: computed per request */
  cache?: QueryCache;
}

/**
 * The two windows a query asks for, checked against the retention:
 * `window` ends now; the baseline is `baseline` long just before it (the
 * window's length by default), or (baselineFrom, baselineTo], in which case
 * the window starts no earlier than the baseline's end.
 */
export function diffWindows(q: Record<string, unknown>, raw: Record<string, unknown>, nowMs: number, retentionMs: number): { window: Window; baseline: Window } {
  const w = q.window as number;
  const from = q.baselineFrom as number | undefined;
  const to = q.baselineTo as number | undefined;
  const ret = formatDuration(retentionMs);
  const str = (k: string): string => JSON.stringify(String(raw[k] ?? ''));
  if (from === undefined && to === undefined) {
    const b = (q.baseline as number | undefined) ?? w;
    if (w + b > retentionMs) {
      if (q.baseline !== undefined) throw new BadParameter(`baseline: got ${str('baseline')}, expected a duration with window + baseline at most ${ret} (the store's retention)`);
      throw new BadParameter(
        `window: got ${str('window')}, expected a duration up to ${formatDuration(Math.floor(retentionMs / 2000) * 1000)} when the baseline is the window before it (both within the store's retention, ${ret}), or give a shorter baseline`,
      );
    }
    return { window: { fromMs: nowMs - w, toMs: nowMs }, baseline: { fromMs: nowMs - w - b, toMs: nowMs - w } };
  }
  if (q.baseline !== undefined) throw new BadParameter('baseline: given with baselineFrom and baselineTo, expected one or the other');
  if (from === undefined) throw new BadParameter(`baselineFrom: missing, expected it with baselineTo (${ISO_FORM})`);
  if (to === undefined) throw new BadParameter(`baselineTo: missing, expected it with baselineFrom (${ISO_FORM})`);
  if (from >= to) throw new BadParameter(`baselineFrom: got ${str('baselineFrom')}, expected a time before baselineTo (${new Date(to).toISOString()})`);
  if (from < nowMs - retentionMs) throw new BadParameter(`baselineFrom: got ${str('baselineFrom')}, expected a time within the store's retention (${ret}): at or after ${new Date(nowMs - retentionMs).toISOString()}`);
  if (to > nowMs - 1000) throw new BadParameter(`baselineTo: got ${str('baselineTo')}, expected a time at least 1s before now (${new Date(nowMs).toISOString()})`);
  return { window: { fromMs: Math.max(nowMs - w, to), toMs: nowMs }, baseline: { fromMs: from, toMs: to } };
}

/** Register GET /api/diff (before the server listens). */
export function registerDiffApi(app: FastifyInstance, opts: DiffApiOptions): void {
  const now = opts.now ?? Date.now;
  const { store } = opts;
  const params: Record<string, Param> = {
    ...clusterParams(opts.clusters),
    window: windowParam(store.retentionMs),
    baseline: windowParam(store.retentionMs),
    baselineFrom: isoParam,
    baselineTo: isoParam,
    ...IDENTITY_PARAMS,
    graph: { schema: z.enum(['true', 'false']).transform((s) => s === 'true'), form: 'true or false' },
  };
  app.get('/api/diff', async (req, reply) => {
    try {
      const raw = (req.query ?? {}) as Record<string, unknown>;
      const explicit = raw.baselineFrom !== undefined || raw.baselineTo !== undefined;
      // by default an hour against the hour before: half the retention each when it keeps less
      const q = parseQuery(req.query, params, { window: defaultWindow(DEFAULT_DIFF_WINDOW, explicit ? store.retentionMs : Math.floor(store.retentionMs / 2000) * 1000) });
      const { window, baseline } = diffWindows(q, raw, now(), store.retentionMs);
      const compute = () => computeDiff(store, window, baseline, q as DiffFilters, q.graph === true, scopeOf(q));
      return await sendAnswer(reply, opts.cache, `diff ${JSON.stringify(q)}`, compute);
    } catch (e) {
      return badParameter(reply, e);
    }
  });
}
