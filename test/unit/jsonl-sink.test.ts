import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JsonlSink, shippedLine, type LineStream } from '../../src/sinks/jsonl.js';
import { jsonlSinkSchema, type JsonlSinkOptions } from '../../src/sinks/sink-configs.js';
import { formatJsonLines } from '../../src/output/jsonl.js';
import type { ShippedRecord } from '../../src/sinks/sink.js';

const SHIP = { cluster: 'prod-eu' as string | null, node: 'node-1', intervalStart: '2026-01-01T00:00:00.000Z', intervalMs: 10000 };

function tcp(i: number): ShippedRecord {
  return {
    ts: '2026-01-01T00:00:01.000Z', proto: 'tcp', family: 4, direction: 'outbound', outcome: 'closed',
    local: { addr: '10.0.0.1', port: 40000 + i, pid: 7, comm: 'curl', cgroupId: 1, netns: 2, k8s: { namespace: 'shop', workload: 'web' } },
    remote: { addr: '10.0.0.2', port: 443, name: 'api.example.com' },
    bytesSent: 100 + i, bytesReceived: 1000, retransmits: 0, srttUs: 50, durationMs: 1.5, locality: 'same-zone',
    ...SHIP,
  };
}
const udp: ShippedRecord = {
  ts: '2026-01-01T00:00:02.000Z', proto: 'udp', family: 4, direction: 'outbound', directionFrom: 'first-datagram',
  local: { addr: '10.0.0.1', port: 5000, pid: 8, comm: 'statsd', cgroupId: 1, netns: 2 }, remote: { addr: '10.0.0.3', port: 8125 },
  packetsSent: 3, packetsReceived: 0, bytesSent: 30, bytesReceived: 0, intervalMs: 10000, cluster: null, node: 'node-1', intervalStart: SHIP.intervalStart,
};
const dns: ShippedRecord = {
  ts: '2026-01-01T00:00:03.000Z', proto: 'dns', query: 'a.test', qtype: 'A', rcode: 'NOERROR',
  answers: [{ name: 'a.test', type: 'A', ttl: 60, data: '10.0.0.9' }], latencyMs: 1.25, transport: 'udp',
  local: { addr: '10.0.0.1', port: 5353, pid: 9, comm: 'curl', cgroupId: 1, netns: 2 }, remote: { addr: '10.0.0.53', port: 53 },
  ...SHIP,
};

const config = ({ maxQueued, maxBatch, ...over }: Record<string, unknown> & { maxQueued?: number; maxBatch?: number }): JsonlSinkOptions => ({
  ...over,
  batching: { flushIntervalMs: 10, retryBaseMs: 10, retryMaxMs: 50, ...(maxQueued ? { maxQueued } : {}), ...(maxBatch ? { maxBatch } : {}) },
});

describe('JsonlSink', () => {
  test('each line is the trace --json line plus cluster, node, intervalStart, intervalMs', () => {
    const t = tcp(1);
    const { cluster: _c, node: _n, intervalStart: _s, intervalMs: _m, ...traced } = t as ShippedRecord & { intervalMs: number };
    const traceLine = formatJsonLines([traced as never]).trimEnd();
    assert.equal(shippedLine(t), traceLine.slice(0, -1) + ',"cluster":"prod-eu","node":"node-1","intervalStart":"2026-01-01T00:00:00.000Z","intervalMs":10000}\n');
    assert.equal(
      shippedLine(udp),
      '{"ts":"2026-01-01T00:00:02.000Z","proto":"udp","family":4,"direction":"outbound","directionFrom":"first-datagram","local":{"addr":"10.0.0.1","port":5000,"pid":8,"comm":"statsd","cgroupId":1,"netns":2},' +
        '"remote":{"addr":"10.0.0.3","port":8125},"packetsSent":3,"packetsReceived":0,"bytesSent":30,"bytesReceived":0,"intervalMs":10000,' +
        '"cluster":null,"node":"node-1","intervalStart":"2026-01-01T00:00:00.000Z"}\n',
    );
    for (const r of [t, udp, dns]) assert.deepEqual(JSON.parse(shippedLine(r)), r, 'every field survives, nothing added');
  });

  test('stdout: the exact lines, in order, batched into few writes', async () => {
    const writes: string[] = [];
    const out: LineStream = { write: (c, cb) => (writes.push(c), setImmediate(cb), true) };
    const s = new JsonlSink(config({ path: '-' }), { stream: out });
    await s.start();
    s.export([tcp(0), udp]);
    s.export([dns, tcp(1)]);
    await s.shutdown(2000);
    assert.equal(writes.join(''), [tcp(0), udp, dns, tcp(1)].map(shippedLine).join(''));
    assert.ok(writes.length <= 2);
    assert.deepEqual(s.stats(), { exported: 4, dropped: 0, queued: 0, failures: 0 });
  });

  test('a file rotated at maxBytes: file, file.1, file.2 kept, the oldest deleted, no line split', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jsonl-'));
    try {
      const path = join(dir, 'flows.jsonl');
      const lineBytes = Buffer.byteLength(shippedLine(tcp(0)));
      for (let i = 0; i < 20; i++) assert.equal(Buffer.byteLength(shippedLine(tcp(i))), lineBytes, 'fixed-size lines');
      // 3 lines per file; 20 lines -> 7 files made, 3 kept
      const s = new JsonlSink(config({ path, maxBytes: lineBytes * 3 + 10, maxFiles: 3, maxBatch: 4 }));
      await s.start();
      for (let i = 0; i < 20; i++) s.export([tcp(i)]);
      await s.shutdown(5000);
      assert.deepEqual((await readdir(dir)).sort(), ['flows.jsonl', 'flows.jsonl.1', 'flows.jsonl.2']);
      const lines = (i: number, n: number) => Array.from({ length: n }, (_, k) => shippedLine(tcp(i + k))).join('');
      assert.equal(await readFile(path, 'utf8'), lines(18, 2));
      assert.equal(await readFile(`${path}.1`, 'utf8'), lines(15, 3));
      assert.equal(await readFile(`${path}.2`, 'utf8'), lines(12, 3));
      assert.deepEqual(s.stats(), { exported: 20, dropped: 0, queued: 0, failures: 0 });

      // a restarted sink appends to the current file and rotates when it is full
      const s2 = new JsonlSink(config({ path, maxBytes: lineBytes * 3 + 10, maxFiles: 3 }));
      await s2.start();
      s2.export([tcp(20), tcp(21)]);
      await s2.shutdown(5000);
      assert.equal(await readFile(path, 'utf8'), lines(21, 1));
      assert.equal(await readFile(`${path}.1`, 'utf8'), lines(18, 3));
      assert.equal(await readFile(`${path}.2`, 'utf8'), lines(15, 3));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('maxFiles 1: the file is truncated when full', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jsonl-'));
    try {
      const path = join(dir, 'f.jsonl');
      const lineBytes = Buffer.byteLength(shippedLine(tcp(0)));
      const s = new JsonlSink(config({ path, maxBytes: lineBytes * 2, maxFiles: 1 }));
      await s.start();
      s.export([tcp(0), tcp(1), tcp(2)]);
      await s.shutdown(5000);
      assert.deepEqual(await readdir(dir), ['f.jsonl']);
      assert.equal(await readFile(path, 'utf8'), shippedLine(tcp(2)));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a slow destination: tracing never waits, the queue stays bounded, drops counted exactly', async () => {
    let writes = 0;
    const written: string[] = [];
    // each write takes 100 ms
    const slow: LineStream = { write: (c, cb) => (writes++, written.push(c), setTimeout(cb, 100), true) };
    const s = new JsonlSink(config({ path: '-', maxQueued: 10, maxBatch: 5 }), { stream: slow });
    await s.start();
    const t0 = Date.now();
    for (let i = 0; i < 100; i++) s.export([tcp(i)]);
    assert.ok(Date.now() - t0 < 50, 'export returns at once');
    // the queue holds 10 (5 of them in the write under way), the other 90 are dropped
    assert.deepEqual(s.stats(), { exported: 0, dropped: 90, queued: 10, failures: 0 });
    await s.shutdown(5000);
    assert.deepEqual(s.stats(), { exported: 10, dropped: 90, queued: 0, failures: 0 });
    assert.equal(writes, 2);
    assert.equal(written.join(''), Array.from({ length: 10 }, (_, i) => shippedLine(tcp(i))).join(''));
  });

  test('an unwritable path fails start with a clear message; a stdout write error is retried', async () => {
    await assert.rejects(new JsonlSink(config({ path: '/nonexistent-dir/x.jsonl' })).start(), /jsonl sink: cannot open \/nonexistent-dir\/x.jsonl/);
    let fail = 2;
    const got: string[] = [];
    const listeners: unknown[] = [];
    const flaky: LineStream = {
      write: (c, cb) => (fail-- > 0 ? setImmediate(() => cb(new Error('EAGAIN'))) : (got.push(c), setImmediate(cb)), true),
      on: (_e, l) => listeners.push(l),
    };
    const s = new JsonlSink(config({ path: '-' }), { stream: flaky });
    await s.start();
    s.export([tcp(0)]);
    await s.flush(3000);
    assert.equal(got.join(''), shippedLine(tcp(0)));
    assert.deepEqual(s.stats(), { exported: 1, dropped: 0, queued: 0, failures: 2, lastError: 'EAGAIN' });
    assert.equal(listeners.length, 1, "an 'error' listener, so EPIPE cannot end the process");
    await s.shutdown(100);
  });

  test('config: defaults, and unknown keys refused', () => {
    const c = jsonlSinkSchema.parse({});
    assert.deepEqual(c, {
      path: '-', maxBytes: 100 * 1024 * 1024, maxFiles: 5,
      batching: { maxQueued: 100_000, maxBatch: 5_000, flushIntervalMs: 200, retryBaseMs: 500, retryMaxMs: 30_000 },
    });
    assert.throws(() => jsonlSinkSchema.parse({ batching: { maxQueue: 1 } }), /Unrecognized key/);
    assert.throws(() => jsonlSinkSchema.parse({ pth: 'x' }), /Unrecognized key/);
  });
});
