/**
 * Every way this kernel has of counting UDP (--udp-hook: fexit, tp_btf,
 * kprobe; see net.bpf.c) counts the same datagrams exactly: an unconnected
 * client and its server, an IPv6 connected socket, a corked datagram, and a
 * DNS lookup attributed to the process that sent it. The kernel matrix runs
 * this file on each kernel, so each variant is proven where it is the one
 * `auto` picks, and where it is a fallback.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TraceAgent } from '../helpers/agent.js';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer } from '../helpers/processes.js';
import { flowTotals } from '../helpers/udp-totals.js';
import { loadNative } from '../../src/bpf/native.js';
import { ensureTracefs } from '../../src/bpf/features.js';
import { chooseUdpHook, UDP_HOOK_NAMES, type UdpHook } from '../../src/bpf/net-tracer.js';
import type { UdpRecord } from '../../src/events/records.js';

/** The variants this kernel has (chooseUdpHook's feature probes), and why the others are missing. */
function variants(): { have: UdpHook[]; missing: string[] } {
  const native = loadNative();
  const tracefs = ensureTracefs(native);
  const have: UdpHook[] = [];
  const missing: string[] = [];
  for (const h of UDP_HOOK_NAMES) {
    try {
      chooseUdpHook(native, tracefs, h);
      have.push(h);
    } catch (e) {
      missing.push((e as Error).message);
    }
  }
  return { have, missing };
}

describe('UDP hook variants', { skip: KERNEL_SKIP }, () => {
  const found = KERNEL_SKIP ? { have: [], missing: [] } : variants();
  let net: TestNetwork;
  let nextPort = 27000 + (process.pid % 100) * 20;
  const port = (): number => nextPort++;

  before(() => {
    net = new TestNetwork(23);
  });
  after(() => net?.destroy());

  test('the kernel has at least one, and auto takes the first it has', async () => {
    assert.ok(found.have.length > 0, `no UDP hook: ${found.missing.join('; ')}`);
    const agent = new TraceAgent(['--interval', '500ms']);
    const ready = await agent.ready;
    await agent.stop('SIGTERM');
    const hooks = ready['hooks'] as Record<string, string>;
    const first = found.have[0]!;
    const expected = { fexit: /^fexit inet_sendmsg/, tp_btf: /^tp_btf sock:sock_send_length/, kprobe: /^kprobe\/kretprobe udp_sendmsg/ }[first];
    assert.match(hooks['udp']!, expected, `auto took ${hooks['udp']}; the kernel has ${found.have.join(', ')}`);
  });

  for (const hook of UDP_HOOK_NAMES) {
    test(`--udp-hook ${hook}: exact counts both ends, IPv6 connected, corked, DNS by its sender`, async (t) => {
      if (!found.have.includes(hook)) {
        // not on this kernel: what is missing is named (the matrix shows which kernels run which)
        t.diagnostic(`not on this kernel: ${found.missing.find((m) => m.includes(`${hook}:`))}`);
        assert.ok(found.missing.some((m) => m.includes(`${hook}:`)));
        return;
      }
      const agent = new TraceAgent(['--interval', '500ms', '--udp-hook', hook]);
      try {
        const ready = await agent.ready;
        assert.equal(ready['udp'], true, agent.stderr);

        // an unconnected client (sendto/recvfrom) and its server
        const p = port();
        const server = new Peer('uhsrv', ['server', '--host', net.b.ipv4, '--port', String(p), '--expect', '3', '--reply-sizes', '5,6'],
          { netns: net.b.ns, script: 'udp-peer' });
        await server.waitFor('listening');
        const client = new Peer('uhcli', ['client', '--to', `${net.b.ipv4}:${p}`, '--sizes', '100,1200,7', '--expect-replies', '2'],
          { netns: net.a.ns, script: 'udp-peer' });
        const { localPort } = await client.waitFor('done');
        await server.waitFor('done');
        const [c] = await flowTotals(agent, (r) => r.local.pid === client.pid && r.local.port === localPort && r.remote.port === p,
          { packetsSent: 3, bytesSent: 1307, packetsReceived: 2, bytesReceived: 11 }, `${hook}: client`);
        await flowTotals(agent, (r) => r.local.pid === server.pid && r.local.port === p && r.remote.port === localPort,
          { packetsSent: 2, bytesSent: 11, packetsReceived: 3, bytesReceived: 1307 }, `${hook}: server`);
        assert.deepEqual([c!.local.addr, c!.remote.addr, c!.local.comm], [net.a.ipv4, net.b.ipv4, 'uhcli']);

        // IPv6, connected
        const p6 = port();
        const s6 = new Peer('uhsrv6', ['server', '--host', net.b.ipv6, '--port', String(p6), '--expect', '2', '--reply-sizes', '9'],
          { netns: net.b.ns, script: 'udp-peer' });
        await s6.waitFor('listening');
        const c6 = new Peer('uhcli6', ['client', '--to', `[${net.b.ipv6}]:${p6}`, '--sizes', '33,44', '--connect', '--expect-replies', '1'],
          { netns: net.a.ns, script: 'udp-peer' });
        const { localPort: l6 } = await c6.waitFor('done');
        const [r6] = await flowTotals(agent, (r) => r.local.pid === c6.pid && r.local.port === l6,
          { packetsSent: 2, bytesSent: 77, packetsReceived: 1, bytesReceived: 9 }, `${hook}: IPv6 client`);
        assert.deepEqual([r6!.family, r6!.local.addr, r6!.remote.addr, r6!.remote.port], [6, net.a.ipv6, net.b.ipv6, p6]);

        // a datagram corked over two sends, the second without an address (it goes on with the corked one)
        const pc = port();
        const sc = new Peer('uhsrvc', ['server', '--host', net.b.ipv4, '--port', String(pc), '--expect', '1'], { netns: net.b.ns, script: 'udp-peer' });
        await sc.waitFor('listening');
        const to = `('${net.b.ipv4}', ${pc})`;
        const corker = new Peer('uhcork', ['-c', [
          'import json, socket',
          's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
          `s.sendto(b"a" * 4, socket.MSG_MORE, ${to})`,
          's.send(b"b" * 5)',
          'print(json.dumps({"event": "done", "localPort": s.getsockname()[1]}), flush=True)',
        ].join('\n')], { netns: net.a.ns, script: 'python3' });
        const { localPort: lc } = await corker.waitFor('done');
        const got = await sc.waitFor('done');
        assert.deepEqual([got['received'], got['bytes']], [1, 9], 'the server read one datagram of both sends');
        await flowTotals(agent, (r) => r.local.pid === corker.pid && r.local.port === lc && r.remote.port === pc,
          { packetsSent: 1, bytesSent: 9, packetsReceived: 0, bytesReceived: 0 }, `${hook}: both sends, with their peer`);

        // a DNS lookup: the query's sender, from the socket it made (sock_info)
        const dns = new Peer('uhdns', ['--host', net.b.ipv4, '--zone', JSON.stringify({ 'hook.test': [{ type: 'A', data: '10.9.9.9', ttl: 60 }] })],
          { netns: net.b.ns, script: 'dns-server' });
        await dns.waitFor('listening');
        const resolver = new Peer('uhres', ['--dns', net.b.ipv4, '--name', 'hook.test', '--no-connect'], { netns: net.a.ns, script: 'resolve-connect' });
        await resolver.waitFor('done');
        dns.kill();
        const [lookup] = await agent.waitForDns((r) => r.local.pid === resolver.pid);
        assert.deepEqual([lookup!.query, lookup!.answers[0]?.data, lookup!.local.comm, lookup!.local.netns], ['hook.test', '10.9.9.9', 'uhres', net.a.netnsInode]);
      } finally {
        const exit = await agent.stop('SIGTERM');
        assert.equal(exit.code, 0, exit.stderr);
        assert.equal(exit.summary!['udpEvicted'], 0);
      }
    });
  }
});
