/**
 * A window longer than an hour, read by the hub an hour at a time
 * (src/hub/edge-chunks.ts), against a real ClickHouse: connections that end
 * in different hours, one whose client's and server's rows fall on both
 * sides of an hour (also through a Service whose DNAT its client did not
 * see), one long connection whose interval reports span three hours. Each
 * connection once with every byte, exactly as one query over the whole
 * window counts them, with one query per hour.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { hubSchema } from '../../src/config/schema.js';
import type { K8sInfo, TcpRecord } from '../../src/events/records.js';
import { chunkWindow } from '../../src/hub/edge-chunks.js';
import { openHubStore } from '../../src/hub/open.js';
import { ClickHouseSink } from '../../src/sinks/clickhouse.js';
import type { ShippedRecord } from '../../src/sinks/sink.js';
import { CLICKHOUSE_SKIP, ClickHouseServer } from '../helpers/clickhouse-server.js';

const H = 3_600_000;
// 10:00 yesterday (UTC), whole hours from there
const T10 = Math.floor(Date.now() / 86_400_000) * 86_400_000 - 86_400_000 + 10 * H;

test('chunkWindow: a window longer than an hour cut at the hours, each chunk read a little wider than it counts', () => {
  // an hour or less: the window itself, whichever hours it covers
  assert.deepEqual(chunkWindow(T10 - 1800_000, T10 + 1800_000, H), [{ read: { fromMs: T10 - 1800_000, toMs: T10 + 1800_000 } }]);
  assert.deepEqual(chunkWindow(T10 - 600_000, T10 + H + 5, H, 60_000), [
    { read: { fromMs: T10 - 600_000, toMs: T10 + 60_000 }, own: { fromMs: T10 - 600_000, toMs: T10 } },
    { read: { fromMs: T10 - 60_000, toMs: T10 + H + 5 }, own: { fromMs: T10, toMs: T10 + H } },
    { read: { fromMs: T10 + H - 60_000, toMs: T10 + H + 5 }, own: { fromMs: T10 + H, toMs: T10 + H + 5 } },
  ]);
});

const WEB: K8sInfo = { namespace: 'shop', pod: 'web-1', workload: 'web', workloadKind: 'Deployment', node: 'node-a', zone: 'z1' };
const API: K8sInfo = { namespace: 'shop', pod: 'api-1', workload: 'api', workloadKind: 'Deployment', service: 'api', node: 'node-b', zone: 'z2' };
let port = 41000;

/** Both sides' records of one web -> api connection through the ClusterIP: [ms of the client's, of the server's] for each report, the last the close. */
function conn(times: Array<[number, number]>, bytes: Array<[number, number]>, dnatSeen = true): ShippedRecord[] {
  const p = port++;
  return times.flatMap(([tc, ts], i) => {
    const state = i < times.length - 1 ? { state: 'open' as const } : {};
    const [sent, received] = bytes[i]!;
    const base = { proto: 'tcp' as const, family: 4 as const, retransmits: 0, durationMs: 5, outcome: 'closed' as const, srttUs: state.state ? 0 : 300, intervalStart: new Date(tc).toISOString(), intervalMs: 1000, cluster: 'east', ...state };
    const client = {
      ...base, ts: new Date(tc).toISOString(), node: 'node-a', direction: 'outbound', locality: 'cluster',
      local: { addr: '10.1.1.5', port: p, pid: 11, comm: 'web', cgroupId: 5, netns: 9, k8s: WEB },
      remote: { addr: '10.96.0.5', port: 80, ...(dnatSeen ? { reached: { addr: '10.1.2.7', port: 8080 }, k8s: { namespace: 'shop', service: 'api', pod: 'api-1', node: 'node-b', zone: 'z2' } } : { k8s: { namespace: 'shop', service: 'api' } }) },
      bytesSent: sent, bytesReceived: received,
    };
    const server = {
      ...base, ts: new Date(ts).toISOString(), node: 'node-b', direction: 'inbound', locality: 'cluster', srttUs: state.state ? 0 : 150,
      local: { addr: '10.1.2.7', port: 8080, pid: 21, comm: 'api', cgroupId: 6, netns: 10, k8s: API },
      remote: { addr: '10.1.1.5', port: p },
      bytesSent: received, bytesReceived: sent,
    };
    return [client, server] as unknown as ShippedRecord[];
  });
}

describe('a window of hours, read an hour at a time', { skip: CLICKHOUSE_SKIP }, () => {
  let ch: ClickHouseServer;
  before(async () => {
    ch = await ClickHouseServer.start();
    const sink = new ClickHouseSink({ url: ch.url, database: 'chunks', ttlDays: 0, batching: { maxBatch: 1000, flushIntervalMs: 50 } });
    await sink.start();
    sink.export([
      ...conn([[T10 + 1200_000, T10 + 1200_002]], [[100, 1000]]),
      // the client's row at 10:59:59.999, the server's at 11:00:00.003
      ...conn([[T10 + H - 1, T10 + H + 3]], [[200, 2000]]),
      ...conn([[T10 + H + 1800_000, T10 + H + 1800_001]], [[300, 3000]]),
      // the DNAT not seen by the client, across 12:00
      ...conn([[T10 + 2 * H - 2, T10 + 2 * H + 1]], [[400, 4000]], false),
      // open at 10:50, 11:10 and 12:10 (interval reports), closed at 12:40
      ...conn([[T10 + 3000_000, T10 + 3000_001], [T10 + H + 600_000, T10 + H + 600_001], [T10 + 2 * H + 600_000, T10 + 2 * H + 600_001], [T10 + 2 * H + 2400_000, T10 + 2 * H + 2400_001]], [[1, 10], [2, 20], [3, 30], [4, 40]]),
    ]);
    await sink.flush(10_000);
    assert.equal(sink.stats().dropped, 0);
    await sink.shutdown(2000);
  });
  after(async () => ch?.kill());

  test('each connection once, every byte, as one query counts them; one query per hour', async () => {
    const cfg = hubSchema.parse({ clickhouse: { url: ch.url, database: 'chunks' } });
    const hourly = openHubStore(cfg, { chunkMs: H });
    const whole = openHubStore(cfg, { chunkMs: 24 * H });
    try {
      const edges = await hourly.edges(T10, T10 + 3 * H);
      assert.equal(hourly.counters.queries, 3);
      assert.deepEqual(
        edges.map((e) => [e.source.id, e.destination.id, e.port, e.connections, e.bytesSent, e.bytesReceived, e.views, e.rttUs.count, e.locality]),
        [['east:shop/web', 'east:shop/api', 8080, 5, 100 + 200 + 300 + 400 + 1 + 2 + 3 + 4, 1000 + 2000 + 3000 + 4000 + 10 + 20 + 30 + 40, { both: 5, client: 0, server: 0 }, 5, 'cross-zone']],
      );
      assert.deepEqual([edges[0]!.firstSeen, edges[0]!.lastSeen], [Math.floor((T10 + 1200_000) / 1000) * 1000, Math.floor((T10 + 2 * H + 2400_001) / 1000) * 1000]);
      const once = await whole.edges(T10, T10 + 3 * H);
      assert.equal(whole.counters.queries, 1);
      assert.deepEqual(edges, once);
      // its connections: the client's rows of every hour
      const recs = await hourly.connections([edges[0]!.key], T10, T10 + 3 * H, 100);
      assert.equal(recs.length, 4 + 4);
    } finally {
      await hourly.close();
      await whole.close();
    }
  });
});
