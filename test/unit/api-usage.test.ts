/**
 * /api/callers, /api/dependencies and /api/cost over the embedded store: who
 * calls a Service (at every workload behind it, and at its ClusterIP when the
 * backend was not seen), what a workload depends on, and cross-zone and
 * egress bytes per workload pair and per external name, priced per locality.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import type { K8sInfo, Locality, TcpRecord } from '../../src/events/records.js';
import { EdgeTable } from '../../src/flows/edge-table.js';
import { edgeId, registerApi } from '../../src/server/api.js';
import { MemoryFlowStore } from '../../src/store/memory-store.js';

const T0 = Date.parse('2026-11-25T12:00:00.000Z');
let port = 41000;
const web: K8sInfo = { namespace: 'shop', pod: 'web-1', workload: 'web', workloadKind: 'Deployment', node: 'n1', zone: 'z1' };
const batch: K8sInfo = { namespace: 'ops', pod: 'batch-1', workload: 'batch', workloadKind: 'CronJob', node: 'n2', zone: 'z2' };
const apiV1: K8sInfo = { namespace: 'shop', pod: 'api-1', workload: 'api', workloadKind: 'Deployment', service: 'api', node: 'n2', zone: 'z2' };
const apiCanary: K8sInfo = { namespace: 'shop', pod: 'api-canary-1', workload: 'api-canary', workloadKind: 'Deployment', service: 'api', node: 'n1', zone: 'z1' };

function call(from: K8sInfo, to: { addr: string; port: number; k8s?: K8sInfo; name?: string }, locality: Locality, sent: number, received: number, outcome: TcpRecord['outcome'] = 'closed'): TcpRecord {
  return {
    ts: new Date(T0 + 100).toISOString(), proto: 'tcp', family: 4, direction: 'outbound', outcome,
    local: { addr: '10.0.0.1', port: port++, pid: 7, comm: from.workload!, cgroupId: 1, netns: 1, k8s: from },
    remote: { addr: to.addr, port: to.port, ...(to.k8s ? { k8s: to.k8s } : {}), ...(to.name ? { name: to.name } : {}) },
    bytesSent: sent, bytesReceived: received, retransmits: 0, srttUs: 300, durationMs: 1, locality,
  };
}

function store(): MemoryFlowStore {
  const s = new MemoryFlowStore({ retentionMs: 3_600_000 });
  const records = [
    call(web, { addr: '10.1.0.5', port: 8080, k8s: apiV1 }, 'cross-zone', 1_000_000_000, 500_000_000),
    call(web, { addr: '10.1.0.5', port: 8080, k8s: apiV1 }, 'cross-zone', 1_000_000_000, 500_000_000, 'reset'),
    call(web, { addr: '10.1.0.6', port: 8080, k8s: apiCanary }, 'same-zone', 100, 10),
    // the ClusterIP alone: the backend behind DNAT not seen
    call(batch, { addr: '10.96.0.9', port: 80, k8s: { namespace: 'shop', service: 'api' } }, 'cluster', 40, 4),
    call(web, { addr: '93.184.216.34', port: 443, name: 'api.example.com' }, 'external', 2_000_000_000, 7_000_000_000),
    call(batch, { addr: '93.184.216.34', port: 443, name: 'api.example.com' }, 'external', 500_000_000, 1),
    call(batch, { addr: '198.51.100.7', port: 443 }, 'external', 3, 3),
  ];
  const t = new EdgeTable();
  for (const r of records) t.add(r);
  s.addInterval(T0 + 1000, 1000, t.drain(), records);
  return s;
}

describe('/api/callers, /api/dependencies, /api/cost', () => {
  const app = Fastify();
  registerApi(app, { store: store(), status: () => ({}), now: () => T0 + 2000, pricePerGB: { 'cross-zone': 0.02, external: 0.09 } });
  const get = async (url: string) => {
    const r = await app.inject({ method: 'GET', url });
    return { status: r.statusCode, body: r.json() as Record<string, unknown> };
  };

  test('the callers of a Service: at each workload behind it and at its ClusterIP; of a workload: its own', async () => {
    const r = await get('/api/callers?of=svc:shop/api&window=5m');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const callers = r.body.callers as Array<Record<string, unknown>>;
    assert.deepEqual(
      callers.map((c) => [(c.caller as { id: string }).id, c.reached, c.ports, c.connections, c.failed, c.bytesSent, c.bytesReceived]),
      [
        ['shop/web', ['shop/api', 'shop/api-canary'], [{ port: 8080, proto: 'tcp' }], 3, 1, 2_000_000_100, 1_000_000_010],
        ['ops/batch', ['svc:shop/api'], [{ port: 80, proto: 'tcp' }], 1, 0, 40, 4],
      ],
    );
    assert.deepEqual(callers[0]!.rttUs, { p50: 500, p99: 500, count: 3 });
    assert.deepEqual((callers[0]!.edges as string[]).sort(), [edgeId('tcp', 'shop/web', 'shop/api', 8080, 'client'), edgeId('tcp', 'shop/web', 'shop/api-canary', 8080, 'client')].sort());
    const one = (await get('/api/callers?of=shop/api-canary')).body.callers as Array<Record<string, unknown>>;
    assert.deepEqual(one.map((c) => [(c.caller as { id: string }).id, c.connections]), [['shop/web', 1]]);
    assert.deepEqual((await get('/api/callers?of=shop/nobody')).body.callers, []);
  });

  test('the dependencies of a workload, with the Service each destination is', async () => {
    const r = await get('/api/dependencies?of=shop/web');
    const deps = r.body.dependencies as Array<Record<string, unknown>>;
    assert.deepEqual(
      deps.map((d) => [(d.dependency as { id: string; kind: string }).id, (d.dependency as { kind: string }).kind, d.services, d.connections, d.bytesSent + '/' + d.bytesReceived]),
      [
        ['dns:api.example.com', 'dns', [], 1, '2000000000/7000000000'],
        ['shop/api', 'workload', ['shop/api'], 2, '2000000000/1000000000'],
        ['shop/api-canary', 'workload', ['shop/api'], 1, '100/10'],
      ],
    );
  });

  test('cost: cross-zone both ways, egress one way, per workload pair and per external name, at the configured prices', async () => {
    const r = await get('/api/cost?window=5m');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.prices, { 'cross-zone': 0.02, external: 0.09 });
    assert.deepEqual(r.body.totals, { 'cross-zone': { billedBytes: 3_000_000_000, cost: 0.06 }, external: { billedBytes: 2_500_000_003, cost: 0.22500000027 } });
    const pairs = r.body.pairs as Array<Record<string, unknown>>;
    assert.deepEqual(
      pairs.map((p) => [(p.source as { id: string }).id, (p.target as { id: string }).id, p.locality, p.billedBytes, p.cost]),
      [
        ['shop/web', 'shop/api', 'cross-zone', 3_000_000_000, 0.06],
        ['shop/web', 'dns:api.example.com', 'external', 2_000_000_000, 0.18],
        ['ops/batch', 'dns:api.example.com', 'external', 500_000_000, 0.045],
        ['ops/batch', '198.51.100.7', 'external', 3, 2.7e-10],
      ],
    );
    assert.deepEqual(r.body.external, [
      { name: 'api.example.com', addrs: ['93.184.216.34'], sources: ['ops/batch', 'shop/web'], bytesSent: 2_500_000_000, bytesReceived: 7_000_000_001, billedBytes: 2_500_000_000, cost: 0.225 },
      { name: '198.51.100.7', addrs: ['198.51.100.7'], sources: ['ops/batch'], bytesSent: 3, bytesReceived: 3, billedBytes: 3, cost: 2.7e-10 },
    ]);
  });

  test('no prices: the bytes, cost null', async () => {
    const bare = Fastify();
    registerApi(bare, { store: store(), status: () => ({}), now: () => T0 + 2000 });
    const body = (await bare.inject({ method: 'GET', url: '/api/cost' })).json() as { prices: unknown; totals: Record<string, { cost: unknown }> };
    assert.equal(body.prices, null);
    assert.deepEqual(body.totals['cross-zone'], { billedBytes: 3_000_000_000, cost: null });
  });

  test('bad input: the same 400s as every route', async () => {
    const cases: Array<[string, string]> = [
      ['/api/callers', 'of: missing, expected a Service, workload or other end (an id from /api/graph)'],
      ['/api/dependencies?of=a&of=b', 'of: given 2 times, expected it once'],
      ['/api/callers?of=x&window=9h', 'window: got "9h", expected a duration from 1s to 1h (the store\'s retention), such as 15m or 1h'],
      ['/api/cost?by=pair', 'by: unknown parameter, expected one of: window, limit'],
      ['/api/cost?cluster=a', 'cluster: unknown parameter, expected one of: window, limit'],
    ];
    for (const [url, error] of cases) {
      const r = await get(url);
      assert.deepEqual([r.status, r.body], [400, { error }], url);
    }
  });
});
