import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchingSink, type BatchingOptions } from '../../src/sinks/batching-sink.js';
import type { ShippedRecord } from '../../src/sinks/sink.js';

/** A destination that can be taken down and brought back; records what it received, batch by batch. */
class FakeSink extends BatchingSink {
  readonly name = 'fake';
  up = true;
  /** ms each send takes */
  delayMs = 1;
  readonly received: number[][] = [];
  attempts = 0;
  released = false;

  constructor(opts: Partial<BatchingOptions>) {
    super({ maxQueued: 100, maxBatch: 10, flushIntervalMs: 20, retryBaseMs: 10, retryMaxMs: 40, ...opts });
  }

  protected async open(): Promise<void> {}
  protected async send(batch: ShippedRecord[]): Promise<void> {
    this.attempts++;
    await new Promise((r) => setTimeout(r, this.delayMs));
    if (!this.up) throw new Error('connection refused');
    this.received.push(batch.map((r) => (r.proto === 'udp' ? r.packetsSent : -1)));
  }
  protected async close(): Promise<void> {
    this.released = true;
  }
}

function records(from: number, n: number): ShippedRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    ts: '2026-01-01T00:00:00.000Z', proto: 'udp', family: 4, direction: 'inbound', directionFrom: 'first-datagram',
    local: { addr: '10.0.0.1', port: 1, pid: 1, comm: 'x', cgroupId: 1, netns: 1 }, remote: { addr: '10.0.0.2', port: 2 },
    packetsSent: from + i, packetsReceived: 0, bytesSent: 0, bytesReceived: 0, intervalMs: 1000,
    cluster: null, node: 'n1', intervalStart: '2026-01-01T00:00:00.000Z',
  }));
}

const delivered = (s: FakeSink): number[] => s.received.flat();

describe('BatchingSink', () => {
  test('batches of at most maxBatch, in order, each record once', async () => {
    const s = new FakeSink({});
    await s.start();
    s.export(records(0, 25));
    await s.flush(2000);
    assert.deepEqual(delivered(s), Array.from({ length: 25 }, (_, i) => i));
    assert.ok(s.received.every((b) => b.length <= 10));
    assert.deepEqual(s.stats(), { exported: 25, dropped: 0, queued: 0, failures: 0 });
    await s.shutdown(100);
    assert.ok(s.released);
  });

  test('destination down: retried with back-off, bounded, drops counted exactly; delivered once when back', async () => {
    const s = new FakeSink({ maxQueued: 30 });
    await s.start();
    s.up = false;
    s.export(records(0, 20));
    await new Promise((r) => setTimeout(r, 150));
    s.export(records(20, 20)); // 10 fit, 10 dropped
    const during = s.stats();
    assert.deepEqual([during.queued, during.dropped, during.exported], [30, 10, 0]);
    assert.ok(during.failures >= 2, `retried: ${during.failures}`);
    assert.ok(during.failures < 15, `with back-off, not a busy loop: ${during.failures}`);
    assert.equal(during.lastError, 'connection refused');
    s.up = true;
    await s.flush(3000);
    assert.deepEqual(delivered(s), Array.from({ length: 30 }, (_, i) => i));
    assert.deepEqual([s.stats().exported, s.stats().dropped, s.stats().queued], [30, 10, 0]);
    await s.shutdown(100);
  });

  test('shutdown: flushes within its time, then drops (counted) what could not go; nothing after', async () => {
    const s = new FakeSink({});
    await s.start();
    s.up = false;
    s.export(records(0, 5));
    const t0 = Date.now();
    await s.shutdown(200);
    assert.ok(Date.now() - t0 < 1000, 'bounded');
    assert.deepEqual([s.stats().dropped, s.stats().queued, s.stats().exported], [5, 0, 0]);
    s.export(records(5, 3));
    assert.equal(s.stats().dropped, 8, 'after shutdown, counted as dropped');
    assert.ok(s.released);
  });

  test('export never throws or blocks, even before start', () => {
    const s = new FakeSink({ maxQueued: 3 });
    s.export(records(0, 5));
    assert.deepEqual([s.stats().queued, s.stats().dropped], [3, 2]);
    assert.equal(s.ready, false);
  });

  test('shutdown while a batch is out: all counted dropped; the batch moves to exported if it arrives after all', async () => {
    const s = new FakeSink({ maxBatch: 4 });
    await s.start();
    s.delayMs = 300;
    s.export(records(0, 10)); // a batch of 4 goes out at once (queue >= maxBatch)
    await new Promise((r) => setTimeout(r, 30));
    await s.shutdown(50);
    assert.deepEqual([s.stats().dropped, s.stats().exported, s.stats().queued], [10, 0, 0], 'given up on');
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual([s.stats().dropped, s.stats().exported, s.stats().queued], [6, 4, 0], 'the 4 out arrived: exported, not also dropped');
  });
});
