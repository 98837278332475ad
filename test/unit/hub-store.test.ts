/**
 * The hub's store over a real ClickHouse (Debian's 18.16, started here):
 * rows written by the ClickHouse sink as the agents of several nodes and two
 * clusters would write them, read back through the HTTP API. Each connection
 * seen by both sides counts once (the client's counts), the server's side
 * naming what the client could not (the workload behind a Service whose DNAT
 * it did not see, a pod its node-scoped watch did not know), locality
 * recomputed from both ends' zones; open connections' interval reports add
 * up; clusters stay apart. Then ClickHouse is stopped: 503 with the reason,
 * status still answers; restarted: answers again.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify, { type FastifyInstance } from 'fastify';
import type { K8sInfo, Locality, TcpRecord, UdpRecord } from '../../src/events/records.js';
import { openHubStore } from '../../src/hub/open.js';
import type { ClickHouseFlowStore } from '../../src/hub/clickhouse-store.js';
import { edgeId, registerApi } from '../../src/server/api.js';
import { type DiffEdge, registerDiffApi } from '../../src/server/diff.js';
import { ClickHouseSink } from '../../src/sinks/clickhouse.js';
import type { ShippedRecord } from '../../src/sinks/sink.js';
import { hubSchema } from '../../src/config/schema.js';
import { CLICKHOUSE_SKIP, ClickHouseServer } from '../helpers/clickhouse-server.js';

const DAY = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
const AT = (s: number): string => new Date(Date.parse(`${DAY}T10:00:00.000Z`) + s * 1000).toISOString();
const NOW = Date.parse(`${DAY}T10:30:00.000Z`);
const CLOCK = { now: () => NOW };

const pod = (name: string, workload: string, node: string, zone: string, service?: string): K8sInfo => ({
  namespace: 'shop', pod: name, workload, workloadKind: 'Deployment', ...(service ? { service } : {}), node, zone,
});
const WEB = pod('web-1', 'web', 'node-a', 'z1');
const API = pod('api-1', 'api', 'node-b', 'z2', 'api');
const CACHE = pod('cache-0', 'cache', 'node-a', 'z1');
const API2 = pod('api2-0', 'api2', 'node-c', 'z1');
/** what a node-scoped agent on node-a knows of api-1 from its EndpointSlice */
const API_FROM_SLICE: K8sInfo = { namespace: 'shop', service: 'api', pod: 'api-1', node: 'node-b', zone: 'z2' };
const IP = { web: '10.1.1.5', api: '10.1.2.7', cache: '10.1.1.9', api2: '10.1.3.3', clusterIp: '10.96.0.5' };

let eph = 40000;
const ship = (r: TcpRecord | UdpRecord, node: string, cluster = 'east'): ShippedRecord => ({ ...r, cluster, node, intervalStart: AT(0), intervalMs: 1000 }) as ShippedRecord;

interface Conn {
  at: number;
  remote: TcpRecord['remote'];
  server: { addr: string; port: number; k8s?: K8sInfo; comm: string; node: string; remoteK8s?: K8sInfo; locality: Locality };
  clientLocality: Locality;
  sent: number;
  received: number;
  srtt?: number;
  cluster?: string;
  /** interval reports of the connection while open: [client sent, client received] each */
  open?: Array<[number, number]>;
}

/** The client's record (node-a, web) and the server's record of one connection; `server: null`: an untraced server. */
function connection(c: Conn, withServer = true): ShippedRecord[] {
  const port = eph++;
  const cluster = c.cluster ?? 'east';
  const out: ShippedRecord[] = [];
  const base = { proto: 'tcp' as const, family: 4 as const, retransmits: 0, durationMs: 5 };
  const client = (sent: number, received: number, at: number, state?: 'open'): ShippedRecord =>
    ship(
      {
        ...base, ts: AT(at), direction: 'outbound', outcome: 'closed',
        local: { addr: IP.web, port, pid: 11, comm: 'web', cgroupId: 5, netns: 9, k8s: WEB },
        remote: c.remote, bytesSent: sent, bytesReceived: received, srttUs: state ? 0 : (c.srtt ?? 200), locality: c.clientLocality,
        ...(state ? { state } : {}),
      } as TcpRecord,
      'node-a',
      cluster,
    );
  const server = (sent: number, received: number, at: number, state?: 'open'): ShippedRecord =>
    ship(
      {
        ...base, ts: AT(at), direction: 'inbound', outcome: 'closed',
        local: { addr: c.server.addr, port: c.server.port, pid: 21, comm: c.server.comm, cgroupId: 6, netns: 10, ...(c.server.k8s ? { k8s: c.server.k8s } : {}) },
        remote: { addr: IP.web, port, ...(c.server.remoteK8s ? { k8s: c.server.remoteK8s } : {}) },
        bytesSent: received, bytesReceived: sent, srttUs: state ? 0 : 150, locality: c.server.locality,
        ...(state ? { state } : {}),
      } as TcpRecord,
      c.server.node,
      cluster,
    );
  for (const [i, [s, r]] of (c.open ?? []).entries()) {
    out.push(client(s, r, c.at - 10 + i, 'open'));
    if (withServer) out.push(server(s, r, c.at - 10 + i, 'open'));
  }
  out.push(client(c.sent, c.received, c.at));
  if (withServer) out.push(server(c.sent, c.received, c.at + 0.002));
  return out;
}

const toApiSeen = (at: number, sent: number, received: number, srtt: number, open?: Array<[number, number]>): ShippedRecord[] =>
  connection({
    at, sent, received, srtt, clientLocality: 'cross-zone', ...(open ? { open } : {}),
    remote: { addr: IP.clusterIp, port: 80, reached: { addr: IP.api, port: 8080 }, k8s: API_FROM_SLICE },
    server: { addr: IP.api, port: 8080, k8s: API, comm: 'api', node: 'node-b', locality: 'cluster' },
  });

function fixture(): ShippedRecord[] {
  return [
    // 1. web -> api through the ClusterIP, DNAT seen by the client; the server's agent (node-b) does not know web
    ...toApiSeen(1, 100, 1000, 200),
    ...toApiSeen(2, 200, 2000, 400),
    // 2. the same Service, DNAT not seen by the client: it names the ClusterIP and port 80, its server the pod and 8080
    ...connection({
      at: 3, sent: 50, received: 500, clientLocality: 'cluster',
      remote: { addr: IP.clusterIp, port: 80, k8s: { namespace: 'shop', service: 'api' } },
      server: { addr: IP.api, port: 8080, k8s: API, comm: 'api', node: 'node-b', locality: 'cluster' },
    }),
    // 3. web -> cache on the same node: both records by node-a's agent
    ...connection({
      at: 4, sent: 10, received: 20, clientLocality: 'same-host',
      remote: { addr: IP.cache, port: 6379, k8s: CACHE },
      server: { addr: IP.cache, port: 6379, k8s: CACHE, comm: 'cache', node: 'node-a', remoteK8s: WEB, locality: 'same-host' },
    }),
    // 4. web -> a pod of node-c behind no Service: an address to node-a's agent, the workload to node-c's
    ...connection({
      at: 5, sent: 30, received: 40, clientLocality: 'cluster',
      remote: { addr: IP.api2, port: 9090 },
      server: { addr: IP.api2, port: 9090, k8s: API2, comm: 'api2', node: 'node-c', locality: 'cluster' },
    }),
    // 5. web -> an external name: the client alone
    ...connection({ at: 6, sent: 70, received: 7000, clientLocality: 'external', remote: { addr: '93.184.216.34', port: 443, name: 'api.example.com' }, server: { addr: '', port: 0, comm: '', node: '', locality: 'external' } }, false),
    // 6. an untraced caller outside the cluster -> api: the server alone
    ship({
      proto: 'tcp', family: 4, retransmits: 0, durationMs: 5, ts: AT(7), direction: 'inbound', outcome: 'closed',
      local: { addr: IP.api, port: 8080, pid: 21, comm: 'api', cgroupId: 6, netns: 10, k8s: API }, remote: { addr: '203.0.113.5', port: 51000 },
      bytesSent: 900, bytesReceived: 9, srttUs: 5000, locality: 'external',
    }, 'node-b'),
    // 7. a long connection reported while open (two interval reports each side), then closed: one connection, every byte
    ...toApiSeen(8, 500, 5, 300, [[1000, 10], [2000, 20]]),
    // 8. the other cluster, same names
    ...connection({
      at: 9, sent: 1, received: 1, clientLocality: 'cross-zone', cluster: 'west',
      remote: { addr: IP.clusterIp, port: 80, reached: { addr: IP.api, port: 8080 }, k8s: API_FROM_SLICE },
      server: { addr: IP.api, port: 8080, k8s: API, comm: 'api', node: 'node-b', locality: 'cluster' },
    }),
    // 9. UDP, two intervals, both sides
    ...[10, 11].flatMap((s) => [
      ship({ ts: AT(s), proto: 'udp', family: 4, direction: 'outbound', directionFrom: 'first-datagram', local: { addr: IP.web, port: 35000, pid: 11, comm: 'web', cgroupId: 5, netns: 9, k8s: WEB }, remote: { addr: IP.api, port: 8125 }, packetsSent: 3, packetsReceived: 1, bytesSent: 300, bytesReceived: 4, intervalMs: 1000, locality: 'cluster' }, 'node-a'),
      ship({ ts: AT(s + 0.001), proto: 'udp', family: 4, direction: 'inbound', directionFrom: 'first-datagram', local: { addr: IP.api, port: 8125, pid: 21, comm: 'api', cgroupId: 6, netns: 10, k8s: API }, remote: { addr: IP.web, port: 35000 }, packetsSent: 1, packetsReceived: 3, bytesSent: 4, bytesReceived: 300, intervalMs: 1000, locality: 'cluster' }, 'node-b'),
    ]),
  ];
}

describe('the hub over ClickHouse', { skip: CLICKHOUSE_SKIP }, () => {
  let server: ClickHouseServer;
  let store: ClickHouseFlowStore;
  let app: FastifyInstance;
  const get = async (url: string) => {
    const r = await app.inject({ method: 'GET', url });
    return { status: r.statusCode, body: r.json() as Record<string, unknown> };
  };
  type Edge = { id: string; source: string; target: string; port: number; proto: string; observedBy: string; connections: number; bytesSent: number; bytesReceived: number; packetsSent: number; packetsReceived: number; locality: string; views: Record<string, number>; rttUs: { count: number } };

  before(async () => {
    server = await ClickHouseServer.start();
    const sink = new ClickHouseSink({ url: server.url, database: 'fleet', batching: { maxBatch: 1000, flushIntervalMs: 50 } }, CLOCK);
    await sink.start();
    sink.export(fixture());
    await sink.flush(10_000);
    assert.equal(sink.stats().dropped, 0);
    await sink.shutdown(2000);
    store = openHubStore(hubSchema.parse({ clickhouse: { url: server.url, database: 'fleet' } }), { statusTtlMs: 0 });
    app = Fastify();
    registerApi(app, { store, clusters: true, status: () => ({ node: 'hub' }), now: CLOCK.now, pricePerGB: { 'cross-zone': 0.01, external: 0.09 } });
    registerDiffApi(app, { store, clusters: true, now: CLOCK.now });
  });
  after(async () => {
    await store?.close();
    await server?.kill();
  });

  test('each connection once: the client counts, the server names the callee; views, localities, open connections, clusters apart', async () => {
    const g = await get('/api/graph?window=1h');
    assert.equal(g.status, 200, JSON.stringify(g.body));
    const edges = g.body.edges as Edge[];
    const brief = edges.map((e) => [e.source, e.target, e.port, e.proto, e.observedBy, e.connections, e.bytesSent, e.bytesReceived, e.locality, e.views]);
    assert.deepEqual(brief, [
      // 1 + 2 + 7: 4 connections; 7's open reports add their bytes; 2 filled in by the server (port 8080, the workload)
      ['east:shop/web', 'east:shop/api', 8080, 'tcp', 'both', 4, 100 + 200 + 50 + 1000 + 2000 + 500, 1000 + 2000 + 500 + 10 + 20 + 5, 'cross-zone', { both: 4, client: 0, server: 0 }],
      ['east:shop/web', 'east:dns:api.example.com', 443, 'tcp', 'client', 1, 70, 7000, 'external', { both: 0, client: 1, server: 0 }],
      ['east:203.0.113.5', 'east:shop/api', 8080, 'tcp', 'server', 1, 9, 900, 'external', { both: 0, client: 0, server: 1 }],
      ['east:shop/web', 'east:shop/api', 8125, 'udp', 'both', 0, 600, 8, 'cross-zone', { both: 1, client: 0, server: 0 }],
      // 4: the pod of node-c named by its own agent, same zone as web's
      ['east:shop/web', 'east:shop/api2', 9090, 'tcp', 'both', 1, 30, 40, 'same-zone', { both: 1, client: 0, server: 0 }],
      ['east:shop/web', 'east:shop/cache', 6379, 'tcp', 'both', 1, 10, 20, 'same-host', { both: 1, client: 0, server: 0 }],
      ['west:shop/web', 'west:shop/api', 8080, 'tcp', 'both', 1, 1, 1, 'cross-zone', { both: 1, client: 0, server: 0 }],
    ]);
    const udp = edges.find((e) => e.proto === 'udp')!;
    assert.deepEqual([udp.packetsSent, udp.packetsReceived], [6, 2]);
    // the client's RTTs, final records only
    assert.equal(edges[0]!.rttUs.count, 4);
    const nodes = g.body.nodes as Array<{ id: string; label: string; kind: string; namespace?: string; cluster?: string }>;
    assert.deepEqual(nodes.find((n) => n.id === 'east:shop/api'), { id: 'east:shop/api', label: 'api', kind: 'workload', namespace: 'shop', cluster: 'east' });
    assert.deepEqual(nodes.find((n) => n.id === 'east:dns:api.example.com'), { id: 'east:dns:api.example.com', label: 'api.example.com', kind: 'dns', cluster: 'east' });
    assert.deepEqual(nodes.find((n) => n.id === 'east:203.0.113.5'), { id: 'east:203.0.113.5', label: '203.0.113.5', kind: 'address', cluster: 'east' });

    // one cluster; the filters of the node API apply on top
    const west = (await get('/api/graph?window=1h&cluster=west')).body.edges as Edge[];
    assert.deepEqual(west.map((e) => [e.source, e.target, e.connections]), [['west:shop/web', 'west:shop/api', 1]]);
    const east = (await get('/api/graph?window=1h&cluster=east&locality=cross-zone&proto=tcp')).body.edges as Edge[];
    assert.deepEqual(east.map((e) => [e.source, e.target, e.connections]), [['east:shop/web', 'east:shop/api', 4]]);
    assert.deepEqual((await get('/api/graph?window=1h&cluster=north')).body.edges, []);
    // a window that starts after the first connections: only what ended in it
    const late = (await get('/api/graph?window=1795s&cluster=east&proto=tcp')).body.edges as Edge[];
    assert.deepEqual(late.find((e) => e.target === 'east:shop/api' && e.port === 8080 && e.source === 'east:shop/web')?.connections, 1);
  });

  test("an edge's connections: the client's records (open reports included), newest first, as shipped", async () => {
    const id = edgeId('tcp', 'east:shop/web', 'east:shop/api', 8080, 'both');
    const r = await get(`/api/edges/${id}/connections?window=1h&limit=10`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const recs = r.body.connections as Array<TcpRecord & { cluster: string; node: string; state?: string }>;
    assert.deepEqual(
      recs.map((x) => [x.ts, x.direction, x.remote.port, x.bytesSent, x.bytesReceived, x.state ?? '', x.cluster, x.node]),
      [
        [AT(8), 'outbound', 80, 500, 5, '', 'east', 'node-a'],
        [AT(-1), 'outbound', 80, 2000, 20, 'open', 'east', 'node-a'],
        [AT(-2), 'outbound', 80, 1000, 10, 'open', 'east', 'node-a'],
        [AT(3), 'outbound', 80, 50, 500, '', 'east', 'node-a'],
        [AT(2), 'outbound', 80, 200, 2000, '', 'east', 'node-a'],
        [AT(1), 'outbound', 80, 100, 1000, '', 'east', 'node-a'],
      ].sort((a, b) => (String(b[0]) < String(a[0]) ? -1 : 1)),
    );
    const first = recs.find((x) => x.ts === AT(1))!;
    assert.deepEqual(first.local, { addr: IP.web, port: first.local.port, pid: 11, comm: 'web', cgroupId: 5, netns: 9, k8s: WEB });
    assert.deepEqual(first.remote, { addr: IP.clusterIp, port: 80, reached: { addr: IP.api, port: 8080 }, k8s: API_FROM_SLICE });
    assert.deepEqual([first.outcome, first.srttUs, first.locality], ['closed', 200, 'cross-zone']);
  });

  test('external names, localities, callers, dependencies and cost over the hub', async () => {
    assert.deepEqual((await get('/api/external?window=1h')).body.destinations, [
      { name: 'api.example.com', addrs: ['93.184.216.34'], connections: 1, failed: 0, bytesSent: 70, bytesReceived: 7000 },
      { name: '203.0.113.5', addrs: ['203.0.113.5'], connections: 1, failed: 0, bytesSent: 9, bytesReceived: 900 },
    ]);
    const totals = (await get('/api/localities?window=1h&cluster=east')).body.totals as Record<string, { connections: number }>;
    assert.deepEqual(Object.fromEntries(Object.entries(totals).map(([k, v]) => [k, v.connections])), { 'same-host': 1, 'same-zone': 1, 'cross-zone': 4, cluster: 0, external: 2 });
    const callers = (await get('/api/callers?window=1h&of=east:svc:shop/api')).body.callers as Array<{ caller: { id: string }; connections: number; ports: unknown }>;
    assert.deepEqual(callers.map((c) => [c.caller.id, c.connections]), [['east:shop/web', 4], ['east:203.0.113.5', 1]]);
    const deps = (await get('/api/dependencies?window=1h&of=east:shop/web')).body.dependencies as Array<{ dependency: { id: string }; services: string[] }>;
    assert.deepEqual(deps.map((d) => [d.dependency.id, d.services]), [['east:shop/api', ['shop/api']], ['east:dns:api.example.com', []], ['east:shop/api2', []], ['east:shop/cache', []]]);
    const cost = (await get('/api/cost?window=1h&cluster=east')).body as { totals: Record<string, { billedBytes: number; cost: number | null }> };
    // cross-zone: every byte of web -> api both ways (TCP and UDP); egress: what web sent to the name, what the outside caller received
    assert.deepEqual(cost.totals, { 'cross-zone': { billedBytes: 3850 + 3535 + 608, cost: 7.993e-8 }, external: { billedBytes: 70 + 900, cost: 8.73e-8 } });
  });

  test('/api/diff over the hub: each connection once, one cluster or all, against a baseline before or after the rows', async () => {
    const T = (hhmmss: string): string => encodeURIComponent(`${DAY}T${hhmmss}Z`);
    const brief = (d: DiffEdge, n: 'before' | 'after') => [d.source, d.target, d.port, d.proto, d[n].connections, d[n].bytesSent, d[n].bytesReceived];
    // an empty half hour as the baseline: the window's edges all appeared, counted as /api/graph counts them
    const up = await get(`/api/diff?window=1h&cluster=east&baselineFrom=${T('09:00:00')}&baselineTo=${T('09:30:00')}`);
    assert.equal(up.status, 200, JSON.stringify(up.body));
    assert.deepEqual((up.body.appeared as DiffEdge[]).map((d) => brief(d, 'after')), [
      ['east:shop/web', 'east:shop/api', 8080, 'tcp', 4, 3850, 3535],
      ['east:shop/web', 'east:dns:api.example.com', 443, 'tcp', 1, 70, 7000],
      ['east:203.0.113.5', 'east:shop/api', 8080, 'tcp', 1, 9, 900],
      ['east:shop/web', 'east:shop/api', 8125, 'udp', 0, 600, 8],
      ['east:shop/web', 'east:shop/api2', 9090, 'tcp', 1, 30, 40],
      ['east:shop/web', 'east:shop/cache', 6379, 'tcp', 1, 10, 20],
    ]);
    assert.deepEqual([up.body.disappeared, up.body.changed], [[], []]);
    assert.deepEqual((up.body.newNames as Array<{ name: string; connections: number }>).map((n) => [n.name, n.connections]), [['api.example.com', 1]]);
    assert.deepEqual((up.body.nodes as Array<{ id: string; cluster?: string }>).find((n) => n.id === 'east:shop/api'), { id: 'east:shop/api', label: 'api', kind: 'workload', namespace: 'shop', cluster: 'east' });
    // the rows as the baseline, the half hour after them as the window: the other cluster's edge is gone
    const down = await get(`/api/diff?window=1h&cluster=west&baselineFrom=${T('09:59:00')}&baselineTo=${T('10:00:30')}`);
    assert.equal(down.status, 200, JSON.stringify(down.body));
    assert.deepEqual((down.body.disappeared as DiffEdge[]).map((d) => brief(d, 'before')), [['west:shop/web', 'west:shop/api', 8080, 'tcp', 1, 1, 1]]);
    assert.deepEqual(up.body.baseline, { from: `${DAY}T09:00:00.000Z`, to: `${DAY}T09:30:00.000Z` });
    // every cluster: both clusters' edges, the identity filters on top
    const all = await get(`/api/diff?window=1h&proto=tcp&locality=cross-zone&baselineFrom=${T('09:00:00')}&baselineTo=${T('09:30:00')}`);
    assert.deepEqual((all.body.appeared as DiffEdge[]).map((d) => [d.source, d.target, d.after.connections]), [['east:shop/web', 'east:shop/api', 4], ['west:shop/web', 'west:shop/api', 1]]);
  });

  test('bad input: the node API\'s 400s, and cluster names checked', async () => {
    for (const [url, error] of [
      ['/api/graph?cluster=a:b', 'cluster: got "a:b", expected a cluster name (1 to 63 letters, digits, -, _ and .)'],
      ['/api/graph?window=2d', 'window: got "2d", expected a duration from 1s to 24h (the store\'s retention), such as 15m or 1h'],
      ['/api/graph?cluster=a&cluster=b', 'cluster: given 2 times, expected it once'],
      ['/api/localities?nodes=x', 'nodes: unknown parameter, expected one of: cluster, window'],
      ['/api/diff?cluster=a:b', 'cluster: got "a:b", expected a cluster name (1 to 63 letters, digits, -, _ and .)'],
    ] as const) {
      const r = await get(url);
      assert.deepEqual([r.status, r.body], [400, { error }], url);
    }
  });

  test('ClickHouse stopped: 503 naming why, status still answers; restarted: answers again', async () => {
    await server.stop();
    for (const url of ['/api/graph', '/api/edges/dGNw/connections', '/api/external', '/api/localities', '/api/callers?of=x', '/api/cost', '/api/diff']) {
      const r = await get(url);
      assert.equal(r.status, 503, `${url}: ${JSON.stringify(r.body)}`);
      assert.match(String(r.body.error), new RegExp(`^clickhouse at ${server.url.replace(/[.]/g, '\\.')}/: .*(ECONNREFUSED|connect|socket)`, 'i'), url);
    }
    const st = await get('/api/status');
    assert.equal(st.status, 200);
    const ch = (st.body.store as { clickhouse: { reachable: boolean; error: string } }).clickhouse;
    assert.equal(ch.reachable, false);
    assert.match(ch.error, /ECONNREFUSED|connect/i);
    assert.ok(store.counters.failures >= 7);
    assert.notEqual(await store.ping(), undefined);
    await server.restart();
    assert.equal(await store.ping(), undefined);
    assert.equal((await get('/api/graph?window=1h')).status, 200);
    const back = (await get('/api/status')).body.store as { clickhouse: { reachable: boolean; version: string; clustersLastHour: unknown } };
    assert.equal(back.clickhouse.reachable, true);
  });
});
