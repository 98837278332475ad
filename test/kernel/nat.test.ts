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
import { Peer } from '../helpers/processes.js';

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
    const server = new Peer('tsrv-nat', ['server', '--host', net.b.ipv4, '--port', String(backendPort), '--send', '2049'], { netns: net.b.ns });
    await server.waitFor('listening');
    const client = new Peer('tcli-nat', ['client', '--host', clusterIp, '--port', '80', '--send', '8191'], { netns: net.a.ns });
    const { localPort } = await client.waitFor('connected');
    await client.waitFor('done');
    const [c] = await agent.waitFor((r) => r.direction === 'outbound' && r.local.pid === client.pid);
    const [s] = await agent.waitFor((r) => r.direction === 'inbound' && r.local.pid === server.pid);
    assert.deepEqual(c!.remote, { addr: clusterIp, port: 80, reached: { addr: net.b.ipv4, port: backendPort } });
    assert.deepEqual([c!.local.addr, c!.local.port, c!.bytesSent, c!.bytesReceived, c!.outcome], [net.a.ipv4, localPort, 8191, 2049, 'closed']);
    assert.deepEqual(s!.remote, { addr: net.a.ipv4, port: localPort }, 'the server sees the real client, and no DNAT of its own');
    assert.deepEqual([s!.local.addr, s!.local.port, s!.bytesReceived], [net.b.ipv4, backendPort, 8191]);
  });

  test('IPv4 in an IPv6 socket (::ffff:ClusterIP): the backend reached shown as IPv4', async () => {
    const p = backendPort + 50;
    net.exec(net.a, ['nft', 'add', 'rule', 'ip', 'bpfagent_test_nat', 'output', 'ip', 'daddr', clusterIp, 'tcp', 'dport', '81', 'dnat', 'to', `${net.b.ipv4}:${p}`]);
    const server = new Peer('tsrv-natmap', ['server', '--host', net.b.ipv4, '--port', String(p), '--send', '7'], { netns: net.b.ns });
    await server.waitFor('listening');
    const client = new Peer('tcli-natmap', ['client', '--host', `::ffff:${clusterIp}`, '--port', '81', '--send', '9'], { netns: net.a.ns });
    await client.waitFor('done');
    const [c] = await agent.waitFor((r) => r.direction === 'outbound' && r.local.pid === client.pid);
    assert.deepEqual(c!.remote, { addr: clusterIp, port: 81, reached: { addr: net.b.ipv4, port: p } });
    assert.deepEqual([c!.family, c!.local.addr, c!.bytesSent, c!.bytesReceived], [4, net.a.ipv4, 9, 7]);
  });

  test('a connection without DNAT has no reached', async () => {
    const p = backendPort + 100;
    const server = new Peer('tsrv-nonat', ['server', '--host', net.b.ipv4, '--port', String(p)], { netns: net.b.ns });
    await server.waitFor('listening');
    const client = new Peer('tcli-nonat', ['client', '--host', net.b.ipv4, '--port', String(p), '--send', '5'], { netns: net.a.ns });
    await client.waitFor('done');
    const [c] = await agent.waitFor((r) => r.direction === 'outbound' && r.local.pid === client.pid);
    assert.deepEqual(c!.remote, { addr: net.b.ipv4, port: p });
  });
});
