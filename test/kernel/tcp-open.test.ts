/**
 * Open TCP connections reported as they go: every interval in which a
 * connection moved bytes gives a record of that interval's bytes
 * (`"state":"open"`), the close record carries the rest, and a connection's
 * records add up to what its processes sent and read, exactly. Connections
 * open before the agent started are found at start and reported from then
 * on, with their owners (those still connecting, and those waiting in an
 * accept queue, too); an agent restarted mid-connection picks it up again.
 * Real connections between network namespaces, driven by the test.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TraceAgent } from '../helpers/agent.js';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { StreamPair, totals } from '../helpers/stream-pair.js';
import type { TcpRecord } from '../../src/events/records.js';

describe('open TCP connections, each interval', { skip: KERNEL_SKIP }, () => {
  let agent: TraceAgent;
  let net: TestNetwork;
  let nextPort = 24000 + (process.pid % 100) * 10;
  const port = (): number => nextPort++;
  const pairs: StreamPair[] = [];

  before(async () => {
    net = new TestNetwork(7);
    agent = new TraceAgent(['--interval', '1s']);
    await agent.ready;
  });

  after(async () => {
    for (const p of pairs) p.kill();
    const exit = await agent?.stop();
    net?.destroy();
    assert.equal(exit?.code, 0, exit?.stderr);
    assert.equal(exit.summary!['decodeErrors'], 0);
  });

  const tcp = (a: TraceAgent, pred: (r: TcpRecord) => boolean): TcpRecord[] =>
    a.records.filter((r): r is TcpRecord => r.proto === 'tcp' && pred(r));

  test('a connection across intervals: one record per interval that moved bytes, each its exact deltas, the sum exact', async () => {
    const pair = await StreamPair.open('open', net.b, net.a, port());
    pairs.push(pair);
    // each phase is sent right after the previous one's records came (just after an interval ended), so it falls in one interval
    const phases: Array<[number, number]> = [[1, 0], [1000, 0], [0, 2500], [70_001, 123], [5, 5]];
    for (const [i, [up, down]] of phases.entries()) {
      await pair.move(up, down);
      await agent.waitFor((r) => pair.isClient(r), i + 1);
      await agent.waitFor((r) => pair.isServer(r), i + 1);
    }
    const client = tcp(agent, pair.isClient);
    const server = tcp(agent, pair.isServer);
    assert.deepEqual(client.map((r) => [r.state, r.outcome, r.bytesSent, r.bytesReceived]), phases.map(([u, d]) => ['open', undefined, u, d]));
    assert.deepEqual(server.map((r) => [r.state, r.outcome, r.bytesSent, r.bytesReceived]), phases.map(([u, d]) => ['open', undefined, d, u]));
    for (const r of [...client, ...server]) {
      assert.equal(r.local.comm, r.direction === 'outbound' ? 'scli-open' : 'ssrv-open');
      assert.equal(r.local.netns, r.direction === 'outbound' ? net.a.netnsInode : net.b.netnsInode);
      assert.equal(r.openedBeforeStart, undefined);
      assert.ok(r.srttUs > 0, `srttUs ${r.srttUs}`);
    }
    // durations grow with the connection's age
    for (let i = 1; i < client.length; i++) assert.ok(client[i]!.durationMs > client[i - 1]!.durationMs);

    // the last bytes, then the close: whatever records carry them, they add up, and the last one says how it ended
    await pair.move(4321, 1234);
    await pair.close();
    const [c] = await agent.waitFor((r) => pair.isClient(r) && r.outcome !== undefined);
    const [s] = await agent.waitFor((r) => pair.isServer(r) && r.outcome !== undefined);
    assert.deepEqual([c!.outcome, c!.state, s!.outcome, s!.state], ['closed', undefined, 'closed', undefined]);
    const sum = (rs: TcpRecord[]) => totals(rs);
    const up = phases.reduce((n, [u]) => n + u, 4321);
    const down = phases.reduce((n, [, d]) => n + d, 1234);
    assert.deepEqual(sum(tcp(agent, pair.isClient)), { bytesSent: up, bytesReceived: down });
    assert.deepEqual(sum(tcp(agent, pair.isServer)), { bytesSent: down, bytesReceived: up });
    // no record of this connection names another process
    assert.equal(tcp(agent, pair.isEither).length, tcp(agent, pair.isClient).length + tcp(agent, pair.isServer).length);
  });

  test('a connection that opens and closes within an interval: one record each side, as before', async () => {
    const pair = await StreamPair.open('once', net.b, net.a, port());
    pairs.push(pair);
    await pair.move(3000, 17);
    await pair.close();
    const [c] = await agent.waitFor(pair.isClient);
    const [s] = await agent.waitFor(pair.isServer);
    await new Promise((r) => setTimeout(r, 1500)); // an interval more: nothing else comes
    // a boundary may fall between the first bytes and the close (then the bytes come in an open record): the sums hold anyway
    const client = tcp(agent, pair.isClient);
    assert.equal(client.at(-1)!.outcome, 'closed');
    assert.ok(client.length <= 2 && client.slice(0, -1).every((r) => r.state === 'open'), JSON.stringify(client));
    assert.deepEqual(totals(client), { bytesSent: 3000, bytesReceived: 17 });
    assert.deepEqual(totals(tcp(agent, pair.isServer)), { bytesSent: 17, bytesReceived: 3000 });
    assert.ok(c && s);
  });

  test('opened before the agent started: found at start with both owners, counted from then, reported until it closes', async () => {
    const pair = await StreamPair.open('pre', net.b, net.a, port(), 6);
    pairs.push(pair);
    await pair.move(50_000, 5000); // before the start: not counted
    const late = new TraceAgent(['--interval', '1s']);
    try {
      const ready = await late.ready;
      assert.match(String((ready['hooks'] as Record<string, unknown>)['openConnections']), /^iter\/task_file /, 'the ready line names the hook');
      await pair.move(777, 333);
      await late.waitFor(pair.isClient);
      await late.waitFor(pair.isServer);
      await pair.move(10, 20);
      await pair.close();
      const [c] = await late.waitFor((r) => pair.isClient(r) && r.outcome !== undefined);
      const [s] = await late.waitFor((r) => pair.isServer(r) && r.outcome !== undefined);
      for (const r of [c!, s!]) {
        assert.equal(r.openedBeforeStart, true);
        assert.equal(r.family, 6);
        assert.equal(r.outcome, 'closed');
      }
      assert.deepEqual([c!.local.comm, c!.local.addr, c!.remote.addr], ['scli-pre', net.a.ipv6, net.b.ipv6]);
      assert.deepEqual([s!.local.comm, s!.local.addr, s!.remote.addr], ['ssrv-pre', net.b.ipv6, net.a.ipv6]);
      const client = tcp(late, pair.isClient);
      const server = tcp(late, pair.isServer);
      assert.ok(client.every((r) => r.openedBeforeStart) && server.every((r) => r.openedBeforeStart));
      assert.deepEqual(totals(client), { bytesSent: 787, bytesReceived: 353 });
      assert.deepEqual(totals(server), { bytesSent: 353, bytesReceived: 787 });
      assert.equal(tcp(late, pair.isEither).length, client.length + server.length, 'every record names the right process');
    } finally {
      const exit = await late.stop();
      assert.equal(exit.code, 0, exit.stderr);
      assert.ok((exit.summary!['seededConnections'] as number) >= 2, JSON.stringify(exit.summary));
    }
  });

  test('still connecting when the agent started (its SYNs dropped until then): found at start, counted from then, exact', async () => {
    const p = port();
    let late: TraceAgent | undefined;
    let pair: StreamPair | undefined;
    const connecting = (): boolean => net.exec(net.a, ['ss', '-Htn', 'state', 'syn-sent', `( dport = :${p} )`]).trim() !== '';
    try {
      net.exec(net.b, ['nft', '-f', '-'], `table inet bpfagent_conns_syn {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport ${p} drop
  }
}`);
      pair = await StreamPair.open('syn', net.b, net.a, p, 4, {
        whileConnecting: async () => {
          for (let i = 0; !connecting(); i++) {
            if (i > 1000) throw new Error(`port ${p}: the client never began to connect`);
            await new Promise((r) => setTimeout(r, 10));
          }
          late = new TraceAgent(['--interval', '1s']);
          await late.ready;
          net.exec(net.b, ['nft', 'delete', 'table', 'inet', 'bpfagent_conns_syn']); // the next SYN gets through
        },
      });
      pairs.push(pair);
      await pair.move(4000, 40);
      await pair.close();
      const [c] = await late!.waitFor((r) => pair!.isClient(r) && r.outcome !== undefined);
      await late!.waitFor((r) => pair!.isServer(r) && r.outcome !== undefined);
      assert.deepEqual([c!.openedBeforeStart, c!.local.comm, c!.outcome], [true, 'scli-syn', 'closed']);
      assert.deepEqual(totals(tcp(late!, pair.isClient)), { bytesSent: 4000, bytesReceived: 40 });
      // the server's end was made after the start: tracked as ever
      assert.ok(tcp(late!, pair.isServer).every((r) => r.openedBeforeStart === undefined));
      assert.deepEqual(totals(tcp(late!, pair.isServer)), { bytesSent: 40, bytesReceived: 4000 });
      assert.equal(tcp(late!, pair.isEither).length, tcp(late!, pair.isClient).length + tcp(late!, pair.isServer).length, 'every record names the right process');
    } finally {
      const exit = await late?.stop();
      assert.equal(exit?.code, 0, exit?.stderr);
    }
  });

  test("waiting in the server's accept queue when the agent started: found at start, named after the process that accepts it", async () => {
    const pair = await StreamPair.open('queued', net.b, net.a, port(), 4, { acceptLater: true });
    pairs.push(pair);
    await pair.sendAhead(500); // before the start (it waits, unread, in the queued connection): not counted
    const late = new TraceAgent(['--interval', '1s']);
    try {
      await late.ready;
      await pair.accept();
      await pair.server.waitFor('received', 15_000, (e) => e['total'] === 500);
      await pair.move(777, 333);
      await pair.close();
      const [s] = await late.waitFor((r) => pair.isServer(r) && r.outcome !== undefined);
      await late.waitFor((r) => pair.isClient(r) && r.outcome !== undefined);
      assert.deepEqual([s!.openedBeforeStart, s!.local.comm, s!.local.pid, s!.outcome], [true, 'ssrv-queued', pair.server.pid, 'closed']);
      assert.ok(tcp(late, pair.isServer).every((r) => r.openedBeforeStart && r.local.comm === 'ssrv-queued'));
      assert.deepEqual(totals(tcp(late, pair.isServer)), { bytesSent: 333, bytesReceived: 777 });
      assert.deepEqual(totals(tcp(late, pair.isClient)), { bytesSent: 777, bytesReceived: 333 });
      assert.equal(tcp(late, pair.isEither).length, tcp(late, pair.isClient).length + tcp(late, pair.isServer).length, 'every record names the right process');
    } finally {
      const exit = await late.stop();
      assert.equal(exit.code, 0, exit.stderr);
    }
  });

  test('an agent restarted in the middle of a connection: each counts what moved while it ran, and the two add up', async () => {
    const first = new TraceAgent(['--interval', '1s']);
    await first.ready;
    const pair = await StreamPair.open('rst', net.b, net.a, port());
    pairs.push(pair);
    await pair.move(1000, 10);
    await pair.move(0, 5); // whatever interval this lands in: the stop reports it
    const firstExit = await first.stop();
    assert.equal(firstExit.code, 0, firstExit.stderr);
    const second = new TraceAgent(['--interval', '1s']);
    try {
      await second.ready;
      await pair.move(2000, 20);
      await pair.close();
      await second.waitFor((r) => pair.isClient(r) && r.outcome !== undefined);
      await second.waitFor((r) => pair.isServer(r) && r.outcome !== undefined);
    } finally {
      const exit = await second.stop();
      assert.equal(exit.code, 0, exit.stderr);
    }
    assert.deepEqual(totals(tcp(first, pair.isClient)), { bytesSent: 1000, bytesReceived: 15 });
    assert.deepEqual(totals(tcp(first, pair.isServer)), { bytesSent: 15, bytesReceived: 1000 });
    assert.ok(tcp(first, pair.isEither).every((r) => r.state === 'open' && !r.openedBeforeStart));
    assert.deepEqual(totals(tcp(second, pair.isClient)), { bytesSent: 2000, bytesReceived: 20 });
    assert.deepEqual(totals(tcp(second, pair.isServer)), { bytesSent: 20, bytesReceived: 2000 });
    assert.ok(tcp(second, pair.isEither).every((r) => r.openedBeforeStart));
  });
});
