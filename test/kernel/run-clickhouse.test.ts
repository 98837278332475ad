/**
 * `bpfagent run` with the ClickHouse sink: real connections between test
 * hosts reach a real ClickHouse server (Debian's clickhouse-server, started
 * here) and SQL returns their edges with exact sums. Then ClickHouse is
 * stopped mid-run: the agent keeps tracing, buffers within its bound, counts
 * what it drops, and delivers what it buffered, once, when the server is back.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { CLICKHOUSE_SKIP, ClickHouseServer } from '../helpers/clickhouse-server.js';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { metricSum } from '../helpers/metrics-text.js';
import { freePort } from '../helpers/listen.js';
import { AGENT_JS, Peer } from '../helpers/processes.js';
import { until } from '../helpers/until.js';
import { edgesInWindow, type EdgeSummary } from '../../src/sinks/clickhouse-queries.js';

const MAX_QUEUED = 100;

/** `bpfagent run --config FILE`: its stderr (JSON log lines), ready once it says so. */
class RunAgent {
  readonly child: ChildProcess;
  stderr = '';
  readonly ready: Promise<void>;
  private readonly exited: Promise<number | null>;

  constructor(config: string) {
    this.child = spawn(process.execPath, [AGENT_JS, 'run', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
    this.ready = new Promise((resolve, reject) => {
      this.child.stderr!.on('data', (d: Buffer) => {
        this.stderr += d.toString();
        if (/"msg":"ready/.test(this.stderr)) resolve();
      });
      void this.exited.then((code) => reject(new Error(`bpfagent run exited (${code}) before ready:\n${this.stderr}`)));
    });
  }

  /** The log line with this message, parsed. */
  logLine(msg: string): Record<string, unknown> | undefined {
    const line = this.stderr.split('\n').find((l) => l.includes(`"msg":"${msg}`));
    return line ? (JSON.parse(line) as Record<string, unknown>) : undefined;
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}

describe('bpfagent run with a ClickHouse sink', { skip: KERNEL_SKIP || CLICKHOUSE_SKIP }, () => {
  let server: ClickHouseServer;
  let agent: RunAgent;
  let hosts: TestNetwork;
  let client: ClickHouseClient;
  let dir: string;
  let metricsUrl: string;
  const port = 27000 + (process.pid % 100) * 4;
  const started = new Date(Date.now() - 60_000);

  before(async () => {
    server = await ClickHouseServer.start();
    client = createClient({ url: server.url });
    hosts = new TestNetwork(6);
    dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-run-ch-'));
    const listen = `127.0.0.1:${await freePort()}`;
    metricsUrl = `http://${listen}/metrics`;
    const config = path.join(dir, 'bpfagent.yaml');
    writeFileSync(
      config,
      [
        'nodeName: ch-test-node',
        `listen: "${listen}"`,
        'interval: 1s',
        'shutdownTimeout: 10s',
        'sinks:',
        '  clickhouse:',
        `    url: ${server.url}`,
        '    database: runtest',
        '    batching:',
        `      maxQueued: ${MAX_QUEUED}`,
        '      maxBatch: 50',
        '      flushIntervalMs: 200',
        '      retryBaseMs: 100',
        '      retryMaxMs: 500',
        '',
      ].join('\n'),
    );
    agent = new RunAgent(config);
    await agent.ready;
  });

  after(async () => {
    const code = await agent?.stop();
    hosts?.destroy();
    await client?.close();
    await server?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 0, agent?.stderr);
  });

  const window = (): { from: Date; to: Date } => ({ from: started, to: new Date(Date.now() + 60_000) });

  /** The edge (client's or server's view) on `p` once it has `n` connections. */
  async function edge(p: number, observedBy: 'client' | 'server', n: number): Promise<EdgeSummary> {
    return until(async () => {
      const edges = await edgesInWindow(client, '`runtest`.`flows`', { ...window(), observedBy, proto: 'tcp' });
      const e = edges.find((x) => x.port === p);
      return e && e.connections >= n ? e : undefined;
    }, `${n} connections on port ${p} (${observedBy}) in ClickHouse`);
  }

  /** Make `n` connections from host A to a server on B: clients send `send` bytes, the server answers `answer`. */
  async function traffic(p: number, n: number, send: number, answer: number): Promise<void> {
    const srv = new Peer('chsrv', ['server', '--host', hosts.b.ipv4, '--port', String(p), '--send', String(answer), '--count', String(n)], { netns: hosts.b.ns });
    await srv.waitFor('listening');
    // a few at a time: many clients at once would only slow the test host
    for (let i = 0; i < n; i += 10) {
      const batch = Array.from({ length: Math.min(10, n - i) }, () => new Peer('chcli', ['client', '--host', hosts.b.ipv4, '--port', String(p), '--send', String(send)], { netns: hosts.a.ns }));
      await Promise.all(batch.map((c) => c.waitFor('done')));
    }
  }

  /** The sum of the samples of `name` with those labels (0 if none). */
  async function metric(name: string, labels: Record<string, string> = { sink: 'clickhouse' }): Promise<number> {
    return metricSum(await (await fetch(metricsUrl)).text(), name, labels) ?? 0;
  }

  test('real connections reach ClickHouse: the edges query has the exact connections and byte sums', async () => {
    await traffic(port, 3, 100, 11);
    const c = await edge(port, 'client', 3);
    assert.deepEqual(
      [c.source.id, c.destination.id, c.connections, c.failed, c.bytesSent, c.bytesReceived],
      ['process:chcli', hosts.b.ipv4, 3, { refused: 0, timeout: 0, reset: 0 }, 300, 33],
    );
    const s = await edge(port, 'server', 3);
    assert.deepEqual([s.source.id, s.destination.id, s.connections, s.bytesSent, s.bytesReceived], [hosts.a.ipv4, 'process:chsrv', 3, 300, 33]);
    // the same in plain SQL over the rows: one final row per connection and side (open-connection rows, state 'open', add bytes only)
    const rs = await client.query({
      query: `SELECT node, observed_by, countIf(state != 'open') AS n, sum(bytes_sent) AS sent, sum(bytes_received) AS received FROM runtest.flows WHERE proto = 'tcp' AND server_port = ${port} GROUP BY node, observed_by ORDER BY observed_by`,
      format: 'JSONEachRow',
    });
    assert.deepEqual(await rs.json(), [
      { node: 'ch-test-node', observed_by: 'client', n: '3', sent: '300', received: '33' },
      { node: 'ch-test-node', observed_by: 'server', n: '3', sent: '33', received: '300' },
    ]);
  });

  test('ClickHouse stopped mid-run: tracing goes on, records are buffered within the bound, drops counted, the buffer delivered once', async () => {
    const t0 = Date.now();
    await server.stop();
    process.stderr.write(`# clickhouse-server stopped in ${Date.now() - t0} ms\n`);
    const failuresBefore = await metric('bpfagent_sink_failures_total');

    // phase A: a few connections while the server is down; they wait in the queue
    await traffic(port + 1, 4, 50, 7);
    // tracing went on: the agent's own per-edge metrics count them
    await until(
      async () => ((await metric('bpfagent_tcp_connections_total', { port: String(port + 1), observed_by: 'client' })) >= 4 ? true : undefined),
      'the outage connections in the agent metrics',
    );
    const queuedA = await until(async () => {
      const q = await metric('bpfagent_sink_queue_depth');
      return q >= 8 ? q : undefined;
    }, 'phase A records queued');
    assert.ok(queuedA <= MAX_QUEUED);
    await until(async () => ((await metric('bpfagent_sink_failures_total')) > failuresBefore ? true : undefined), 'failed inserts while ClickHouse is down');

    // phase B: more connections than the queue has room for
    const B = 80;
    await traffic(port + 2, B, 10, 1);
    await until(async () => ((await metric('bpfagent_sink_dropped_total')) > 0 ? true : undefined), 'drops once the queue is full');
    assert.equal(await metric('bpfagent_sink_queue_depth'), MAX_QUEUED, 'the queue holds its bound, no more');

    await server.restart();
    await until(async () => ((await metric('bpfagent_sink_queue_depth')) < MAX_QUEUED / 2 ? true : undefined), 'the queue drained');
    // phase A was queued before the bound was hit: all of it arrives, exactly
    const a = await edge(port + 1, 'client', 4);
    assert.deepEqual([a.connections, a.bytesSent, a.bytesReceived], [4, 200, 28]);
    const as = await edge(port + 1, 'server', 4);
    assert.deepEqual([as.connections, as.bytesSent, as.bytesReceived], [4, 200, 28]);

    // stop the agent: it flushes, then logs what each sink delivered and dropped
    assert.equal(await agent.stop(), 0, agent.stderr);
    const done = agent.logLine('sinks shut down') as { stats: { clickhouse: { exported: number; dropped: number; queued: number } } } | undefined;
    assert.ok(done, agent.stderr);
    const { exported, dropped, queued } = done.stats.clickhouse;
    assert.equal(queued, 0);
    // every record delivered is one row: nothing twice
    const count = async (sql: string): Promise<number> => {
      const r = await client.query({ query: sql, format: 'JSONEachRow' });
      return Number((await r.json<{ n: string }>())[0]!.n);
    };
    const rows = (await count('SELECT count() AS n FROM runtest.flows')) + (await count('SELECT count() AS n FROM runtest.dns'));
    assert.equal(rows, exported, `rows in ClickHouse = records exported (${exported}); dropped ${dropped}`);
    // phase B's records beyond the bound were dropped, not delivered
    const rowsB = await count(`SELECT count() AS n FROM runtest.flows WHERE server_port = ${port + 2}`);
    process.stderr.write(`# exported ${exported}, dropped ${dropped}, rows ${rows}, phase B rows ${rowsB} of ${2 * B}\n`);
    assert.ok(rowsB < 2 * B, `phase B rows ${rowsB}`);
    assert.ok(dropped >= 2 * B - rowsB, `dropped ${dropped} >= ${2 * B - rowsB}`);
  });

  test('credentials ClickHouse refuses: bpfagent run stops at start, exit 2, naming the sink, the URL and the reason', async () => {
    const config = path.join(dir, 'refused.yaml');
    writeFileSync(
      config,
      ['nodeName: ch-test-node', `listen: "127.0.0.1:${await freePort()}"`, 'sinks:', '  clickhouse:', `    url: ${server.url}`, '    username: agent', '    password: wrong', ''].join('\n'),
    );
    const refused = new RunAgent(config);
    await assert.rejects(refused.ready);
    assert.equal(await refused.stop(), 2, refused.stderr);
    assert.match(refused.stderr, new RegExp(`sinks\\.clickhouse: clickhouse sink: cannot query the server at ${server.url.replace(/\./g, '\\.')}/: .*(Wrong password|Authentication failed)`));
    assert.doesNotMatch(refused.stderr, /wrong/);
  });
});
