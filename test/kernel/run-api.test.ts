/**
 * `bpfagent run`'s HTTP API (the live service map) with real traffic between
 * two test hosts: known process names, exact bytes, a refused connection, a
 * DNS-named destination outside the host. /api/graph shows the nodes and the
 * edge with exact counts, the client's and server's sides merged; the
 * refused edge failing; /api/edges/:id/connections lists the connections;
 * /api/localities, /api/external and /api/status answer; bad parameters 400.
 * With store.dataDir, the map survives a restart.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TcpRecord } from '../../src/events/records.js';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer } from '../helpers/processes.js';
import { RunAgent } from '../helpers/run-agent.js';
import type { Graph, GraphEdge } from '../../src/server/api.js';

describe('bpfagent run: the HTTP API over the embedded store', { skip: KERNEL_SKIP }, () => {
  let agent: RunAgent;
  let net: TestNetwork;
  const port = 33000 + (process.pid % 100) * 4;
  const extAddr = (): string => net.b.ipv4.replace(/\.2$/, '.9');

  before(async () => {
    net = new TestNetwork(19);
    // an address of host B no socket uses: nothing marks it as this host's, so it is external
    net.addAddress(net.b, extAddr());
    agent = new RunAgent('listen: 127.0.0.1:0\ninterval: 1s\nlogLevel: info\nshutdownTimeout: 5s\nstore:\n  retention: 1h\n  maxConnections: 1000\n');
    await agent.ready;
  });

  after(async () => {
    const exit = await agent?.stop('SIGTERM');
    net?.destroy();
    assert.equal(exit?.code, 0, exit?.stderr);
  });

  const getJson = <T>(path: string) => agent.getJson<T>(path);

  /** Ask until `done` holds of the answer (the store gets each interval at its end). */
  async function until<T>(path: string, done: (b: T) => boolean, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await getJson<T>(path);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      if (done(r.body)) return r.body;
      if (Date.now() > deadline) throw new Error(`timed out on ${path}; last answer ${JSON.stringify(r.body)}`);
      await new Promise((res) => setTimeout(res, 250));
    }
  }

  test('three calls and a refused one: the graph, the edge merged from both sides, its connections, localities', async () => {
    const server = new Peer('asrv', ['server', '--host', net.b.ipv4, '--port', String(port), '--send', '11', '--count', '3'], { netns: net.b.ns });
    await server.waitFor('listening');
    for (const n of [1000, 20_000, 300_001]) {
      const c = new Peer('acli', ['client', '--host', net.b.ipv4, '--port', String(port), '--send', String(n)], { netns: net.a.ns });
      await c.waitFor('done');
    }
    const refused = new Peer('acli', ['client', '--host', net.b.ipv4, '--port', String(port + 1)], { netns: net.a.ns });
    await refused.waitFor('error');

    const ok = (e: GraphEdge): boolean => e.source === 'process:acli' && e.port === port;
    const bad = (e: GraphEdge): boolean => e.source === 'process:acli' && e.port === port + 1;
    const g = await until<Graph>('/api/graph?window=5m&workload=acli', (b) => b.edges.some((e) => ok(e) && e.connections === 3) && b.edges.some(bad));
    assert.ok(Date.parse(g.window.to) - Date.parse(g.window.from) === 300_000, JSON.stringify(g.window));

    const edge = g.edges.find(ok)!;
    // no call failed, so the edge is ok unless the kernel retransmitted a segment (a tail loss probe fires on a
    // machine loaded enough to delay an ACK past the probe timeout): then degraded, the rule of healthOf
    const health = edge.retransmits > 0 ? 'degraded' : 'ok';
    assert.deepEqual(
      { source: edge.source, target: edge.target, proto: edge.proto, observedBy: edge.observedBy, connections: edge.connections, failed: edge.failed, bytesSent: edge.bytesSent, bytesReceived: edge.bytesReceived, locality: edge.locality, health: edge.health, rttCount: edge.rttUs.count },
      { source: 'process:acli', target: 'process:asrv', proto: 'tcp', observedBy: 'both', connections: 3, failed: { refused: 0, timeout: 0, reset: 0 }, bytesSent: 321_001, bytesReceived: 33, locality: 'same-host', health, rttCount: 3 },
    );
    assert.equal(Buffer.from(edge.id, 'base64url').toString(), `tcp|process:acli|process:asrv|${port}|both`);
    // the server's side is merged in, not drawn again as its own edge
    assert.equal(g.edges.filter((e) => e.target === 'process:asrv').length, 1);
    const failing = g.edges.find(bad)!;
    assert.deepEqual(
      { target: failing.target, observedBy: failing.observedBy, connections: failing.connections, failed: failing.failed, bytesSent: failing.bytesSent, health: failing.health },
      { target: net.b.ipv4, observedBy: 'client', connections: 1, failed: { refused: 1, timeout: 0, reset: 0 }, bytesSent: 0, health: 'failing' },
    );
    const nodes = Object.fromEntries(g.nodes.map((n) => [n.id, n]));
    assert.deepEqual(nodes['process:acli'], { id: 'process:acli', label: 'acli', kind: 'process' });
    assert.deepEqual(nodes['process:asrv'], { id: 'process:asrv', label: 'asrv', kind: 'process' });
    assert.deepEqual(nodes[net.b.ipv4], { id: net.b.ipv4, label: net.b.ipv4, kind: 'address' });

    // filters
    const failingOnly = (await getJson<Graph>('/api/graph?window=5m&workload=acli&failing=true')).body;
    assert.deepEqual(failingOnly.edges.map((e) => e.port), [port + 1]);
    const big = (await getJson<Graph>('/api/graph?window=5m&workload=asrv&minBytes=321034&proto=tcp&locality=same-host')).body;
    assert.deepEqual(big.edges.map((e) => e.id), [edge.id]);
    assert.deepEqual((await getJson<Graph>('/api/graph?window=5m&workload=acli&proto=udp')).body.edges, []);

    // the connections of the edge: the three calls, newest first, as trace --json records
    const cs = (await getJson<{ edge: GraphEdge; connections: TcpRecord[]; failures: unknown; rttUs: { count: number; bounds: number[] } }>(`/api/edges/${edge.id}/connections?window=5m`)).body;
    assert.equal(cs.edge.id, edge.id);
    assert.deepEqual(cs.connections.map((r) => [r.direction, r.local.comm, r.remote.addr, r.remote.port, r.bytesSent, r.bytesReceived, r.outcome]), [
      ['outbound', 'acli', net.b.ipv4, port, 300_001, 11, 'closed'],
      ['outbound', 'acli', net.b.ipv4, port, 20_000, 11, 'closed'],
      ['outbound', 'acli', net.b.ipv4, port, 1000, 11, 'closed'],
    ]);
    assert.deepEqual(cs.failures, { refused: 0, timeout: 0, reset: 0 });
    assert.equal(cs.rttUs.count, 3);
    assert.equal((await getJson<{ connections: unknown[] }>(`/api/edges/${edge.id}/connections?limit=1`)).body.connections.length, 1);
    const refusedConns = (await getJson<{ connections: TcpRecord[] }>(`/api/edges/${failing.id}/connections`)).body.connections;
    assert.deepEqual(refusedConns.map((r) => [r.outcome, r.local.pid, r.remote.port]), [['refused', refused.pid, port + 1]]);

    // localities: these four are same-host (so are the test's own HTTP requests to the agent)
    const loc = (await getJson<{ totals: Record<string, { connections: number; bytesSent: number; bytesReceived: number }> }>('/api/localities?window=5m')).body;
    assert.deepEqual(Object.keys(loc.totals).sort(), ['cluster', 'cross-zone', 'external', 'same-host', 'same-zone']);
    assert.ok(loc.totals['same-host']!.connections >= 4, JSON.stringify(loc));
    assert.ok(loc.totals['same-host']!.bytesSent >= 321_001, JSON.stringify(loc));
  });

  test('a DNS-named destination outside the host: /api/external by name, and external in /api/localities', async (t) => {
    const status = (await getJson<{ dns: boolean }>('/api/status')).body;
    if (!status.dns) return t.skip('UDP/DNS probes are off on this kernel');
    const zone = { 'ext.test': [{ type: 'A', data: extAddr(), ttl: 300 }] };
    const dns = new Peer('tdns', ['--host', net.b.ipv4, '--zone', JSON.stringify(zone)], { netns: net.b.ns, script: 'dns-server' });
    try {
      await dns.waitFor('listening');
      const c = new Peer('extcli', ['--dns', net.b.ipv4, '--name', 'ext.test', '--port', String(port + 2)], { netns: net.a.ns, script: 'resolve-connect' });
      await c.waitFor('resolved');
      type Ext = { destinations: Array<{ name: string; addrs: string[]; connections: number; failed: number; bytesSent: number; bytesReceived: number }> };
      const ext = await until<Ext>('/api/external?window=5m', (b) => b.destinations.some((d) => d.name === 'ext.test'));
      assert.deepEqual(ext.destinations.find((d) => d.name === 'ext.test'), { name: 'ext.test', addrs: [extAddr()], connections: 1, failed: 1, bytesSent: 0, bytesReceived: 0 });
      const g = (await getJson<Graph>('/api/graph?window=5m&locality=external&workload=extcli')).body;
      assert.deepEqual(g.edges.map((e) => [e.source, e.target, e.port, e.health]), [['process:extcli', 'dns:ext.test', port + 2, 'failing']]);
      assert.deepEqual(g.nodes.find((n) => n.id === 'dns:ext.test'), { id: 'dns:ext.test', label: 'ext.test', kind: 'dns' });
      const loc = (await getJson<{ totals: Record<string, { connections: number }> }>('/api/localities?window=5m')).body;
      assert.ok(loc.totals.external!.connections >= 1, JSON.stringify(loc));
    } finally {
      dns.kill();
    }
  });

  test('/api/status: probes, features, loss counters, sinks, store', async () => {
    const s = (await getJson<Record<string, unknown>>('/api/status')).body;
    assert.equal(typeof s.node, 'string');
    assert.equal(typeof s.attach, 'string');
    assert.ok(Array.isArray(s.programs) || typeof s.programs === 'object', JSON.stringify(s.programs));
    assert.equal((s.features as { btf: { available: boolean } }).btf.available, true);
    assert.deepEqual((s.kubernetes as { enabled: boolean }).enabled, false);
    const loss = s.loss as Record<string, number>;
    assert.equal(loss.lossRingbufFull, 0);
    assert.ok(loss.records! >= 4, JSON.stringify(loss));
    assert.deepEqual(s.sinks, {});
    const store = s.store as Record<string, number>;
    assert.ok(store.intervals! >= 1 && store.edges! >= 2 && store.connections! >= 4, JSON.stringify(store));
    assert.equal(store.retentionMs, 3_600_000);
    assert.ok(!Number.isNaN(Date.parse(String(s.startedAt))));
  });

  test('bad parameters: 400 with the reason', async () => {
    const cases: Array<[string, RegExp]> = [
      ['/api/graph?window=2h', /^window: got "2h", expected a duration from 1s to 1h/],
      ['/api/graph?window=soon', /^window: got "soon", expected a duration/],
      ['/api/graph?proto=sctp', /^proto: got "sctp", expected tcp or udp$/],
      ['/api/graph?minConnections=-3', /^minConnections: got "-3", expected a whole number from 0/],
      ['/api/graph?failing=1', /^failing: got "1", expected true or false$/],
      ['/api/graph?locality=moon', /^locality: got "moon", expected one of same-host, same-zone, cross-zone, cluster, external$/],
      ['/api/graph?colour=red', /^colour: unknown parameter, expected one of: window, namespace/],
      ['/api/edges/not!an!id/connections', /^id: got "not!an!id", expected an edge id/],
      ['/api/edges/abc/connections?limit=100000', /^limit: got "100000", expected a whole number from 1 to 1000$/],
      ['/api/external?limit=0', /^limit: got "0", expected a whole number from 1 to 1000$/],
      ['/api/localities?window=', /./],
    ];
    for (const [path, re] of cases.slice(0, -1)) {
      const r = await getJson<{ error: string }>(path);
      assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error, re, path);
    }
    // an empty value is the default; an edge not in the window is 404
    assert.equal((await agent.get('/api/localities?window=')).status, 200);
    assert.equal((await agent.get(`/api/edges/${Buffer.from('tcp|a|b|1|client').toString('base64url')}/connections`)).status, 404);
  });
});

describe('bpfagent run with store.dataDir: the map survives a restart', { skip: KERNEL_SKIP }, () => {
  let net: TestNetwork;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-data-'));
  const port = 34000 + (process.pid % 100) * 4;
  const yaml = `listen: 127.0.0.1:0\ninterval: 1s\nshutdownTimeout: 5s\nstore:\n  retention: 1h\n  dataDir: ${dir}\n`;

  before(() => {
    net = new TestNetwork(21);
  });
  after(() => {
    net?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an edge seen before SIGTERM is in /api/graph after the restart, with its connections', async () => {
    const first = new RunAgent(yaml);
    let second: RunAgent | undefined;
    try {
      await first.ready;
      const server = new Peer('dsrv', ['server', '--host', net.b.ipv4, '--port', String(port), '--send', '7', '--count', '2'], { netns: net.b.ns });
      await server.waitFor('listening');
      for (const n of [123, 4567]) {
        const c = new Peer('dcli', ['client', '--host', net.b.ipv4, '--port', String(port), '--send', String(n)], { netns: net.a.ns });
        await c.waitFor('done');
      }
      const want = (g: Graph): GraphEdge | undefined => g.edges.find((e) => e.source === 'process:dcli' && e.target === 'process:dsrv' && e.connections === 2);
      const deadline = Date.now() + 15_000;
      let seen: GraphEdge | undefined;
      while (!seen) {
        seen = want(JSON.parse((await first.get('/api/graph?window=10m&workload=dcli')).body) as Graph);
        if (!seen && Date.now() > deadline) throw new Error('the edge never showed');
        if (!seen) await new Promise((r) => setTimeout(r, 250));
      }
      assert.equal((await first.stop('SIGTERM')).code, 0);

      second = new RunAgent(yaml);
      await second.ready;
      assert.match(second.stderr, /store: .*flows\.sqlite: \d+ intervals and \d+ connections read back/);
      const again = want(JSON.parse((await second.get('/api/graph?window=10m&workload=dcli')).body) as Graph);
      assert.deepEqual(again && { ...again, connectionsPerSec: 0 }, { ...seen, connectionsPerSec: 0 });
      assert.deepEqual([again!.bytesSent, again!.bytesReceived, again!.observedBy], [4690, 14, 'both']);
      const cs = JSON.parse((await second.get(`/api/edges/${again!.id}/connections?window=10m`)).body) as { connections: TcpRecord[] };
      assert.deepEqual(cs.connections.map((r) => r.bytesSent), [4567, 123]);
      const status = JSON.parse((await second.get('/api/status')).body) as { store: { bytes: number; intervals: number } };
      assert.ok(status.store.bytes > 0 && status.store.intervals >= 1, JSON.stringify(status.store));
    } finally {
      await first.stop('SIGTERM');
      if (second) {
        const exit = await second.stop('SIGTERM');
        assert.equal(exit.code, 0, exit.stderr);
      }
    }
  });
});
