/**
 * `bpfagent hub` as a process: starts with ClickHouse down (ready, /readyz
 * 503, the API 503 with the reason, /metrics counting the failures), turns
 * ready when ClickHouse answers, serves the map, keeps /metrics apart with
 * metrics.listen, stops on SIGTERM with exit 0; a bad configuration is exit 2
 * with one line naming the key; the `server:` section's access rules hold for
 * it as for `bpfagent run`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { AgentProcess } from '../helpers/agent.js';
import { CLICKHOUSE_SKIP, ClickHouseServer } from '../helpers/clickhouse-server.js';
import { freePort } from '../helpers/listen.js';
import { AGENT_JS } from '../helpers/processes.js';
import { shipOneConnection } from '../helpers/hub-fixtures.js';
import { configFile } from '../helpers/run-agent.js';
import { until } from '../helpers/until.js';

describe('bpfagent hub', { skip: CLICKHOUSE_SKIP }, () => {
  let server: ClickHouseServer;
  before(async () => {
    server = await ClickHouseServer.start();
  });
  after(async () => {
    await server?.kill();
  });

  test('bad configuration: exit 2, one line naming the key; --help', () => {
    const f = configFile('hub:\n  maxWindow: forever\n');
    const r = spawnSync(process.execPath, [AGENT_JS, 'hub', '--config', f], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.equal(r.stderr, `bpfagent: config: ${f}: hub.maxWindow: got "forever", expected a duration from 1m to 744h, such as 24h\n`);
    const u = spawnSync(process.execPath, [AGENT_JS, 'hub', '--clickhouse-url', 'nope'], { encoding: 'utf8' });
    assert.equal(u.status, 2);
    assert.match(u.stderr, /^bpfagent: config: --clickhouse-url: hub.clickhouse.url: got "nope", expected a URL\n$/);
    const h = spawnSync(process.execPath, [AGENT_JS, 'hub', '--help'], { encoding: 'utf8' });
    assert.equal(h.status, 0);
    assert.match(h.stdout, /^Usage: bpfagent hub/);
  });

  test('ClickHouse down at start: ready, not ready to serve (503 with the reason); up: the map; SIGTERM: exit 0', async () => {
    await server.stop();
    const metricsPort = await freePort();
    const hub = new AgentProcess(
      spawn(process.execPath, [AGENT_JS, 'hub', '--listen', '127.0.0.1:0', '--metrics-listen', `127.0.0.1:${metricsPort}`, '--clickhouse-url', server.url, '--clickhouse-database', 'nothere'], { stdio: ['ignore', 'ignore', 'pipe'] }),
      'bpfagent hub',
    );
    try {
      const ready = await hub.ready;
      assert.match(String(ready.msg), /^ready: hub serving http:\/\/127\.0\.0\.1:\d+ over ClickHouse \(not answering yet: /);
      const base = `http://${String(ready.listen)}`;
      const metrics = `http://127.0.0.1:${metricsPort}`;
      assert.equal((await fetch(`${metrics}/readyz`)).status, 503);
      const down = await fetch(`${base}/api/graph`);
      assert.equal(down.status, 503);
      assert.match(((await down.json()) as { error: string }).error, /^clickhouse at http:\/\/127\.0\.0\.1:\d+\/: .*ECONNREFUSED/);
      // the UI's Changes view asks the same store
      const diffDown = await fetch(`${base}/api/diff?window=15m`);
      assert.equal(diffDown.status, 503);
      assert.match(((await diffDown.json()) as { error: string }).error, /^clickhouse at http:\/\/127\.0\.0\.1:\d+\/: .*ECONNREFUSED/);
      const m = await (await fetch(`${metrics}/metrics`)).text();
      assert.match(m, /^bpfagent_hub_clickhouse_up 0$/m);
      assert.match(m, /^bpfagent_hub_query_failures_total [1-9]\d*$/m);
      assert.equal((await fetch(`${base}/metrics`)).status, 404, 'metrics only on their listener');
      assert.equal((await fetch(`${metrics}/api/graph`)).status, 404, 'no API on the metrics listener');
      assert.equal((await fetch(`${base}/`)).status, 200, 'the web UI');

      await server.restart();
      await until(async () => ((await fetch(`${metrics}/readyz`)).status === 200 ? true : undefined), 'readyz 200');
      // the database has no tables yet: still an answer, 503 naming that
      const missing = await fetch(`${base}/api/graph`);
      assert.equal(missing.status, 503);
      assert.match(((await missing.json()) as { error: string }).error, /Database nothere doesn't exist/);
      // an agent's sink makes them and ships one connection (a minute ago: in the default 15-minute window)
      await shipOneConnection(server.url, 'nothere');
      const g = (await (await fetch(`${base}/api/graph`)).json()) as { edges: Array<{ source: string; target: string; bytesSent: number; bytesReceived: number; observedBy: string }> };
      assert.deepEqual(g.edges.map((e) => [e.source, e.target, e.bytesSent, e.bytesReceived, e.observedBy]), [['c1:process:curl', 'c1:10.0.0.2', 12, 34, 'client']]);
      const diff = (await (await fetch(`${base}/api/diff?window=15m&cluster=c1`)).json()) as { appeared: Array<{ source: string; target: string; after: { bytesSent: number } }> };
      assert.deepEqual(diff.appeared.map((d) => [d.source, d.target, d.after.bytesSent]), [['c1:process:curl', 'c1:10.0.0.2', 12]]);
      assert.match(await (await fetch(`${metrics}/metrics`)).text(), /^bpfagent_hub_clickhouse_up 1$/m);
      const st = (await (await fetch(`${base}/api/status`)).json()) as { node: string; hub: boolean; store: { clickhouse: { reachable: boolean; clustersLastHour: unknown } } };
      assert.deepEqual([st.node, st.hub, st.store.clickhouse.reachable, st.store.clickhouse.clustersLastHour], ['hub', true, true, [{ cluster: 'c1', nodes: 1 }]]);
    } finally {
      const exit = await hub.stop('SIGTERM');
      assert.equal(exit.code, 0, exit.stderr);
      assert.match(exit.stderr, /hub stopped/);
    }
  });

  test("server: the token of server.tokenFile guards the hub's API; allowUnauthenticated lets it serve beyond loopback", async () => {
    const f = configFile('listen: 127.0.0.1:0\n');
    const tokenFile = path.join(path.dirname(f), 'token');
    writeFileSync(tokenFile, 'hub-review-src-token-0123456789\n');
    writeFileSync(f, `listen: 127.0.0.1:0\nserver:\n  tokenFile: ${tokenFile}\n`);
    const guarded = new AgentProcess(spawn(process.execPath, [AGENT_JS, 'hub', '--config', f, '--clickhouse-url', server.url], { stdio: ['ignore', 'ignore', 'pipe'] }), 'bpfagent hub');
    try {
      const base = `http://${String((await guarded.ready).listen)}`;
      const none = await fetch(`${base}/api/status`);
      assert.equal(none.status, 401);
      assert.match(((await none.json()) as { error: string }).error, /^authorization: missing/);
      assert.equal((await fetch(`${base}/api/status`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status, 401);
      const ok = await fetch(`${base}/api/status`, { headers: { authorization: 'Bearer hub-review-src-token-0123456789' } });
      assert.equal(ok.status, 200);
      assert.equal(((await ok.json()) as { hub: boolean }).hub, true);
    } finally {
      const exit = await guarded.stop('SIGTERM');
      assert.equal(exit.code, 0, exit.stderr);
    }
    // beyond loopback: refused without a token (exit 2, naming listen), served with allowUnauthenticated
    const refused = spawnSync(process.execPath, [AGENT_JS, 'hub', '--listen', '0.0.0.0:0', '--clickhouse-url', server.url], { encoding: 'utf8' });
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /^bpfagent: listen: 0\.0\.0\.0:0 is not a loopback address and the API has no token: set server\.tokenFile/m);
    const open = configFile('listen: 0.0.0.0:0\nserver:\n  allowUnauthenticated: true\n');
    const anyone = new AgentProcess(spawn(process.execPath, [AGENT_JS, 'hub', '--config', open, '--clickhouse-url', server.url], { stdio: ['ignore', 'ignore', 'pipe'] }), 'bpfagent hub');
    try {
      const port = String((await anyone.ready).listen).split(':').pop();
      assert.equal((await fetch(`http://127.0.0.1:${port}/api/status`)).status, 200);
    } finally {
      const exit = await anyone.stop('SIGTERM');
      assert.equal(exit.code, 0, exit.stderr);
    }
  });
});
