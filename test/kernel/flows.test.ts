/**
 * `bpfagent flows`: real connections between test hosts aggregated into
 * edges, with exact counts summed over intervals.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TraceAgent } from '../helpers/agent.js';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer } from '../helpers/processes.js';
import type { EdgeLine } from '../../src/cli/flows.js';

describe('bpfagent flows', { skip: KERNEL_SKIP }, () => {
  let agent: TraceAgent;
  let net: TestNetwork;
  const port = 26000 + (process.pid % 100) * 4;

  before(async () => {
    net = new TestNetwork(4);
    agent = new TraceAgent(['--interval', '1s'], 'flows');
    await agent.ready;
  });

  after(async () => {
    const exit = await agent?.stop();
    net?.destroy();
    assert.equal(exit?.code, 0, exit?.stderr);
  });

  const edges = (): EdgeLine[] => agent.records as unknown as EdgeLine[];

  /** Sum the edge's lines over intervals, waiting until `done` holds. */
  async function edgeTotals(pred: (e: EdgeLine) => boolean, done: (t: EdgeLine) => boolean): Promise<EdgeLine> {
    return agent.until(() => {
      const ls = edges().filter(pred);
      if (!ls.length) return undefined;
      const t = structuredClone(ls[0]!);
      for (const l of ls.slice(1)) {
        t.connections += l.connections;
        t.bytesSent += l.bytesSent;
        t.bytesReceived += l.bytesReceived;
        t.failed.refused += l.failed.refused;
        t.failed.timeout += l.failed.timeout;
        t.failed.reset += l.failed.reset;
        t.rttUs.count += l.rttUs.count;
      }
      return done(t) ? t : undefined;
    }, 'edge totals', 15_000);
  }

  test('three calls and a refused one: one edge per side, exact totals, client ports nowhere', async () => {
    const server = new Peer('fsrv', ['server', '--host', net.b.ipv4, '--port', String(port), '--send', '11', '--count', '3'], { netns: net.b.ns });
    await server.waitFor('listening');
    for (const n of [100, 200, 300]) {
      const c = new Peer('fcli', ['client', '--host', net.b.ipv4, '--port', String(port), '--send', String(n)], { netns: net.a.ns });
      await c.waitFor('done');
    }
    const refused = new Peer('fcli', ['client', '--host', net.b.ipv4, '--port', String(port + 1)], { netns: net.a.ns });
    await refused.waitFor('error');

    const client = await edgeTotals(
      (e) => e.observedBy === 'client' && e.source.id === 'process:fcli' && e.destination.id === net.b.ipv4 && e.port === port,
      (t) => t.connections >= 3,
    );
    assert.deepEqual(
      [client.proto, client.connections, client.bytesSent, client.bytesReceived, client.failed, client.rttUs.count],
      ['tcp', 3, 600, 33, { refused: 0, timeout: 0, reset: 0 }, 3],
    );
    const server_ = await edgeTotals(
      (e) => e.observedBy === 'server' && e.source.id === net.a.ipv4 && e.destination.id === 'process:fsrv' && e.port === port,
      (t) => t.connections >= 3,
    );
    assert.deepEqual([server_.connections, server_.bytesSent, server_.bytesReceived], [3, 600, 33]);
    const failed = await edgeTotals(
      (e) => e.observedBy === 'client' && e.source.id === 'process:fcli' && e.port === port + 1,
      (t) => t.connections >= 1,
    );
    assert.deepEqual([failed.connections, failed.failed], [1, { refused: 1, timeout: 0, reset: 0 }]);
    // no edge is keyed by a client's ephemeral port
    for (const e of edges()) if (e.source.id === 'process:fcli') assert.ok(e.port === port || e.port === port + 1, `port ${e.port}`);
  });
});
