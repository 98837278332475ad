/**
 * `bpfagent run` counts a long-lived connection's bytes as they flow: while
 * it is open, /metrics and the API's graph already carry what it moved, and
 * a JSON lines sink has its open records; it is counted as a connection once,
 * when it ends, and every total is exact.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TcpRecord } from '../../src/events/records.js';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { RunAgent } from '../helpers/run-agent.js';
import { StreamPair } from '../helpers/stream-pair.js';

/** The samples of an exposition text, by series. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+(?:\{.*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

describe('bpfagent run: a long-lived connection counted as it flows', { skip: KERNEL_SKIP }, () => {
  let agent: RunAgent;
  let net: TestNetwork;
  let dir: string;
  const port = 34000 + (process.pid % 100) * 2;

  before(async () => {
    net = new TestNetwork(11);
    dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-conns-run-'));
    agent = new RunAgent(`listen: 127.0.0.1:0\ninterval: 1s\nshutdownTimeout: 5s\nsinks:\n  jsonl:\n    path: ${dir}/flows.jsonl\n`);
    await agent.ready;
  });

  after(async () => {
    const exit = await agent?.stop('SIGTERM');
    net?.destroy();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(exit?.code, 0, exit?.stderr);
  });

  /** The client side's series of this edge (process:scli-run -> host B's address, port). */
  const series = (name: string, extra = ''): string =>
    `${name}{source="process:scli-run",source_namespace="",destination="${net.b.ipv4}",destination_namespace="",destination_service="",port="${port}",protocol="tcp",locality="same-host",observed_by="client"${extra}}`;

  async function metricsUntil(done: (m: Map<string, number>) => boolean): Promise<Map<string, number>> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const m = samples((await agent.get('/metrics')).body);
      if (done(m)) return m;
      if (Date.now() > deadline) throw new Error(`timed out; last ${[...m].filter(([k]) => k.includes('scli-run')).join('\n')}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  test('bytes in the interval they moved, the connection once at its end; metrics, graph and sink agree', async () => {
    const pair = await StreamPair.open('run', net.b, net.a, port);
    try {
      await pair.move(10_000, 1000);
      // open: the bytes are counted, no connection yet
      let m = await metricsUntil((x) => x.get(series('bpfagent_tcp_bytes_total', ',direction="sent"')) === 10_000);
      assert.equal(m.get(series('bpfagent_tcp_bytes_total', ',direction="received"')), 1000);
      assert.equal(m.get(series('bpfagent_tcp_connections_total')) ?? 0, 0);
      const graph = JSON.parse((await agent.get('/api/graph?window=5m')).body) as { edges: Array<{ source: string; port: number; connections: number; bytesSent: number; bytesReceived: number }> };
      const edge = graph.edges.find((e) => e.source === 'process:scli-run' && e.port === port);
      assert.deepEqual([edge?.connections, edge?.bytesSent, edge?.bytesReceived], [0, 10_000, 1000]);

      await pair.move(5, 7);
      await pair.close();
      m = await metricsUntil((x) => x.get(series('bpfagent_tcp_connections_total')) === 1);
      assert.equal(m.get(series('bpfagent_tcp_bytes_total', ',direction="sent"')), 10_005);
      assert.equal(m.get(series('bpfagent_tcp_bytes_total', ',direction="received"')), 1007);
      await new Promise((r) => setTimeout(r, 1500)); // another interval: still one connection
      m = samples((await agent.get('/metrics')).body);
      assert.equal(m.get(series('bpfagent_tcp_connections_total')), 1);
    } finally {
      pair.kill();
    }
    // the sink has every record: open ones, then the final one, adding up
    const shipped = readFileSync(`${dir}/flows.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as TcpRecord);
    const client = shipped.filter((r) => r.proto === 'tcp' && pair.isClient(r));
    assert.ok(client.length >= 2 && client.slice(0, -1).every((r) => r.state === 'open'), JSON.stringify(client));
    assert.equal(client.at(-1)!.outcome, 'closed');
    assert.deepEqual([client.reduce((n, r) => n + r.bytesSent, 0), client.reduce((n, r) => n + r.bytesReceived, 0)], [10_005, 1007]);
  });
});
