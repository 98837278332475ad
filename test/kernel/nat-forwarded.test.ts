/**
 * The real destination behind a DNAT done on another hop, as kube-proxy does
 * for a pod: client "pod" A dials a "ClusterIP"; "node" N, which routes
 * between A and backend "pod" B, rewrites it in its PREROUTING hook to B.
 * The client's namespace never sees the backend's address.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TraceAgent } from '../helpers/agent.js';
import { RoutedNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer } from '../helpers/processes.js';
import { traceConnection } from '../helpers/trace-connection.js';

describe('DNAT on a forwarding hop', { skip: KERNEL_SKIP }, () => {
  let agent: TraceAgent;
  let net: RoutedNetwork;
  const clusterIp = '10.97.21.10';
  const clusterIp6 = 'fd00:97:21::10';
  const backendPort = 27300 + (process.pid % 100);
  const closedPort = backendPort + 200; // nothing listens there in B

  before(async () => {
    net = new RoutedNetwork(1);
    // kube-proxy's form (nftables mode): DNAT in the node's nat prerouting chain
    const rules = `table ip bpfagent_test_fwd {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr ${clusterIp} tcp dport 80 dnat to ${net.b.ipv4}:${backendPort}
    ip daddr ${clusterIp} tcp dport 81 dnat to ${net.b.ipv4}:${closedPort}
  }
}
table ip6 bpfagent_test_fwd6 {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip6 daddr ${clusterIp6} tcp dport 80 dnat to [${net.b.ipv6}]:${backendPort}
  }
}`;
    net.exec(net.n, ['nft', '-f', '-'], rules);
    agent = new TraceAgent();
    await agent.ready;
  });

  after(async () => {
    const exit = await agent?.stop();
    net?.destroy();
    assert.equal(exit?.code, 0, exit?.stderr);
  });

  test('the client record keeps the ClusterIP dialled and adds the backend reached; the server sees the client', async () => {
    const { c, s, localPort } = await traceConnection(
      agent,
      'fwd',
      { host: net.b.ipv4, port: backendPort, netns: net.b.ns, send: 3001 },
      { host: clusterIp, port: 80, netns: net.a.ns, send: 7777 },
    );
    assert.deepEqual(c!.remote, { addr: clusterIp, port: 80, reached: { addr: net.b.ipv4, port: backendPort } });
    assert.deepEqual(
      [c!.family, c!.local.addr, c!.local.port, c!.local.netns, c!.bytesSent, c!.bytesReceived, c!.outcome],
      [4, net.a.ipv4, localPort, net.a.netnsInode, 7777, 3001, 'closed'],
    );
    assert.deepEqual(s!.remote, { addr: net.a.ipv4, port: localPort }, 'the server sees the real client, and no DNAT of its own');
    assert.deepEqual(
      [s!.local.addr, s!.local.port, s!.local.netns, s!.bytesSent, s!.bytesReceived],
      [net.b.ipv4, backendPort, net.b.netnsInode, 3001, 7777],
    );
  });

  test('IPv6: the same through an ip6 DNAT rule', async () => {
    const { c, s, localPort } = await traceConnection(
      agent,
      'fwd6',
      { host: net.b.ipv6, port: backendPort, netns: net.b.ns, send: 33 },
      { host: clusterIp6, port: 80, netns: net.a.ns, send: 44 },
    );
    assert.deepEqual(c!.remote, { addr: clusterIp6, port: 80, reached: { addr: net.b.ipv6, port: backendPort } });
    assert.deepEqual([c!.family, c!.local.addr, c!.bytesSent, c!.bytesReceived], [6, net.a.ipv6, 44, 33]);
    assert.deepEqual(s!.remote, { addr: net.a.ipv6, port: localPort });
  });

  test('IPv4 in an IPv6 socket (::ffff:ClusterIP): shown as IPv4 on every address', async () => {
    const { c } = await traceConnection(
      agent,
      'fwdmap',
      { host: net.b.ipv4, port: backendPort, netns: net.b.ns, send: 55 },
      { host: `::ffff:${clusterIp}`, port: 80, netns: net.a.ns, send: 66 },
      { inbound: false },
    );
    assert.deepEqual(c!.remote, { addr: clusterIp, port: 80, reached: { addr: net.b.ipv4, port: backendPort } });
    assert.deepEqual([c!.family, c!.local.addr, c!.bytesSent, c!.bytesReceived], [4, net.a.ipv4, 66, 55]);
  });

  test('a refused attempt names the backend that refused it', async () => {
    const client = new Peer('tcli-fwdref', ['client', '--host', clusterIp, '--port', '81'], { netns: net.a.ns });
    const err = await client.waitFor('error');
    assert.equal(err['code'], 'ECONNREFUSED');
    const [c] = await agent.waitFor((r) => r.direction === 'outbound' && r.local.pid === client.pid);
    assert.equal(c!.outcome, 'refused');
    assert.deepEqual(c!.remote, { addr: clusterIp, port: 81, reached: { addr: net.b.ipv4, port: closedPort } });
  });

  test('a connection routed through the node without DNAT has no reached', async () => {
    const p = backendPort + 100;
    const { c, s, localPort } = await traceConnection(
      agent,
      'fwdno',
      { host: net.b.ipv4, port: p, netns: net.b.ns, send: 5 },
      { host: net.b.ipv4, port: p, netns: net.a.ns, send: 6 },
    );
    assert.deepEqual(c!.remote, { addr: net.b.ipv4, port: p });
    assert.deepEqual([c!.bytesSent, c!.bytesReceived], [6, 5]);
    assert.deepEqual(s!.remote, { addr: net.a.ipv4, port: localPort });
  });

  for (const mode of ['raw_tp', 'tracepoint'] as const) {
    test(`--attach ${mode}: the backend reached is found too`, async () => {
      const other = new TraceAgent(['--attach', mode]);
      try {
        assert.equal((await other.ready)['attach'], mode);
        const { c } = await traceConnection(
          other,
          'fwdm',
          { host: net.b.ipv4, port: backendPort, netns: net.b.ns, send: 12 },
          { host: clusterIp, port: 80, netns: net.a.ns, send: 21 },
          { inbound: false },
        );
        assert.deepEqual(c!.remote, { addr: clusterIp, port: 80, reached: { addr: net.b.ipv4, port: backendPort } });
        assert.deepEqual([c!.bytesSent, c!.bytesReceived], [21, 12]);
      } finally {
        const exit = await other.stop();
        assert.equal(exit.code, 0, exit.stderr);
      }
    });
  }
});

describe('forwarded SYNs map full', { skip: KERNEL_SKIP }, () => {
  test('forwarded SYNs evicted from fwd_syns (--max-nat-entries 16, 40 in flight at once) are counted; the connections that kept theirs name the backend', async () => {
    const net = new RoutedNetwork(2);
    const clusterIp = '10.97.22.10';
    const backendPort = 27600 + (process.pid % 100);
    const n = 40;
    let agent: TraceAgent | undefined;
    let client: Peer | undefined;
    try {
      net.exec(net.n, ['nft', '-f', '-'], `table ip bpfagent_test_fwdfull {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr ${clusterIp} tcp dport 80 dnat to ${net.b.ipv4}:${backendPort}
  }
}`);
      // B drops the SYNs: no SYN-ACK, no reset, so every forwarded SYN waits in fwd_syns until its attempt is given up
      net.exec(net.b, ['nft', '-f', '-'], `table ip bpfagent_test_fwdfull_drop {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport ${backendPort} drop
  }
}`);
      agent = new TraceAgent(['--max-nat-entries', '16', '--interval', '600s']);
      await agent.ready;
      // n attempts at once, given up after 300 ms, before the first SYN is sent again (1 s)
      const many = `
import json, socket, sys, time
socks = []
for _ in range(${n}):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("${clusterIp}", 80))
    socks.append(s)
time.sleep(0.3)
ports = [s.getsockname()[1] for s in socks]
for s in socks: s.close()
print(json.dumps({"event": "done", "ports": ports}), flush=True)
`;
      client = new Peer('tcli-fwdfull', ['-c', many], { netns: net.a.ns, script: 'python3' });
      const { ports } = (await client.waitFor('done')) as unknown as { ports: number[] };
      const mine = new Set(ports);
      const records = await agent.waitFor((r) => r.direction === 'outbound' && r.local.netns === net.a.netnsInode && mine.has(r.local.port), n);
      const exit = await agent.stop();
      agent = undefined;
      assert.equal(exit.code, 0, exit.stderr);
      assert.equal(records.length, n);
      const kept = records.filter((r) => r.remote.reached !== undefined);
      for (const r of kept) assert.deepEqual(r.remote, { addr: clusterIp, port: 80, reached: { addr: net.b.ipv4, port: backendPort } });
      const missing = n - kept.length;
      assert.ok(kept.length > 0 && missing >= n - 16, `at most 16 SYNs held at once: ${kept.length} of ${n} kept theirs`);
      // every attempt without its backend is counted (other hosts' forwarded SYNs on this machine may add to the count)
      assert.ok((exit.summary!['fwdSynsEvicted'] as number) >= missing, `fwdSynsEvicted ${exit.summary!['fwdSynsEvicted']} < ${missing}`);
      assert.match(exit.stderr, /forwarded syn evicted [1-9]/);
    } finally {
      client?.kill();
      await agent?.stop();
      net.destroy();
    }
  });
});
