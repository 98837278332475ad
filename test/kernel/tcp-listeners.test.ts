/**
 * Listeners, right in every case: an accepted connection that its peer resets
 * before the server ever touches it is named after the process whose socket
 * took it, from the listener table alone (the agent's interval is longer than
 * the test, so no iterator pass names it otherwise). Sockets on one port and
 * different addresses, a SO_REUSEPORT group, one of them closing, a group
 * larger than the table holds (counted), and a listener opened before the
 * agent started.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { TraceAgent } from '../helpers/agent.js';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer, REPO_ROOT } from '../helpers/processes.js';
import type { TcpRecord } from '../../src/events/records.js';

const LISTEN_PY = path.join(REPO_ROOT, 'test/helpers/tcp-listen.py');

describe('listeners', { skip: KERNEL_SKIP }, () => {
  let agent: TraceAgent;
  let net: TestNetwork;
  let nextPort = 27000 + (process.pid % 100) * 10;
  const port = (): number => nextPort++;
  const peers: Peer[] = [];
  let second: string;

  /** A listening process in host B. */
  async function listen(comm: string, host: string, p: number, ...flags: string[]): Promise<Peer> {
    const l = new Peer(comm, [LISTEN_PY, comm, host, String(p), ...flags], { netns: net.b.ns, script: 'python3' });
    peers.push(l);
    await l.waitFor('listening');
    return l;
  }

  /** A client in host A that connects to host:p, sends 10 bytes and resets; the server end's record. */
  async function resetBy(a: TraceAgent, host: string, p: number): Promise<TcpRecord> {
    const c = new Peer('tcli-lst', ['client', '--host', host, '--port', String(p), '--send', '10', '--linger0'], { netns: net.a.ns });
    peers.push(c);
    const { localPort } = await c.waitFor('connected');
    const [s] = await a.waitFor((r) => r.direction === 'inbound' && r.local.port === p && r.remote.port === localPort && r.local.netns === net.b.netnsInode);
    assert.equal(s!.outcome, 'reset');
    assert.equal(s!.bytesReceived, 10);
    return s!;
  }

  before(async () => {
    net = new TestNetwork(9);
    second = net.b.ipv4.replace(/\.2$/, '.3');
    net.addAddress(net.b, second);
    agent = new TraceAgent(['--interval', '600s']);
    await agent.ready;
  });

  after(async () => {
    for (const p of peers) p.kill();
    const exit = await agent?.stop();
    net?.destroy();
    assert.equal(exit?.code, 0, exit?.stderr);
  });

  test('one port, two addresses, two processes: each connection names its own; one closing leaves the other', async () => {
    const p = port();
    const one = await listen('tl-addr1', net.b.ipv4, p);
    const two = await listen('tl-addr2', second, p);
    const s1 = await resetBy(agent, net.b.ipv4, p);
    const s2 = await resetBy(agent, second, p);
    assert.deepEqual([s1.local.pid, s1.local.comm, s1.local.addr], [one.pid, 'tl-addr1', net.b.ipv4]);
    assert.deepEqual([s2.local.pid, s2.local.comm, s2.local.addr], [two.pid, 'tl-addr2', second]);
    one.command('close');
    await one.waitFor('closed');
    const after = await resetBy(agent, second, p);
    assert.deepEqual([after.local.pid, after.local.comm], [two.pid, 'tl-addr2']);
  });

  test('a specific address and the wildcard on one port (SO_REUSEPORT lets both bind): the specific takes its address, the wildcard the rest', async () => {
    const p = port();
    const wild = await listen('tl-wild', '0.0.0.0', p, '--reuseport');
    const spec = await listen('tl-spec', second, p, '--reuseport');
    const sw = await resetBy(agent, net.b.ipv4, p);
    const ss = await resetBy(agent, second, p);
    assert.deepEqual([sw.local.pid, sw.local.comm], [wild.pid, 'tl-wild']);
    assert.deepEqual([ss.local.pid, ss.local.comm], [spec.pid, 'tl-spec']);
  });

  test('a SO_REUSEPORT group: each connection names the process whose socket took it; a member closing leaves the others', async () => {
    const p = port();
    const members = [await listen('tl-rp1', '0.0.0.0', p, '--reuseport', '--accept'), await listen('tl-rp2', '0.0.0.0', p, '--reuseport', '--accept')];
    const byPid = new Map(members.map((m) => [m.pid, m]));
    const records: TcpRecord[] = [];
    for (let i = 0; i < 16; i++) records.push(await resetBy(agent, net.b.ipv4, p));
    for (const r of records) {
      // the member that accepted it says so
      const took = members.find((m) => m.events.some((e) => e.event === 'accepted' && e['remotePort'] === r.remote.port));
      assert.ok(took, `no member accepted the connection from port ${r.remote.port}`);
      assert.deepEqual([r.local.pid, r.local.comm], [took.pid, took === members[0] ? 'tl-rp1' : 'tl-rp2']);
    }
    assert.equal(new Set(records.map((r) => r.local.pid)).size, 2, `16 connections all went to one member: ${JSON.stringify([...byPid.keys()])}`);
    members[0]!.command('close');
    await members[0]!.waitFor('closed');
    for (let i = 0; i < 3; i++) {
      const r = await resetBy(agent, net.b.ipv4, p);
      assert.deepEqual([r.local.pid, r.local.comm], [members[1]!.pid, 'tl-rp2']);
    }
  });

  test('a SO_REUSEPORT group of 9, one more than a group holds: the 9th is counted (listener_group_full); its connections are named after the first member and counted (listener_unresolved), the others after their own', async () => {
    const p = port();
    const own = new TraceAgent(['--interval', '600s']);
    const records: TcpRecord[] = [];
    const members: Peer[] = [];
    try {
      await own.ready;
      for (let i = 1; i <= 9; i++) members.push(await listen(`tl-g${i}`, '0.0.0.0', p, '--reuseport', '--accept'));
      for (let i = 0; i < 27; i++) records.push(await resetBy(own, net.b.ipv4, p));
    } finally {
      const exit = await own.stop();
      assert.equal(exit.code, 0, exit.stderr);
      const took = (r: TcpRecord): Peer | undefined => members.find((m) => m.events.some((e) => e.event === 'accepted' && e['remotePort'] === r.remote.port));
      const ninth = records.filter((r) => took(r) === members[8]);
      for (const r of records) {
        const m = took(r);
        assert.ok(m, `no member accepted the connection from port ${r.remote.port}`);
        const named = m === members[8] ? members[0]! : m;
        assert.deepEqual([r.local.pid, r.local.comm], [named.pid, `tl-g${members.indexOf(named) + 1}`]);
      }
      assert.equal(exit.summary!['lossListenGroupFull'], 1, JSON.stringify(exit.summary));
      assert.equal(exit.summary!['listenerUnresolved'], ninth.length, `${ninth.length} of 27 went to the 9th member`);
      assert.match(exit.stderr, /listener group full 1, listener unresolved \d+,/);
    }
  });

  test('a listener opened before the agent started: found at start, its connections named after it', async () => {
    const p = port();
    const early = await listen('tl-early', net.b.ipv4, p);
    const late = new TraceAgent(['--interval', '600s']);
    try {
      await late.ready;
      const s = await resetBy(late, net.b.ipv4, p);
      assert.deepEqual([s.local.pid, s.local.comm], [early.pid, 'tl-early']);
    } finally {
      const exit = await late.stop();
      assert.equal(exit.code, 0, exit.stderr);
      assert.equal(exit.summary!['listenerUnresolved'], 0);
    }
  });
});
