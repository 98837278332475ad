/**
 * `metrics.listen`: /metrics (with /healthz and /readyz) on a listener of its
 * own, where the API and the web UI cannot be reached; the main listener keeps
 * the API and UI and no longer serves /metrics. Real traffic between two test
 * hosts shows up in the metrics served there, exactly.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { metricSum } from '../helpers/metrics-text.js';
import { Peer } from '../helpers/processes.js';
import { RunAgent, runOnce } from '../helpers/run-agent.js';

async function get(base: string, pathname: string): Promise<{ status: number; body: string }> {
  const res = await fetch(base + pathname);
  return { status: res.status, body: await res.text() };
}

describe('bpfagent run with metrics on their own listener', { skip: KERNEL_SKIP }, () => {
  let agent: RunAgent;
  let net: TestNetwork;
  let main = '';
  let metrics = '';
  const port = 31400 + (process.pid % 100) * 2;

  before(async () => {
    net = new TestNetwork(18);
    agent = new RunAgent('listen: 127.0.0.1:0\ninterval: 1s\nshutdownTimeout: 5s\nmetrics:\n  listen: 127.0.0.1:0\n');
    const ready = await agent.ready;
    main = `http://${String(ready.listen)}`;
    metrics = `http://${String(ready.metricsListen)}`;
    assert.notEqual(main, metrics);
  });

  after(async () => {
    const exit = await agent?.stop('SIGTERM');
    net?.destroy();
    assert.equal(exit?.code, 0, exit?.stderr);
  });

  test('the metrics listener serves /metrics, /healthz and /readyz, and nothing of the API or the UI', async () => {
    const m = await get(metrics, '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.body, /^# TYPE bpfagent_tcp_connections_total counter$/m);
    assert.deepEqual(await get(metrics, '/healthz'), { status: 200, body: '{"status":"ok"}' });
    const r = await get(metrics, '/readyz');
    assert.equal(r.status, 200, r.body);
    for (const p of ['/api/status', '/api/graph', '/api/edges/x/connections', '/api/external', '/api/localities', '/', '/ui/app.js', '/ui/vendor/cytoscape.min.js']) {
      assert.equal((await get(metrics, p)).status, 404, `${p} on the metrics listener`);
    }
  });

  test('the main listener serves the API, the UI and health, not /metrics', async () => {
    assert.equal((await get(main, '/metrics')).status, 404);
    assert.equal((await get(main, '/api/status')).status, 200);
    assert.equal((await get(main, '/')).status, 200);
    assert.equal((await get(main, '/healthz')).status, 200);
    assert.equal((await get(main, '/readyz')).status, 200);
  });

  test('real connections are counted exactly in the metrics served there', async () => {
    const server = new Peer('mlsrv', ['server', '--host', net.b.ipv4, '--port', String(port), '--send', '7', '--count', '2'], { netns: net.b.ns });
    await server.waitFor('listening');
    for (const n of [100, 2000]) {
      const c = new Peer('mlcli', ['client', '--host', net.b.ipv4, '--port', String(port), '--send', String(n)], { netns: net.a.ns });
      await c.waitFor('done');
    }
    const edge = { source: 'process:mlcli', destination: net.b.ipv4, port: String(port), observed_by: 'client' };
    const deadline = Date.now() + 15_000;
    let text = '';
    for (;;) {
      text = (await get(metrics, '/metrics')).body;
      if (metricSum(text, 'bpfagent_tcp_connections_total', edge) === 2) break;
      if (Date.now() > deadline) assert.fail(`2 connections never appeared:\n${text.split('\n').filter((l) => l.includes('mlcli')).join('\n')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(metricSum(text, 'bpfagent_tcp_bytes_total', { ...edge, direction: 'sent' }), 2100);
    assert.equal(metricSum(text, 'bpfagent_tcp_bytes_total', { ...edge, direction: 'received' }), 14);
  });

  test('a metrics listen address in use: exit 2 naming metrics.listen, before any probe is attached', async () => {
    const busy = metrics.slice('http://'.length);
    const r = runOnce(['--listen', '127.0.0.1:0', '--metrics-listen', busy]);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(
      r.stderr.trimEnd().split('\n').pop(),
      `bpfagent: metrics.listen: cannot bind ${busy}: the address is in use (another bpfagent?); choose another with 'metrics.listen:' in the configuration`,
    );
    assert.ok(!r.stderr.includes('probes attached'), r.stderr);
  });
});
