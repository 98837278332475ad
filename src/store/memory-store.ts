/**
 * The embedded flow store, in memory, with hard bounds:
 * - `retentionMs`: intervals and records older than this (from the newest
 *   interval's end) are dropped;
 * - `maxEdgesPerInterval`: edges of one interval beyond it are not kept
 *   (the busiest kept), counted in `edgesDropped`;
 * - `maxEdges`: edges held over all intervals; past it the oldest intervals
 *   go first, counted in `intervalsEvicted`;
 * - `maxConnections`: connection records held; the oldest go first,
 *   counted in `connectionsEvicted`.
 * Intervals older than 10 minutes are summed into 1-minute ones, older than
 * an hour into 5-minute ones (COMPACTION): windows reaching that far start on
 * those boundaries.
 */
import type { Edge } from '../flows/edge-table.js';
import {
  type EdgePair,
  type FlowRecord,
  type RecordingFlowStore,
  type StoreStats,
  type StoredEdge,
  pairRecords,
  recordEdgeKey,
  storedEdge,
  sumEdges,
} from './flow-store.js';

/**
 * [age, resolution]: intervals older than `age` are summed per `resolution`
 * (ending on its multiples): 1 minute after 10 minutes, 5 minutes after an hour.
 */
export const COMPACTION: ReadonlyArray<readonly [number, number]> = [
  [10 * 60_000, 60_000],
  [3_600_000, 5 * 60_000],
];

/** remote addresses kept per edge */
const MAX_ADDRS = 64;

export interface StoreBounds {
  retentionMs: number;
  maxEdgesPerInterval: number;
  maxEdges: number;
  maxConnections: number;
}

export const DEFAULT_STORE_BOUNDS: StoreBounds = {
  retentionMs: 3 * 3_600_000,
  maxEdgesPerInterval: 10_000,
  maxEdges: 200_000,
  maxConnections: 10_000,
};

export interface StoredInterval {
  endMs: number;
  intervalMs: number;
  edges: StoredEdge[];
  pairs: EdgePair[];
}

export interface StoredRecord {
  tsMs: number;
  key: string;
  record: FlowRecord;
}

/** A fixed-capacity ring, oldest out first. */
export class Ring<T> {
  private items: (T | undefined)[];
  private start = 0;
  private len = 0;
  evicted = 0;

  constructor(readonly capacity: number) {
    this.items = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.len;
  }

  push(v: T): T | undefined {
    if (this.capacity === 0) {
      this.evicted++;
      return v;
    }
    if (this.len < this.capacity) {
      this.items[(this.start + this.len++) % this.capacity] = v;
      return undefined;
    }
    const out = this.items[this.start];
    this.items[this.start] = v;
    this.start = (this.start + 1) % this.capacity;
    this.evicted++;
    return out;
  }

  /** the oldest, or undefined */
  peek(): T | undefined {
    return this.len ? this.items[this.start] : undefined;
  }

  /** drop the oldest (not counted as evicted: it expired) */
  shift(): T | undefined {
    if (!this.len) return undefined;
    const v = this.items[this.start];
    this.items[this.start] = undefined;
    this.start = (this.start + 1) % this.capacity;
    this.len--;
    return v;
  }

  /** newest first */
  *newestFirst(): Generator<T> {
    for (let i = this.len - 1; i >= 0; i--) yield this.items[(this.start + i) % this.capacity]!;
  }

  /** oldest first */
  *oldestFirst(): Generator<T> {
    for (let i = 0; i < this.len; i++) yield this.items[(this.start + i) % this.capacity]!;
  }
}

export class MemoryFlowStore implements RecordingFlowStore {
  readonly bounds: StoreBounds;
  protected intervals: StoredInterval[] = [];
  protected records: Ring<StoredRecord>;
  private edgeCount = 0;
  private edgesDropped = 0;
  private intervalsEvicted = 0;
  private droppedBeforeStore = 0;
  private readonly carry = new Map<string, { key: string; client: boolean }>();
  private changes = 0;

  constructor(bounds: Partial<StoreBounds> = {}) {
    this.bounds = { ...DEFAULT_STORE_BOUNDS, ...bounds };
    this.records = new Ring(this.bounds.maxConnections);
  }

  get retentionMs(): number {
    return this.bounds.retentionMs;
  }

  get version(): number {
    return this.changes;
  }

  addInterval(endMs: number, intervalMs: number, edges: readonly Edge[], records: readonly FlowRecord[], recordsDropped = 0): void {
    let kept = edges;
    if (edges.length > this.bounds.maxEdgesPerInterval) {
      kept = [...edges].sort((a, b) => b.bytesSent + b.bytesReceived - (a.bytesSent + a.bytesReceived) || b.connections - a.connections).slice(0, this.bounds.maxEdgesPerInterval);
      this.edgesDropped += edges.length - kept.length;
    }
    const stored = kept.map((e) => storedEdge(e, endMs));
    const flows = records.filter((r): r is FlowRecord => r.proto === 'tcp' || r.proto === 'udp');
    const pairs = pairRecords(flows, this.carry);
    const rows = flows.map((r) => ({ tsMs: Date.parse(r.ts), key: recordEdgeKey(r), record: r }));
    // every remote address the interval's records saw, not only the edge's first
    const byKey = new Map(stored.map((e) => [e.key, e]));
    for (const row of rows) {
      const e = byKey.get(row.key);
      const r = row.record;
      const addr = r.proto === 'tcp' && r.remote.reached ? r.remote.reached.addr : r.remote.addr;
      if (e && !e.remoteAddrs.includes(addr) && e.remoteAddrs.length < MAX_ADDRS) e.remoteAddrs.push(addr);
    }
    this.droppedBeforeStore += recordsDropped;
    this.insert({ endMs, intervalMs, edges: stored, pairs }, rows);
    this.prune(endMs);
  }

  /** Keep an interval and its records (a persistent store writes them too). */
  protected insert(interval: StoredInterval, rows: StoredRecord[]): void {
    this.keepInterval(interval);
    this.keepRecords(rows);
  }

  protected keepInterval(interval: StoredInterval): void {
    this.changes++;
    this.intervals.push(interval);
    if (this.intervals.length > 1 && this.intervals[this.intervals.length - 2]!.endMs > interval.endMs) this.intervals.sort((a, b) => a.endMs - b.endMs);
    this.edgeCount += interval.edges.length;
  }

  protected keepRecords(rows: readonly StoredRecord[]): void {
    this.changes++;
    for (const r of rows) this.records.push(r);
  }

  /**
   * Older intervals are summed into coarser ones (COMPACTION): an edge's
   * counts over a few minutes take one entry, not one per interval.
   */
  private compact(nowMs: number): void {
    for (const [age, bucketMs] of COMPACTION) {
      const limit = nowMs - age;
      const out: StoredInterval[] = [];
      let i = 0;
      while (i < this.intervals.length) {
        const first = this.intervals[i]!;
        let j = i + 1;
        if (first.endMs <= limit) {
          const bucket = Math.ceil(first.endMs / bucketMs);
          while (j < this.intervals.length && this.intervals[j]!.endMs <= limit && Math.ceil(this.intervals[j]!.endMs / bucketMs) === bucket) j++;
        }
        if (j - i > 1) {
          const group = this.intervals.slice(i, j);
          const pairs = new Map<string, EdgePair>();
          for (const g of group) for (const p of g.pairs) pairs.set(`${p.clientKey}\n${p.serverKey}`, p);
          const merged: StoredInterval = {
            endMs: group[group.length - 1]!.endMs,
            intervalMs: group.reduce((n, g) => n + g.intervalMs, 0),
            edges: sumEdges(group.flatMap((g) => g.edges)),
            pairs: [...pairs.values()],
          };
          this.edgeCount += merged.edges.length - group.reduce((n, g) => n + g.edges.length, 0);
          this.compacted(group, merged);
          out.push(merged);
        } else {
          out.push(first);
        }
        i = j;
      }
      this.intervals = out;
    }
  }

  /** `group` was summed into `merged` (a persistent store rewrites them). */
  protected compacted(_group: readonly StoredInterval[], _merged: StoredInterval): void {
    // memory only: nothing more
  }

  /** Drop what is older than the retention from `nowMs`, and the oldest intervals past maxEdges. */
  protected prune(nowMs: number): void {
    this.changes++;
    this.compact(nowMs);
    const horizon = nowMs - this.bounds.retentionMs;
    while (this.intervals.length && (this.intervals[0]!.endMs <= horizon || this.edgeCount > this.bounds.maxEdges)) {
      const old = this.intervals.shift()!;
      if (old.endMs > horizon) this.intervalsEvicted++;
      this.edgeCount -= old.edges.length;
    }
    while (this.records.size && this.records.peek()!.tsMs <= horizon) this.records.shift();
  }

  private inWindow(fromMs: number, toMs: number): StoredInterval[] {
    return this.intervals.filter((i) => i.endMs > fromMs && i.endMs <= toMs);
  }

  edges(fromMs: number, toMs: number): StoredEdge[] {
    return sumEdges(this.inWindow(fromMs, toMs).flatMap((i) => i.edges));
  }

  pairs(fromMs: number, toMs: number): EdgePair[] {
    const out = new Map<string, EdgePair>();
    for (const i of this.inWindow(fromMs, toMs)) for (const p of i.pairs) out.set(`${p.clientKey}\n${p.serverKey}`, p);
    return [...out.values()];
  }

  connections(keys: readonly string[], fromMs: number, toMs: number, limit: number): FlowRecord[] {
    const want = new Set(keys);
    const out: StoredRecord[] = [];
    for (const r of this.records.newestFirst()) if (want.has(r.key) && r.tsMs > fromMs && r.tsMs <= toMs) out.push(r);
    // arrival order is nearly time order; sort to be exact
    out.sort((a, b) => b.tsMs - a.tsMs);
    return out.slice(0, limit).map((r) => r.record);
  }

  stats(): StoreStats {
    return {
      intervals: this.intervals.length,
      edges: this.edgeCount,
      connections: this.records.size,
      edgesDropped: this.edgesDropped,
      intervalsEvicted: this.intervalsEvicted,
      connectionsEvicted: this.records.evicted + this.droppedBeforeStore,
      oldest: this.intervals[0]?.endMs ?? null,
      retentionMs: this.bounds.retentionMs,
    };
  }

  close(): void {
    // nothing to release
  }
}
