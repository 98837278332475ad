import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import type { TcpRecord, UdpRecord } from '../../src/events/records.js';
import { EdgeTable } from '../../src/flows/edge-table.js';
import { buildGraph, edgeId, externalDestinations, healthOf, linkId, localityTotals, registerApi } from '../../src/server/api.js';
import { type FlowRecord, type RecordingFlowStore, recordEdgeKey } from '../../src/store/flow-store.js';
import { MemoryFlowStore } from '../../src/store/memory-store.js';
import { SqliteFlowStore } from '../../src/store/sqlite-store.js';
import { UsageError } from '../../src/util/errors.js';
import { T0, interval, serverSide, tcp } from '../helpers/store-fixtures.js';

describe('MemoryFlowStore', () => {
  test('edges are summed exactly across intervals; the window picks intervals by their end', () => {
    const s = new MemoryFlowStore();
    interval(s, 1000, [tcp({ bytesSent: 100, bytesReceived: 10, srttUs: 80, at: 500 }), tcp({ bytesSent: 200, bytesReceived: 20, srttUs: 300, at: 600 })]);
    interval(s, 2000, [tcp({ bytesSent: 300, bytesReceived: 30, outcome: 'refused', at: 1500 }), tcp({ retransmits: 2, at: 1600 })]);
    interval(s, 3000, [tcp({ bytesSent: 7, at: 2500 })]);
    const all = s.edges(T0, T0 + 3000);
    assert.equal(all.length, 1);
    const e = all[0]!;
    assert.equal(e.key, 'tcp|client|process:cli|10.0.0.2|443');
    assert.deepEqual([e.connections, e.failed, e.bytesSent, e.bytesReceived, e.retransmits], [5, { refused: 1, timeout: 0, reset: 0 }, 607, 60, 2]);
    assert.deepEqual([e.rttUs.count, e.rttUs.sum, e.rttUs.counts[1], e.rttUs.counts[3]], [2, 380, 1, 2]);
    assert.deepEqual([e.firstSeen, e.lastSeen], [T0 + 1000, T0 + 3000]);
    // (from, to]: the first interval's end is not after from
    const late = s.edges(T0 + 1000, T0 + 2000);
    assert.deepEqual([late[0]!.connections, late[0]!.bytesSent], [2, 300]);
    assert.deepEqual(s.edges(T0 + 3000, T0 + 9000), []);
    // connections: newest first, the window on ts, the limit
    const recs = s.connections([e.key], T0, T0 + 3000, 3);
    assert.deepEqual(recs.map((r) => r.ts), [T0 + 2500, T0 + 1600, T0 + 1500].map((t) => new Date(t).toISOString()));
    assert.equal(s.connections([e.key], T0 + 1000, T0 + 2000, 100).length, 2);
    assert.deepEqual(s.stats(), { intervals: 3, edges: 3, connections: 5, edgesDropped: 0, intervalsEvicted: 0, connectionsEvicted: 0, oldest: T0 + 1000, retentionMs: 3 * 3_600_000 });
  });

  test('bounds: retention, edges per interval (busiest kept), edges in all, connections (oldest out first), each counted', () => {
    const s = new MemoryFlowStore({ retentionMs: 60_000, maxEdgesPerInterval: 2, maxEdges: 4, maxConnections: 3 });
    interval(s, 1000, [tcp({ port: 1, bytesSent: 1 }), tcp({ port: 2, bytesSent: 50 }), tcp({ port: 3, bytesSent: 10 })]);
    assert.deepEqual(s.edges(T0, T0 + 1000).map((e) => e.port).sort(), [2, 3]);
    assert.deepEqual([s.stats().edgesDropped, s.stats().connections, s.stats().connectionsEvicted], [1, 3, 0]);
    interval(s, 2000, [tcp({ port: 4, at: 1500 })]);
    assert.deepEqual([s.stats().connections, s.stats().connectionsEvicted], [3, 1]);
    interval(s, 3000, [tcp({ port: 5, at: 2500 }), tcp({ port: 6, at: 2600 })]);
    // 5 edges > maxEdges 4: the oldest interval went first
    assert.deepEqual([s.stats().intervals, s.stats().edges, s.stats().intervalsEvicted], [2, 3, 1]);
    assert.deepEqual(s.edges(T0, T0 + 3000).map((e) => e.port).sort(), [4, 5, 6]);
    // retention: an interval 60 s older than the newest goes, and its records, not counted as evicted
    interval(s, 62_500, [tcp({ port: 7, at: 62_000 })]);
    assert.deepEqual(s.edges(T0, T0 + 70_000).map((e) => e.port).sort(), [5, 6, 7]);
    interval(s, 63_000, []);
    assert.deepEqual(s.edges(T0, T0 + 70_000).map((e) => e.port).sort(), [7]);
    assert.equal(s.stats().intervalsEvicted, 1);
    assert.deepEqual(s.connections([...s.edges(T0, T0 + 70_000).map((e) => e.key)], T0, T0 + 70_000, 10).length, 1);
    assert.equal(s.stats().connections, 1);
  });

  test('client and server records of one connection on this host pair their edges, across consecutive intervals too', async () => {
    const s = new MemoryFlowStore();
    const c1 = tcp({ bytesSent: 1000, bytesReceived: 11, at: 100 });
    const c2 = tcp({ bytesSent: 2000, bytesReceived: 11, at: 900 });
    interval(s, 1000, [c1, serverSide(c1, 'srv', 1), c2]);
    interval(s, 2000, [serverSide(c2, 'srv', 200)]);
    assert.deepEqual(s.pairs(T0, T0 + 2000), [{ clientKey: recordEdgeKey(c1), serverKey: 'tcp|server|10.0.0.1|process:srv|443' }]);
    const g = await buildGraph(s, T0, T0 + 2000);
    assert.deepEqual(g.nodes, [
      { id: 'process:cli', label: 'cli', kind: 'process' },
      { id: 'process:srv', label: 'srv', kind: 'process' },
    ]);
    assert.equal(g.edges.length, 1);
    const e = g.edges[0]!;
    assert.deepEqual(
      { source: e.source, target: e.target, port: e.port, observedBy: e.observedBy, connections: e.connections, bytesSent: e.bytesSent, bytesReceived: e.bytesReceived, health: e.health },
      { source: 'process:cli', target: 'process:srv', port: 443, observedBy: 'both', connections: 2, bytesSent: 3000, bytesReceived: 22, health: 'ok' },
    );
    assert.equal(e.id, edgeId('tcp', 'process:cli', 'process:srv', 443, 'both'));
    assert.equal(Buffer.from(e.id, 'base64url').toString(), 'tcp|process:cli|process:srv|443|both');
    assert.deepEqual((await localityTotals(s, T0, T0 + 2000))['same-host'], { connections: 2, bytesSent: 3000, bytesReceived: 22 });
  });

  test('graph: filters, health, external destinations by name, localities', async () => {
    const s = new MemoryFlowStore();
    interval(s, 1000, [
      tcp({ comm: 'web', to: '93.184.216.34', name: 'example.com', port: 443, bytesSent: 100, bytesReceived: 5000, locality: 'external' }),
      tcp({ comm: 'web', to: '93.184.216.35', name: 'example.com', port: 443, bytesSent: 10, bytesReceived: 500, locality: 'external', outcome: 'timeout' }),
      tcp({ comm: 'web', to: '1.1.1.1', port: 853, bytesSent: 1, locality: 'external' }),
      tcp({ comm: 'web', to: '10.0.0.9', port: 5432, outcome: 'refused', locality: 'cross-zone' }),
      tcp({ comm: 'batch', to: '10.0.0.9', port: 5432, bytesSent: 5, retransmits: 1, locality: 'cross-zone' }),
      tcp({ comm: 'batch', to: '10.0.0.9', port: 5432, outcome: 'reset', locality: 'cross-zone' }),
      tcp({ comm: 'batch', to: '10.0.0.9', port: 5432, locality: 'cross-zone' }),
    ]);
    const g = await buildGraph(s, T0, T0 + 60_000);
    assert.deepEqual(g.window, { from: new Date(T0).toISOString(), to: new Date(T0 + 60_000).toISOString() });
    assert.deepEqual(g.nodes.map((n) => [n.id, n.kind]), [['1.1.1.1', 'address'], ['10.0.0.9', 'address'], ['dns:example.com', 'dns'], ['process:batch', 'process'], ['process:web', 'process']]);
    const byPair = Object.fromEntries(g.edges.map((e) => [`${e.source}>${e.target}`, e]));
    assert.equal(byPair['process:web>dns:example.com']!.health, 'failing'); // 1 of 2 failed
    assert.equal(byPair['process:web>10.0.0.9']!.health, 'failing');
    assert.equal(byPair['process:batch>10.0.0.9']!.health, 'degraded'); // 1 of 3 failed
    assert.equal(byPair['process:web>1.1.1.1']!.health, 'ok');
    assert.equal(byPair['process:web>dns:example.com']!.connectionsPerSec, 0.033);
    const ids = async (f: Parameters<typeof buildGraph>[3]) => (await buildGraph(s, T0, T0 + 60_000, f)).edges.map((e) => `${e.source}>${e.target}`).sort();
    assert.deepEqual(await ids({ workload: 'batch' }), ['process:batch>10.0.0.9']);
    assert.deepEqual(await ids({ locality: 'external', minBytes: 600 }), ['process:web>dns:example.com']);
    assert.deepEqual(await ids({ failing: true, minConnections: 2 }), ['process:batch>10.0.0.9', 'process:web>dns:example.com']);
    assert.deepEqual(await ids({ proto: 'udp' }), []);
    assert.deepEqual(await ids({ namespace: 'payments' }), []);
    assert.deepEqual(healthOf({ connections: 0, failed: { refused: 0, timeout: 0, reset: 0 }, retransmits: 0 }), 'ok');

    assert.deepEqual(await externalDestinations(s, T0, T0 + 60_000, 20), [
      { name: 'example.com', addrs: ['93.184.216.34', '93.184.216.35'], connections: 2, failed: 1, bytesSent: 110, bytesReceived: 5500 },
      { name: '1.1.1.1', addrs: ['1.1.1.1'], connections: 1, failed: 0, bytesSent: 1, bytesReceived: 0 },
    ]);
    assert.deepEqual((await externalDestinations(s, T0, T0 + 60_000, 1)).length, 1);
    const l = await localityTotals(s, T0, T0 + 60_000);
    assert.deepEqual(l.external, { connections: 3, bytesSent: 111, bytesReceived: 5500 });
    assert.deepEqual(l['cross-zone'], { connections: 4, bytesSent: 5, bytesReceived: 0 });
    assert.deepEqual(l.cluster, { connections: 0, bytesSent: 0, bytesReceived: 0 });
  });

  test('links: one per caller and callee, summed over its ports and protocols; the RTT percentiles from the summed histogram', async () => {
    const s = new MemoryFlowStore();
    const recs: FlowRecord[] = [];
    // web calls db on 30 ports, one connection each; port 5029's is slow and refused
    for (let i = 0; i < 30; i++) recs.push(tcp({ comm: 'web', to: '10.0.0.9', port: 5000 + i, bytesSent: 10 * (i + 1), bytesReceived: 7, srttUs: i === 29 ? 40_000 : 80, outcome: i === 29 ? 'refused' : 'closed', locality: 'cross-zone' }));
    // and a UDP flow between the same two, and another caller
    recs.push({
      ts: new Date(T0 + 10).toISOString(), proto: 'udp', family: 4, direction: 'outbound', directionFrom: 'first-datagram',
      local: { addr: '10.0.0.1', port: 40001, pid: 1, comm: 'web', cgroupId: 1, netns: 1 }, remote: { addr: '10.0.0.9', port: 8125 },
      packetsSent: 3, packetsReceived: 1, bytesSent: 600, bytesReceived: 5, intervalMs: 1000, locality: 'same-zone',
    });
    recs.push(tcp({ comm: 'batch', to: '10.0.0.9', port: 5000, bytesSent: 1 }));
    interval(s, 1000, recs);
    const g = await buildGraph(s, T0, T0 + 60_000);
    assert.equal(g.edges.length, 32, 'the edges stay one per port and protocol');
    assert.equal(g.links.length, 2);
    const [web, batch] = g.links;
    assert.deepEqual(
      { ...web!, edges: web!.edges.length },
      {
        id: linkId('process:web', '10.0.0.9'), source: 'process:web', target: '10.0.0.9', edges: 31, protos: ['tcp', 'udp'],
        connections: 30, failed: { refused: 1, timeout: 0, reset: 0 }, bytesSent: 4650 + 600, bytesReceived: 210 + 5, packetsSent: 3, packetsReceived: 1, retransmits: 0,
        // 29 of 30 RTTs at 80 µs: p50 in the 100 µs bucket; p99 is the slow one's (50 ms bucket)
        rttUs: { p50: 100, p99: 50_000, count: 30 },
        health: 'degraded', connectionsPerSec: 0.5,
      },
    );
    assert.equal(Buffer.from(web!.id, 'base64url').toString(), 'process:web|10.0.0.9');
    // its edges are the graph's, busiest first
    const edgeIds = new Set(g.edges.filter((e) => e.source === 'process:web').map((e) => e.id));
    assert.deepEqual(new Set(web!.edges), edgeIds);
    assert.equal(web!.edges[0], g.edges.find((e) => e.proto === 'udp')!.id);
    assert.deepEqual([batch!.source, batch!.edges.length, batch!.protos, batch!.locality, batch!.health], ['process:batch', 1, ['tcp'], 'same-host', 'ok']);
    // a filter applies to the edges first: the links sum what is left
    const tcpOnly = await buildGraph(s, T0, T0 + 60_000, { proto: 'tcp', workload: 'web' });
    assert.deepEqual(tcpOnly.links.map((l) => [l.edges.length, l.bytesSent, l.locality]), [[30, 4650, 'cross-zone']]);
  });

  test('UDP flows pair by their 5-tuple too', async () => {
    const s = new MemoryFlowStore();
    const c: UdpRecord = {
      ts: new Date(T0 + 10).toISOString(), proto: 'udp', family: 4, direction: 'outbound', directionFrom: 'first-datagram',
      local: { addr: '10.0.0.1', port: 40001, pid: 1, comm: 'ucli', cgroupId: 1, netns: 1 }, remote: { addr: '10.0.0.2', port: 8125 },
      packetsSent: 3, packetsReceived: 1, bytesSent: 600, bytesReceived: 5, intervalMs: 1000, locality: 'same-host',
    };
    const sv: UdpRecord = { ...c, direction: 'inbound', local: { addr: '10.0.0.2', port: 8125, pid: 2, comm: 'usrv', cgroupId: 1, netns: 2 }, remote: { addr: '10.0.0.1', port: 40001 }, packetsSent: 1, packetsReceived: 3, bytesSent: 5, bytesReceived: 600 };
    interval(s, 1000, [c, sv]);
    const g = await buildGraph(s, T0, T0 + 1000);
    assert.deepEqual(g.edges.map((e) => [e.source, e.target, e.port, e.proto, e.observedBy, e.packetsSent, e.packetsReceived, e.bytesSent, e.bytesReceived]), [
      ['process:ucli', 'process:usrv', 8125, 'udp', 'both', 3, 1, 600, 5],
    ]);
  });
});

describe('HTTP API over the store (fastify inject)', () => {
  const s = new MemoryFlowStore({ retentionMs: 3_600_000 });
  const c = tcp({ bytesSent: 42, bytesReceived: 4, at: 100, srttUs: 120 });
  interval(s, 1000, [c, tcp({ outcome: 'refused', at: 200 })]);
  const app = Fastify();
  registerApi(app, { store: s, status: () => ({ node: 'n1', attach: 'tp_btf' }), now: () => T0 + 2000 });

  const get = async (url: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const r = await app.inject({ method: 'GET', url });
    return { status: r.statusCode, body: r.json() as Record<string, unknown> };
  };

  test('graph, connections of an edge, external, localities, status', async () => {
    const g = await get('/api/graph?window=5m&proto=tcp');
    assert.equal(g.status, 200);
    const edges = g.body.edges as Array<Record<string, unknown>>;
    assert.equal(edges.length, 1);
    assert.deepEqual([edges[0]!.connections, edges[0]!.failed, edges[0]!.health, edges[0]!.rttUs], [2, { refused: 1, timeout: 0, reset: 0 }, 'failing', { p50: 250, p99: 250, count: 1 }]);
    const cs = await get(`/api/edges/${String(edges[0]!.id)}/connections?limit=1`);
    assert.equal(cs.status, 200);
    const conns = cs.body.connections as TcpRecord[];
    assert.deepEqual(conns.map((r) => r.outcome), ['refused']);
    assert.deepEqual(cs.body.failures, { refused: 1, timeout: 0, reset: 0 });
    assert.equal((cs.body.rttUs as { count: number }).count, 1);
    assert.equal(((await get(`/api/edges/${String(edges[0]!.id)}/connections`)).body.connections as unknown[]).length, 2);
    assert.deepEqual((await get('/api/external')).body.destinations, []);
    assert.deepEqual(((await get('/api/localities?window=1h')).body.totals as Record<string, unknown>)['same-host'], { connections: 2, bytesSent: 42, bytesReceived: 4 });
    const st = await get('/api/status');
    assert.equal(st.status, 200);
    assert.equal(st.body.node, 'n1');
    assert.equal((st.body.store as { intervals: number }).intervals, 1);
    assert.equal((await get(`/api/edges/${edgeId('tcp', 'a', 'b', 1, 'client')}/connections`)).status, 404);
  });

  test('bad parameters: 400 naming the parameter, the value and the form', async () => {
    const cases: Array<[string, string]> = [
      ['/api/graph?window=2x', 'window: got "2x", expected a duration from 1s to 1h (the store\'s retention), such as 15m or 1h'],
      ['/api/graph?window=2h', 'window: got "2h", expected a duration from 1s to 1h (the store\'s retention), such as 15m or 1h'],
      ['/api/graph?proto=icmp', 'proto: got "icmp", expected tcp or udp'],
      ['/api/graph?locality=mars', 'locality: got "mars", expected one of same-host, same-zone, cross-zone, cluster, external'],
      ['/api/graph?failing=yes', 'failing: got "yes", expected true or false'],
      ['/api/graph?minBytes=-1', 'minBytes: got "-1", expected a whole number from 0 to 9007199254740991'],
      ['/api/graph?minConnections=1.5', 'minConnections: got "1.5", expected a whole number from 0 to 9007199254740991'],
      ['/api/graph?proto=tcp&proto=udp', 'proto: given 2 times, expected it once'],
      ['/api/graph?windw=5m', 'windw: unknown parameter, expected one of: window, namespace, workload, locality, proto, failing, minConnections, minBytes'],
      ['/api/edges/abc/connections?limit=0', 'limit: got "0", expected a whole number from 1 to 1000'],
      ['/api/edges/a.b/connections', 'id: got "a.b", expected an edge id from /api/graph (base64url)'],
      ['/api/external?limit=x', 'limit: got "x", expected a whole number from 1 to 1000'],
      ['/api/localities?window=0s', 'window: got "0s", expected a duration from 1s to 1h (the store\'s retention), such as 15m or 1h'],
      ['/api/status?x=1', 'x: unknown parameter, expected none'],
    ];
    for (const [url, error] of cases) {
      const r = await get(url);
      assert.equal(r.status, 400, url);
      assert.deepEqual(r.body, { error }, url);
    }
  });
});

describe('SqliteFlowStore: history survives a restart', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-store-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('write, close, reopen: the same edges, pairs and connections; retention and bounds applied at open', async () => {
    const bounds = { retentionMs: 60_000, maxConnections: 4 };
    const a = new SqliteFlowStore(dir, bounds, T0);
    const c1 = tcp({ bytesSent: 1000, bytesReceived: 11, at: 100, srttUs: 70 });
    interval(a, 1000, [c1, serverSide(c1, 'srv', 1), tcp({ outcome: 'refused', at: 200, port: 9 })]);
    interval(a, 2000, [tcp({ bytesSent: 5, at: 1500 }), tcp({ bytesSent: 6, at: 1600 }), tcp({ bytesSent: 7, at: 1700 })]);
    const before = { edges: a.edges(T0, T0 + 5000), pairs: a.pairs(T0, T0 + 5000), graph: await buildGraph(a, T0, T0 + 5000) };
    const keys = before.edges.map((e) => e.key);
    const conns = a.connections(keys, T0, T0 + 5000, 100);
    assert.equal(conns.length, 4, 'maxConnections 4 of 6');
    assert.ok((a.stats().bytes ?? 0) > 0);
    a.close();

    const b = new SqliteFlowStore(dir, bounds, T0 + 2500);
    assert.deepEqual(b.edges(T0, T0 + 5000), before.edges);
    assert.deepEqual(b.pairs(T0, T0 + 5000), before.pairs);
    assert.deepEqual(await buildGraph(b, T0, T0 + 5000), before.graph);
    assert.deepEqual(b.connections(keys, T0, T0 + 5000, 100), conns);
    assert.deepEqual([b.stats().intervals, b.stats().edges, b.stats().connections], [2, 4, 4]);
    // and it goes on: a new interval after the restart adds to the old ones
    interval(b, 3000, [tcp({ bytesSent: 8, at: 2600 })]);
    assert.equal(b.edges(T0, T0 + 5000).find((e) => e.key === 'tcp|client|process:cli|10.0.0.2|443')!.bytesSent, 1000 + 5 + 6 + 7 + 8);
    b.close();

    // opened 61 s later: the first interval (end T0+1s) is past the 60 s retention, and so are its records
    const c = new SqliteFlowStore(dir, bounds, T0 + 61_500);
    assert.deepEqual(c.edges(T0, T0 + 5000).map((e) => e.port).sort(), [443]);
    assert.equal(c.stats().intervals, 2);
    assert.deepEqual(c.connections(keys, T0, T0 + 5000, 100).map((r) => r.bytesSent), [8, 7, 6, 5].slice(0, c.stats().connections));
    c.close();
    // what the retention dropped is gone from the file too
    const d = new SqliteFlowStore(dir, { ...bounds, retentionMs: 3_600_000 }, T0 + 61_500);
    assert.equal(d.stats().intervals, 2);
    d.close();
  });

  test('a dataDir that cannot be made: a UsageError naming the file', () => {
    const f = path.join(dir, 'a-file');
    writeFileSync(f, 'x');
    assert.throws(() => new SqliteFlowStore(path.join(f, 'sub')), (e: unknown) => e instanceof UsageError && e.message.startsWith(`store: cannot open ${path.join(f, 'sub', 'flows.sqlite')}: `) && e.message.endsWith('; check store.dataDir'));
  });
});

describe('compaction: older intervals summed into coarser ones, exactly', () => {
  test('past 10 minutes into minutes, past an hour into 5 minutes; totals unchanged; SQLite rewritten alike', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-compact-'));
    try {
      const base = Math.ceil(T0 / 300_000) * 300_000; // a 5-minute boundary
      const s = new SqliteFlowStore(dir, { retentionMs: 3 * 3_600_000 }, base);
      const feed = (store: RecordingFlowStore, from: number, to: number): void => {
        for (let t = from; t <= to; t += 10_000) {
          const r = tcp({ bytesSent: 1, bytesReceived: 2, srttUs: 60 });
          r.ts = new Date(base + t - 5000).toISOString();
          const table = new EdgeTable();
          table.add(r);
          store.addInterval(base + t, 10_000, table.drain(), [r]);
        }
      };
      // 2 hours of 10 s intervals: 720
      feed(s, 10_000, 7_200_000);
      const now = base + 7_200_000;
      const total = s.edges(now - 3 * 3_600_000, now)[0]!;
      assert.deepEqual([total.connections, total.bytesSent, total.bytesReceived, total.rttUs.count], [720, 720, 1440, 720]);
      // the last 10 minutes at 10 s (60), the 50 before at 1 min, the first hour at 5 min (12)
      const st = s.stats();
      assert.equal(st.intervals, 60 + 50 + 12, JSON.stringify(st));
      assert.equal(st.edges, st.intervals);
      // windows within the recent 10 minutes are exact to the interval
      assert.equal(s.edges(now - 95_000, now)[0]!.connections, 10);
      // reaching into the minutes: on minute ends
      assert.equal(s.edges(now - 20 * 60_000, now)[0]!.connections, 120);
      s.close();
      const again = new SqliteFlowStore(dir, { retentionMs: 3 * 3_600_000 }, now);
      assert.equal(again.stats().intervals, 122);
      assert.deepEqual(again.edges(now - 3 * 3_600_000, now)[0]!.connections, 720);
      again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
