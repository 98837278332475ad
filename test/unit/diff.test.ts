/** What changed between two windows (src/server/diff.ts, GET /api/diff), over the embedded store with explicit times. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import type { TcpRecord } from '../../src/events/records.js';
import { buildGraph, linkId } from '../../src/server/api.js';
import { DIFF_THRESHOLDS, type DiffAnswer, type DiffEdge, changesOf, computeDiff, registerDiffApi } from '../../src/server/diff.js';
import { MemoryFlowStore } from '../../src/store/memory-store.js';
import { T0, interval, serverSide, tcp } from '../helpers/store-fixtures.js';

const key = (d: DiffEdge): string => `${d.source}>${d.target}:${d.port}/${d.proto}`;
const ids = (ds: DiffEdge[]): string[] => ds.map(key).sort();
const times = (n: number, f: (i: number) => TcpRecord): TcpRecord[] => Array.from({ length: n }, (_, i) => f(i));

/**
 * A minute of baseline (intervals ending T0+10s .. T0+60s) and a minute of
 * window (T0+70s .. T0+120s): each case an edge of its own (a port of cli's,
 * or web's named destinations).
 */
function scenario(): MemoryFlowStore {
  const s = new MemoryFlowStore({ retentionMs: 3_600_000 });
  const before = [
    tcp({ port: 80, to: '10.0.0.3', bytesSent: 100, bytesReceived: 10, at: 5000 }), // gone
    ...times(2, () => tcp({ port: 443, bytesSent: 1000, at: 5000 })), // bytes x20, +38 kB: changed
    tcp({ port: 444, bytesSent: 100, at: 5000 }), // bytes x50 but +4.9 kB: not changed
    tcp({ port: 445, bytesSent: 30_000, at: 5000 }), // +20 kB but x1.67: not changed
    ...times(10, () => tcp({ port: 446, at: 5000 })), // failures 0% -> 10%: changed
    ...times(20, () => tcp({ port: 447, at: 5000 })), // failures 0% -> 5%: not changed
    ...times(20, () => tcp({ port: 448, srttUs: 80, at: 5000 })), // p99 100 µs -> 50 ms: changed
    ...times(20, () => tcp({ port: 449, srttUs: 80, at: 5000 })), // p99 100 µs -> 500 µs, +400 µs: not changed
    ...times(19, () => tcp({ port: 450, srttUs: 80, at: 5000 })), // p99 100 µs -> 50 ms, but 19 samples: not changed
    tcp({ comm: 'web', to: '93.184.216.34', name: 'old.example', locality: 'external', bytesSent: 5, at: 5000 }),
  ];
  const after = [
    tcp({ port: 81, to: '10.0.0.4', bytesSent: 300, bytesReceived: 30, at: 65_000 }), // new
    ...times(2, () => tcp({ port: 443, bytesSent: 20_000, at: 65_000 })),
    tcp({ port: 444, bytesSent: 5000, at: 65_000 }),
    tcp({ port: 445, bytesSent: 50_000, at: 65_000 }),
    ...times(10, (i) => tcp({ port: 446, at: 65_000, outcome: i === 0 ? 'refused' : 'closed' })),
    ...times(20, (i) => tcp({ port: 447, at: 65_000, outcome: i === 0 ? 'timeout' : 'closed' })),
    ...times(20, (i) => tcp({ port: 448, srttUs: i === 0 ? 80 : 40_000, at: 65_000 })),
    ...times(20, () => tcp({ port: 449, srttUs: 400, at: 65_000 })),
    ...times(19, () => tcp({ port: 450, srttUs: 40_000, at: 65_000 })),
    tcp({ comm: 'web', to: '93.184.216.34', name: 'old.example', locality: 'external', bytesSent: 5, at: 65_000 }),
    tcp({ comm: 'web', to: '93.184.216.35', name: 'new.example', locality: 'external', bytesSent: 7, bytesReceived: 70, at: 65_000 }),
    tcp({ comm: 'web', to: '93.184.216.36', name: 'new.example', locality: 'external', outcome: 'refused', at: 65_000 }),
  ];
  interval(s, 10_000, before);
  interval(s, 70_000, after);
  return s;
}

const W = { fromMs: T0 + 60_000, toMs: T0 + 120_000 };
const B = { fromMs: T0, toMs: T0 + 60_000 };

describe('computeDiff over the store', () => {
  test('appeared, disappeared, changed past the thresholds, with both windows\' numbers; names not called before', async () => {
    const d = await computeDiff(scenario(), W, B);
    assert.deepEqual(d.window, { from: new Date(W.fromMs).toISOString(), to: new Date(W.toMs).toISOString() });
    assert.deepEqual(d.baseline, { from: new Date(B.fromMs).toISOString(), to: new Date(B.toMs).toISOString() });
    assert.deepEqual(d.thresholds, DIFF_THRESHOLDS);
    assert.deepEqual(ids(d.appeared), ['process:cli>10.0.0.4:81/tcp', 'process:web>dns:new.example:443/tcp']);
    assert.deepEqual(ids(d.disappeared), ['process:cli>10.0.0.3:80/tcp']);
    assert.deepEqual(ids(d.changed), ['process:cli>10.0.0.2:443/tcp', 'process:cli>10.0.0.2:446/tcp', 'process:cli>10.0.0.2:448/tcp']);

    const gone = d.disappeared[0]!;
    assert.deepEqual(gone.before, {
      connections: 1, failed: { refused: 0, timeout: 0, reset: 0 }, bytesSent: 100, bytesReceived: 10, packetsSent: 0, packetsReceived: 0, retransmits: 0,
      failureRatio: 0, rttUs: { p50: null, p99: null, count: 0 }, health: 'ok',
    });
    assert.deepEqual(gone.after, {
      connections: 0, failed: { refused: 0, timeout: 0, reset: 0 }, bytesSent: 0, bytesReceived: 0, packetsSent: 0, packetsReceived: 0, retransmits: 0,
      failureRatio: null, rttUs: { p50: null, p99: null, count: 0 }, health: 'ok',
    });
    assert.equal(gone.changes, undefined);
    assert.equal(Buffer.from(gone.id, 'base64url').toString(), 'tcp|process:cli|10.0.0.3|80');
    assert.equal(gone.link, linkId('process:cli', '10.0.0.3'));
    assert.equal(gone.edges.length, 1);
    const fresh = d.appeared.find((e) => e.port === 81)!;
    assert.deepEqual([fresh.before.connections, fresh.after.connections, fresh.after.bytesSent, fresh.after.bytesReceived], [0, 1, 300, 30]);

    const by = Object.fromEntries(d.changed.map((e) => [e.port, e]));
    assert.deepEqual(by[443]!.changes, [{ metric: 'bytesPerSec', before: 33.333, after: 666.667 }]);
    assert.deepEqual([by[443]!.before.bytesSent, by[443]!.after.bytesSent], [2000, 40_000]);
    assert.deepEqual(by[446]!.changes, [{ metric: 'failureRatio', before: 0, after: 0.1 }]);
    assert.deepEqual([by[446]!.before.failureRatio, by[446]!.after.failureRatio, by[446]!.after.failed.refused, by[446]!.after.health], [0, 0.1, 1, 'degraded']);
    assert.deepEqual(by[448]!.changes, [{ metric: 'rttP99Us', before: 100, after: 50_000 }]);
    assert.deepEqual([by[448]!.before.rttUs, by[448]!.after.rttUs], [{ p50: 100, p99: 100, count: 20 }, { p50: 50_000, p99: 50_000, count: 20 }]);

    // new.example was not called in the baseline; old.example was
    assert.deepEqual(d.newNames, [{ name: 'new.example', addrs: ['93.184.216.35', '93.184.216.36'], connections: 2, failed: 1, bytesSent: 7, bytesReceived: 70 }]);
    // the ends of the edges listed, for the map to draw them
    assert.deepEqual(d.nodes.map((n) => n.id), ['10.0.0.2', '10.0.0.3', '10.0.0.4', 'dns:new.example', 'process:cli', 'process:web']);
  });

  test('the same traffic in both windows: nothing changed; filters apply to both windows', async () => {
    const s = new MemoryFlowStore({ retentionMs: 3_600_000 });
    const mk = (at: number) => [tcp({ bytesSent: 50_000, srttUs: 300, at }), tcp({ comm: 'web', to: '93.184.216.34', name: 'a.example', locality: 'external', at })];
    interval(s, 10_000, mk(5000));
    interval(s, 70_000, mk(65_000));
    const d = await computeDiff(s, W, B);
    assert.deepEqual([d.appeared, d.disappeared, d.changed, d.newNames, d.nodes], [[], [], [], [], []]);
    interval(s, 80_000, [tcp({ comm: 'batch', port: 9, at: 75_000 }), tcp({ comm: 'web', to: '93.184.216.35', name: 'b.example', locality: 'external', at: 75_000 })]);
    assert.deepEqual(ids((await computeDiff(s, W, B, { workload: 'batch' })).appeared), ['process:batch>10.0.0.2:9/tcp']);
    const web = await computeDiff(s, W, B, { workload: 'web', locality: 'external' });
    assert.deepEqual([ids(web.appeared), web.newNames.map((n) => n.name)], [['process:web>dns:b.example:443/tcp'], ['b.example']]);
    assert.deepEqual((await computeDiff(s, W, B, { proto: 'udp' })).appeared, []);
  });

  test('an edge seen by both ends in one window and by its client alone in the other is the same edge', async () => {
    // pods: the client's record names the server's workload as its remote end, so both views have the same ends
    const srv = { namespace: 'shop', pod: 'db-0', workload: 'db', workloadKind: 'StatefulSet' };
    const s = new MemoryFlowStore({ retentionMs: 3_600_000 });
    const c1 = tcp({ bytesSent: 1000, at: 5000, remote: { addr: '10.0.0.2', port: 443, k8s: srv } });
    const s1 = serverSide(c1, 'db');
    interval(s, 10_000, [c1, { ...s1, local: { ...s1.local, k8s: srv }, remote: { addr: c1.local.addr, port: c1.local.port } }]);
    interval(s, 70_000, [tcp({ bytesSent: 1000, at: 65_000, remote: { addr: '10.0.0.2', port: 443, k8s: srv } })]);
    const d = await computeDiff(s, W, B);
    assert.deepEqual([d.appeared, d.disappeared, d.changed], [[], [], []]);
    // the window's edge is the client's view, the baseline's both ends': told apart in /api/graph, one here
    assert.deepEqual((await computeDiff(s, W, { fromMs: T0, toMs: T0 + 1000 })).appeared.map((e) => [e.target, e.edges.map((id) => Buffer.from(id, 'base64url').toString())]), [
      ['shop/db', ['tcp|process:cli|shop/db|443|client']],
    ]);
    const both = await computeDiff(s, { fromMs: T0, toMs: T0 + 60_000 }, { fromMs: T0 + 60_000, toMs: T0 + 120_000 });
    assert.deepEqual(both.changed, []);
  });

  test('thresholds: bytes compared per second (windows of other lengths), each bound inclusive', () => {
    /** counts; `rtt`: `samples` RTTs of that many µs (20 by default) */
    const c = (o: { bytes?: number; conns?: number; failed?: number; rtt?: number; samples?: number }) => {
      const h = { bounds: [100, 1000, 10_000], counts: [0, 0, 0, 0], sum: 0, count: 0 };
      if (o.rtt !== undefined) {
        const n = o.samples ?? 20;
        const i = h.bounds.findIndex((b) => o.rtt! <= b);
        for (let k = i < 0 ? 3 : i; k < 4; k++) h.counts[k] = n;
        h.count = n;
        h.sum = o.rtt * n;
      }
      return { connections: o.conns ?? 0, failed: { refused: o.failed ?? 0, timeout: 0, reset: 0 }, bytesSent: o.bytes ?? 0, bytesReceived: 0, packetsSent: 0, packetsReceived: 0, retransmits: 0, rttUs: h };
    };
    // the same rate over 10 s and over 60 s: no change
    assert.deepEqual(changesOf(c({ bytes: 100_000 }), c({ bytes: 600_000 }), 10_000, 60_000), []);
    // twice the rate, +10 kB over the window: a change, at the bounds
    assert.deepEqual(changesOf(c({ bytes: 10_000 }), c({ bytes: 20_000 }), 10_000, 10_000), [{ metric: 'bytesPerSec', before: 1000, after: 2000 }]);
    assert.deepEqual(changesOf(c({ bytes: 10_000 }), c({ bytes: 19_999 }), 10_000, 10_000), []);
    // halved is a change too; from nothing to 10 kB
    assert.equal(changesOf(c({ bytes: 40_000 }), c({ bytes: 20_000 }), 10_000, 10_000).length, 1);
    assert.equal(changesOf(c({ bytes: 0 }), c({ bytes: 10_000 }), 10_000, 10_000).length, 1);
    // failure ratio: 10 points exactly; none without connections on both sides
    assert.deepEqual(changesOf(c({ conns: 10, failed: 2 }), c({ conns: 10, failed: 3 }), 1000, 1000), [{ metric: 'failureRatio', before: 0.2, after: 0.3 }]);
    assert.deepEqual(changesOf(c({ conns: 0 }), c({ conns: 10, failed: 10 }), 1000, 1000), []);
    // p99: doubled and +1 ms; only with enough samples on both sides
    assert.deepEqual(changesOf(c({ rtt: 900 }), c({ rtt: 9000 }), 1000, 1000), [{ metric: 'rttP99Us', before: 1000, after: 10_000 }]);
    assert.deepEqual(changesOf(c({ rtt: 90 }), c({ rtt: 900 }), 1000, 1000), []); // x10 but +900 µs
    assert.deepEqual(changesOf(c({}), c({ rtt: 9000 }), 1000, 1000), []);
    // and with 20 samples on each side
    assert.deepEqual(changesOf(c({ rtt: 900, samples: 19 }), c({ rtt: 9000 }), 1000, 1000), []);
    assert.deepEqual(changesOf(c({ rtt: 900 }), c({ rtt: 9000, samples: 19 }), 1000, 1000), []);
  });
});

describe('GET /api/diff (fastify inject, the clock the test sets)', () => {
  const store = scenario();
  const app = Fastify();
  registerDiffApi(app, { store, now: () => T0 + 120_000 });
  const get = async (url: string): Promise<{ status: number; body: DiffAnswer & { error?: string } }> => {
    const r = await app.inject({ method: 'GET', url });
    return { status: r.statusCode, body: r.json() as DiffAnswer & { error?: string } };
  };
  const iso = (ms: number): string => new Date(ms).toISOString();

  test('window=1m: against the minute before it, by default', async () => {
    const r = await get('/api/diff?window=1m');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, JSON.parse(JSON.stringify(await computeDiff(store, W, B))));
    // the default: an hour against the hour before, half the retention each when less (here 1 h kept: 30 m and 30 m)
    const d = (await get('/api/diff')).body;
    assert.deepEqual([d.window, d.baseline], [{ from: iso(T0 + 120_000 - 1_800_000), to: iso(T0 + 120_000) }, { from: iso(T0 + 120_000 - 3_600_000), to: iso(T0 + 120_000 - 1_800_000) }]);
    // a baseline of its own length
    const b = (await get('/api/diff?window=1m&baseline=30s')).body;
    assert.deepEqual(b.baseline, { from: iso(T0 + 30_000), to: iso(T0 + 60_000) });
  });

  test('baselineFrom/baselineTo: the window starts no earlier than the baseline ends', async () => {
    const r = await get(`/api/diff?window=1h&baselineFrom=${iso(T0)}&baselineTo=${encodeURIComponent('2026-11-25T13:01:00+01:00')}&workload=cli`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([r.body.window, r.body.baseline], [{ from: iso(T0 + 60_000), to: iso(T0 + 120_000) }, { from: iso(T0), to: iso(T0 + 60_000) }]);
    assert.deepEqual(ids(r.body.appeared), ['process:cli>10.0.0.4:81/tcp']);
    assert.deepEqual(r.body.newNames, []);
    // graph=true: the window's graph too, the window the diff compares (what the map draws the diff over)
    const withGraph = (await get(`/api/diff?window=1h&baselineFrom=${iso(T0)}&baselineTo=${iso(T0 + 60_000)}&workload=cli&graph=true`)).body;
    assert.deepEqual(withGraph.graph, JSON.parse(JSON.stringify(await buildGraph(store, T0 + 60_000, T0 + 120_000, { workload: 'cli' }))));
    assert.deepEqual(withGraph.graph!.links.map((l) => [l.target, l.edges.length]), [['10.0.0.2', 8], ['10.0.0.4', 1]]);
    assert.equal(r.body.graph, undefined);
    // a window ending after the baseline's end keeps its length
    const short = (await get(`/api/diff?window=30s&baselineFrom=${iso(T0)}&baselineTo=${iso(T0 + 10_000)}`)).body;
    assert.deepEqual(short.window, { from: iso(T0 + 90_000), to: iso(T0 + 120_000) });
  });

  test('bad parameters: 400 naming the parameter and the form expected; windows beyond the retention refused', async () => {
    const now = T0 + 120_000;
    const cases: Array<[string, string]> = [
      ['/api/diff?window=2h', 'window: got "2h", expected a duration from 1s to 1h (the store\'s retention), such as 15m or 1h'],
      ['/api/diff?window=45m', 'window: got "45m", expected a duration up to 30m when the baseline is the window before it (both within the store\'s retention, 1h), or give a shorter baseline'],
      ['/api/diff?window=45m&baseline=20m', 'baseline: got "20m", expected a duration with window + baseline at most 1h (the store\'s retention)'],
      ['/api/diff?baseline=soon', 'baseline: got "soon", expected a duration from 1s to 1h (the store\'s retention), such as 15m or 1h'],
      ['/api/diff?baselineFrom=yesterday&baselineTo=2026-11-25T12:00:10Z', 'baselineFrom: got "yesterday", expected an ISO 8601 time with its offset, such as 2026-12-03T14:00:00Z'],
      ['/api/diff?baselineFrom=2026-11-25T12:00:00', 'baselineFrom: got "2026-11-25T12:00:00", expected an ISO 8601 time with its offset, such as 2026-12-03T14:00:00Z'],
      [`/api/diff?baselineFrom=${iso(T0)}`, 'baselineTo: missing, expected it with baselineFrom (an ISO 8601 time with its offset, such as 2026-12-03T14:00:00Z)'],
      [`/api/diff?baselineTo=${iso(T0)}`, 'baselineFrom: missing, expected it with baselineTo (an ISO 8601 time with its offset, such as 2026-12-03T14:00:00Z)'],
      [`/api/diff?baseline=1m&baselineFrom=${iso(T0)}&baselineTo=${iso(T0 + 1000)}`, 'baseline: given with baselineFrom and baselineTo, expected one or the other'],
      [`/api/diff?baselineFrom=${iso(T0 + 2000)}&baselineTo=${iso(T0 + 1000)}`, `baselineFrom: got "${iso(T0 + 2000)}", expected a time before baselineTo (${iso(T0 + 1000)})`],
      [`/api/diff?baselineFrom=${iso(now - 3_600_001)}&baselineTo=${iso(T0)}`, `baselineFrom: got "${iso(now - 3_600_001)}", expected a time within the store's retention (1h): at or after ${iso(now - 3_600_000)}`],
      [`/api/diff?baselineFrom=${iso(T0)}&baselineTo=${iso(now - 500)}`, `baselineTo: got "${iso(now - 500)}", expected a time at least 1s before now (${iso(now)})`],
      ['/api/diff?proto=icmp', 'proto: got "icmp", expected tcp or udp'],
      ['/api/diff?failing=true', 'failing: unknown parameter, expected one of: window, baseline, baselineFrom, baselineTo, namespace, workload, locality, proto, graph'],
      ['/api/diff?window=1m&window=2m', 'window: given 2 times, expected it once'],
      ['/api/diff?graph=yes', 'graph: got "yes", expected true or false'],
    ];
    for (const [url, error] of cases) {
      const r = await get(url);
      assert.equal(r.status, 400, url);
      assert.deepEqual(r.body, { error }, url);
    }
    // at the bounds: all the retention, and a baseline reaching back to its start
    assert.equal((await get('/api/diff?window=30m&baseline=30m')).status, 200);
    assert.equal((await get(`/api/diff?baselineFrom=${iso(now - 3_600_000)}&baselineTo=${iso(now - 1000)}`)).status, 200);
  });
});
