/**
 * Which end of a UDP flow is the client, with real datagrams between test
 * hosts: the end that sent a flow's first datagram is the client whatever
 * its port (a resolver on random low ports, a server on a high port, two
 * peers on high ports); ports decide only for a flow that began before the
 * agent did, and the record says which rule decided.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TraceAgent } from '../helpers/agent.js';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer } from '../helpers/processes.js';
import { decided, flowTotals, total } from '../helpers/udp-totals.js';
import type { UdpRecord } from '../../src/events/records.js';
import type { EdgeLine } from '../../src/cli/flows.js';

describe('UDP direction', { skip: KERNEL_SKIP }, () => {
  let agent: TraceAgent;
  let flows: TraceAgent;
  let net: TestNetwork;

  before(async () => {
    net = new TestNetwork(7);
    agent = new TraceAgent(['--interval', '500ms']);
    flows = new TraceAgent(['--interval', '500ms'], 'flows');
    await Promise.all([agent.ready, flows.ready]);
  });

  after(async () => {
    const [exit, flowsExit] = await Promise.all([agent?.stop('SIGTERM'), flows?.stop('SIGTERM')]);
    net?.destroy();
    assert.equal(exit?.code, 0, exit?.stderr);
    assert.equal(flowsExit?.code, 0, flowsExit?.stderr);
    assert.equal(exit!.summary!['udpEvicted'], 0);
  });

  const edges = (): EdgeLine[] => (flows.records as unknown as EdgeLine[]).filter((e) => e.proto === 'udp');

  test('a resolver on random ports below 32768 calling a server on 53: the client, whatever its port; one edge', async () => {
    const zone = { 'svc.test': [{ type: 'A', data: '10.9.9.9', ttl: 60 }] };
    const dns = new Peer('udirdns', ['--host', net.b.ipv4, '--zone', JSON.stringify(zone)], { netns: net.b.ns, script: 'dns-server' });
    try {
      await dns.waitFor('listening');
      const resolver = new Peer('udirres', ['--dns', net.b.ipv4, '--name', 'svc.test', '--count', '6'], { netns: net.a.ns, script: 'udp-resolver' });
      const { lookups } = (await resolver.waitFor('done')) as unknown as { lookups: { port: number; sent: number; received: number }[] };
      assert.equal(new Set(lookups.map((l) => l.port)).size, 6);
      for (const l of lookups) {
        assert.ok(l.port >= 1024 && l.port < 32768, `port ${l.port}`);
        const want = { packetsSent: 1, bytesSent: l.sent, packetsReceived: 1, bytesReceived: l.received };
        const mine = await flowTotals(agent, (r) => r.local.pid === resolver.pid && r.local.port === l.port, want, `lookup from port ${l.port}`);
        assert.deepEqual(decided(mine), ['outbound by first-datagram'], `the resolver's flow from port ${l.port}`);
        assert.deepEqual([mine[0]!.local.addr, mine[0]!.remote.addr, mine[0]!.remote.port], [net.a.ipv4, net.b.ipv4, 53]);
        const theirs = await flowTotals(agent, (r) => r.local.pid === dns.pid && r.remote.port === l.port,
          { packetsSent: 1, bytesSent: l.received, packetsReceived: 1, bytesReceived: l.sent }, `the server's side of port ${l.port}`);
        assert.deepEqual(decided(theirs), ['inbound by first-datagram']);
        assert.equal(theirs[0]!.local.port, 53);
      }

      // the flow table: one edge each side, keyed by the server's port; no resolver port keys an edge
      const sent = total(lookups.map((l) => l.sent));
      const received = total(lookups.map((l) => l.received));
      const ports = new Set(lookups.map((l) => l.port));
      const clientSide = (e: EdgeLine) => e.observedBy === 'client' && e.source.id === 'process:udirres';
      const serverSide = (e: EdgeLine) => e.observedBy === 'server' && e.destination.id === 'process:udirdns';
      await flows.until(() => {
        const t = edges().filter(clientSide).reduce((n, e) => n + e.packetsSent, 0);
        const s = edges().filter(serverSide).reduce((n, e) => n + e.packetsSent, 0);
        return t === 6 && s === 6 ? true : undefined;
      }, 'both sides of the lookups in the flow table', 15_000);
      for (const [side, pred] of [['client', clientSide], ['server', serverSide]] as const) {
        const lines = edges().filter(pred);
        assert.deepEqual([...new Set(lines.map((e) => `${e.source.id} -> ${e.destination.id}:${e.port}`))],
          [side === 'client' ? `process:udirres -> ${net.b.ipv4}:53` : `${net.a.ipv4} -> process:udirdns:53`], `one ${side}-side edge`);
        assert.deepEqual([total(lines.map((e) => e.bytesSent)), total(lines.map((e) => e.bytesReceived)), total(lines.map((e) => e.packetsReceived))],
          [sent, received, 6], `${side} side: caller-to-callee bytes, callee-to-caller bytes, answers`);
      }
      const byPort = edges().filter((e) => ports.has(e.port) && (e.source.id.includes('udir') || e.destination.id.includes('udir')));
      assert.deepEqual(byPort, [], 'no edge keyed by a resolver port');
    } finally {
      dns.kill();
    }
  });

  test('a server on a port above 32768, its client on a port it bound itself: the client is the end that sent first', async () => {
    const p = 40000 + (process.pid % 1000) * 2;
    const server = new Peer('udirhis', ['server', '--host', net.b.ipv4, '--port', String(p), '--expect', '3', '--reply-sizes', '7,8,9'],
      { netns: net.b.ns, script: 'udp-peer' });
    await server.waitFor('listening');
    const mine = p + 1 + 2000; // also high, and higher than the server's
    const client = new Peer('udirhic', ['client', '--to', `${net.b.ipv4}:${p}`, '--bind-port', String(mine), '--sizes', '30,31,32', '--expect-replies', '3'],
      { netns: net.a.ns, script: 'udp-peer' });
    await client.waitFor('done');
    const cli = await flowTotals(agent, (r) => r.local.pid === client.pid && r.local.port === mine && r.remote.port === p,
      { packetsSent: 3, bytesSent: 93, packetsReceived: 3, bytesReceived: 24 }, 'client of the high port');
    const srv = await flowTotals(agent, (r) => r.local.pid === server.pid && r.local.port === p && r.remote.port === mine,
      { packetsSent: 3, bytesSent: 24, packetsReceived: 3, bytesReceived: 93 }, 'server on the high port');
    assert.deepEqual([decided(cli), decided(srv)], [['outbound by first-datagram'], ['inbound by first-datagram']]);
  });

  test('two peers on high ports: whichever sent first is the client, the lower port or the higher', async () => {
    const base = 45000 + (process.pid % 1000) * 4;
    for (const [first, second] of [[base, base + 1], [base + 3, base + 2]] as const) {
      // `second` answers: a server on its own high port; `first` calls from its own high port
      const answering = new Peer('udirp2b', ['server', '--host', net.b.ipv4, '--port', String(second), '--expect', '2', '--reply-sizes', '5,6'],
        { netns: net.b.ns, script: 'udp-peer' });
      await answering.waitFor('listening');
      const calling = new Peer('udirp2a', ['client', '--to', `${net.b.ipv4}:${second}`, '--bind-port', String(first), '--sizes', '11,12', '--expect-replies', '2'],
        { netns: net.a.ns, script: 'udp-peer' });
      await calling.waitFor('done');
      const a = await flowTotals(agent, (r) => r.local.pid === calling.pid && r.local.port === first,
        { packetsSent: 2, bytesSent: 23, packetsReceived: 2, bytesReceived: 11 }, `the peer that sent first (port ${first})`);
      const b = await flowTotals(agent, (r) => r.local.pid === answering.pid && r.local.port === second,
        { packetsSent: 2, bytesSent: 11, packetsReceived: 2, bytesReceived: 23 }, `the peer that answered (port ${second})`);
      assert.deepEqual([decided(a), decided(b)], [['outbound by first-datagram'], ['inbound by first-datagram']], `${first} called ${second}`);
    }
  });

  test('a flow that began before the agent started: ports decide, and the record says so', async () => {
    const p = 123; // a well-known port, in B's own namespace
    const server = new Peer('udirolds', ['server', '--host', net.b.ipv4, '--port', String(p), '--expect', '5', '--reply-sizes', '4,4,4,4,4'],
      { netns: net.b.ns, script: 'udp-peer' });
    await server.waitFor('listening');
    // a client on a port it bound, below 32768: the old port rule took it for the server
    const own = 20000 + (process.pid % 1000);
    const client = new Peer('udiroldc', ['client', '--to', `${net.b.ipv4}:${p}`, '--bind-port', String(own), '--sizes', '10,20,30,40,50',
      '--expect-replies', '5', '--pause-after', '2'], { netns: net.a.ns, script: 'udp-peer' });
    await client.waitFor('paused');
    // a second agent, started when the flow has already begun; the first one saw it begin
    const late = new TraceAgent(['--interval', '500ms']);
    try {
      await late.ready;
      client.child.stdin!.write('go\n');
      await client.waitFor('done');
      const cli = await flowTotals(late, (r) => r.local.pid === client.pid && r.local.port === own,
        { packetsSent: 3, bytesSent: 120, packetsReceived: 3, bytesReceived: 12 }, 'the late agent: client');
      const srv = await flowTotals(late, (r) => r.local.pid === server.pid && r.remote.port === own,
        { packetsSent: 3, bytesSent: 12, packetsReceived: 3, bytesReceived: 120 }, 'the late agent: server');
      assert.deepEqual([decided(cli), decided(srv)], [['outbound by ports'], ['inbound by ports']]);
    } finally {
      const exit = await late.stop('SIGTERM');
      assert.equal(exit.code, 0, exit.stderr);
    }
    const cli = await flowTotals(agent, (r) => r.local.pid === client.pid && r.local.port === own,
      { packetsSent: 5, bytesSent: 150, packetsReceived: 5, bytesReceived: 20 }, 'the agent that saw it begin: client');
    assert.deepEqual(decided(cli), ['outbound by first-datagram']);
  });
});
