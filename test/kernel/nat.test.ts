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
import path from 'node:path';
import { Peer, REPO_ROOT } from '../helpers/processes.js';

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

describe('DNAT map full', { skip: KERNEL_SKIP }, () => {
  test('a connection whose DNAT destination was evicted (--max-nat-entries 16, 40 open at once) is counted; the others keep theirs', async () => {
    const net = new TestNetwork(10);
    const clusterIp = '10.96.78.10';
    const backendPort = 28000 + (process.pid % 100);
    const n = 40;
    let agent: TraceAgent | undefined;
    const peers: Peer[] = [];
    try {
      net.exec(net.a, ['ip', 'route', 'add', '10.96.0.0/16', 'dev', `${net.a.ns.slice(0, -1)}va`]);
      net.exec(net.a, ['nft', '-f', '-'], `table ip bpfagent_test_natfull {
  chain output {
    type nat hook output priority -100; policy accept;
    ip daddr ${clusterIp} tcp dport 80 dnat to ${net.b.ipv4}:${backendPort}
  }
}`);
      agent = new TraceAgent(['--max-nat-entries', '16', '--interval', '600s']);
      await agent.ready;
      const server = new Peer('tl-natfull', [path.join(REPO_ROOT, 'test/helpers/tcp-listen.py'), 'tl-natfull', net.b.ipv4, String(backendPort), '--accept'], { netns: net.b.ns, script: 'python3' });
      peers.push(server);
      await server.waitFor('listening');
      // n connections open at once, each with its DNAT destination waiting in the map; then all closed
      const many = `
import json, socket, sys
socks = [socket.create_connection(("${clusterIp}", 80)) for _ in range(${n})]
print(json.dumps({"event": "connected", "ports": [s.getsockname()[1] for s in socks]}), flush=True)
sys.stdin.readline()
for s in socks: s.close()
print(json.dumps({"event": "done"}), flush=True)
`;
      const client = new Peer('tcli-natfull', ['-c', many], { netns: net.a.ns, script: 'python3' });
      peers.push(client);
      const { ports } = (await client.waitFor('connected')) as unknown as { ports: number[] };
      client.command('close');
      await client.waitFor('done');
      const mine = new Set(ports);
      const records = await agent.waitFor((r) => r.direction === 'outbound' && r.local.netns === net.a.netnsInode && mine.has(r.local.port), n);
      const exit = await agent.stop();
      agent = undefined;
      assert.equal(exit.code, 0, exit.stderr);
      const kept = records.filter((r) => r.remote.reached !== undefined);
      const lost = records.length - kept.length;
      for (const r of kept) assert.deepEqual(r.remote, { addr: clusterIp, port: 80, reached: { addr: net.b.ipv4, port: backendPort } });
      assert.ok(lost >= n - 16, `at most 16 destinations held at once, ${kept.length} of ${n} kept theirs`);
      // every record without its destination is counted (other connections on this host may add to the count)
      assert.ok((exit.summary!['lossDnatEvicted'] as number) >= lost, `lossDnatEvicted ${exit.summary!['lossDnatEvicted']} < ${lost}`);
      assert.match(exit.stderr, /dnat evicted [1-9]/);
    } finally {
      for (const p of peers) p.kill();
      await agent?.stop();
      net.destroy();
    }
  });
});
