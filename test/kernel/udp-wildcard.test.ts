/**
 * A UDP server bound to a wildcard address (0.0.0.0, [::]) that hears first,
 * with real datagrams between test hosts: one record per peer and interval,
 * under the address the datagrams were sent to, from the first datagram on,
 * with exact counts both ways.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { udpSuite } from '../helpers/udp-suite.js';
import { Peer } from '../helpers/processes.js';
import { decided, flowTotals, total } from '../helpers/udp-totals.js';
import type { UdpRecord } from '../../src/events/records.js';

describe('UDP servers bound to a wildcard address', { skip: KERNEL_SKIP }, () => {
  const suite = udpSuite(8, '500ms');

  describe('a server bound to a wildcard address that hears first', () => {
    const sizes = [3, 14, 15, 92, 65, 35, 89];
    const replies = [2, 71, 82, 81, 8, 28, 1];
    const cases = [
      { name: '0.0.0.0:5555, IPv4 client', bind: '0.0.0.0', to: () => suite.net().b.ipv4, family: 4 },
      { name: '[::]:5555, IPv6 client', bind: '::', to: () => suite.net().b.ipv6, family: 6 },
      { name: '[::]:5555, IPv4 client (dual stack)', bind: '::', to: () => suite.net().b.ipv4, family: 4 },
    ];
    for (const c of cases) {
      test(`${c.name}: one record per peer and interval, under the address the datagrams were sent to, exact counts`, async () => {
        const server = new Peer('udirwild', ['server', '--host', c.bind, '--port', '5555', '--expect', '7', '--reply-sizes', replies.join(',')],
          { netns: suite.net().b.ns, script: 'udp-peer' });
        await server.waitFor('listening');
        const to = c.to();
        const client = new Peer('udirwcli', ['client', '--to', c.family === 6 ? `[${to}]:5555` : `${to}:5555`, '--sizes', sizes.join(','), '--expect-replies', '7'],
          { netns: suite.net().a.ns, script: 'udp-peer' });
        const { localPort } = await client.waitFor('done');
        await server.waitFor('done');
        const srv = await flowTotals(suite.agent(), (r) => r.local.pid === server.pid,
          { packetsSent: 7, bytesSent: total(replies), packetsReceived: 7, bytesReceived: total(sizes) }, 'the wildcard server\'s flow');
        assert.deepEqual([...new Set(srv.map((r) => `${r.family} ${r.local.addr}:${r.local.port} <- ${r.remote.addr}:${r.remote.port}`))],
          [`${c.family} ${to}:5555 <- ${c.family === 6 ? suite.net().a.ipv6 : suite.net().a.ipv4}:${localPort}`], 'every datagram under the address it was sent to');
        assert.equal(new Set(srv.map((r) => r.ts)).size, srv.length, `one record per interval: ${JSON.stringify(srv)}`);
        assert.deepEqual(decided(srv), ['inbound by first-datagram']);
        const cli = await flowTotals(suite.agent(), (r) => r.local.pid === client.pid,
          { packetsSent: 7, bytesSent: total(sizes), packetsReceived: 7, bytesReceived: total(replies) }, 'its client\'s flow');
        assert.deepEqual(decided(cli), ['outbound by first-datagram']);
      });
    }
  });

  test('one server, two addresses, a client on each: each peer\'s flow under the address it sent to', async () => {
    const second = suite.net().b.ipv4.replace(/\.2$/, '.3');
    suite.net().addAddress(suite.net().b, second);
    const server = new Peer('udirwtwo', ['server', '--host', '0.0.0.0', '--port', '5556', '--expect', '6', '--reply-sizes', '1,2,3,4,5,6'],
      { netns: suite.net().b.ns, script: 'udp-peer' });
    await server.waitFor('listening');
    const ports: number[] = [];
    for (const to of [suite.net().b.ipv4, second]) {
      const client = new Peer('udirwcl2', ['client', '--to', `${to}:5556`, '--sizes', '10,20,30', '--expect-replies', '3'], { netns: suite.net().a.ns, script: 'udp-peer' });
      ports.push((await client.waitFor('done'))['localPort'] as number);
    }
    await server.waitFor('done');
    for (const [i, to] of [suite.net().b.ipv4, second].entries()) {
      const srv = await flowTotals(suite.agent(), (r) => r.local.pid === server.pid && r.remote.port === ports[i],
        { packetsSent: 3, bytesSent: i ? 15 : 6, packetsReceived: 3, bytesReceived: 60 }, `the server's flow with the client of ${to}`);
      assert.deepEqual([...new Set(srv.map((r) => r.local.addr))], [to]);
    }
  });
});
