/**
 * `bpfagent run` scraped by a real Prometheus (Debian's) while real TCP
 * traffic runs between two test hosts: PromQL through Prometheus's HTTP API
 * returns the edge's exact connection and byte counts. Health endpoints;
 * graceful stop; a bad configuration or a port in use: exit 2, nothing bound
 * or attached.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer } from '../helpers/processes.js';
import { configFile, freePort, listening, Prometheus, PROMETHEUS_BIN, RunAgent, runOnce } from '../helpers/run-agent.js';

const SKIP = KERNEL_SKIP || (!existsSync(PROMETHEUS_BIN) && process.env.CI !== 'true' ? `${PROMETHEUS_BIN} missing (bash scripts/install.sh --test)` : false);

describe('bpfagent run, scraped by Prometheus', { skip: SKIP }, () => {
  let agent: RunAgent;
  let prom: Prometheus;
  let net: TestNetwork;
  const port = 31000 + (process.pid % 100) * 4;

  before(async () => {
    net = new TestNetwork(17);
    agent = new RunAgent('listen: 127.0.0.1:0\ninterval: 1s\nlogLevel: info\nshutdownTimeout: 5s\nmetrics:\n  maxSeriesPerMetric: 500\n');
    const ready = await agent.ready;
    // the first line with "ready" in it is the one announcing the probes attached
    assert.match(String(ready.msg), /^ready: probes attached/);
    assert.equal(typeof ready.attach, 'string');
    prom = await Prometheus.start([String(ready.listen)]);
  });

  after(async () => {
    await prom?.stop();
    const exit = await agent?.stop('SIGTERM');
    net?.destroy();
    assert.equal(exit?.code, 0, exit?.stderr);
    assert.ok(exit?.summary, `a summary line: ${exit?.stderr}`);
  });

  test('/healthz and /readyz answer 200 once ready; /metrics is Prometheus text', async () => {
    assert.deepEqual(await agent.get('/healthz'), { status: 200, body: '{"status":"ok"}' });
    const ready = await agent.get('/readyz');
    assert.equal(ready.status, 200, ready.body);
    assert.deepEqual(JSON.parse(ready.body), { status: 'ready', checks: { probes: true, tracing: true } });
    const metrics = await agent.get('/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^# TYPE bpfagent_tcp_connections_total counter$/m);
    assert.match(metrics.body, /^bpfagent_process_resident_memory_bytes \d+/m);
  });

  test('three calls and a refused one: PromQL returns the exact connections and bytes of the edge, each side', async () => {
    const server = new Peer('psrv', ['server', '--host', net.b.ipv4, '--port', String(port), '--send', '11', '--count', '3'], { netns: net.b.ns });
    await server.waitFor('listening');
    for (const n of [1000, 20_000, 300_001]) {
      const c = new Peer('pcli', ['client', '--host', net.b.ipv4, '--port', String(port), '--send', String(n)], { netns: net.a.ns });
      await c.waitFor('done');
    }
    const refused = new Peer('pcli', ['client', '--host', net.b.ipv4, '--port', String(port + 1)], { netns: net.a.ns });
    await refused.waitFor('error');

    const client = `source="process:pcli",destination="${net.b.ipv4}",port="${port}",observed_by="client"`;
    const equals = (v: number) => (r: Array<{ value: number }>) => r.length === 1 && r[0]!.value === v;
    await prom.until(`sum(bpfagent_tcp_connections_total{${client}})`, equals(3));
    await prom.until(`sum(bpfagent_tcp_bytes_total{${client},direction="sent"})`, equals(321_001));
    await prom.until(`sum(bpfagent_tcp_bytes_total{${client},direction="received"})`, equals(33));
    await prom.until(`sum(bpfagent_tcp_rtt_seconds_count{${client}})`, equals(3));
    // the labels Prometheus stored: protocol, locality, the server port; no client port anywhere
    const [series] = await prom.query(`bpfagent_tcp_connections_total{${client}}`);
    assert.equal(series?.metric.protocol, 'tcp');
    assert.equal(series?.metric.job, 'bpfagent');

    const serverSide = `source="${net.a.ipv4}",destination="process:psrv",port="${port}",observed_by="server"`;
    await prom.until(`sum(bpfagent_tcp_connections_total{${serverSide}})`, equals(3));
    await prom.until(`sum(bpfagent_tcp_bytes_total{${serverSide},direction="sent"})`, equals(321_001));

    const failed = `source="process:pcli",destination="${net.b.ipv4}",port="${String(port + 1)}"`;
    await prom.until(`sum(bpfagent_tcp_connections_failed_total{${failed},outcome="refused"})`, equals(1));
    await prom.until(`sum(bpfagent_tcp_connections_total{${failed}})`, equals(1));

    // the agent's own health, through Prometheus too
    await prom.until('bpfagent_events_read_total{kind="tcp_connection"}', (r) => r.length === 1 && r[0]!.value >= 7);
    await prom.until('sum(bpfagent_events_lost_total)', equals(0));
    await prom.until('bpfagent_process_resident_memory_bytes', (r) => r.length === 1 && r[0]!.value > 1e6);
  });

  test('UDP datagrams: PromQL returns the exact packets and bytes each way', async () => {
    const server = new Peer('pusrv', ['server', '--host', net.b.ipv4, '--port', String(port + 2), '--expect', '3', '--reply-sizes', '5'],
      { netns: net.b.ns, script: 'udp-peer' });
    await server.waitFor('listening');
    const client = new Peer('pucli', ['client', '--to', `${net.b.ipv4}:${port + 2}`, '--sizes', '100,200,300', '--expect-replies', '1'],
      { netns: net.a.ns, script: 'udp-peer' });
    await client.waitFor('done');
    const edge = `source="process:pucli",destination="${net.b.ipv4}",port="${port + 2}",protocol="udp",observed_by="client"`;
    const equals = (v: number) => (r: Array<{ value: number }>) => r.length === 1 && r[0]!.value === v;
    await prom.until(`sum(bpfagent_udp_packets_total{${edge},direction="sent"})`, equals(3));
    await prom.until(`sum(bpfagent_udp_packets_total{${edge},direction="received"})`, equals(1));
    await prom.until(`sum(bpfagent_udp_bytes_total{${edge},direction="sent"})`, equals(600));
    await prom.until(`sum(bpfagent_udp_bytes_total{${edge},direction="received"})`, equals(5));
  });

  test('a bad configuration file: exit 2, one line naming file, key, value and form; nothing bound', async () => {
    const free = await freePort();
    const f = configFile(`listen: 127.0.0.1:${free}\ntrace:\n  maxConnections: "lots"\n`);
    const r = runOnce(['--config', f]);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `bpfagent: config: ${f}: trace.maxConnections: got "lots", expected a whole number from 16 to 16777216\n`);
    assert.equal(await listening(free), false);
  });

  test('an unknown key, a wrong type, a bad flag, a bad variable: exit 2, one line each', () => {
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [['--config', configFile('intervall: 1s\n')], {}, /: intervall: unknown key, expected one of: /],
      [['--config', configFile('interval: [1s]\n')], {}, /: interval: got \["1s"\], expected a duration from 100ms to 1h, such as 10s$/],
      [['--ringbuf-size', '3000'], {}, /^bpfagent: config: --ringbuf-size: trace.ringbufSize: got "3000", expected a power of two/],
      [['--frobnicate'], {}, /^bpfagent: run: unknown option '--frobnicate'; see 'bpfagent run --help'$/],
      [[], { BPFAGENT_INTERVAL: 'soon' }, /^bpfagent: config: BPFAGENT_INTERVAL: interval: got "soon", expected a duration/],
    ];
    for (const [args, env, re] of cases) {
      const r = runOnce(args, env);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, re);
    }
  });

  test('a listen address in use: exit 2 naming it, before any probe is attached', async () => {
    const busy = String((await agent.ready).listen);
    const r = runOnce(['--listen', busy]);
    assert.equal(r.status, 2, r.stderr);
    const last = r.stderr.trimEnd().split('\n').pop()!;
    assert.equal(last, `bpfagent: listen: cannot bind ${busy}: the address is in use (another bpfagent?); choose another with --listen or 'listen:' in the configuration`);
    assert.ok(!r.stderr.includes('ready'), r.stderr);
    assert.ok(!r.stderr.includes('probes attached'), r.stderr);
  });
});
