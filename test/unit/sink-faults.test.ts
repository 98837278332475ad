/**
 * Every network sink against every way its destination fails, through a
 * fault proxy (test/helpers/fault-proxy.ts) in front of the real test
 * server: the Kafka broker, the OTLP receiver, a real ClickHouse. In turn
 * the destination is stopped (connection refused), refusing (each
 * connection reset), hung (accepts, never answers) and answering errors
 * (Kafka: a retriable error code; OTLP: 503; ClickHouse: HTTP 500), then
 * restarted on the same port. Each time: export returns at once, the queue
 * holds exactly maxQueued and the rest are counted as dropped, the sink
 * keeps retrying without piling up connections, and once the destination is
 * back every queued record is delivered exactly once, in order. And start()
 * against a hung or refusing destination settles within its time-out, so
 * start-up (which retries it in the background) never hangs on it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ClickHouseSink } from '../../src/sinks/clickhouse.js';
import { KafkaSink } from '../../src/sinks/kafka.js';
import { OtlpSink } from '../../src/sinks/otlp.js';
import type { FlowSink, ShippedRecord } from '../../src/sinks/sink.js';
import { CLICKHOUSE_SKIP, ClickHouseServer } from '../helpers/clickhouse-server.js';
import { FakeKafkaBroker } from '../helpers/fake-kafka-broker.js';
import { FaultProxy, type FaultMode } from '../helpers/fault-proxy.js';
import { OtlpReceiver } from '../helpers/otlp-receiver.js';
import { SHIP, testBatching, waitFor } from '../helpers/sink-fixtures.js';

const MAX_QUEUED = 10;
const PER_FAULT = 25;
/** every request's time-out, so that a hung destination costs half a second per attempt */
const TIMEOUT_MS = 500;

/** Record `id`: its id is its local pid. */
function record(id: number): ShippedRecord {
  return {
    ts: new Date(Date.now() - 60_000).toISOString(), proto: 'tcp', family: 4, direction: 'outbound', outcome: 'closed',
    local: { addr: '10.0.0.1', port: 40000, pid: id, comm: 'fault', cgroupId: 1, netns: 1 }, remote: { addr: '10.0.0.2', port: 443 },
    bytesSent: 1, bytesReceived: 2, retransmits: 0, srttUs: 50, durationMs: 1, ...SHIP,
  };
}

const pidOf = (line: string): number => (JSON.parse(line) as { local: { pid: number } }).local.pid;

interface Subject {
  proxy: FaultProxy;
  sink(): FlowSink;
  /** ids delivered, in the order the destination got them */
  delivered(): Promise<number[]>;
  /** the destination's own errors on (true) or off */
  errors(on: boolean): void | Promise<void>;
  close(): Promise<void>;
}

/** Every fault in turn, then back: exact accounting at each step. */
async function everyFault(s: Subject): Promise<void> {
  const sink = s.sink();
  await sink.start();
  let next = 1;
  const expected: number[] = [];
  let dropped = 0;
  const batch = (n: number): ShippedRecord[] => Array.from({ length: n }, () => record(next++));
  const first = batch(5);
  sink.export(first);
  expected.push(...first.map((r) => r.local.pid));
  await sink.flush(5000);
  assert.deepEqual(await s.delivered(), expected);
  try {
    for (const fault of ['stopped', 'refuse', 'hang', 'error'] as const) {
      const failures = sink.stats().failures;
      if (fault === 'error') await s.errors(true);
      else await s.proxy.set(fault as FaultMode);
      const records = batch(PER_FAULT);
      const t0 = performance.now();
      sink.export(records);
      assert.ok(performance.now() - t0 < 50, `${fault}: export does not wait`);
      await waitFor(() => sink.stats().failures >= failures + 2, 10_000, `${fault}: two failed attempts`);
      dropped += PER_FAULT - MAX_QUEUED;
      const st = sink.stats();
      assert.deepEqual([st.queued, st.dropped], [MAX_QUEUED, dropped], `${fault}: the queue holds its bound, the rest is counted`);
      assert.ok(s.proxy.open <= 3, `${fault}: ${s.proxy.open} connections held open`);
      assert.ok(st.lastError, `${fault}: the error is kept`);
      expected.push(...records.slice(0, MAX_QUEUED).map((r) => r.local.pid));
      // back (restarted on the same port, after 'stopped')
      if (fault === 'error') await s.errors(false);
      else await s.proxy.set('pass');
      await sink.flush(10_000);
      assert.equal(sink.stats().queued, 0, `${fault}: delivered once back`);
      assert.deepEqual(await s.delivered(), expected, `${fault}: what was queued, once each, in order`);
    }
    assert.deepEqual([sink.stats().exported, sink.stats().dropped], [expected.length, dropped]);
  } finally {
    await sink.shutdown(2000);
  }
}

/** start() against a hung, then a refusing destination: it settles (rejects or resolves) within its time-outs. */
async function startSettles(s: Subject, boundMs: number): Promise<void> {
  for (const fault of ['hang', 'refuse', 'stopped'] as const) {
    await s.proxy.set(fault);
    const sink = s.sink();
    const t0 = performance.now();
    const outcome = await sink.start().then(
      () => 'started',
      (e: Error) => e.message,
    );
    const took = performance.now() - t0;
    assert.ok(took < boundMs, `${fault}: start() settled in ${Math.round(took)} ms (${outcome})`);
    await sink.shutdown(500);
  }
  await s.proxy.set('pass');
}

describe('sinks against a failing destination', () => {
  describe('Kafka', () => {
    let s: Subject;
    before(async () => {
      const broker = new FakeKafkaBroker(1);
      const port = await broker.start();
      const proxy = new FaultProxy({ host: '127.0.0.1', port });
      await proxy.start();
      // the client connects to the broker Metadata names: the proxy
      broker.advertisedPort = proxy.port;
      s = {
        proxy,
        sink: () =>
          new KafkaSink({
            brokers: [`127.0.0.1:${proxy.port}`], topic: 'flows', connectionTimeoutMs: TIMEOUT_MS, requestTimeoutMs: TIMEOUT_MS, ackTimeoutMs: TIMEOUT_MS,
            batching: testBatching({ maxQueued: MAX_QUEUED, maxBatch: 5 }),
          }),
        delivered: async () => broker.messages.map((m) => pidOf(m.value ?? "")),
        errors: (on) => void (broker.produceError = on ? 6 : 0), // NOT_LEADER_FOR_PARTITION: retriable
        close: async () => {
          await proxy.close();
          await broker.stop();
        },
      };
    });
    after(() => s?.close());
    test('stopped, refusing, hung, answering errors, restarted: bounded, counted, delivered once when back', () => everyFault(s));
    test('start() settles against a hung, refusing or stopped broker', () => startSettles(s, 6 * TIMEOUT_MS + 2000));
  });

  describe('OTLP', () => {
    let s: Subject;
    before(async () => {
      const receiver = new OtlpReceiver();
      const port = await receiver.start();
      const proxy = new FaultProxy({ host: '127.0.0.1', port });
      await proxy.start();
      s = {
        proxy,
        sink: () => new OtlpSink({ endpoint: proxy.url, timeoutMs: TIMEOUT_MS, metrics: false, batching: testBatching({ maxQueued: MAX_QUEUED, maxBatch: 5 }) }),
        delivered: async () => receiver.logs().map((l) => pidOf(l.body as string)),
        errors: (on) => void (receiver.status = on ? 503 : 200),
        close: async () => {
          await proxy.close();
          await receiver.stop();
        },
      };
    });
    after(() => s?.close());
    test('stopped, refusing, hung, answering errors, restarted: bounded, counted, delivered once when back', () => everyFault(s));
    test('start() settles against a hung, refusing or stopped receiver', () => startSettles(s, 2000));
  });

  describe('ClickHouse', { skip: CLICKHOUSE_SKIP }, () => {
    let s: Subject;
    let server: ClickHouseServer;
    let db = 0;
    before(async () => {
      server = await ClickHouseServer.start();
      const proxy = new FaultProxy({ host: '127.0.0.1', port: server.port });
      await proxy.start();
      let database = '';
      s = {
        proxy,
        sink: () => new ClickHouseSink({ url: proxy.url, database: (database = `faults${++db}`), requestTimeoutMs: TIMEOUT_MS * 2, batching: testBatching({ maxQueued: MAX_QUEUED, maxBatch: 5 }) }),
        // rows arrive in batches of at most 5, in order; within a batch the table's order is its own
        delivered: async () => (await server.rows<{ local_pid: number }>(`SELECT local_pid FROM ${database}.flows ORDER BY local_pid`)).map((r) => r.local_pid),
        errors: (on) => proxy.set(on ? 'http-error' : 'pass', 500),
        close: async () => {
          await proxy.close();
          await server.kill();
        },
      };
    });
    after(() => s?.close());
    test('stopped, refusing, hung, answering errors, restarted: bounded, counted, delivered once when back', () => everyFault(s));
    test('start() settles against a hung, refusing or stopped server', () => startSettles(s, 8 * TIMEOUT_MS + 2000));
  });
});
