/**
 * The embedded flow store, kept in SQLite (better-sqlite3) under `dataDir`
 * so history survives a restart. Queries are answered from memory, as by
 * MemoryFlowStore (same bounds); every interval and its records are also
 * written to `<dataDir>/flows.sqlite` (WAL), in one transaction, and what the
 * bounds or the retention push out of memory is deleted from the file. At
 * open, what the file holds within the retention is read back.
 *
 * A write that fails (disk full) is counted and kept, in order, with what
 * failed before it: the next write replays them first, in one transaction,
 * so the file catches up once there is room again. What waits is only what
 * memory still holds (the store's bounds): an interval pruned meanwhile is
 * not written late.
 */
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { UsageError } from '../util/errors.js';
import type { EdgePair, FlowRecord, StoreStats, StoredEdge } from './flow-store.js';
import { MemoryFlowStore, type StoreBounds, type StoredInterval, type StoredRecord } from './memory-store.js';

/** Bumped when the tables change; a file of another version is started afresh. */
const SCHEMA_VERSION = 1;
export const STORE_FILE = 'flows.sqlite';

/** A write the file still owes: an interval with its records, or a compaction's rewrite. */
type Owed = { kind: 'interval'; interval: StoredInterval; rows: StoredRecord[] } | { kind: 'rewrite'; fromEndMs: number; merged: StoredInterval };

export class SqliteFlowStore extends MemoryFlowStore {
  private readonly db: Database.Database;
  readonly file: string;
  private loading = false;
  private writeErrors = 0;
  private lastWriteError: string | undefined;
  private readonly putInterval: Database.Statement;
  private readonly putRecord: Database.Statement;
  private readonly replay: (ops: readonly Owed[]) => void;
  private readonly dropIntervals: Database.Statement;
  private owed: Owed[] = [];
  private readonly dropRecords: Database.Statement;

  constructor(dataDir: string, bounds: Partial<StoreBounds> = {}, nowMs = Date.now()) {
    super(bounds);
    this.file = path.join(dataDir, STORE_FILE);
    try {
      mkdirSync(dataDir, { recursive: true });
      this.db = new Database(this.file);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      if (this.db.pragma('user_version', { simple: true }) !== SCHEMA_VERSION) {
        this.db.exec('DROP TABLE IF EXISTS intervals; DROP TABLE IF EXISTS records;');
        this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
      }
      this.db.exec(
        'CREATE TABLE IF NOT EXISTS intervals (end_ms INTEGER NOT NULL, interval_ms INTEGER NOT NULL, edges TEXT NOT NULL, pairs TEXT NOT NULL);' +
          'CREATE INDEX IF NOT EXISTS intervals_end ON intervals (end_ms);' +
          'CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL, key TEXT NOT NULL, record TEXT NOT NULL);' +
          'CREATE INDEX IF NOT EXISTS records_ts ON records (ts_ms);',
      );
    } catch (e) {
      throw new UsageError(`store: cannot open ${this.file}: ${(e as Error).message}; check store.dataDir`);
    }
    this.putInterval = this.db.prepare('INSERT INTO intervals (end_ms, interval_ms, edges, pairs) VALUES (?, ?, ?, ?)');
    this.putRecord = this.db.prepare('INSERT INTO records (ts_ms, key, record) VALUES (?, ?, ?)');
    this.dropIntervals = this.db.prepare('DELETE FROM intervals WHERE end_ms < ?');
    this.dropRecords = this.db.prepare('DELETE FROM records WHERE ts_ms <= ? OR id <= (SELECT MAX(id) FROM records) - ?');
    const dropRange = this.db.prepare('DELETE FROM intervals WHERE end_ms >= ? AND end_ms <= ?');
    this.replay = this.db.transaction((ops: readonly Owed[]) => {
      for (const op of ops) {
        if (op.kind === 'rewrite') {
          dropRange.run(op.fromEndMs, op.merged.endMs);
          this.putInterval.run(op.merged.endMs, op.merged.intervalMs, JSON.stringify(op.merged.edges), JSON.stringify(op.merged.pairs));
          continue;
        }
        const { interval, rows } = op;
        this.putInterval.run(interval.endMs, interval.intervalMs, JSON.stringify(interval.edges), JSON.stringify(interval.pairs));
        // only the newest maxConnections can be kept
        const max = this.bounds.maxConnections;
        for (const r of max > 0 ? rows.slice(-max) : []) this.putRecord.run(r.tsMs, r.key, JSON.stringify(r.record));
      }
    });
    this.load(nowMs);
  }

  /** Read back what the file holds within the retention from `nowMs`. */
  private load(nowMs: number): void {
    const horizon = nowMs - this.bounds.retentionMs;
    this.loading = true;
    try {
      const intervals = this.db.prepare('SELECT end_ms, interval_ms, edges, pairs FROM intervals WHERE end_ms > ? ORDER BY end_ms').all(horizon) as Array<{
        end_ms: number;
        interval_ms: number;
        edges: string;
        pairs: string;
      }>;
      for (const i of intervals)
        this.keepInterval({ endMs: i.end_ms, intervalMs: i.interval_ms, edges: JSON.parse(i.edges) as StoredEdge[], pairs: JSON.parse(i.pairs) as EdgePair[] });
      const rows = this.db
        .prepare('SELECT ts_ms, key, record FROM (SELECT id, ts_ms, key, record FROM records WHERE ts_ms > ? ORDER BY id DESC LIMIT ?) ORDER BY id')
        .all(horizon, this.bounds.maxConnections) as Array<{ ts_ms: number; key: string; record: string }>;
      this.keepRecords(rows.map((r) => ({ tsMs: r.ts_ms, key: r.key, record: JSON.parse(r.record) as FlowRecord })));
    } finally {
      this.loading = false;
    }
    this.prune(nowMs);
  }

  protected override insert(interval: StoredInterval, rows: StoredRecord[]): void {
    super.insert(interval, rows);
    if (this.loading) return;
    this.persist({ kind: 'interval', interval, rows });
  }

  protected override compacted(group: readonly StoredInterval[], merged: StoredInterval): void {
    if (this.loading) return;
    this.persist({ kind: 'rewrite', fromEndMs: group[0]!.endMs, merged });
  }

  /** Write `op` after whatever the file still owes, all in one transaction; on failure (disk full...) keep them all, counted. */
  private persist(op: Owed): void {
    const ops = [...this.owed, op];
    try {
      this.replay(ops);
      this.owed = [];
    } catch (e) {
      // memory still has it; the file gets it with the next write that succeeds
      this.owed = ops;
      this.writeErrors++;
      this.lastWriteError = (e as Error).message;
      this.boundOwed();
    }
  }

  /** Only what memory still holds is owed, and at most maxConnections records. */
  private boundOwed(): void {
    // an op is still owed when what it writes is in memory, or a later compaction owed covers it
    const held = new Set(this.intervals);
    const kept: Owed[] = [];
    const covers: Array<[number, number]> = [];
    for (let i = this.owed.length - 1; i >= 0; i--) {
      const o = this.owed[i]!;
      const it = o.kind === 'interval' ? o.interval : o.merged;
      if (!held.has(it) && !covers.some(([from, to]) => it.endMs >= from && it.endMs <= to)) continue;
      kept.unshift(o);
      if (o.kind === 'rewrite') covers.push([o.fromEndMs, o.merged.endMs]);
    }
    this.owed = kept;
    let rows = 0;
    for (let i = this.owed.length - 1; i >= 0; i--) {
      const o = this.owed[i]!;
      if (o.kind !== 'interval') continue;
      const room = Math.max(0, this.bounds.maxConnections - rows);
      if (o.rows.length > room) o.rows = o.rows.slice(o.rows.length - room);
      rows += o.rows.length;
    }
  }

  /** Writes the file still owes (the disk was full): waiting for the next write. */
  get owedWrites(): number {
    return this.owed.length;
  }

  protected override prune(nowMs: number): void {
    super.prune(nowMs);
    if (this.loading) return;
    // the file holds what memory holds: intervals from the oldest kept, the newest maxConnections records within the retention
    const oldest = this.intervals[0]?.endMs ?? Number.MAX_SAFE_INTEGER;
    this.boundOwed();
    try {
      this.dropIntervals.run(oldest);
      this.dropRecords.run(nowMs - this.bounds.retentionMs, this.bounds.maxConnections);
    } catch (e) {
      // a full disk can refuse deletes too (the journal needs room): the next prune deletes what this one could not
      this.writeErrors++;
      this.lastWriteError = (e as Error).message;
    }
  }

  override stats(): StoreStats {
    let bytes = 0;
    for (const f of [this.file, `${this.file}-wal`]) {
      try {
        bytes += statSync(f).size;
      } catch {
        // no WAL file right now
      }
    }
    return { ...super.stats(), bytes, writeErrors: this.writeErrors, owedWrites: this.owed.length, ...(this.lastWriteError !== undefined ? { lastWriteError: this.lastWriteError } : {}) };
  }

  override close(): void {
    if (this.db.open) this.db.close();
  }
}
