/** What the `bpfagent hub` process tests put into ClickHouse before asking the hub. */
import { ClickHouseSink } from '../../src/sinks/clickhouse.js';

/**
 * One connection as an agent's sink ships it (making the tables if needed):
 * curl on 10.0.0.1 to 10.0.0.2:443, 12 bytes sent and 34 received, cluster
 * c1, node n1, a minute ago (in the hub's default 15-minute window).
 */
export async function shipOneConnection(url: string, database: string): Promise<void> {
  const sink = new ClickHouseSink({ url, database, batching: { flushIntervalMs: 20 } });
  await sink.start();
  const ts = new Date(Date.now() - 60_000).toISOString();
  sink.export([
    {
      ts, proto: 'tcp', family: 4, direction: 'outbound', outcome: 'closed', local: { addr: '10.0.0.1', port: 40001, pid: 1, comm: 'curl', cgroupId: 1, netns: 1 },
      remote: { addr: '10.0.0.2', port: 443 }, bytesSent: 12, bytesReceived: 34, retransmits: 0, srttUs: 100, durationMs: 1, locality: 'cluster',
      cluster: 'c1', node: 'n1', intervalStart: ts, intervalMs: 10_000,
    },
  ]);
  await sink.flush(5000);
  await sink.shutdown(1000);
}
