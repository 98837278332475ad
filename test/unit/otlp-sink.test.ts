import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { OtlpSink } from '../../src/sinks/otlp.js';
import { otlpSinkSchema, type OtlpSinkOptions } from '../../src/sinks/sink-configs.js';
import { shippedLine } from '../../src/sinks/jsonl.js';
import type { ShippedRecord } from '../../src/sinks/sink.js';
import { OtlpReceiver, type ReceivedPoint } from '../helpers/otlp-receiver.js';
import { SHIP, testBatching, waitFor } from '../helpers/sink-fixtures.js';

const local = (comm: string, port: number, k8s?: { namespace: string; workload: string }) => ({
  addr: '10.0.0.1', port, pid: 7, comm, cgroupId: 1, netns: 2, ...(k8s ? { k8s } : {}),
});

function tcp(i: number, over: Partial<Extract<ShippedRecord, { proto: 'tcp' }>> = {}): ShippedRecord {
  return {
    ts: `2026-01-01T00:00:0${i % 10}.${String(i).padStart(3, '0')}Z`, proto: 'tcp', family: 4, direction: 'outbound', outcome: 'closed',
    local: local('curl', 40000 + i, { namespace: 'shop', workload: 'web' }), remote: { addr: '10.0.0.2', port: 443, name: 'api.test' },
    bytesSent: 100, bytesReceived: 1000, retransmits: 0, srttUs: 50, durationMs: 1.5,
    ...SHIP, ...over,
  };
}
const udp: ShippedRecord = {
  ts: '2026-01-01T00:00:05.000Z', proto: 'udp', family: 4, direction: 'outbound', directionFrom: 'first-datagram', local: local('statsd', 50000), remote: { addr: '10.0.0.3', port: 8125 },
  packetsSent: 3, packetsReceived: 1, bytesSent: 30, bytesReceived: 7, intervalMs: 10000, cluster: SHIP.cluster, node: 'node-1', intervalStart: SHIP.intervalStart,
};
const dns: ShippedRecord = {
  ts: '2026-01-01T00:00:06.000Z', proto: 'dns', query: 'api.test', qtype: 'A', rcode: 'NXDOMAIN', answers: [], latencyMs: 2.5, transport: 'udp',
  local: local('curl', 5353, { namespace: 'shop', workload: 'web' }), remote: { addr: '10.0.0.53', port: 53 }, ...SHIP,
};

const config = (endpoint: string, { maxQueued, maxBatch, ...over }: Record<string, unknown> & { maxQueued?: number; maxBatch?: number } = {}): OtlpSinkOptions => ({
  endpoint, timeoutMs: 500, metricsIntervalMs: 60_000, ...over,
  batching: testBatching({ maxQueued, maxBatch }),
});

/** metric name -> "attr=value,..." -> value, from the last metrics export */
function sums(points: ReceivedPoint[]): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const p of points) {
    const key = Object.entries(p.attributes).map(([k, v]) => `${k}=${String(v)}`).join(',');
    (out[p.metric] ??= {})[key] = p.value;
  }
  return out;
}

describe('OTLP sink against a receiver decoding OTLP/HTTP protobuf', () => {
  test('log records: one per record, body the shared JSON line, time, attributes, resource; metrics per edge, exact', async () => {
    const rcv = new OtlpReceiver();
    await rcv.start();
    const sink = new OtlpSink(config(rcv.endpoint, { headers: { authorization: 'Bearer t0k' } }), { node: 'node-1' });
    try {
      await sink.start();
      const records = [
        tcp(1),
        tcp(2, { bytesSent: 200, bytesReceived: 2000, retransmits: 2 }),
        tcp(3, { outcome: 'refused', bytesSent: 0, bytesReceived: 0 }),
        // inbound: the remote end is the caller; bytes the caller sent are what this end received
        tcp(4, { direction: 'inbound', local: local('nginx', 8080), remote: { addr: '10.0.0.9', port: 51000 }, bytesSent: 5000, bytesReceived: 50 }),
        udp,
        dns,
      ];
      sink.export(records);
      await sink.flush(5000);
      assert.deepEqual(sink.stats(), { exported: 6, dropped: 0, queued: 0, failures: 0 });

      const logs = rcv.logs();
      assert.equal(logs.length, 6);
      assert.deepEqual(logs.map((l) => l.body), records.map((r) => shippedLine(r).trimEnd()), 'bodies: the exact JSON lines, in order');
      assert.deepEqual(logs.map((l) => JSON.parse(l.body as string)), records);
      assert.deepEqual(logs.map((l) => l.timeUnixNano), records.map((r) => String(BigInt(Date.parse(r.ts)) * 1_000_000n)));
      assert.deepEqual(logs.map((l) => l.eventName), ['bpfagent.tcp', 'bpfagent.tcp', 'bpfagent.tcp', 'bpfagent.tcp', 'bpfagent.udp', 'bpfagent.dns']);
      assert.ok(logs.every((l) => l.severityNumber === 9 && l.severityText === 'INFO' && l.scope === 'bpfagent'));
      assert.deepEqual(logs.map((l) => l.attributes), [
        { 'bpfagent.proto': 'tcp', 'bpfagent.source': 'shop/web', 'bpfagent.destination': 'dns:api.test' },
        { 'bpfagent.proto': 'tcp', 'bpfagent.source': 'shop/web', 'bpfagent.destination': 'dns:api.test' },
        { 'bpfagent.proto': 'tcp', 'bpfagent.source': 'shop/web', 'bpfagent.destination': 'dns:api.test' },
        { 'bpfagent.proto': 'tcp', 'bpfagent.source': '10.0.0.9', 'bpfagent.destination': 'process:nginx' },
        { 'bpfagent.proto': 'udp', 'bpfagent.source': 'process:statsd', 'bpfagent.destination': '10.0.0.3' },
        { 'bpfagent.proto': 'dns', 'bpfagent.source': 'shop/web' },
      ]);
      for (const l of logs) {
        assert.equal(l.resource['service.name'], 'bpfagent');
        assert.equal(l.resource['host.name'], 'node-1');
      }
      assert.equal((rcv.logRequests[0] as { headers: Record<string, string> }).headers.authorization, 'Bearer t0k');

      const web = 'proto=tcp,source=shop/web,destination=dns:api.test,port=443,observed_by=client';
      const nginx = 'proto=tcp,source=10.0.0.9,destination=process:nginx,port=8080,observed_by=server';
      const statsd = 'proto=udp,source=process:statsd,destination=10.0.0.3,port=8125,observed_by=client';
      assert.deepEqual(sums(rcv.lastSums()), {
        'bpfagent.flow.connections': { [`${web},outcome=closed`]: 2, [`${web},outcome=refused`]: 1, [`${nginx},outcome=closed`]: 1 },
        'bpfagent.flow.bytes_sent': { [web]: 300, [nginx]: 50, [statsd]: 30 },
        'bpfagent.flow.bytes_received': { [web]: 3000, [nginx]: 5000, [statsd]: 7 },
        'bpfagent.flow.retransmits': { [web]: 2 },
        'bpfagent.flow.packets_sent': { [statsd]: 3 },
        'bpfagent.flow.packets_received': { [statsd]: 1 },
        'bpfagent.dns.lookups': { 'source=shop/web,rcode=NXDOMAIN,qtype=A': 1 },
      });
      const p = rcv.lastSums()[0]!;
      assert.deepEqual([p.monotonic, p.temporality, p.resource['host.name']], [true, 2, 'node-1'], 'monotonic cumulative sums');
      assert.equal(rcv.lastSums().find((x) => x.metric === 'bpfagent.flow.bytes_sent')!.unit, 'By');

      // cumulative: a second interval adds up
      sink.export([tcp(5)]);
      await sink.flush(5000);
      assert.equal(sums(rcv.lastSums())['bpfagent.flow.connections']![`${web},outcome=closed`], 3);
      assert.equal(rcv.logs().length, 7);
      assert.ok(rcv.requests.every((r) => r.endsWith(' 200')));
    } finally {
      await sink.shutdown(1000);
      await rcv.stop();
    }
  });

  test('receiver down: retried with back-off and delivered once when back; beyond the bound dropped and counted', async () => {
    const rcv = new OtlpReceiver();
    const port = await rcv.start();
    const sink = new OtlpSink(config(rcv.endpoint, { maxQueued: 10, maxBatch: 5, metrics: false }), { node: 'node-1' });
    try {
      await sink.start();
      await rcv.stop();
      const t0 = Date.now();
      sink.export(Array.from({ length: 25 }, (_, i) => tcp(i)));
      assert.ok(Date.now() - t0 < 50, 'export never waits');
      await waitFor(() => sink.stats().failures >= 2, 8000, 'two failed attempts');
      const st = sink.stats();
      assert.deepEqual([st.exported, st.dropped, st.queued], [0, 15, 10]);
      assert.match(st.lastError ?? '', /^logs: /);

      await rcv.start(port);
      await sink.flush(8000);
      assert.deepEqual(
        rcv.logs().map((l) => l.body),
        Array.from({ length: 10 }, (_, i) => shippedLine(tcp(i)).trimEnd()),
        'the ten kept, once each, in order',
      );
      const end = sink.stats();
      assert.deepEqual([end.exported, end.dropped, end.queued], [10, 15, 0]);
      assert.deepEqual(rcv.metricRequests, [], 'metrics off');
    } finally {
      await sink.shutdown(1000);
      await rcv.stop();
    }
  });

  test('503 is retried until accepted; 400 is not retried: the batch is dropped and counted, later batches go on', async () => {
    const rcv = new OtlpReceiver();
    await rcv.start();
    const sink = new OtlpSink(config(rcv.endpoint, { metrics: false, timeoutMs: 300 }), { node: 'node-1' });
    try {
      await sink.start();
      rcv.status = 503;
      sink.export([tcp(1)]);
      await waitFor(() => sink.stats().failures >= 1, 5000, 'a failed attempt');
      rcv.status = 200;
      await sink.flush(5000);
      assert.deepEqual(rcv.logs().map((l) => l.body), [shippedLine(tcp(1)).trimEnd()]);
      assert.deepEqual([sink.stats().exported, sink.stats().dropped], [1, 0]);

      rcv.status = 400;
      const before = rcv.requests.length;
      sink.export([tcp(2), tcp(3)]);
      await sink.flush(5000);
      await new Promise((r) => setTimeout(r, 300)); // room for a retry, were there one
      assert.deepEqual(rcv.requests.slice(before), ['POST /v1/logs 400'], 'one attempt, no retry');
      const st = sink.stats();
      assert.deepEqual([st.exported, st.dropped, st.queued], [1, 2, 0]);
      assert.match(st.lastError ?? '', /HTTP 400.*2 records dropped/);

      rcv.status = 200;
      sink.export([tcp(4)]);
      await sink.flush(5000);
      assert.deepEqual(rcv.logs().map((l) => l.body), [shippedLine(tcp(1)).trimEnd(), shippedLine(tcp(4)).trimEnd()]);
      assert.deepEqual([sink.stats().exported, sink.stats().dropped], [2, 2]);
    } finally {
      await sink.shutdown(1000);
      await rcv.stop();
    }
  });

  test('metrics alone; a failed metrics export is counted and the next one carries the totals', async () => {
    const rcv = new OtlpReceiver();
    await rcv.start();
    const sink = new OtlpSink(config(rcv.endpoint, { logs: false }), { node: 'node-1' });
    try {
      await sink.start();
      rcv.status = 400;
      sink.export([tcp(1)]);
      await sink.flush(3000);
      assert.equal(sink.stats().failures, 1);
      assert.match(sink.stats().lastError ?? '', /^metrics: /);
      rcv.status = 200;
      sink.export([tcp(2)]);
      await sink.flush(3000);
      assert.equal(rcv.logRequests.length, 0, 'logs off');
      const web = 'proto=tcp,source=shop/web,destination=dns:api.test,port=443,observed_by=client';
      assert.equal(sums(rcv.lastSums())['bpfagent.flow.connections']![`${web},outcome=closed`], 2);
      assert.deepEqual([sink.stats().exported, sink.stats().dropped, sink.stats().queued], [0, 0, 0]);
    } finally {
      await sink.shutdown(1000);
      await rcv.stop();
    }
  });

  test('shutdown with the receiver gone stays within its budget and counts what it leaves', async () => {
    const rcv = new OtlpReceiver();
    await rcv.start();
    const sink = new OtlpSink(config(rcv.endpoint, { timeoutMs: 5000 }), { node: 'node-1' });
    await sink.start();
    await rcv.stop();
    sink.export([tcp(1), tcp(2), tcp(3)]);
    const t0 = Date.now();
    await sink.shutdown(300);
    const took = Date.now() - t0;
    assert.ok(took < 2500, `shutdown took ${took} ms`);
    const st = sink.stats();
    assert.deepEqual([st.exported, st.dropped, st.queued], [0, 3, 0]);
    sink.export([tcp(4)]);
    assert.equal(sink.stats().dropped, 4, 'after shutdown, export drops and counts');
  });

  test('config: defaults, endpoint must be a URL, unknown keys refused', () => {
    const c = otlpSinkSchema.parse({});
    assert.deepEqual([c.endpoint, c.logs, c.metrics, c.timeoutMs, c.metricsIntervalMs], ['http://127.0.0.1:4318', true, true, 10000, 10000]);
    assert.throws(() => otlpSinkSchema.parse({ endpoint: 'not a url' }), /url/i);
    assert.throws(() => otlpSinkSchema.parse({ endpiont: 'http://x' }), /Unrecognized key/);
  });
});
