/**
 * A long window of the hub's edges, read a chunk at a time.
 *
 * The edge query holds every connection of the window it reads in its first
 * GROUP BY (about 2 KB each on ClickHouse 18.16, bench/README.md), so its
 * memory grows with the window: 24 hours of a busy cluster do not fit where
 * one hour does. A window longer than a chunk (an hour, aligned to the
 * table's hours) is read as one query per chunk, one after another, and the
 * edges of the chunks are summed here. Each chunk query counts only the rows
 * of its own chunk but reads SLACK_MS more on either side, so a connection
 * whose client's and server's rows fall on both sides of a chunk boundary is
 * still matched (and counted once, by the chunk its rows fall in); its sides'
 * rows are written within milliseconds of each other.
 */
import type { HubEdgeRow } from './edge-query.js';
import { num } from './row-record.js';

/** How far apart in time a connection's two sides' rows may be and still be matched across a chunk boundary. */
export const SLACK_MS = 120_000;

export interface EdgeChunk {
  /** the rows read: (fromMs, toMs] */
  read: { fromMs: number; toMs: number };
  /** the rows counted (all those read when not given) */
  own?: { fromMs: number; toMs: number };
}

/** (fromMs, toMs] cut at multiples of chunkMs since the epoch; one chunk, the window, when it is no longer than a chunk. */
export function chunkWindow(fromMs: number, toMs: number, chunkMs: number, slackMs = SLACK_MS): EdgeChunk[] {
  if (toMs - fromMs <= chunkMs) return [{ read: { fromMs, toMs } }];
  const out: EdgeChunk[] = [];
  for (let b = Math.floor(fromMs / chunkMs) * chunkMs; b < toMs; b += chunkMs) {
    const own = { fromMs: Math.max(fromMs, b), toMs: Math.min(toMs, b + chunkMs) };
    out.push({ read: { fromMs: Math.max(fromMs, own.fromMs - slackMs), toMs: Math.min(toMs, own.toMs + slackMs) }, own });
  }
  return out;
}

/** Columns summed across chunks (the rest: ends and sets, below). */
const SUMMED = /^(conns|refused|timeouts|resets|sent|recv|psent|precv|retr|rtt_sum|rtt_n|v_both|v_client|v_server|[bu]_[a-z_]+)$/;

function union(a: unknown, b: unknown, max: number): string[] {
  const s = new Set([...(Array.isArray(a) ? a.map(String) : []), ...(Array.isArray(b) ? b.map(String) : [])]);
  return [...s].slice(0, max);
}

/** The edges of several chunks as one answer, a chunk at a time: an edge's chunks summed (what is kept: one row per edge). */
export class EdgeSum {
  private readonly byEdge = new Map<string, HubEdgeRow>();

  add(rows: readonly HubEdgeRow[]): void {
    for (const r of rows) {
      const key = [r.cluster, r.proto, r.src, r.dst, r.port].map(String).join('\n');
      const m = this.byEdge.get(key);
      if (!m) {
        this.byEdge.set(key, { ...r });
        continue;
      }
      for (const [k, v] of Object.entries(r)) if (SUMMED.test(k)) m[k] = num(m[k]) + num(v);
      const h = Array.isArray(m.hist) ? m.hist.map(Number) : [];
      m.hist = (Array.isArray(r.hist) ? r.hist.map(Number) : []).map((x, i) => x + (h[i] ?? 0));
      m.raddrs = union(m.raddrs, r.raddrs, 16);
      m.row_keys = union(m.row_keys, r.row_keys, 64);
      for (const k of ['src_service', 'dst_service'] as const) if (String(r[k] ?? '') > String(m[k] ?? '')) m[k] = r[k]!;
      m.first_s = Math.min(num(m.first_s), num(r.first_s));
      m.last_s = Math.max(num(m.last_s), num(r.last_s));
    }
  }

  /** The busiest `limit` edges, in the query's order. */
  top(limit: number): HubEdgeRow[] {
    const str = (r: HubEdgeRow, k: string): string => String(r[k] ?? '');
    const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
    return [...this.byEdge.values()]
      .sort(
        (a, b) =>
          num(b.sent) + num(b.recv) - (num(a.sent) + num(a.recv)) ||
          num(b.conns) - num(a.conns) ||
          cmp(str(a, 'cluster'), str(b, 'cluster')) ||
          cmp(str(a, 'src'), str(b, 'src')) ||
          cmp(str(a, 'dst'), str(b, 'dst')) ||
          num(a.port) - num(b.port) ||
          cmp(str(a, 'proto'), str(b, 'proto')),
      )
      .slice(0, limit);
  }
}
