/**
 * Real TCP traffic between test hosts (network namespaces joined by veth)
 * and over loopback, traced by a running `bpfagent trace --json`; every
 * record is checked field by field against what the peers did.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { TraceAgent } from '../helpers/agent.js';
import { TestCgroup, TestNetwork, sh } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer } from '../helpers/processes.js';
import { scaled } from '../helpers/time-scale.js';
import type { TcpRecord } from '../../src/events/tcp-record.js';

const rootNetns = (): number => statSync('/proc/self/ns/net').ino;

describe('bpfagent trace: TCP between real hosts', { skip: KERNEL_SKIP }, () => {
  let agent: TraceAgent;
  let net: TestNetwork;
  let serverCg: TestCgroup;
  let clientCg: TestCgroup;
  // below the ephemeral range (32768+), so no unrelated connection shares them
  let nextPort = 21000 + (process.pid % 100) * 20;
  const port = (): number => nextPort++;

  before(async () => {
    net = new TestNetwork(1);
    serverCg = new TestCgroup('server');
    clientCg = new TestCgroup('client');
    agent = new TraceAgent();
    await agent.ready;
  });

  after(async () => {
    const exit = await agent?.stop('SIGTERM');
    net?.destroy();
    serverCg?.destroy();
    clientCg?.destroy();
    // SIGTERM flushes and exits 0 with a loss summary on stderr
    assert.equal(exit?.code, 0, exit?.stderr);
    assert.ok(exit?.summary, `no summary line in stderr:\n${exit?.stderr}`);
    assert.equal(exit.summary['lossRingbufFull'], 0);
    assert.equal(exit.summary['lossSockMapFull'], 0);
    assert.equal(exit.summary['decodeErrors'], 0);
  });

  /** Server in `srvNs` on addr:p, client in `cliNs`; returns both peers once done. */
  async function exchange(opts: {
    serverHost: string;
    serverNs?: string;
    clientNs?: string;
    serverComm: string;
    clientComm: string;
    clientSends: number;
    serverSends: number;
    cgroups?: boolean;
  }) {
    const p = port();
    const server = new Peer(
      opts.serverComm,
      ['server', '--host', opts.serverHost, '--port', String(p), '--send', String(opts.serverSends)],
      { netns: opts.serverNs, cgroup: opts.cgroups ? serverCg.path : undefined },
    );
    await server.waitFor('listening');
    const client = new Peer(
      opts.clientComm,
      ['client', '--host', opts.serverHost, '--port', String(p), '--send', String(opts.clientSends)],
      { netns: opts.clientNs, cgroup: opts.cgroups ? clientCg.path : undefined },
    );
    const clientDone = await client.waitFor('done', 20_000);
    const serverDone = await server.waitFor('done', 20_000);
    assert.equal(clientDone['received'], opts.serverSends, 'the test traffic itself went wrong');
    assert.equal(serverDone['received'], opts.clientSends, 'the test traffic itself went wrong');
    const connected = await client.waitFor('connected');
    return { port: p, server, client, clientPort: connected['localPort'] as number, clientDoneAt: Date.now() };
  }

  // Ephemeral ports repeat across namespaces: match on the peer's pid too.
  function recordsOf(x: { port: number; clientPort: number; client: Peer; server: Peer }) {
    const out = (r: TcpRecord) =>
      r.direction === 'outbound' && r.remote.port === x.port && r.local.port === x.clientPort && r.local.pid === x.client.pid;
    const inb = (r: TcpRecord) =>
      r.direction === 'inbound' && r.local.port === x.port && r.remote.port === x.clientPort && r.local.pid === x.server.pid;
    return Promise.all([agent.waitFor(out), agent.waitFor(inb)]).then(([o, i]) => {
      assert.equal(o.length, 1, 'exactly one client record');
      assert.equal(i.length, 1, 'exactly one server record');
      return { client: o[0]!, server: i[0]! };
    });
  }

  test('IPv4 over veth: both ends, exact multi-MB byte counts, pids, commands, cgroups', async () => {
    const x = await exchange({
      serverHost: net.b.ipv4, serverNs: net.b.ns, clientNs: net.a.ns,
      serverComm: 'tsrv-v4', clientComm: 'tcli-v4',
      clientSends: 3_000_017, serverSends: 1_234_567, cgroups: true,
    });
    const { client, server } = await recordsOf(x);

    // whole projections, so a failure shows every field at once
    // exe is there only if the process was still running when its record came: checked apart
    const project = (r: TcpRecord) => {
      const { exe, ...local } = r.local;
      assert.ok(exe === undefined || exe === process.execPath, `exe ${exe}`);
      return {
        proto: r.proto, family: r.family, direction: r.direction, outcome: r.outcome, local, remote: r.remote,
        bytesSent: r.bytesSent, bytesReceived: r.bytesReceived, retransmits: r.retransmits,
      };
    };
    assert.deepEqual(project(client), {
      proto: 'tcp', family: 4, direction: 'outbound', outcome: 'closed',
      local: { addr: net.a.ipv4, port: x.clientPort, pid: x.client.pid, comm: 'tcli-v4', cgroupId: clientCg.id, netns: net.a.netnsInode },
      remote: { addr: net.b.ipv4, port: x.port },
      bytesSent: 3_000_017, bytesReceived: 1_234_567, retransmits: client.retransmits,
    });
    assert.deepEqual(project(server), {
      proto: 'tcp', family: 4, direction: 'inbound', outcome: 'closed',
      local: { addr: net.b.ipv4, port: x.port, pid: x.server.pid, comm: 'tsrv-v4', cgroupId: serverCg.id, netns: net.b.netnsInode },
      remote: { addr: net.a.ipv4, port: x.clientPort },
      bytesSent: 1_234_567, bytesReceived: 3_000_017, retransmits: server.retransmits,
    });

    for (const r of [client, server]) {
      // a loaded machine can drop on veth: retransmits may happen, and bytes stay exact regardless
      assert.ok(Number.isInteger(r.retransmits) && r.retransmits >= 0);
      assert.ok(r.srttUs > 0 && r.srttUs < 1_000_000, `srttUs ${r.srttUs}`);
      assert.ok(r.durationMs > 0 && r.durationMs < 20_000, `durationMs ${r.durationMs}`);
      assert.ok(Math.abs(Date.parse(r.ts) - x.clientDoneAt) < 5000, `ts ${r.ts} is the end time`);
    }
  });

  test('retransmits: segments unacknowledged while B cannot answer are counted, bytes stay exact', async () => {
    const p = port();
    const server = new Peer('tsrv-rtx', ['server', '--host', net.b.ipv4, '--port', String(p), '--send', '4321'], { netns: net.b.ns });
    await server.waitFor('listening');
    // the client connects, then sends once B's answers to A go nowhere (however long adding the route takes)
    const client = new Peer('tcli-rtx', ['client', '--host', net.b.ipv4, '--port', String(p), '--send', '54321', '--send-on-stdin'],
      { netns: net.a.ns });
    const { localPort } = await client.waitFor('connected');
    net.exec(net.b, ['ip', 'route', 'add', 'blackhole', `${net.a.ipv4}/32`]);
    client.child.stdin!.write('go\n');
    await new Promise((r) => setTimeout(r, 900));
    net.exec(net.b, ['ip', 'route', 'del', 'blackhole', `${net.a.ipv4}/32`]);
    await client.waitFor('done', 20_000);
    const [c] = await agent.waitFor((r) => r.direction === 'outbound' && r.local.port === localPort && r.local.pid === client.pid);
    assert.ok(c!.retransmits >= 1, `retransmits ${c!.retransmits}`);
    assert.deepEqual([c!.outcome, c!.bytesSent, c!.bytesReceived], ['closed', 54321, 4321]);
  });

  test('IPv6 over veth: addresses, ports and bytes of both ends', async () => {
    const x = await exchange({
      serverHost: net.b.ipv6, serverNs: net.b.ns, clientNs: net.a.ns,
      serverComm: 'tsrv-v6', clientComm: 'tcli-v6', clientSends: 70_001, serverSends: 9_999,
    });
    const { client, server } = await recordsOf(x);
    assert.equal(client.family, 6);
    assert.equal(server.family, 6);
    assert.deepEqual(
      [client.local.addr, client.remote.addr, client.local.pid, client.local.comm, client.bytesSent, client.bytesReceived],
      [net.a.ipv6, net.b.ipv6, x.client.pid, 'tcli-v6', 70_001, 9_999],
    );
    assert.deepEqual(
      [server.local.addr, server.remote.addr, server.local.pid, server.local.comm, server.bytesSent, server.bytesReceived],
      [net.b.ipv6, net.a.ipv6, x.server.pid, 'tsrv-v6', 9_999, 70_001],
    );
  });

  test('loopback: two records, the server attributed to the accepting process (not the client), live', async () => {
    const x = await exchange({
      serverHost: '127.0.0.1', serverComm: 'tsrv-lo', clientComm: 'tcli-lo', clientSends: 4_097, serverSends: 65_537,
    });
    const { client, server } = await recordsOf(x);
    assert.equal(client.local.pid, x.client.pid);
    assert.equal(client.local.comm, 'tcli-lo');
    assert.equal(server.local.pid, x.server.pid, 'server side must be the accepting process');
    assert.equal(server.local.comm, 'tsrv-lo');
    assert.notEqual(server.local.pid, client.local.pid);
    assert.equal(client.local.netns, rootNetns());
    assert.deepEqual([client.bytesSent, client.bytesReceived, server.bytesSent, server.bytesReceived], [4_097, 65_537, 65_537, 4_097]);
    // records are streamed: they arrive well within a second of the connection ending (a second of this
    // machine: TEST_TIME_SCALE seconds in an emulated guest, where the agent stays up far longer than that)
    const arrival = agent.arrivals[agent.records.indexOf(client)]!;
    assert.ok(arrival - x.clientDoneAt < scaled(1000), `record arrived ${arrival - x.clientDoneAt} ms after the connection ended`);
  });

  test('pre-fork server: the worker that handled the connection, not the process that listens', async () => {
    const p = port();
    // the parent listens, a forked worker (its own pid and comm) accepts, answers and closes
    const prefork = `
import os, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("${net.b.ipv4}", ${p})); s.listen()
pid = os.fork()
if pid == 0:
    open("/proc/self/comm", "w").write("tworker")
    c, _ = s.accept(); n = 0
    while True:
        d = c.recv(65536)
        if not d: break
        n += len(d)
    c.sendall(b"w" * 321); c.close(); os._exit(0)
print('{"event":"listening","worker":%d}' % pid, flush=True)
os.waitpid(pid, 0)
print('{"event":"done"}', flush=True)
`;
    const parent = new Peer('tlisten', ['-c', prefork], { netns: net.b.ns, script: 'python3' });
    const { worker } = await parent.waitFor('listening');
    const client = new Peer('tcli-pre', ['client', '--host', net.b.ipv4, '--port', String(p), '--send', '1234'], { netns: net.a.ns });
    const { localPort } = await client.waitFor('connected');
    await parent.waitFor('done');
    const [s] = await agent.waitFor((r) => r.direction === 'inbound' && r.local.port === p && r.remote.port === localPort);
    assert.notEqual(worker, parent.pid);
    assert.deepEqual([s!.local.pid, s!.local.comm, s!.bytesReceived, s!.bytesSent], [worker, 'tworker', 1234, 321]);
  });

  test('IPv4 through an IPv6 socket (v4-mapped) is reported as IPv4', async () => {
    const x = await exchange({
      serverHost: '::ffff:127.0.0.1', serverComm: 'tsrv-map', clientComm: 'tcli-map', clientSends: 11, serverSends: 13,
    });
    const { client, server } = await recordsOf(x);
    assert.deepEqual([client.family, client.local.addr, client.remote.addr], [4, '127.0.0.1', '127.0.0.1']);
    assert.deepEqual([server.family, server.local.addr, server.remote.addr], [4, '127.0.0.1', '127.0.0.1']);
  });

  test('refused: a RST answers the SYN', async () => {
    const p = port(); // nothing listens there in host B
    const client = new Peer('tcli-ref', ['client', '--host', net.b.ipv4, '--port', String(p)], { netns: net.a.ns });
    const err = await client.waitFor('error');
    assert.equal(err['code'], 'ECONNREFUSED');
    const [r] = await agent.waitFor((r) => r.remote.port === p && r.local.pid === client.pid);
    assert.equal(r!.outcome, 'refused');
    assert.equal(r!.direction, 'outbound');
    assert.deepEqual([r!.local.addr, r!.local.comm, r!.remote.addr], [net.a.ipv4, 'tcli-ref', net.b.ipv4]);
    assert.deepEqual([r!.bytesSent, r!.bytesReceived], [0, 0]);
    // no server side exists in host B
    assert.equal(agent.records.filter((x) => x.local.port === p && x.local.netns === net.b.netnsInode).length, 0);
  });

  describe('unanswered attempts', () => {
    // SYNs to 10.x.9.0/24 go to host B, which silently drops them
    const blackhole = () => net.a.ipv4.replace(/\.0\.1$/, '.9.9');
    before(() => {
      const subnet = net.a.ipv4.replace(/\.0\.1$/, '.9.0/24');
      net.exec(net.a, ['ip', 'route', 'add', subnet, 'via', net.b.ipv4]);
      net.exec(net.b, ['ip', 'route', 'add', 'blackhole', subnet]);
      // one SYN retry: a real timeout in about 3 s
      net.exec(net.a, ['sysctl', '-qw', 'net.ipv4.tcp_syn_retries=1']);
    });

    test('timeout: the kernel gives up on an unanswered SYN', async () => {
      const p = port();
      const client = new Peer('tcli-tmo', ['client', '--host', blackhole(), '--port', String(p)], { netns: net.a.ns });
      const err = await client.waitFor('error', 15_000);
      assert.equal(err['code'], 'ETIMEDOUT');
      const [r] = await agent.waitFor((r) => r.remote.port === p && r.local.pid === client.pid);
      assert.equal(r!.outcome, 'timeout');
      assert.deepEqual([r!.direction, r!.local.comm, r!.remote.addr], ['outbound', 'tcli-tmo', blackhole()]);
      assert.ok(r!.durationMs > 2000, `gave up after ${r!.durationMs} ms`);
    });

    test('timeout: the client abandons its attempt', async () => {
      const p = port();
      const client = new Peer('tcli-abt', ['client', '--host', blackhole(), '--port', String(p), '--abort-after', '300'], { netns: net.a.ns });
      await client.waitFor('aborted');
      const [r] = await agent.waitFor((r) => r.remote.port === p && r.local.pid === client.pid);
      assert.equal(r!.outcome, 'timeout');
      assert.equal(r!.local.comm, 'tcli-abt');
      assert.ok(r!.durationMs >= 250 && r!.durationMs < 2000, `abandoned after ${r!.durationMs} ms`);
    });
  });

  test('reset: the server resets an established connection mid-transfer', async () => {
    const p = port();
    const server = new Peer('tsrv-rst', ['server', '--host', net.b.ipv4, '--port', String(p), '--reset-after', '1000'], { netns: net.b.ns });
    await server.waitFor('listening');
    const client = new Peer('tcli-rst', ['client', '--host', net.b.ipv4, '--port', String(p), '--send', '5000000'], { netns: net.a.ns });
    const connected = await client.waitFor('connected');
    await client.waitFor('error');
    const [c] = await agent.waitFor((r) => r.direction === 'outbound' && r.remote.port === p && r.local.port === connected['localPort']);
    const [s] = await agent.waitFor((r) => r.direction === 'inbound' && r.local.port === p);
    assert.deepEqual([c!.outcome, c!.local.pid, c!.local.comm], ['reset', client.pid, 'tcli-rst']);
    assert.deepEqual([s!.outcome, s!.local.pid, s!.local.comm], ['reset', server.pid, 'tsrv-rst']);
    assert.ok(s!.bytesReceived >= 1000 && s!.bytesReceived < 5_000_000, `server received ${s!.bytesReceived}`);
  });

  test('reset: the client closes with SO_LINGER 0 after its request', async () => {
    const p = port();
    const server = new Peer('tsrv-lng', ['server', '--host', net.b.ipv4, '--port', String(p)], { netns: net.b.ns });
    await server.waitFor('listening');
    const client = new Peer('tcli-lng', ['client', '--host', net.b.ipv4, '--port', String(p), '--send', '777', '--linger0'], { netns: net.a.ns });
    const connected = await client.waitFor('connected');
    const [c] = await agent.waitFor((r) => r.direction === 'outbound' && r.remote.port === p && r.local.port === connected['localPort']);
    const [s] = await agent.waitFor((r) => r.direction === 'inbound' && r.local.port === p);
    assert.deepEqual([c!.outcome, c!.local.pid], ['reset', client.pid]);
    assert.deepEqual([s!.outcome, s!.local.pid, s!.local.comm], ['reset', server.pid, 'tsrv-lng']);
    assert.equal(s!.bytesReceived, 777);
    server.kill();
  });

  test('sh helper sanity: namespaces exist while tests run', () => {
    assert.match(sh('ip', ['netns', 'list']), new RegExp(net.a.ns));
  });
});
