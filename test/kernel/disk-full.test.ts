/**
 * A full disk, for the JSON lines sink and for the store's SQLite file, on a
 * size-limited tmpfs the test mounts (and removes). The sink: writes refused
 * (after a short write) are retried, the queue holds its bound, the rest is
 * counted, no line is left torn, and once there is room every queued line is
 * written exactly once, in order. The store: intervals the file could not
 * take stay in memory (the API answers them) and are written, in order, with
 * the next write that succeeds; a store reopened from the file has them all.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { TcpRecord } from '../../src/events/records.js';
import { EdgeTable } from '../../src/flows/edge-table.js';
import { JsonlSink } from '../../src/sinks/jsonl.js';
import type { ShippedRecord } from '../../src/sinks/sink.js';
import { SqliteFlowStore } from '../../src/store/sqlite-store.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { SHIP, testBatching, waitFor } from '../helpers/sink-fixtures.js';
import { SmallFs } from '../helpers/small-fs.js';

function record(id: number, endMs = Date.now() - 60_000): TcpRecord {
  return {
    ts: new Date(endMs).toISOString(), proto: 'tcp', family: 4, direction: 'outbound', outcome: 'closed',
    local: { addr: '10.0.0.1', port: 40000 + (id % 20000), pid: id, comm: 'diskfull', cgroupId: 1, netns: 1 }, remote: { addr: `10.1.${(id >> 8) & 255}.${id & 255}`, port: 443 },
    bytesSent: id, bytesReceived: 2 * id, retransmits: 0, srttUs: 50, durationMs: 1,
  };
}

describe('disk full (a size-limited tmpfs)', { skip: KERNEL_SKIP }, () => {
  const filesystems: SmallFs[] = [];
  after(() => {
    for (const f of filesystems) f.destroy();
  });

  test('JSON lines sink: bounded, counted, no torn line; every queued line written once when there is room', async () => {
    const fs = new SmallFs(256 * 1024);
    filesystems.push(fs);
    const file = path.join(fs.dir, 'flows.jsonl');
    const sink = new JsonlSink({ path: file, batching: testBatching({ maxQueued: 20, maxBatch: 5 }) });
    await sink.start();
    let next = 1;
    const ship = (n: number): ShippedRecord[] => Array.from({ length: n }, () => ({ ...record(next++), ...SHIP }));
    sink.export(ship(5));
    await sink.flush(2000);
    // a page of room left: the next batches fill it (one of them short-written), then are refused
    fs.fill(4096);
    sink.export(ship(60));
    await waitFor(() => sink.stats().failures >= 2, 5000, 'writes refused');
    const full = sink.stats();
    assert.equal(full.dropped, 40, 'past the bound (20), dropped and counted at once');
    assert.ok(full.queued > 0 && full.queued <= 20, `the queue holds its bound: ${full.queued}`);
    assert.equal(full.exported + full.queued + full.dropped, 65, 'every record exported, queued or counted dropped');
    assert.match(full.lastError ?? '', /ENOSPC/);
    const lines = (): number[] => readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { local: { pid: number } }).local.pid);
    const written = lines(); // every line whole: each parses
    assert.deepEqual(written, Array.from({ length: full.exported }, (_, i) => i + 1), 'what was written is whole, in order, once');

    fs.release();
    await sink.flush(5000);
    const st = sink.stats();
    assert.deepEqual([st.queued, st.dropped, st.exported], [0, full.dropped, full.exported + full.queued]);
    assert.deepEqual(lines(), Array.from({ length: st.exported }, (_, i) => i + 1), 'the queued lines, once each, after the others');
    await sink.shutdown(1000);
  });

  test("store's SQLite file: intervals it could not take stay in memory and are written when there is room", () => {
    const fs = new SmallFs(2 * 1024 * 1024);
    filesystems.push(fs);
    const start = Date.now() - 30 * 60_000;
    const store = new SqliteFlowStore(fs.dir, { maxConnections: 100 }, start);
    let id = 0;
    const interval = (i: number): void => {
      const table = new EdgeTable(undefined, 10_000);
      const recs = Array.from({ length: 200 }, () => record(++id, start + i * 10_000 - 5000));
      for (const r of recs) table.add(r);
      store.addInterval(start + i * 10_000, 10_000, table.drain(), recs);
    };
    for (let i = 1; i <= 3; i++) interval(i);
    assert.equal(store.stats().writeErrors, 0);
    fs.fill(0);
    for (let i = 4; i <= 8; i++) interval(i);
    const full = store.stats();
    assert.ok((full.writeErrors ?? 0) >= 1, `writes refused: ${JSON.stringify(full)}`);
    assert.ok((full.owedWrites ?? 0) >= 1, 'kept to be written');
    assert.match(full.lastWriteError ?? '', /full|SQLITE_FULL|disk/i);
    // memory has every interval: the API's queries answer them
    const inMemory = store.edges(start, start + 9 * 10_000);
    assert.equal(inMemory.length, 8 * 200);
    assert.equal(inMemory.reduce((n, e) => n + e.bytesSent, 0), ((8 * 200) * (8 * 200 + 1)) / 2);

    fs.release();
    interval(9);
    assert.equal(store.stats().owedWrites, 0, 'caught up');
    store.close();
    const reopened = new SqliteFlowStore(fs.dir, { maxConnections: 100 }, start + 9 * 10_000);
    const back = reopened.edges(start, start + 10 * 10_000);
    assert.equal(back.length, 9 * 200, 'every interval in the file, the ones written late included');
    assert.equal(back.reduce((n, e) => n + e.bytesSent, 0), ((9 * 200) * (9 * 200 + 1)) / 2, 'each once');
    assert.equal(reopened.stats().connections, 100);
    reopened.close();
  });
});
