/**
 * The real destination behind DNAT: a client dials a "ClusterIP" that an
 * nftables rule in its namespace (as kube-proxy's nat OUTPUT rules do)
 * rewrites to a backend in another host.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TraceAgent } from '../helpers/agent.js';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { traceConnection } from '../helpers/trace-connection.js';

describe('DNAT', { skip: KERNEL_SKIP }, () => {
  let agent: TraceAgent;
  let net: TestNetwork;
  const clusterIp = '10.96.77.10';
  const backendPort = 27000 + (process.pid % 100);

  before(async () => {
    net = new TestNetwork(3);
    // a route for the service range, and the rule that sends clusterIp:80 to the backend in host B
    net.exec(net.a, ['ip', 'route', 'add', '10.96.0.0/16', 'dev', `${net.a.ns.slice(0, -1)}va`]);
    const rules = `table ip bpfagent_test_nat {
  chain output {
    type nat hook output priority -100; policy accept;
    ip daddr ${clusterIp} tcp dport 80 dnat to ${net.b.ipv4}:${backendPort}
  }
}`;
    net.exec(net.a, ['nft', '-f', '-'], rules);
    agent = new TraceAgent();
    await agent.ready;
  });

  after(async () => {
    const exit = await agent?.stop();
    net?.destroy();
    assert.equal(exit?.code, 0, exit?.stderr);
  });

  test('the record keeps the address dialled and adds the backend reached; bytes exact on both ends', async () => {
    const { c, s, localPort } = await traceConnection(
      agent,
      'nat',
      { host: net.b.ipv4, port: backendPort, netns: net.b.ns, send: 2049 },
      { host: clusterIp, port: 80, netns: net.a.ns, send: 8191 },
    );
    assert.deepEqual(c!.remote, { addr: clusterIp, port: 80, reached: { addr: net.b.ipv4, port: backendPort } });
    assert.deepEqual([c!.local.addr, c!.local.port, c!.bytesSent, c!.bytesReceived, c!.outcome], [net.a.ipv4, localPort, 8191, 2049, 'closed']);
    assert.deepEqual(s!.remote, { addr: net.a.ipv4, port: localPort }, 'the server sees the real client, and no DNAT of its own');
    assert.deepEqual([s!.local.addr, s!.local.port, s!.bytesReceived], [net.b.ipv4, backendPort, 8191]);
  });

  test('IPv4 in an IPv6 socket (::ffff:ClusterIP): the backend reached shown as IPv4', async () => {
    const p = backendPort + 50;
    net.exec(net.a, ['nft', 'add', 'rule', 'ip', 'bpfagent_test_nat', 'output', 'ip', 'daddr', clusterIp, 'tcp', 'dport', '81', 'dnat', 'to', `${net.b.ipv4}:${p}`]);
    const { c } = await traceConnection(
      agent,
      'natmap',
      { host: net.b.ipv4, port: p, netns: net.b.ns, send: 7 },
      { host: `::ffff:${clusterIp}`, port: 81, netns: net.a.ns, send: 9 },
      { inbound: false },
    );
    assert.deepEqual(c!.remote, { addr: clusterIp, port: 81, reached: { addr: net.b.ipv4, port: p } });
    assert.deepEqual([c!.family, c!.local.addr, c!.bytesSent, c!.bytesReceived], [4, net.a.ipv4, 9, 7]);
  });

  test('a connection without DNAT has no reached', async () => {
    const p = backendPort + 100;
    const { c } = await traceConnection(
      agent,
      'nonat',
      { host: net.b.ipv4, port: p, netns: net.b.ns },
      { host: net.b.ipv4, port: p, netns: net.a.ns, send: 5 },
      { inbound: false },
    );
    assert.deepEqual(c!.remote, { addr: net.b.ipv4, port: p });
  });
});
