import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KafkaSink, kafkaMessage, sourceKey } from '../../src/sinks/kafka.js';
import { kafkaSinkSchema, type KafkaSinkOptions } from '../../src/sinks/sink-configs.js';
import { shippedLine } from '../../src/sinks/jsonl.js';
import type { ShippedRecord } from '../../src/sinks/sink.js';
import { FakeKafkaBroker, crc32c } from '../helpers/fake-kafka-broker.js';
import { SHIP, testBatching, waitFor } from '../helpers/sink-fixtures.js';

function tcp(i: number, over: Partial<Extract<ShippedRecord, { proto: 'tcp' }>> = {}): ShippedRecord {
  return {
    ts: `2026-01-01T00:00:0${i % 10}.000Z`, proto: 'tcp', family: 4, direction: 'outbound', outcome: 'closed',
    local: { addr: '10.0.0.1', port: 40000 + i, pid: 7, comm: 'curl', cgroupId: 1, netns: 2, k8s: { namespace: 'shop', workload: `web-${i % 3}`, workloadKind: 'Deployment' } },
    remote: { addr: '10.0.0.2', port: 443 },
    bytesSent: 100 + i, bytesReceived: 1000 + i, retransmits: 0, srttUs: 50, durationMs: 1.5,
    ...SHIP, ...over,
  };
}

const config = (port: number, { maxQueued, maxBatch, ...over }: Record<string, unknown> & { maxQueued?: number; maxBatch?: number } = {}): KafkaSinkOptions => ({
  brokers: [`127.0.0.1:${port}`], topic: 'flows', connectionTimeoutMs: 500, requestTimeoutMs: 2000, ...over,
  batching: testBatching({ maxQueued, maxBatch }),
});

describe('Kafka sink: messages', () => {
  test('key: the caller, as the edge tables name it', () => {
    assert.equal(sourceKey(tcp(1)), 'shop/web-1');
    assert.equal(sourceKey(tcp(1, { local: { addr: '10.0.0.1', port: 1, pid: 1, comm: 'curl', cgroupId: 1, netns: 1 } })), 'process:curl');
    // inbound: the remote end called
    const inbound = tcp(1, { direction: 'inbound', remote: { addr: '10.0.0.9', port: 5555, k8s: { namespace: 'ops', workload: 'prober' } } });
    assert.equal(sourceKey(inbound), 'ops/prober');
    assert.equal(sourceKey(tcp(1, { direction: 'inbound', remote: { addr: '10.0.0.9', port: 5555 } })), '10.0.0.9');
    const dns: ShippedRecord = {
      ts: '2026-01-01T00:00:00.000Z', proto: 'dns', query: 'a.test', qtype: 'A', rcode: 'NOERROR', answers: [], latencyMs: 1, transport: 'udp',
      local: { addr: '10.0.0.1', port: 5353, pid: 9, comm: 'resolver', cgroupId: 1, netns: 2 }, remote: { addr: '10.0.0.53', port: 53 }, ...SHIP,
    };
    assert.equal(sourceKey(dns), 'process:resolver');
    const m = kafkaMessage(tcp(3));
    assert.deepEqual(m, { key: 'shop/web-0', value: shippedLine(tcp(3)).trimEnd(), timestamp: String(Date.parse('2026-01-01T00:00:03.000Z')) });
  });

  test('config: brokers and topic required, compression none|gzip only', () => {
    assert.throws(() => kafkaSinkSchema.parse({ topic: 'x' }), /brokers/);
    assert.throws(() => kafkaSinkSchema.parse({ brokers: ['k:9092'], topic: 'x', compression: 'snappy' }), /compression/);
    assert.throws(() => kafkaSinkSchema.parse({ brokers: ['k'], topic: 'x' }), /host:port/);
    assert.throws(() => kafkaSinkSchema.parse({ brokers: ['k:1'], topic: 'x', acks: 2 }), /one of -1, 0, 1/);
    const c = kafkaSinkSchema.parse({ brokers: ['k:9092'], topic: 'x' });
    assert.deepEqual([c.compression, c.acks, c.clientId, c.batching.maxBatch, c.batching.maxQueued], ['gzip', -1, 'bpfagent', 1000, 100_000]);
  });

  test('crc32c of the check string is 0xe3069283', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  });
});

describe('Kafka sink against a broker speaking the wire protocol', () => {
  test('topic, partitions by key, exact JSON values, gzip record batches with valid CRCs', async () => {
    const broker = new FakeKafkaBroker(3);
    const port = await broker.start();
    const sink = new KafkaSink(config(port, { compression: 'gzip', acks: 1 }));
    try {
      await sink.start();
      assert.ok(sink.ready);
      const records = Array.from({ length: 30 }, (_, i) => tcp(i));
      sink.export(records.slice(0, 10));
      sink.export(records.slice(10));
      await sink.flush(5000);
      assert.deepEqual(sink.stats(), { exported: 30, dropped: 0, queued: 0, failures: 0 });

      assert.equal(broker.messages.length, 30);
      assert.ok(broker.messages.every((m) => m.topic === 'flows'));
      const byValue = new Map(broker.messages.map((m) => [m.value, m]));
      for (const r of records) {
        const m = byValue.get(shippedLine(r).trimEnd());
        assert.ok(m, 'each record arrives as its exact JSON line');
        assert.equal(m.key, sourceKey(r));
        assert.equal(m.timestamp, Date.parse(r.ts));
        assert.deepEqual(JSON.parse(m.value!), r);
      }
      // one key, one partition; three keys over three partitions by the default (murmur2) partitioner
      const partOf = new Map<string, Set<number>>();
      for (const m of broker.messages) partOf.set(m.key!, (partOf.get(m.key!) ?? new Set()).add(m.partition));
      assert.deepEqual([...partOf.keys()].sort(), ['shop/web-0', 'shop/web-1', 'shop/web-2']);
      for (const s of partOf.values()) assert.equal(s.size, 1);
      // within a partition: offsets 0.. in the order exported
      for (const p of [0, 1, 2]) {
        const inP = broker.messages.filter((m) => m.partition === p);
        assert.deepEqual(inP.map((m) => m.offset), inP.map((_, k) => k));
        const order = inP.map((m) => records.findIndex((r) => shippedLine(r).trimEnd() === m.value));
        assert.deepEqual(order, [...order].sort((a, b) => a - b));
      }
      const batches = broker.produces.flatMap((p) => p.batches);
      assert.ok(batches.length > 0);
      assert.ok(batches.every((b) => b.magic === 2 && b.codec === 1 && b.crcOk), 'record batches v2, gzip, CRC-32C valid');
      assert.ok(broker.produces.every((p) => p.acks === 1 && p.timeoutMs === 30000));
      assert.ok(broker.requests.includes('ApiVersions v2') && broker.requests.includes('Metadata v6') && broker.requests.includes('Produce v7'), 'the versions kafkajs uses with Kafka 2.1+');
      assert.ok(broker.autoCreate.length > 0 && broker.autoCreate.every((a) => a === false), 'no topic auto-creation asked');
    } finally {
      await sink.shutdown(1000);
      await broker.stop();
    }
  });

  test('no compression: codec 0 batches; a broker offering only Produce v3 and Metadata v1', async () => {
    const broker = new FakeKafkaBroker(1, { produce: 3, metadata: 1 });
    const port = await broker.start();
    const sink = new KafkaSink(config(port, { compression: 'none' }));
    try {
      await sink.start();
      sink.export([tcp(1), tcp(2)]);
      await sink.flush(5000);
      assert.deepEqual(broker.messages.map((m) => [m.partition, m.offset, m.key, m.value, m.codec]), [
        [0, 0, 'shop/web-1', shippedLine(tcp(1)).trimEnd(), 0],
        [0, 1, 'shop/web-2', shippedLine(tcp(2)).trimEnd(), 0],
      ]);
      assert.ok(broker.produces.every((p) => p.acks === -1));
      assert.ok(broker.requests.includes('Metadata v1') && broker.requests.includes('Produce v3'));
    } finally {
      await sink.shutdown(1000);
      await broker.stop();
    }
  });

  test('broker down: retried with back-off, bounded with drops counted; back up: each kept record delivered once', async () => {
    const broker = new FakeKafkaBroker(1);
    const port = await broker.start();
    const sink = new KafkaSink(config(port, { maxQueued: 10, maxBatch: 5 }));
    try {
      await sink.start();
      await broker.stop();
      const t0 = Date.now();
      sink.export(Array.from({ length: 25 }, (_, i) => tcp(i)));
      assert.ok(Date.now() - t0 < 50, 'export never waits for the broker');
      await waitFor(() => sink.stats().failures >= 2, 5000, 'two failed attempts');
      assert.equal(broker.messages.length, 0);
      const st = sink.stats();
      assert.deepEqual([st.exported, st.dropped, st.queued], [0, 15, 10]);
      assert.ok(st.lastError);

      await broker.start(port);
      await sink.flush(8000);
      assert.deepEqual(
        broker.messages.map((m) => m.value),
        Array.from({ length: 10 }, (_, i) => shippedLine(tcp(i)).trimEnd()),
        'the first ten, once each, in order',
      );
      assert.deepEqual({ ...sink.stats(), failures: 0, lastError: '' }, { exported: 10, dropped: 15, queued: 0, failures: 0, lastError: '' });
    } finally {
      await sink.shutdown(1000);
      await broker.stop();
    }
  });

  test('a retriable broker error is retried; a non-retriable one (MESSAGE_TOO_LARGE) drops that batch, counted', async () => {
    const broker = new FakeKafkaBroker(1);
    const port = await broker.start();
    const warnings: string[] = [];
    const log = { warn: (_o: unknown, m: string) => warnings.push(m), error: (_o: unknown, m: string) => warnings.push(m) };
    const sink = new KafkaSink(config(port), { log: log as never });
    try {
      await sink.start();
      broker.produceError = 6; // NOT_LEADER_FOR_PARTITION: retriable
      sink.export([tcp(1)]);
      await waitFor(() => sink.stats().failures >= 1, 5000, 'a failed attempt');
      broker.produceError = 0;
      await sink.flush(5000);
      assert.deepEqual(broker.messages.map((m) => m.value), [shippedLine(tcp(1)).trimEnd()]);
      assert.deepEqual([sink.stats().exported, sink.stats().dropped], [1, 0]);

      broker.produceError = 10; // MESSAGE_TOO_LARGE: not retriable
      const produces = broker.produces.length;
      sink.export([tcp(2), tcp(3)]);
      await sink.flush(5000);
      await new Promise((r) => setTimeout(r, 300)); // room for a retry, were there one
      assert.equal(broker.produces.length, produces + 1, 'one attempt, no retry');
      const st = sink.stats();
      assert.deepEqual([st.exported, st.dropped, st.queued], [1, 2, 0]);
      assert.match(st.lastError ?? '', /larger than.*2 records dropped|too large.*2 records dropped/i);

      broker.produceError = 0;
      sink.export([tcp(4)]);
      await sink.flush(5000);
      assert.deepEqual(broker.messages.map((m) => m.value), [shippedLine(tcp(1)).trimEnd(), shippedLine(tcp(4)).trimEnd()]);
      assert.deepEqual([sink.stats().exported, sink.stats().dropped], [2, 2]);
      assert.ok(warnings.length > 0, "kafkajs's errors go to the given logger");
    } finally {
      await sink.shutdown(1000);
      await broker.stop();
    }
  });

  test('no broker at start: start rejects, naming the brokers', async () => {
    const broker = new FakeKafkaBroker(1);
    const port = await broker.start();
    await broker.stop();
    await assert.rejects(new KafkaSink(config(port)).start(), new RegExp(`kafka sink: cannot connect to 127.0.0.1:${port}`));
  });
});
