/**
 * GET /api/diff of `bpfagent run` (a 1 s interval, a 2 minute retention)
 * with real traffic that changes between two windows: a baseline in which
 * a client calls five servers and looks up one external name, then a
 * window in which one server is no longer called, one new one is, one
 * answers far more bytes and slower (the client's link shaped by a token
 * bucket), one resets every call, one is unchanged, and a second name is
 * looked up. The baseline is given by its ends (times of this test's own
 * clock, relative to now); the window starts where it ends.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { GraphEdge } from '../../src/server/api.js';
import type { DiffAnswer, DiffEdge } from '../../src/server/diff.js';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer, RUN_TAG, runNames } from '../helpers/processes.js';
import { RunAgent } from '../helpers/run-agent.js';

/** this run's process names (dcli-<tag>, ...): other runs of this test, or of others naming theirs dcli, may be on the machine */
const D = runNames('d', ['cli', 'gone', 'grow', 'flaky', 'steady', 'new', 'dns'] as const);

describe('bpfagent run: GET /api/diff, traffic changing between two windows', { skip: KERNEL_SKIP }, () => {
  let agent: RunAgent;
  let net: TestNetwork;
  let dns: Peer;
  // below the ephemeral range
  const port = 21000 + (process.pid % 100) * 8;
  const ext = (n: number): string => net.b.ipv4.replace(/\.2$/, `.${n}`);
  const iso = (ms: number): string => new Date(ms).toISOString();
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  before(async () => {
    net = new TestNetwork(24);
    // addresses of host B no socket uses: external, each with its own name
    net.addAddress(net.b, ext(9));
    net.addAddress(net.b, ext(10));
    agent = new RunAgent('listen: 127.0.0.1:0\ninterval: 1s\nlogLevel: info\nshutdownTimeout: 5s\nstore:\n  retention: 2m\n');
    await agent.ready;
    const zone = { 'old.test': [{ type: 'A', data: ext(9), ttl: 300 }], 'new.test': [{ type: 'A', data: ext(10), ttl: 300 }] };
    dns = new Peer(D.dns, ['--host', net.b.ipv4, '--zone', JSON.stringify(zone)], { netns: net.b.ns, script: 'dns-server' });
    await dns.waitFor('listening');
  });

  after(async () => {
    dns?.kill();
    const exit = await agent?.stop('SIGTERM');
    net?.destroy();
    assert.equal(exit?.code, 0, exit?.stderr);
  });

  const getJson = <T>(path: string) => agent.getJson<T>(path);

  /** `server` (process name `comm`) on `p` answers 7 bytes to each of `sizes.length` calls from dcli, one after another. */
  async function calls(comm: string, p: number, sizes: number[], serverArgs: string[] = []): Promise<void> {
    const server = new Peer(comm, ['server', '--host', net.b.ipv4, '--port', String(p), '--send', '7', '--count', String(sizes.length), ...serverArgs], { netns: net.b.ns });
    await server.waitFor('listening');
    for (const n of sizes) {
      const c = new Peer(D.cli, ['client', '--host', net.b.ipv4, '--port', String(p), '--send', String(n)], { netns: net.a.ns });
      await c.waitFor('done');
    }
    await server.exited;
  }

  /** `n` calls from dcli to dgrow on port + 1, each sending `bytes` (one client process: port-fan). */
  async function growCalls(n: number, bytes: number): Promise<void> {
    const server = new Peer(D.grow, ['server', '--host', net.b.ipv4, '--port', String(port + 1), '--repeat', String(n), '--send', '7'], { netns: net.b.ns, script: 'port-fan' });
    await server.waitFor('listening');
    const c = new Peer(D.cli, ['client', '--host', net.b.ipv4, '--port', String(port + 1), '--repeat', String(n), '--send-step', String(bytes)], { netns: net.a.ns, script: 'port-fan' });
    const done = await c.waitFor('done', 30_000);
    assert.deepEqual([done.sent, done.received], [n * bytes, n * 7]);
    await server.exited;
  }

  /** dcli looks `name` up and calls it (refused: nothing listens there). */
  async function lookUp(name: string): Promise<void> {
    const c = new Peer(D.cli, ['--dns', net.b.ipv4, '--name', name, '--port', String(port + 5)], { netns: net.a.ns, script: 'resolve-connect' });
    await c.waitFor('resolved');
    await c.exited;
  }

  /** Wait until the graph of dcli holds these edges (source>target:port with their connections). */
  async function graphHolds(want: Record<string, number>): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const g = (await getJson<{ edges: GraphEdge[] }>(`/api/graph?window=2m&workload=${D.cli}`)).body;
      const have = Object.fromEntries(g.edges.filter((e) => e.proto === 'tcp').map((e) => [`${e.target}:${e.port}`, e.connections]));
      const dnsFlow = g.edges.some((e) => e.proto === 'udp' && e.port === 53 && e.observedBy === 'both');
      if (dnsFlow && Object.entries(want).every(([k, n]) => have[k] === n)) return;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${JSON.stringify(want)}; the graph has ${JSON.stringify(have)}`);
      await sleep(250);
    }
  }

  test('appeared, disappeared, changed (bytes and p99 RTT, failure ratio), a new external name: each with both windows\' numbers', async () => {
    assert.equal((await getJson<{ dns: boolean }>('/api/status')).body.dns, true, 'the UDP/DNS probes are needed for the names');
    const t0 = Date.now();

    // the baseline
    await calls(D.gone, port, [100, 100]);
    await growCalls(20, 1000);
    await calls(D.flaky, port + 2, [100, 100]);
    await calls(D.steady, port + 3, [500, 500]);
    await lookUp('old.test');
    await graphHolds(rel({ [`process:${D.gone}`]: [0, 2], [`process:${D.grow}`]: [1, 20], [`process:${D.flaky}`]: [2, 2], [`process:${D.steady}`]: [3, 2], 'dns:old.test': [5, 1] }));
    // every interval holding the baseline's traffic has ended by now
    const t1 = Date.now();
    await sleep(200);

    // the window: dgone no longer called; dgrow gets 100 times the bytes over a shaped link (20 Mbit/s, 50 ms of queue)
    const dev = `${net.a.ns.slice(0, -1)}va`;
    net.exec(net.a, ['tc', 'qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', '20mbit', 'burst', '4k', 'latency', '50ms']);
    try {
      await growCalls(20, 100_000);
    } finally {
      net.exec(net.a, ['tc', 'qdisc', 'del', 'dev', dev, 'root']);
    }
    await calls(D.flaky, port + 2, [100, 100], ['--reset-after', '1']);
    await calls(D.steady, port + 3, [500, 500]);
    await calls(D.new, port + 4, [50]);
    await lookUp('old.test');
    await lookUp('new.test');
    await graphHolds(rel({ [`process:${D.gone}`]: [0, 2], [`process:${D.grow}`]: [1, 40], [`process:${D.flaky}`]: [2, 4], [`process:${D.steady}`]: [3, 4], [`process:${D.new}`]: [4, 1], 'dns:old.test': [5, 2], 'dns:new.test': [5, 1] }));

    const r = await getJson<DiffAnswer>(`/api/diff?window=2m&baselineFrom=${iso(t0)}&baselineTo=${iso(t1)}&workload=${D.cli}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const d = r.body;
    assert.deepEqual(d.baseline, { from: iso(t0), to: iso(t1) });
    assert.equal(d.window.from, iso(t1), 'the window starts where the baseline ends');
    // the target without this run's tag, the port as its offset
    const key = (e: DiffEdge): string => `${e.target.replace(`-${RUN_TAG}`, '')}:${e.port - port}/${e.proto}`;
    const msg = JSON.stringify(d, null, 1);

    assert.deepEqual(d.appeared.map(key).sort(), ['dns:new.test:5/tcp', 'process:dnew:4/tcp'], msg);
    const fresh = d.appeared.find((e) => e.target === `process:${D.new}`)!;
    assert.deepEqual([fresh.source, fresh.before.connections, fresh.after.connections, fresh.after.bytesSent, fresh.after.bytesReceived], [`process:${D.cli}`, 0, 1, 50, 7]);

    assert.deepEqual(d.disappeared.map(key), ['process:dgone:0/tcp'], msg);
    const gone = d.disappeared[0]!;
    assert.deepEqual([gone.before.connections, gone.before.bytesSent, gone.before.bytesReceived, gone.before.failureRatio], [2, 200, 14, 0]);
    assert.deepEqual([gone.after.connections, gone.after.bytesSent, gone.after.failureRatio], [0, 0, null]);

    assert.deepEqual(d.changed.map(key).sort(), ['process:dflaky:2/tcp', 'process:dgrow:1/tcp'], msg);
    const grow = d.changed.find((e) => e.target === `process:${D.grow}`)!;
    assert.deepEqual([grow.before.connections, grow.before.bytesSent, grow.before.bytesReceived], [20, 20_000, 140]);
    assert.deepEqual([grow.after.connections, grow.after.bytesSent, grow.after.bytesReceived], [20, 2_000_000, 140]);
    const metrics = Object.fromEntries(grow.changes!.map((c) => [c.metric, c]));
    assert.deepEqual(Object.keys(metrics).sort(), ['bytesPerSec', 'rttP99Us'], msg);
    const windowS = (Date.parse(d.window.to) - Date.parse(d.window.from)) / 1000;
    assert.ok(Math.abs(metrics.bytesPerSec!.before - 20_140 / ((t1 - t0) / 1000)) < 0.01, JSON.stringify(metrics.bytesPerSec));
    assert.ok(Math.abs(metrics.bytesPerSec!.after - 2_000_140 / windowS) < 0.01, JSON.stringify(metrics.bytesPerSec));
    // through the shaper's queue, milliseconds
    assert.ok(metrics.rttP99Us!.after >= 5000 && metrics.rttP99Us!.after >= 2 * metrics.rttP99Us!.before, JSON.stringify(metrics.rttP99Us));
    assert.deepEqual([grow.before.rttUs.p99, grow.after.rttUs.p99, grow.before.rttUs.count, grow.after.rttUs.count], [metrics.rttP99Us!.before, metrics.rttP99Us!.after, 20, 20]);

    const flaky = d.changed.find((e) => e.target === `process:${D.flaky}`)!;
    assert.deepEqual(flaky.changes!.find((c) => c.metric === 'failureRatio'), { metric: 'failureRatio', before: 0, after: 1 }, msg);
    assert.deepEqual([flaky.before.failed, flaky.after.failed, flaky.after.health], [{ refused: 0, timeout: 0, reset: 0 }, { refused: 0, timeout: 0, reset: 2 }, 'failing']);

    // old.test was called in the baseline too
    assert.deepEqual(d.newNames, [{ name: 'new.test', addrs: [ext(10)], connections: 1, failed: 1, bytesSent: 0, bytesReceived: 0 }]);
    for (const id of [`process:${D.cli}`, `process:${D.new}`, `process:${D.gone}`, `process:${D.grow}`, `process:${D.flaky}`, 'dns:new.test']) assert.ok(d.nodes.some((n) => n.id === id), `${id} in ${JSON.stringify(d.nodes)}`);

    // the default baseline: the window just before, as long
    const def = (await getJson<DiffAnswer>(`/api/diff?window=30s&workload=${D.cli}`)).body;
    assert.equal(Date.parse(def.window.to) - Date.parse(def.window.from), 30_000);
    assert.deepEqual([def.baseline.to, Date.parse(def.baseline.to) - Date.parse(def.baseline.from)], [def.window.from, 30_000]);
  });

  test('windows beyond the retention, and malformed parameters: 400 naming the parameter and the form', async () => {
    const now = Date.now();
    const cases: Array<[string, RegExp]> = [
      ['/api/diff?window=2m&baseline=1m', /^baseline: got "1m", expected a duration with window \+ baseline at most 2m \(the store's retention\)$/],
      ['/api/diff?window=90s', /^window: got "90s", expected a duration up to 1m when the baseline is the window before it/],
      [`/api/diff?baselineFrom=${iso(now - 180_000)}&baselineTo=${iso(now - 60_000)}`, /^baselineFrom: got ".*", expected a time within the store's retention \(2m\): at or after /],
      ['/api/diff?baselineFrom=noon&baselineTo=later', /^baselineFrom: got "noon", expected an ISO 8601 time with its offset/],
      [`/api/diff?baselineFrom=${iso(now - 30_000)}`, /^baselineTo: missing, expected it with baselineFrom/],
      ['/api/diff?minBytes=1', /^minBytes: unknown parameter, expected one of: window, baseline, baselineFrom, baselineTo, namespace, workload, locality, proto, graph$/],
    ];
    for (const [path, re] of cases) {
      const r = await getJson<{ error: string }>(path);
      assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error, re, path);
    }
  });

  /** { target: [port offset, connections] } as graphHolds wants it. */
  function rel(m: Record<string, [number, number]>): Record<string, number> {
    return Object.fromEntries(Object.entries(m).map(([t, [off, n]]) => [`${t}:${port + off}`, n]));
  }
});
