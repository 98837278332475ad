/**
 * UDP flows and DNS names with real packets between test hosts: exact
 * datagram and byte counts on both ends, a real DNS server answering for the
 * test network, and TCP records named after what the client looked up.
 */
import dgram from 'node:dgram';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TraceAgent } from '../helpers/agent.js';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer, REPO_ROOT } from '../helpers/processes.js';
import { flowTotals as totalsOf, sum, type Totals } from '../helpers/udp-totals.js';
import type { UdpRecord } from '../../src/events/records.js';

const UDP_SHARED = path.join(REPO_ROOT, 'test/helpers/udp-shared.py');

describe('UDP flows and DNS', { skip: KERNEL_SKIP }, () => {
  let agent: TraceAgent;
  let net: TestNetwork;
  // below the ephemeral range (32768+), so no unrelated connection shares them
  let nextPort = 25000 + (process.pid % 100) * 20;
  const port = (): number => nextPort++;

  before(async () => {
    net = new TestNetwork(2);
    agent = new TraceAgent(['--interval', '500ms']);
    await agent.ready;
  });

  after(async () => {
    const exit = await agent?.stop('SIGTERM');
    net?.destroy();
    assert.equal(exit?.code, 0, exit?.stderr);
    const s = exit!.summary!;
    assert.equal(s['udpEvicted'], 0);
    assert.equal(s['lossDnsRingbufFull'], 0);
    assert.equal(s['decodeErrors'], 0);
  });

  const flowTotals = (pred: (r: UdpRecord) => boolean, want: Totals, what: string): Promise<UdpRecord[]> => totalsOf(agent, pred, want, what);

  test('datagrams between namespaces: exact packets and bytes on both ends, right pids', async () => {
    const p = port();
    const server = new Peer('usrv', ['server', '--host', net.b.ipv4, '--port', String(p), '--expect', '5', '--reply-sizes', '3,71'],
      { netns: net.b.ns, script: 'udp-peer' });
    await server.waitFor('listening');
    const client = new Peer('ucli', ['client', '--to', `${net.b.ipv4}:${p}`, '--sizes', '17,1001,333,1400,5', '--expect-replies', '2'],
      { netns: net.a.ns, script: 'udp-peer' });
    const { localPort } = await client.waitFor('done');
    await server.waitFor('done');

    const cli = await flowTotals(
      (r) => r.local.pid === client.pid && r.local.port === localPort && r.remote.port === p,
      { packetsSent: 5, bytesSent: 17 + 1001 + 333 + 1400 + 5, packetsReceived: 2, bytesReceived: 74 },
      'client flow totals',
    );
    const srv = await flowTotals(
      (r) => r.local.pid === server.pid && r.local.port === p && r.remote.port === localPort,
      { packetsSent: 2, bytesSent: 74, packetsReceived: 5, bytesReceived: 2756 },
      'server flow totals',
    );
    for (const r of cli) {
      assert.deepEqual([r.family, r.local.addr, r.local.comm, r.local.netns, r.remote.addr], [4, net.a.ipv4, 'ucli', net.a.netnsInode, net.b.ipv4]);
      assert.ok(r.packetsSent + r.packetsReceived > 0, 'a flow is only reported for intervals with traffic');
      assert.ok(r.intervalMs > 0 && r.intervalMs < 5000);
    }
    for (const r of srv) assert.deepEqual([r.local.addr, r.local.comm, r.local.netns, r.remote.addr], [net.b.ipv4, 'usrv', net.b.netnsInode, net.a.ipv4]);
    assert.deepEqual([...new Set(cli.map((r) => r.direction))], ['outbound']);
    assert.deepEqual([...new Set(srv.map((r) => r.direction))], ['inbound']);
  });

  test('client and server told apart by who sent first, not by port numbers', async () => {
    // a server on a high port (no port rule can tell it from its client's), and a client that bound its own high port
    const high = 61000 + (process.pid % 100) * 20;
    const server = new Peer('usrvhi', ['server', '--host', net.b.ipv4, '--port', String(high), '--expect', '2', '--reply-sizes', '4,4'],
      { netns: net.b.ns, script: 'udp-peer' });
    await server.waitFor('listening');
    const client = new Peer('uclihi', ['client', '--to', `${net.b.ipv4}:${high}`, '--sizes', '8,8', '--expect-replies', '2'],
      { netns: net.a.ns, script: 'udp-peer' });
    const { localPort } = await client.waitFor('done');
    const totals = { packetsSent: 2, bytesSent: 16, packetsReceived: 2, bytesReceived: 8 };
    const cli = await flowTotals((r) => r.local.pid === client.pid && r.remote.port === high, totals, 'client of a high port');
    const srv = await flowTotals((r) => r.local.pid === server.pid && r.remote.port === localPort,
      { packetsSent: 2, bytesSent: 8, packetsReceived: 2, bytesReceived: 16 }, 'server on a high port');
    assert.deepEqual([...new Set(cli.map((r) => r.direction)), ...new Set(srv.map((r) => r.direction))], ['outbound', 'inbound']);

    const low = port();
    const lowServer = new Peer('usrvlo', ['server', '--host', '127.0.0.1', '--port', String(low), '--expect', '1'], { script: 'udp-peer' });
    await lowServer.waitFor('listening');
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(high + 1, '127.0.0.1', r)); // its own port, in the ephemeral range
    await new Promise<void>((r) => sock.send(Buffer.alloc(3), low, '127.0.0.1', () => r()));
    await lowServer.waitFor('done');
    sock.close();
    const own = await flowTotals((r) => r.local.pid === process.pid && r.local.port === high + 1 && r.remote.port === low,
      { packetsSent: 1, bytesSent: 3, packetsReceived: 0, bytesReceived: 0 }, 'a client that bound its port');
    const lowSrv = await flowTotals((r) => r.local.pid === lowServer.pid && r.local.port === low,
      { packetsSent: 0, bytesSent: 0, packetsReceived: 1, bytesReceived: 3 }, 'its server');
    assert.deepEqual([...new Set(own.map((r) => r.direction)), ...new Set(lowSrv.map((r) => r.direction))], ['outbound', 'inbound']);
  });

  test('a datagram corked over several sends counts once; a send split by UDP_SEGMENT counts each datagram', async () => {
    const p = port();
    const server = new Peer('usrvgso', ['server', '--host', net.b.ipv4, '--port', String(p), '--expect', '4'], { netns: net.b.ns, script: 'udp-peer' });
    await server.waitFor('listening');
    const to = `('${net.b.ipv4}', ${p})`;
    const script = [
      'import json, socket',
      'a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      `a.sendto(b"x" * 5, socket.MSG_MORE, ${to})`,
      `a.sendto(b"y" * 6, socket.MSG_MORE, ${to})`,
      `a.sendto(b"z" * 7, ${to})`,
      'b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      'b.setsockopt(socket.SOL_UDP, 103, 1000)  # UDP_SEGMENT',
      `b.sendto(b"w" * 2500, ${to})`,
      'print(json.dumps({"event": "done", "corked": a.getsockname()[1], "segmented": b.getsockname()[1]}), flush=True)',
    ].join('\n');
    const client = new Peer('ugso', ['-c', script], { netns: net.a.ns, script: 'python3' });
    const { corked, segmented } = (await client.waitFor('done')) as unknown as { corked: number; segmented: number };
    const got = await server.waitFor('done');
    assert.deepEqual([got['received'], got['bytes']], [4, 18 + 2500], 'the server read one corked datagram and three segments');
    const none = { packetsReceived: 0, bytesReceived: 0 };
    // every send of the corked datagram with its peer (the sends after the first skip the kernel's sock_addr hook)
    await flowTotals((r) => r.local.pid === client.pid && r.local.port === corked && r.remote.port === p, { packetsSent: 1, bytesSent: 18, ...none }, 'corked datagram');
    await flowTotals((r) => r.local.pid === client.pid && r.local.port === segmented && r.remote.port === p, { packetsSent: 3, bytesSent: 2500, ...none }, 'segmented send');
    await flowTotals((r) => r.local.pid === server.pid && r.local.port === p && r.remote.port === segmented,
      { packetsSent: 0, bytesSent: 0, packetsReceived: 3, bytesReceived: 2500 }, 'segments read');
  });

  test('an unconnected socket sending to two peers: one flow per peer', async () => {
    const [p1, p2] = [port(), port()];
    const s1 = new Peer('usrv1', ['server', '--host', net.b.ipv4, '--port', String(p1), '--expect', '2'], { netns: net.b.ns, script: 'udp-peer' });
    const s2 = new Peer('usrv2', ['server', '--host', net.b.ipv4, '--port', String(p2), '--expect', '2'], { netns: net.b.ns, script: 'udp-peer' });
    await Promise.all([s1.waitFor('listening'), s2.waitFor('listening')]);
    const client = new Peer('ucli2', ['client', '--to', `${net.b.ipv4}:${p1},${net.b.ipv4}:${p2}`, '--sizes', '100,200,300,400'],
      { netns: net.a.ns, script: 'udp-peer' });
    const { localPort } = await client.waitFor('done');
    const mine = (rp: number) => (r: UdpRecord) => r.local.pid === client.pid && r.local.port === localPort && r.remote.port === rp;
    await flowTotals(mine(p1), { packetsSent: 2, bytesSent: 400, packetsReceived: 0, bytesReceived: 0 }, 'flow to the first peer');
    await flowTotals(mine(p2), { packetsSent: 2, bytesSent: 600, packetsReceived: 0, bytesReceived: 0 }, 'flow to the second peer');
  });

  test('one unconnected socket used by two processes at once: each datagram counted with its own peer', async (t) => {
    const N = 5000;
    const [p1, p2] = [port(), port()];
    const s1 = new Peer('ushr1', ['server', '--host', net.b.ipv4, '--port', String(p1), '--expect', String(N)], { netns: net.b.ns, script: 'udp-peer' });
    const s2 = new Peer('ushr2', ['server', '--host', net.b.ipv4, '--port', String(p2), '--expect', String(N)], { netns: net.b.ns, script: 'udp-peer' });
    // the senders count what they sent, which is the point; a datagram the servers' buffers dropped would keep them waiting
    t.after(() => [s1, s2].forEach((s) => s.kill()));
    await Promise.all([s1.waitFor('listening'), s2.waitFor('listening')]);
    const sender = new Peer('ushrs', [UDP_SHARED, 'send', net.b.ipv4, String(p1), String(p2), String(N)], { netns: net.a.ns, script: 'python3' });
    const { localPort } = await sender.waitFor('done', 30_000);
    const child = (await sender.waitFor('child')).pid;
    const none = { packetsReceived: 0, bytesReceived: 0 };
    const flow = (pid: number, rp: number) => (r: UdpRecord) => r.local.pid === pid && r.local.port === localPort && r.remote.port === rp;
    await flowTotals(flow(sender.pid, p1), { packetsSent: N, bytesSent: 10 * N, ...none }, 'the parent\'s flow');
    await flowTotals(flow(child, p2), { packetsSent: N, bytesSent: 20 * N, ...none }, 'the child\'s flow');
    assert.deepEqual([agent.udp(flow(sender.pid, p2)).length, agent.udp(flow(child, p1)).length], [0, 0], 'no datagram with the other\'s peer');

    // parent and child reading one socket, from two senders: every datagram read goes to its sender's flow
    const p = port();
    const reader = new Peer('ushrr', [UDP_SHARED, 'recv', net.b.ipv4, String(p)], { netns: net.b.ns, script: 'python3' });
    await reader.waitFor('listening');
    const c1 = new Peer('ushrc1', ['client', '--to', `${net.b.ipv4}:${p}`, '--sizes', Array(N).fill(10).join(',')], { netns: net.a.ns, script: 'udp-peer' });
    const c2 = new Peer('ushrc2', ['client', '--to', `${net.b.ipv4}:${p}`, '--sizes', Array(N).fill(20).join(',')], { netns: net.a.ns, script: 'udp-peer' });
    const [l1, l2] = (await Promise.all([c1.waitFor('done', 30_000), c2.waitFor('done', 30_000)])).map((e) => e['localPort'] as number);
    const done = await reader.waitFor('done', 30_000);
    const childReads = await reader.waitFor('child');
    const readers = [{ pid: reader.pid, received: done['received'] as number }, { pid: childReads.pid, received: childReads['received'] as number }];
    for (const { pid, received } of readers) {
      assert.ok(received > 0, `process ${pid} read`);
      const from = (rp: number) => sum(agent.udp((r) => r.local.pid === pid && r.local.port === p && r.remote.port === rp));
      await agent.until(() => (from(l1!).packetsReceived + from(l2!).packetsReceived === received ? true : undefined), `reads of ${pid} counted`);
      const [t1, t2] = [from(l1!), from(l2!)];
      assert.equal(t1.bytesReceived, 10 * t1.packetsReceived, `the first sender's flow holds its 10-byte datagrams only: ${JSON.stringify(t1)}`);
      assert.equal(t2.bytesReceived, 20 * t2.packetsReceived, `the second sender's flow holds its 20-byte datagrams only: ${JSON.stringify(t2)}`);
    }
  });

  test('flows taking the per-CPU cache over from one another: counts stay exact', async () => {
    // a flow that takes the cache, one that takes it over, the first again, a third, the second again
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const [a, b, c] = [port(), port(), port()];
    const send = async (to: number, n: number, size: number): Promise<void> => {
      for (let i = 0; i < n; i++) await new Promise<void>((r) => sock.send(Buffer.alloc(size), to, '127.0.0.1', () => r()));
    };
    await send(a, 1, 10);
    await send(b, 300, 20);
    await send(a, 3, 10);
    await send(c, 500, 5);
    await send(b, 7, 20);
    const localPort = sock.address().port;
    sock.close();
    const mine = (rp: number) => (r: UdpRecord) => r.local.pid === process.pid && r.local.port === localPort && r.remote.port === rp;
    await flowTotals(mine(a), { packetsSent: 4, bytesSent: 40, packetsReceived: 0, bytesReceived: 0 }, 'flow a');
    await flowTotals(mine(b), { packetsSent: 307, bytesSent: 6140, packetsReceived: 0, bytesReceived: 0 }, 'flow b');
    await flowTotals(mine(c), { packetsSent: 500, bytesSent: 2500, packetsReceived: 0, bytesReceived: 0 }, 'flow c');
  });

  test('IPv6, connected socket', async () => {
    const p = port();
    const server = new Peer('usrv6', ['server', '--host', net.b.ipv6, '--port', String(p), '--expect', '3', '--reply-sizes', '9'],
      { netns: net.b.ns, script: 'udp-peer' });
    await server.waitFor('listening');
    const client = new Peer('ucli6', ['client', '--to', `[${net.b.ipv6}]:${p}`, '--sizes', '1,22,333', '--connect', '--expect-replies', '1'],
      { netns: net.a.ns, script: 'udp-peer' });
    const { localPort } = await client.waitFor('done');
    const [r] = await flowTotals(
      (r) => r.local.pid === client.pid && r.local.port === localPort,
      { packetsSent: 3, bytesSent: 356, packetsReceived: 1, bytesReceived: 9 },
      'IPv6 client flow',
    );
    assert.deepEqual([r!.family, r!.local.addr, r!.remote.addr, r!.remote.port], [6, net.a.ipv6, net.b.ipv6, p]);
  });

  describe('DNS names', () => {
    let dns: Peer;
    let web: Peer;
    let webPort: number;
    const addr = (last: number) => net.b.ipv4.replace(/\.2$/, `.${last}`);
    const addr6 = (last: number) => net.b.ipv6.replace(/::2$/, `::${last}`);

    before(async () => {
      for (const a of [addr(3), addr(4), addr(5), addr(6), addr6(3)]) net.addAddress(net.b, a);
      const zone = {
        'svc.test': [{ type: 'A', data: addr(3), ttl: 300 }],
        'alias.test': [{ type: 'CNAME', data: 'mid.test' }],
        'mid.test': [{ type: 'CNAME', data: 'real.test' }],
        'real.test': [{ type: 'A', data: addr(4), ttl: 120 }],
        'v6.test': [{ type: 'AAAA', data: addr6(3), ttl: 300 }],
        'short.test': [{ type: 'A', data: addr(5), ttl: 1 }],
        'tcpdns.test': [{ type: 'A', data: addr(6), ttl: 300 }],
      };
      dns = new Peer('tdns', ['--host', net.b.ipv4, '--zone', JSON.stringify(zone)], { netns: net.b.ns, script: 'dns-server' });
      await dns.waitFor('listening');
      webPort = port();
      web = new Peer('tweb', ['server', '--host', '::', '--port', String(webPort), '--count', '100'], { netns: net.b.ns });
      await web.waitFor('listening');
    });

    after(() => {
      dns?.kill();
      web?.kill();
    });

    /** Resolve in host A, then connect; returns the client's TCP record and DNS record. */
    async function lookupAndConnect(comm: string, name: string, extra: string[] = []) {
      const client = new Peer(comm, ['--dns', net.b.ipv4, '--name', name, '--port', String(webPort), ...extra],
        { netns: net.a.ns, script: 'resolve-connect' });
      await client.waitFor('done');
      const [lookup] = await agent.waitForDns((r) => r.local.pid === client.pid);
      const connected = client.events.find((e) => e.event === 'connected');
      const tcp = connected
        ? (await agent.waitFor((r) => r.local.pid === client.pid && r.direction === 'outbound' && r.remote.port === webPort))[0]
        : undefined;
      return { client, lookup: lookup!, tcp };
    }

    test('a name resolved, then connected to: the DNS record and remote.name on the TCP record', async () => {
      const { client, lookup, tcp } = await lookupAndConnect('tres-a', 'svc.test');
      assert.deepEqual(
        { query: lookup.query, qtype: lookup.qtype, rcode: lookup.rcode, answers: lookup.answers, transport: lookup.transport },
        { query: 'svc.test', qtype: 'A', rcode: 'NOERROR', answers: [{ name: 'svc.test', type: 'A', ttl: 300, data: addr(3) }], transport: 'udp' },
      );
      assert.deepEqual([lookup.local.pid, lookup.local.comm, lookup.local.addr, lookup.local.netns], [client.pid, 'tres-a', net.a.ipv4, net.a.netnsInode]);
      assert.deepEqual(lookup.remote, { addr: net.b.ipv4, port: 53 });
      assert.ok(lookup.latencyMs !== null && lookup.latencyMs >= 0 && lookup.latencyMs < 1000, `latency ${lookup.latencyMs}`);
      assert.deepEqual(tcp!.remote, { addr: addr(3), port: webPort, name: 'svc.test' });
    });

    test('CNAME chain: the name the client asked for wins', async () => {
      const { lookup, tcp } = await lookupAndConnect('tres-cn', 'alias.test');
      assert.deepEqual(lookup.answers.map((a) => [a.name, a.type, a.data]), [
        ['alias.test', 'CNAME', 'mid.test'],
        ['mid.test', 'CNAME', 'real.test'],
        ['real.test', 'A', addr(4)],
      ]);
      assert.deepEqual(tcp!.remote, { addr: addr(4), port: webPort, name: 'alias.test' });
    });

    test('AAAA: an IPv6 connection is named too', async () => {
      const { lookup, tcp } = await lookupAndConnect('tres-6', 'v6.test', ['--type', 'AAAA']);
      assert.deepEqual([lookup.qtype, lookup.answers[0]?.data], ['AAAA', addr6(3)]);
      assert.deepEqual([tcp!.family, tcp!.remote.addr, tcp!.remote.name], [6, addr6(3), 'v6.test']);
    });

    test('NXDOMAIN is recorded, with no answers', async () => {
      const { lookup, tcp } = await lookupAndConnect('tres-nx', 'missing.test');
      assert.deepEqual([lookup.query, lookup.rcode, lookup.answers], ['missing.test', 'NXDOMAIN', []]);
      assert.equal(tcp, undefined);
    });

    test('an answer whose TTL expired names nothing', async () => {
      const { lookup, tcp } = await lookupAndConnect('tres-ttl', 'short.test', ['--wait-ms', '2500']);
      assert.equal(lookup.answers[0]?.ttl, 1);
      assert.equal(tcp!.remote.addr, addr(5));
      assert.equal(tcp!.remote.name, undefined, 'the 1 s TTL had expired when the connection began');
    });

    test('DNS over TCP is seen too', async () => {
      const { lookup, tcp } = await lookupAndConnect('tres-tcp', 'tcpdns.test', ['--tcp-dns']);
      assert.deepEqual([lookup.transport, lookup.query, lookup.answers[0]?.data], ['tcp', 'tcpdns.test', addr(6)]);
      assert.equal(tcp!.remote.name, 'tcpdns.test');
    });

    test('names are per network namespace: the same address from another namespace stays unnamed', async () => {
      // host B never looked svc.test up; its own connection to that address gets no name
      const client = new Peer('tcli-ns', ['client', '--host', addr(3), '--port', String(webPort), '--send', '10'], { netns: net.b.ns });
      const { localPort } = await client.waitFor('connected');
      const [r] = await agent.waitFor((r) => r.local.pid === client.pid && r.local.port === localPort);
      assert.equal(r!.remote.addr, addr(3));
      assert.equal(r!.remote.name, undefined);
    });

    test('malformed DNS packets are counted and skipped; the agent carries on', async () => {
      const client = new Peer('tjunk', ['client', '--to', `${net.b.ipv4}:53`, '--sizes', '30,100,13'], { netns: net.a.ns, script: 'udp-peer' });
      await client.waitFor('done');
      // a proper lookup afterwards still works
      const { tcp } = await lookupAndConnect('tres-after', 'svc.test');
      assert.equal(tcp!.remote.name, 'svc.test');
    });
  });
});
