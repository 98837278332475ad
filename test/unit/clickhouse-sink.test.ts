import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { ClickHouseSink, supportsTtl } from '../../src/sinks/clickhouse.js';
import { DNS_COLUMNS, FLOW_COLUMNS } from '../../src/sinks/clickhouse-schema.js';
import { clickhouseSinkSchema } from '../../src/sinks/sink-configs.js';
import { edgesInWindow, edgesQuery } from '../../src/sinks/clickhouse-queries.js';
import type { ShippedRecord } from '../../src/sinks/sink.js';
import type { DnsRecord, K8sInfo, TcpRecord, UdpRecord } from '../../src/events/records.js';
import { CLICKHOUSE_SKIP, ClickHouseServer } from '../helpers/clickhouse-server.js';

const STARTED_MS = Date.now();
/** The UTC day `n` days before the test started, as `YYYY-MM-DD`. */
const daysAgo = (n: number): string => new Date(STARTED_MS - n * 86_400_000).toISOString().slice(0, 10);
/**
 * The fixtures' day is yesterday, whatever the date: within every retention a
 * server with TTL applies by its own clock. The sinks' clock is that day's
 * noon, so the sink's own retention (dropping day partitions older than
 * ttlDays) is judged by the test, never by the calendar.
 */
const DAY = daysAgo(1);
const CLOCK = { now: (): number => Date.parse(`${DAY}T12:00:00.000Z`) };
const INTERVAL = `${DAY}T10:00:00.000Z`;
const ship = <T extends TcpRecord | UdpRecord | DnsRecord>(r: T, node = 'node-a'): ShippedRecord => ({ ...r, cluster: 'prod-eu', node, intervalStart: INTERVAL, intervalMs: 1000 }) as ShippedRecord;

const web: K8sInfo = { namespace: 'shop', pod: 'web-1', workload: 'web', workloadKind: 'Deployment', service: 'web', node: 'node-a', zone: 'z1' };
const api: K8sInfo = { namespace: 'shop', pod: 'api-7', workload: 'api', workloadKind: 'Deployment', service: 'api', node: 'node-b', zone: 'z2' };

function tcp(over: Partial<TcpRecord> = {}): TcpRecord {
  return {
    ts: `${DAY}T10:00:01.250Z`, proto: 'tcp', family: 4, direction: 'outbound', outcome: 'closed',
    local: { addr: '10.244.0.3', port: 41000, pid: 11, comm: 'web', cgroupId: 5, netns: 4026532281, exe: '/app/web', containerId: 'c'.repeat(64), containerRuntime: 'containerd', k8s: web },
    remote: { addr: '10.96.0.5', port: 80, reached: { addr: '10.244.1.7', port: 8080 }, k8s: api },
    bytesSent: 0, bytesReceived: 0, retransmits: 0, srttUs: 0, durationMs: 1.5, locality: 'cross-zone',
    ...over,
  };
}

function udp(over: Partial<UdpRecord> = {}): UdpRecord {
  return {
    ts: `${DAY}T10:00:02.000Z`, proto: 'udp', family: 4, direction: 'outbound', directionFrom: 'first-datagram',
    local: { addr: '10.0.0.1', port: 40000, pid: 21, comm: 'statsd-client', cgroupId: 1, netns: 1 },
    remote: { addr: '10.0.0.9', port: 8125 },
    packetsSent: 3, packetsReceived: 0, bytesSent: 300, bytesReceived: 0, intervalMs: 1000, locality: 'external',
    ...over,
  };
}

function dns(over: Partial<DnsRecord> = {}): DnsRecord {
  return {
    ts: `${DAY}T10:00:00.900Z`, proto: 'dns', query: 'api.shop.svc', qtype: 'A', rcode: 'NOERROR',
    answers: [{ name: 'api.shop.svc', type: 'A', ttl: 30, data: '10.96.0.5' }], latencyMs: 1.5, transport: 'udp',
    local: { addr: '10.244.0.3', port: 53000, pid: 11, comm: 'web', cgroupId: 5, netns: 4026532281, k8s: web },
    remote: { addr: '10.96.0.10', port: 53 },
    ...over,
  };
}

/** The records of the service-map test: web -> api (client and server views), curl -> a DNS name, a UDP flow, DNS lookups. */
function fixture(): ShippedRecord[] {
  return [
    ship(tcp({ bytesSent: 100, bytesReceived: 1000, srttUs: 200 })),
    ship(tcp({ ts: `${DAY}T10:00:03.500Z`, bytesSent: 200, bytesReceived: 2000, srttUs: 400, outcome: 'reset', retransmits: 2 })),
    ship(tcp({ ts: `${DAY}T10:00:04.000Z`, outcome: 'refused' })),
    // the server's view on node-b: api answered web; bytes from the server's side
    ship(
      tcp({
        direction: 'inbound',
        local: { addr: '10.244.1.7', port: 8080, pid: 31, comm: 'api', cgroupId: 6, netns: 4026532300, k8s: api },
        remote: { addr: '10.244.0.3', port: 41000, k8s: web },
        bytesSent: 3000, bytesReceived: 300, srttUs: 100,
      }),
      'node-b',
    ),
    ship(
      tcp({
        local: { addr: '10.0.0.1', port: 50000, pid: 41, comm: 'curl', cgroupId: 1, netns: 1 },
        remote: { addr: '93.184.216.34', port: 443, name: 'example.com' },
        bytesSent: 50, bytesReceived: 5000, srttUs: 1000, locality: 'external',
      }),
    ),
    ship(udp()),
    ship(udp({ ts: `${DAY}T10:00:03.000Z`, packetsReceived: 1, bytesReceived: 20 })),
    ship(dns()),
    ship(dns({ ts: `${DAY}T10:00:05.000Z`, query: 'nx.example', rcode: 'TIMEOUT', answers: [], latencyMs: null })),
    // outside the window of the edges query
    ship(tcp({ ts: `${DAY}T12:00:00.000Z`, bytesSent: 7, bytesReceived: 7 })),
  ];
}

/** Records for volume tests: a UDP flow each, told apart by pid. */
const numbered = (from: number, n: number): ShippedRecord[] =>
  Array.from({ length: n }, (_, i) => ship(udp({ local: { addr: '10.0.0.1', port: 40000, pid: from + i, comm: 'n', cgroupId: 1, netns: 1 } })));

const BATCHING = { maxQueued: 50, maxBatch: 10, flushIntervalMs: 50, retryBaseMs: 50, retryMaxMs: 200 };

describe('clickhouse sink: configuration', () => {
  test('defaults, and unknown keys or bad names are refused', () => {
    const c = clickhouseSinkSchema.parse({});
    assert.deepEqual(
      { url: c.url, database: c.database, username: c.username, password: c.password, tablePrefix: c.tablePrefix, ttlDays: c.ttlDays },
      { url: 'http://127.0.0.1:8123', database: 'bpfagent', username: undefined, password: undefined, tablePrefix: '', ttlDays: 7 },
    );
    assert.deepEqual(c.batching, { maxQueued: 100_000, maxBatch: 5_000, flushIntervalMs: 1_000, retryBaseMs: 500, retryMaxMs: 30_000 });
    assert.equal(clickhouseSinkSchema.safeParse({ urll: 'x' }).success, false);
    assert.equal(clickhouseSinkSchema.safeParse({ database: 'a; DROP' }).success, false);
    assert.equal(clickhouseSinkSchema.safeParse({ url: 'not a url' }).success, false);
    assert.equal(clickhouseSinkSchema.safeParse({ ttlDays: -1 }).success, false);
  });

  test('TTL is known from 19.6 on', () => {
    assert.deepEqual(['18.16.1', '19.5.3.8', '19.6.2.11', '20.3.1', '24.8.4.13'].map(supportsTtl), [false, false, true, true, true]);
  });

  test('the edges query inlines its parameters as escaped literals', () => {
    const sql = edgesQuery('`db`.`flows`', { from: new Date(`${DAY}T10:00:00.400Z`), to: new Date(`${DAY}T11:00:00Z`), nodes: ["o'brien\\"], proto: 'tcp' });
    assert.ok(sql.includes(`ts >= toDateTime('${DAY} 10:00:00', 'UTC') AND ts < toDateTime('${DAY} 11:00:00', 'UTC')`), sql);
    assert.match(sql, /node IN \('o\\'brien\\\\'\)/);
    assert.match(sql, /GROUP BY proto, observed_by, src_id, dst_id, server_port/);
  });
});

describe('clickhouse sink: a real server', { skip: CLICKHOUSE_SKIP }, () => {
  let server: ClickHouseServer;
  let version = '';
  before(async () => {
    const t0 = Date.now();
    server = await ClickHouseServer.start();
    version = (await server.query('SELECT version()')).trim();
    process.stderr.write(`# clickhouse-server ${version} answered in ${Date.now() - t0} ms\n`);
  });
  after(async () => {
    await server?.kill();
  });

  test('creates its database and tables; rows and the edges query are exact', async () => {
    const sink = new ClickHouseSink({ url: server.url, database: 'svcmap', batching: BATCHING }, CLOCK);
    await sink.start();
    assert.equal(sink.ready, true);
    assert.equal(sink.server?.version, version);
    assert.equal(sink.server?.retention, supportsTtl(version) ? 'ttl' : 'agent');
    const [tables] = [await server.rows<{ name: string; engine_full: string }>("SELECT name, engine_full FROM system.tables WHERE database = 'svcmap' ORDER BY name")];
    assert.deepEqual(tables.map((t) => t.name), ['dns', 'flows']);
    const flowsEngine = tables.find((t) => t.name === 'flows')!.engine_full;
    assert.match(flowsEngine, /PARTITION BY toYYYYMMDD\(ts\) ORDER BY \(toStartOfHour\(ts\), cluster, src_id, dst_id, server_port, proto, ts\)/);
    assert.equal(/TTL/.test(flowsEngine), supportsTtl(version), `TTL in the DDL only when the server knows it: ${flowsEngine}`);

    sink.export(fixture());
    await sink.flush(10_000);
    assert.deepEqual(
      [sink.stats().exported, sink.stats().queued, sink.stats().dropped],
      [10, 0, 0],
    );

    const rows = await server.rows(
      `SELECT node, toString(ts) AS ts, ts_ms, proto, direction, outcome, observed_by, src_id, dst_id, server_port, local_comm, local_workload,
              remote_addr, remote_name, remote_reached_addr, remote_reached_port, remote_workload, remote_zone, locality,
              bytes_sent, bytes_received, packets_sent, packets_received, retransmits, srtt_us, duration_ms
       FROM svcmap.flows ORDER BY ts, ts_ms, node, src_id, bytes_sent`,
    );
    const R = (node: string, ts: string, ms: number, proto: string, direction: string, outcome: string, observedBy: string, src: string, dst: string, port: number, comm: string, lw: string,
      ra: string, rn: string, rra: string, rrp: number, rw: string, rz: string, loc: string, bs: number, br: number, ps: number, pr: number, rt: number, srtt: number, dur: number) => ({
      node, ts, ts_ms: ms, proto, direction, outcome, observed_by: observedBy, src_id: src, dst_id: dst, server_port: port, local_comm: comm, local_workload: lw,
      remote_addr: ra, remote_name: rn, remote_reached_addr: rra, remote_reached_port: rrp, remote_workload: rw, remote_zone: rz, locality: loc,
      // 64-bit integers come quoted in JSON
      bytes_sent: String(bs), bytes_received: String(br), packets_sent: String(ps), packets_received: String(pr), retransmits: rt, srtt_us: srtt, duration_ms: dur,
    });
    assert.deepEqual(rows, [
      R('node-a', `${DAY} 10:00:01`, 250, 'tcp', 'outbound', 'closed', 'client', 'process:curl', 'dns:example.com', 443, 'curl', '', '93.184.216.34', 'example.com', '', 0, '', '', 'external', 50, 5000, 0, 0, 0, 1000, 1.5),
      R('node-a', `${DAY} 10:00:01`, 250, 'tcp', 'outbound', 'closed', 'client', 'shop/web', 'shop/api', 8080, 'web', 'web', '10.96.0.5', '', '10.244.1.7', 8080, 'api', 'z2', 'cross-zone', 100, 1000, 0, 0, 0, 200, 1.5),
      R('node-b', `${DAY} 10:00:01`, 250, 'tcp', 'inbound', 'closed', 'server', 'shop/web', 'shop/api', 8080, 'api', 'api', '10.244.0.3', '', '', 0, 'web', 'z1', 'cross-zone', 3000, 300, 0, 0, 0, 100, 1.5),
      R('node-a', `${DAY} 10:00:02`, 0, 'udp', 'outbound', '', 'client', 'process:statsd-client', '10.0.0.9', 8125, 'statsd-client', '', '10.0.0.9', '', '', 0, '', '', 'external', 300, 0, 3, 0, 0, 0, 0),
      R('node-a', `${DAY} 10:00:03`, 0, 'udp', 'outbound', '', 'client', 'process:statsd-client', '10.0.0.9', 8125, 'statsd-client', '', '10.0.0.9', '', '', 0, '', '', 'external', 300, 20, 3, 1, 0, 0, 0),
      R('node-a', `${DAY} 10:00:03`, 500, 'tcp', 'outbound', 'reset', 'client', 'shop/web', 'shop/api', 8080, 'web', 'web', '10.96.0.5', '', '10.244.1.7', 8080, 'api', 'z2', 'cross-zone', 200, 2000, 0, 0, 2, 400, 1.5),
      R('node-a', `${DAY} 10:00:04`, 0, 'tcp', 'outbound', 'refused', 'client', 'shop/web', 'shop/api', 8080, 'web', 'web', '10.96.0.5', '', '10.244.1.7', 8080, 'api', 'z2', 'cross-zone', 0, 0, 0, 0, 0, 0, 1.5),
      R('node-a', `${DAY} 12:00:00`, 0, 'tcp', 'outbound', 'closed', 'client', 'shop/web', 'shop/api', 8080, 'web', 'web', '10.96.0.5', '', '10.244.1.7', 8080, 'api', 'z2', 'cross-zone', 7, 7, 0, 0, 0, 0, 1.5),
    ]);
    // every row carries its cluster, and TCP rows their state ('' = the connection ended)
    assert.deepEqual(await server.rows('SELECT cluster, proto, state, count() AS n FROM svcmap.flows GROUP BY cluster, proto, state ORDER BY proto'), [
      { cluster: 'prod-eu', proto: 'tcp', state: '', n: '6' },
      { cluster: 'prod-eu', proto: 'udp', state: '', n: '2' },
    ]);
    assert.deepEqual(await server.rows('SELECT cluster, count() AS n FROM svcmap.dns GROUP BY cluster'), [{ cluster: 'prod-eu', n: '2' }]);
    const k8s = await server.rows(
      "SELECT local_namespace, local_pod, local_workload_kind, local_service, local_node, local_zone, local_exe, local_container_runtime, length(local_container_id) AS cid, local_netns FROM svcmap.flows WHERE local_comm = 'web' LIMIT 1",
    );
    assert.deepEqual(k8s, [{ local_namespace: 'shop', local_pod: 'web-1', local_workload_kind: 'Deployment', local_service: 'web', local_node: 'node-a', local_zone: 'z1', local_exe: '/app/web', local_container_runtime: 'containerd', cid: '64', local_netns: '4026532281' }]);

    const dnsRows = await server.rows(
      'SELECT node, toString(ts) AS ts, ts_ms, query, qtype, rcode, answer_name, answer_type, answer_ttl, answer_data, latency_ms, transport, local_comm, local_workload, remote_addr, remote_port FROM svcmap.dns ORDER BY ts',
    );
    assert.deepEqual(dnsRows, [
      { node: 'node-a', ts: `${DAY} 10:00:00`, ts_ms: 900, query: 'api.shop.svc', qtype: 'A', rcode: 'NOERROR', answer_name: ['api.shop.svc'], answer_type: ['A'], answer_ttl: [30], answer_data: ['10.96.0.5'], latency_ms: 1.5, transport: 'udp', local_comm: 'web', local_workload: 'web', remote_addr: '10.96.0.10', remote_port: 53 },
      { node: 'node-a', ts: `${DAY} 10:00:05`, ts_ms: 0, query: 'nx.example', qtype: 'A', rcode: 'TIMEOUT', answer_name: [], answer_type: [], answer_ttl: [], answer_data: [], latency_ms: null, transport: 'udp', local_comm: 'web', local_workload: 'web', remote_addr: '10.96.0.10', remote_port: 53 },
    ]);

    const window = { from: new Date(`${DAY}T10:00:00Z`), to: new Date(`${DAY}T11:00:00Z`) };
    const edges = await edgesInWindow(sink.clickhouse, sink.tables.flows, window);
    const brief = edges.map((e) => ({
      key: `${e.proto} ${e.observedBy} ${e.source.id} -> ${e.destination.id}:${e.port}`,
      n: [e.records, e.connections, e.failed.refused, e.failed.timeout, e.failed.reset],
      bytes: [e.bytesSent, e.bytesReceived],
      packets: [e.packetsSent, e.packetsReceived],
      retransmits: e.retransmits,
      meanSrttUs: e.meanSrttUs,
    }));
    assert.deepEqual(brief, [
      // busiest first
      { key: 'tcp client process:curl -> dns:example.com:443', n: [1, 1, 0, 0, 0], bytes: [50, 5000], packets: [0, 0], retransmits: 0, meanSrttUs: 1000 },
      { key: 'tcp client shop/web -> shop/api:8080', n: [3, 3, 1, 0, 1], bytes: [300, 3000], packets: [0, 0], retransmits: 2, meanSrttUs: 300 },
      { key: 'tcp server shop/web -> shop/api:8080', n: [1, 1, 0, 0, 0], bytes: [300, 3000], packets: [0, 0], retransmits: 0, meanSrttUs: 100 },
      { key: 'udp client process:statsd-client -> 10.0.0.9:8125', n: [2, 0, 0, 0, 0], bytes: [600, 20], packets: [6, 1], retransmits: 0, meanSrttUs: 0 },
    ]);
    const webApi = edges.find((e) => e.observedBy === 'client' && e.source.id === 'shop/web')!;
    assert.deepEqual(webApi.source, { id: 'shop/web', namespace: 'shop', workload: 'web', service: 'web', process: 'web', name: '', addr: '10.244.0.3' });
    assert.deepEqual(webApi.destination, { id: 'shop/api', namespace: 'shop', workload: 'api', service: 'api', process: '', name: '', addr: '10.244.1.7' });
    assert.deepEqual([webApi.locality, webApi.firstSeen, webApi.lastSeen], ['cross-zone', `${DAY}T10:00:01Z`, `${DAY}T10:00:04Z`]);
    const serverSide = edges.find((e) => e.observedBy === 'server')!;
    assert.deepEqual([serverSide.source.addr, serverSide.destination.process], ['10.244.0.3', 'api']);

    // filters: one node, one side, one protocol; a quote in a node name is data, not SQL
    const nodeB = await edgesInWindow(sink.clickhouse, sink.tables.flows, { ...window, nodes: ['node-b'] });
    assert.deepEqual(nodeB.map((e) => [e.observedBy, e.bytesSent, e.bytesReceived]), [['server', 300, 3000]]);
    const udpOnly = await edgesInWindow(sink.clickhouse, sink.tables.flows, { ...window, proto: 'udp' });
    assert.deepEqual(udpOnly.map((e) => e.destination.id), ['10.0.0.9']);
    const clients = await edgesInWindow(sink.clickhouse, sink.tables.flows, { ...window, observedBy: 'client' });
    assert.equal(clients.length, 3);
    assert.deepEqual(await edgesInWindow(sink.clickhouse, sink.tables.flows, { ...window, nodes: ["x' OR 1=1 --"] }), []);
    const later = await edgesInWindow(sink.clickhouse, sink.tables.flows, { from: new Date(`${DAY}T11:00:00Z`), to: new Date(`${DAY}T13:00:00Z`) });
    assert.deepEqual(later.map((e) => [e.source.id, e.bytesSent, e.bytesReceived]), [['shop/web', 7, 7]]);

    // starting again over existing tables is fine
    await sink.shutdown(5_000);
    const again = new ClickHouseSink({ url: server.url, database: 'svcmap' }, CLOCK);
    await again.start();
    await again.shutdown(1_000);
    assert.equal((await server.query('SELECT count() FROM svcmap.flows')).trim(), '8');
  });

  test('tables made before the cluster and state columns get them added at start; old rows read empty there, new rows carry them', async () => {
    // the tables as bpfagent made them before: no cluster, no state; one row each
    const old = (cols: readonly string[]) => cols.filter((c) => !/^(cluster|state|direction_from) /.test(c)).map((c) => `\`${c.slice(0, c.indexOf(' '))}\` ${c.slice(c.indexOf(' ') + 1)}`).join(', ');
    await server.query('CREATE DATABASE migr');
    await server.query(`CREATE TABLE migr.flows (${old(FLOW_COLUMNS)}) ENGINE = MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (toStartOfHour(ts), src_id, dst_id, server_port, proto, ts)`);
    await server.query(`CREATE TABLE migr.dns (${old(DNS_COLUMNS)}) ENGINE = MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (toStartOfHour(ts), query, ts)`);
    await server.query(`INSERT INTO migr.flows (node, ts, proto, src_id, bytes_sent) VALUES ('old-node', '${DAY} 09:00:00', 'tcp', 'old/src', 5)`);
    await server.query(`INSERT INTO migr.dns (node, ts, query) VALUES ('old-node', '${DAY} 09:00:00', 'old.test')`);
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    const sink = new ClickHouseSink({ url: server.url, database: 'migr', batching: BATCHING }, { ...CLOCK, log });
    await sink.start();
    assert.ok(lines.some((l) => l.includes('added columns flows.cluster, flows.direction_from, flows.state, dns.cluster')), lines.join(''));
    const columns = await server.rows<{ table: string; name: string; type: string }>("SELECT table, name, type FROM system.columns WHERE database = 'migr' AND name IN ('cluster', 'state', 'direction_from') ORDER BY table, name");
    assert.deepEqual(columns, [
      { table: 'dns', name: 'cluster', type: 'String' },
      { table: 'flows', name: 'cluster', type: 'String' },
      { table: 'flows', name: 'direction_from', type: 'String' },
      { table: 'flows', name: 'state', type: 'String' },
    ]);
    sink.export([ship(tcp({ bytesSent: 9 })), ship(dns())]);
    await sink.flush(10_000);
    assert.equal(sink.stats().exported, 2);
    assert.deepEqual(await server.rows('SELECT cluster, node, state, src_id, bytes_sent FROM migr.flows ORDER BY ts'), [
      { cluster: '', node: 'old-node', state: '', src_id: 'old/src', bytes_sent: '5' },
      { cluster: 'prod-eu', node: 'node-a', state: '', src_id: 'shop/web', bytes_sent: '9' },
    ]);
    assert.deepEqual(await server.rows('SELECT cluster, node, query FROM migr.dns ORDER BY ts'), [
      { cluster: '', node: 'old-node', query: 'old.test' },
      { cluster: 'prod-eu', node: 'node-a', query: 'api.shop.svc' },
    ]);
    await sink.shutdown(5_000);
    // a second start finds nothing to add
    lines.length = 0;
    const again = new ClickHouseSink({ url: server.url, database: 'migr' }, { ...CLOCK, log });
    await again.start();
    await again.shutdown(1_000);
    assert.ok(!lines.some((l) => l.includes('added columns')), lines.join(''));
  });

  test('server down: records queue within the bound, the excess is counted, all queued is delivered once when it is back', async () => {
    const sink = new ClickHouseSink({ url: server.url, database: 'outage', batching: BATCHING, requestTimeoutMs: 5_000 }, CLOCK);
    await sink.start();
    sink.export(numbered(0, 20));
    await sink.flush(10_000);
    assert.deepEqual([sink.stats().exported, sink.stats().queued], [20, 0]);

    await server.stop();
    sink.export(numbered(20, 30));
    // the sink keeps trying (and failing) while the records wait
    const deadline = Date.now() + 10_000;
    while (sink.stats().failures < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(sink.stats().failures >= 2, 'sends failed while the server was down');
    assert.deepEqual([sink.stats().queued, sink.stats().dropped], [30, 0]);
    assert.match(sink.stats().lastError ?? '', /ECONNREFUSED|socket hang up|ECONNRESET/);
    // 40 more: room for 20, the other 20 dropped and counted
    sink.export(numbered(50, 40));
    assert.deepEqual([sink.stats().queued, sink.stats().dropped, sink.stats().exported], [50, 20, 20]);

    await server.restart();
    await sink.flush(15_000);
    assert.deepEqual([sink.stats().queued, sink.stats().dropped, sink.stats().exported], [0, 20, 70]);
    const [counts] = await server.rows<{ rows: string; pids: string; lo: number; hi: number }>('SELECT count() AS rows, uniqExact(local_pid) AS pids, min(local_pid) AS lo, max(local_pid) AS hi FROM outage.flows');
    // 0..19 before, 20..69 queued during the outage; 70..89 dropped
    assert.deepEqual(counts, { rows: '70', pids: '70', lo: 0, hi: 69 });
    await sink.shutdown(5_000);
  });

  test('a batch whose DNS insert failed after its flows went in is retried without the flows: no duplicates', async () => {
    const sink = new ClickHouseSink({ url: server.url, database: 'partial', batching: BATCHING }, CLOCK);
    await sink.start();
    await server.query('DROP TABLE partial.dns');
    sink.export([...numbered(0, 4), ship(dns()), ship(dns({ query: 'b.example' }))]);
    const deadline = Date.now() + 10_000;
    while (sink.stats().failures < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(sink.stats().failures >= 2);
    assert.match(sink.stats().lastError ?? '', /partial\.dns|dns.*doesn't exist|Table .* doesn't exist/i);
    assert.equal(sink.stats().queued, 6, 'the batch stays queued until all of it is in');
    // the table comes back (another sink creates it), the retry delivers the DNS records only
    const other = new ClickHouseSink({ url: server.url, database: 'partial' }, CLOCK);
    await other.start();
    await other.shutdown(1_000);
    await sink.flush(10_000);
    assert.deepEqual([sink.stats().exported, sink.stats().queued, sink.stats().dropped], [6, 0, 0]);
    assert.equal((await server.query('SELECT count() FROM partial.flows')).trim(), '4');
    assert.equal((await server.query('SELECT count() FROM partial.dns')).trim(), '2');
    await sink.shutdown(1_000);
  });

  test('shutdown delivers what is queued within its timeout, then exports nothing', async () => {
    const sink = new ClickHouseSink({ url: server.url, database: 'shutdown', batching: { ...BATCHING, flushIntervalMs: 600_000 } }, CLOCK);
    await sink.start();
    sink.export([...numbered(0, 5), ship(dns())]);
    assert.equal(sink.stats().queued, 6, 'no timer fired: still queued');
    const t0 = Date.now();
    await sink.shutdown(5_000);
    assert.ok(Date.now() - t0 < 5_000);
    assert.deepEqual([sink.stats().exported, sink.stats().queued, sink.stats().dropped], [6, 0, 0]);
    assert.equal((await server.query('SELECT count() FROM shutdown.flows')).trim(), '5');
    assert.equal((await server.query('SELECT count() FROM shutdown.dns')).trim(), '1');
    sink.export(numbered(5, 3));
    assert.equal(sink.stats().dropped, 3);
  });

  test('retention: TTL when the server has it; else the sink drops day partitions older than ttlDays', async () => {
    const sink = new ClickHouseSink({ url: server.url, database: 'retention', ttlDays: 7, batching: BATCHING }, CLOCK);
    await sink.start();
    const old = { ...ship(udp({ ts: `${daysAgo(16)}T05:00:00.000Z` })) };
    const recent = { ...ship(udp({ ts: `${daysAgo(6)}T05:00:00.000Z` })) };
    sink.export([old, recent, ship(dns({ ts: `${daysAgo(25)}T00:00:00.000Z` }))]);
    await sink.flush(10_000);
    if (sink.server?.retention === 'ttl') {
      assert.match((await server.query("SELECT engine_full FROM system.tables WHERE database = 'retention' AND name = 'flows'")), /TTL ts \+ toIntervalDay\(7\)/);
    } else {
      assert.equal(sink.server?.retention, 'agent');
      const dropped = await sink.prune(new Date(`${DAY}T12:00:00Z`));
      const partition = (day: string): string => day.replaceAll('-', '');
      assert.deepEqual(dropped.sort(), [`dns/${partition(daysAgo(25))}`, `flows/${partition(daysAgo(16))}`]);
      assert.equal((await server.query('SELECT toString(min(ts)) FROM retention.flows')).trim(), `${daysAgo(6)} 05:00:00`);
      assert.equal((await server.query('SELECT count() FROM retention.dns')).trim(), '0');
    }
    await sink.shutdown(5_000);
  });

  test('credentials, a table prefix, and clear errors for an unreachable server or a refused login', async () => {
    const sink = new ClickHouseSink({ url: server.url, username: 'agent', password: 's3cret', database: 'authed', tablePrefix: 'node1_' }, CLOCK);
    await sink.start();
    assert.deepEqual((await server.rows<{ name: string }>("SELECT name FROM system.tables WHERE database = 'authed' ORDER BY name")).map((r) => r.name), ['node1_dns', 'node1_flows']);
    await sink.shutdown(1_000);
    // the same credentials in the URL
    const inUrl = new ClickHouseSink({ url: `http://agent:s3cret@127.0.0.1:${server.port}`, database: 'authed', tablePrefix: 'node1_' }, CLOCK);
    await inUrl.start();
    await inUrl.shutdown(1_000);

    const wrong = new ClickHouseSink({ url: server.url, username: 'agent', password: 'nope' }, CLOCK);
    await assert.rejects(wrong.start(), (e: Error) => {
      assert.match(e.message, new RegExp(`clickhouse sink: cannot query the server at http://127\\.0\\.0\\.1:${server.port}/`));
      assert.doesNotMatch(e.message, /nope/);
      assert.equal(e.name, 'UsageError', 'refused credentials are a misconfiguration, not an outage');
      return true;
    });
    assert.equal(wrong.ready, false);
    await wrong.shutdown(100);

    // a user that may read but not create: a misconfiguration too, named
    const reader = new ClickHouseSink({ url: server.url, username: 'reader', database: 'readonly_db' }, CLOCK);
    await assert.rejects(reader.start(), (e: Error) => {
      assert.match(e.message, /clickhouse sink: cannot create the tables in database readonly_db at http:\/\/127\.0\.0\.1:\d+\/ \(ClickHouse [\d.]+\): .*readonly/i);
      assert.equal(e.name, 'UsageError');
      return true;
    });
    await reader.shutdown(100);

    const closed = await new Promise<number>((resolve) => {
      // a port nothing listens on: a server that is not there
      import('node:net').then(({ default: net }) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => {
          const { port } = s.address() as { port: number };
          s.close(() => resolve(port));
        });
      });
    });
    const absent = new ClickHouseSink({ url: `http://user:pw@127.0.0.1:${closed}`, requestTimeoutMs: 3_000 }, CLOCK);
    await assert.rejects(absent.start(), (e: Error) => {
      assert.match(e.message, new RegExp(`cannot query the server at http://127\\.0\\.0\\.1:${closed}/: .*ECONNREFUSED`));
      assert.doesNotMatch(e.message, /pw/);
      assert.equal(e.name, 'Error', 'an absent server is retried, not a misconfiguration');
      return true;
    });
    await absent.shutdown(100);
  });
});
