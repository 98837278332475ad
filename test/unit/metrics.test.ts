/** Prometheus metrics from the flow table: exact counter deltas, bounded label sets with an overflow series, health at scrape time. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { DnsRecord, TcpRecord, UdpRecord } from '../../src/events/records.js';
import { EdgeTable } from '../../src/flows/edge-table.js';
import { LOSS_COUNTERS, lossStatus } from '../../src/agent/loss-counters.js';
import { describeSummary } from '../../src/agent/collector.js';
import { AgentMetrics } from '../../src/metrics/metrics.js';
import { CGROUP_COUNTER_NAMES, COUNTER_NAMES, NET_COUNTER_NAMES } from '../../src/events/layout.js';

function tcp(over: { comm?: string; remote?: string; port?: number; sent?: number; received?: number; outcome?: TcpRecord['outcome']; srttUs?: number; retransmits?: number }): TcpRecord {
  return {
    ts: '2026-11-25T00:00:00.000Z',
    proto: 'tcp',
    family: 4,
    direction: 'outbound',
    outcome: over.outcome ?? 'closed',
    local: { addr: '10.0.0.1', port: 40000, pid: 1, comm: over.comm ?? 'curl', cgroupId: 1, netns: 1 },
    remote: { addr: over.remote ?? '10.0.0.2', port: over.port ?? 80 },
    bytesSent: over.sent ?? 0,
    bytesReceived: over.received ?? 0,
    retransmits: over.retransmits ?? 0,
    srttUs: over.srttUs ?? 0,
    durationMs: 1,
    locality: 'external',
  };
}

/** Parse the exposition text: "name{labels}" -> value. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

const EDGE = 'source="process:curl",source_namespace="",destination="10.0.0.2",destination_namespace="",destination_service="",port="80",protocol="tcp",locality="external",observed_by="client"';

function metricsOf(maxSeriesPerMetric = 2000): AgentMetrics {
  return new AgentMetrics({ maxSeriesPerMetric, processMetrics: false });
}

describe('metrics: edges into counters', () => {
  test('each interval adds its deltas, exactly', async () => {
    const m = metricsOf();
    const table = new EdgeTable();
    table.add(tcp({ sent: 100, received: 11, srttUs: 40 }));
    table.add(tcp({ sent: 200, received: 22, srttUs: 300, retransmits: 2 }));
    table.add(tcp({ outcome: 'refused' }));
    m.addEdges(table.drain());
    table.add(tcp({ sent: 5, received: 1, srttUs: 2_000_000, outcome: 'reset' }));
    m.addEdges(table.drain());
    m.addEdges(table.drain()); // an empty interval changes nothing
    const v = parse(await m.text());
    assert.equal(v.get(`bpfagent_tcp_connections_total{${EDGE}}`), 4);
    assert.equal(v.get(`bpfagent_tcp_bytes_total{${EDGE},direction="sent"}`), 305);
    assert.equal(v.get(`bpfagent_tcp_bytes_total{${EDGE},direction="received"}`), 34);
    assert.equal(v.get(`bpfagent_tcp_retransmits_total{${EDGE}}`), 2);
    assert.equal(v.get(`bpfagent_tcp_connections_failed_total{${EDGE},outcome="refused"}`), 1);
    assert.equal(v.get(`bpfagent_tcp_connections_failed_total{${EDGE},outcome="reset"}`), 1);
    assert.equal(v.get(`bpfagent_tcp_connections_failed_total{${EDGE},outcome="timeout"}`), undefined, 'no series for an outcome never seen');
    // RTT in seconds, cumulative buckets; the refused attempt had no RTT
    assert.equal(v.get(`bpfagent_tcp_rtt_seconds_bucket{${EDGE},le="0.00005"}`), 1);
    assert.equal(v.get(`bpfagent_tcp_rtt_seconds_bucket{${EDGE},le="0.0005"}`), 2);
    assert.equal(v.get(`bpfagent_tcp_rtt_seconds_bucket{${EDGE},le="1"}`), 2);
    assert.equal(v.get(`bpfagent_tcp_rtt_seconds_bucket{${EDGE},le="+Inf"}`), 3);
    assert.equal(v.get(`bpfagent_tcp_rtt_seconds_count{${EDGE}}`), 3);
    assert.ok(Math.abs(v.get(`bpfagent_tcp_rtt_seconds_sum{${EDGE}}`)! - 2.00034) < 1e-9);
  });

  test('UDP packets and bytes each way', async () => {
    const m = metricsOf();
    const table = new EdgeTable();
    const udp: UdpRecord = {
      ts: '2026-11-25T00:00:00.000Z', proto: 'udp', family: 4, direction: 'outbound', directionFrom: 'first-datagram',
      local: { addr: '10.0.0.1', port: 50000, pid: 1, comm: 'statsd', cgroupId: 1, netns: 1 },
      remote: { addr: '10.0.0.9', port: 8125 },
      packetsSent: 3, packetsReceived: 1, bytesSent: 300, bytesReceived: 7, intervalMs: 1000,
    };
    table.add(udp);
    table.add(udp);
    m.addEdges(table.drain());
    const e = 'source="process:statsd",source_namespace="",destination="10.0.0.9",destination_namespace="",destination_service="",port="8125",protocol="udp",locality="",observed_by="client"';
    const v = parse(await m.text());
    assert.equal(v.get(`bpfagent_udp_packets_total{${e},direction="sent"}`), 6);
    assert.equal(v.get(`bpfagent_udp_packets_total{${e},direction="received"}`), 2);
    assert.equal(v.get(`bpfagent_udp_bytes_total{${e},direction="sent"}`), 600);
    assert.equal(v.get(`bpfagent_udp_bytes_total{${e},direction="received"}`), 14);
  });

  test('DNS lookups and failures by name', async () => {
    const m = metricsOf();
    const dns = (query: string, rcode: string): DnsRecord => ({
      ts: '2026-11-25T00:00:00.000Z', proto: 'dns', query, qtype: 'A', rcode, answers: [], latencyMs: 1, transport: 'udp',
      local: { addr: '10.0.0.1', port: 5353, pid: 1, comm: 'curl', cgroupId: 1, netns: 1 }, remote: { addr: '10.0.0.53', port: 53 },
    });
    m.addRecords([dns('a.test', 'NOERROR'), dns('a.test', 'NOERROR'), dns('b.test', 'NXDOMAIN'), dns('b.test', 'TIMEOUT'), tcp({})]);
    const v = parse(await m.text());
    assert.equal(v.get('bpfagent_dns_lookups_total{name="a.test",qtype="A"}'), 2);
    assert.equal(v.get('bpfagent_dns_lookups_total{name="b.test",qtype="A"}'), 2);
    assert.equal(v.get('bpfagent_dns_failures_total{name="b.test",qtype="A",rcode="NXDOMAIN"}'), 1);
    assert.equal(v.get('bpfagent_dns_failures_total{name="b.test",qtype="A",rcode="TIMEOUT"}'), 1);
    assert.equal(v.get('bpfagent_dns_failures_total{name="a.test",qtype="A",rcode="NOERROR"}'), undefined);
  });
});

describe('metrics: cardinality limit', () => {
  test('past the limit, new label sets go to one "(overflow)" series, counted; known ones keep counting', async () => {
    const m = metricsOf(3);
    const table = new EdgeTable();
    for (let i = 0; i < 5; i++) table.add(tcp({ port: 1000 + i, sent: 10 * (i + 1) }));
    m.addEdges(table.drain());
    table.add(tcp({ port: 1000, sent: 1 })); // known
    table.add(tcp({ port: 2000, sent: 1000 })); // new: overflow
    m.addEdges(table.drain());
    const v = parse(await m.text());
    const conns = [...v].filter(([k]) => k.startsWith('bpfagent_tcp_connections_total{'));
    assert.equal(conns.length, 4, '3 series and the overflow one');
    const port = (p: string): string => EDGE.replace('port="80"', `port="${p}"`);
    assert.equal(v.get(`bpfagent_tcp_connections_total{${port('1000')}}`), 2);
    assert.equal(v.get(`bpfagent_tcp_connections_total{${port('1002')}}`), 1);
    assert.equal(v.get(`bpfagent_tcp_connections_total{${port('1003')}}`), undefined);
    const overflow = 'source="(overflow)",source_namespace="(overflow)",destination="(overflow)",destination_namespace="(overflow)",destination_service="(overflow)",port="(overflow)",protocol="(overflow)",locality="(overflow)",observed_by="(overflow)"';
    assert.equal(v.get(`bpfagent_tcp_connections_total{${overflow}}`), 3);
    // bytes: two series per edge (sent, received), so the limit is met sooner; nothing is lost
    const bytes = [...v].filter(([k]) => k.startsWith('bpfagent_tcp_bytes_total{'));
    assert.equal(bytes.length, 4);
    assert.equal(bytes.reduce((a, [, n]) => a + n, 0), 10 + 20 + 30 + 40 + 50 + 1 + 1000, 'the sum over every series, overflow included, is exact');
    assert.equal(v.get('bpfagent_metrics_overflow_total{metric="bpfagent_tcp_connections_total"}'), 3);
    assert.equal(m.overflowCount('bpfagent_tcp_connections_total'), 3);
    assert.equal(v.get('bpfagent_metrics_series{metric="bpfagent_tcp_connections_total"}'), 4);
  });
});

describe('metrics: health read at scrape time', () => {
  test('collector, enrichment, flows and sinks', async () => {
    let records = 5;
    const m = new AgentMetrics({
      processMetrics: false,
      health: {
        collector: () => ({ records, udpRecords: 2, dnsPackets: 4, lossRingbufFull: 1, udpEvicted: 3, decodeErrors: 0, nameCacheSize: 9, untrackedClose: 6 }),
        enrichment: () => ({ processCacheSize: 7, containerCacheSize: 2, hostAddresses: 3 }),
        flows: () => ({ tracked: 11, overflowed: 1 }),
        sinks: () => [{ name: 'ch', ready: true, stats: { exported: 100, dropped: 2, queued: 8, failures: 1 } }],
      },
    });
    let v = parse(await m.text());
    assert.equal(v.get('bpfagent_events_read_total{kind="tcp_connection"}'), 5);
    assert.equal(v.get('bpfagent_events_read_total{kind="udp_flow"}'), 2);
    assert.equal(v.get('bpfagent_events_lost_total{reason="ringbuf_full",side="kernel"}'), 1);
    assert.equal(v.get('bpfagent_events_lost_total{reason="udp_flow_evicted",side="kernel"}'), 3);
    assert.equal(v.get('bpfagent_events_lost_total{reason="decode_error",side="agent"}'), 0);
    assert.equal(v.get('bpfagent_tcp_untracked_closes_total'), 6);
    assert.equal(v.get('bpfagent_enrichment_cache_entries{cache="process"}'), 7);
    assert.equal(v.get('bpfagent_enrichment_cache_entries{cache="dns_name"}'), 9);
    assert.equal(v.get('bpfagent_flows_tracked'), 11);
    assert.equal(v.get('bpfagent_flows_overflowed_total'), 1);
    assert.equal(v.get('bpfagent_sink_queue_depth{sink="ch"}'), 8);
    assert.equal(v.get('bpfagent_sink_dropped_total{sink="ch"}'), 2);
    assert.equal(v.get('bpfagent_sink_exported_total{sink="ch"}'), 100);
    assert.equal(v.get('bpfagent_sink_ready{sink="ch"}'), 1);
    records = 6;
    v = parse(await m.text());
    assert.equal(v.get('bpfagent_events_read_total{kind="tcp_connection"}'), 6, 'read afresh at each scrape');
  });

  test('lost: every counter of the one loss set, by reason and side, the same total as the summary and /api/status', async () => {
    const stats = Object.fromEntries(LOSS_COUNTERS.map((c, i) => [c.key, i + 1]));
    const m = new AgentMetrics({ processMetrics: false, health: { collector: () => ({ ...stats, tracingStopped: 1 }) } });
    const v = parse(await m.text());
    const exposed = [...v].filter(([k]) => k.startsWith('bpfagent_events_lost_total{'));
    assert.equal(exposed.length, LOSS_COUNTERS.length);
    for (const c of LOSS_COUNTERS) assert.equal(v.get(`bpfagent_events_lost_total{reason="${c.reason}",side="${c.side}"}`), stats[c.key], c.key);
    const total = exposed.reduce((n, [, x]) => n + x, 0);
    assert.equal(lossStatus(stats).total, total);
    assert.match(describeSummary(stats), new RegExp(`; lost ${total} \\(ringbuf full 1, connection map full 2, `));
    assert.equal(new Set(LOSS_COUNTERS.map((c) => c.reason)).size, LOSS_COUNTERS.length, 'reasons are unique');
    assert.equal(v.get('bpfagent_tracing'), 0, 'tracing stopped');
  });

  test('counters kept the old way are in the set: UDP directions forgotten, SO_REUSEPORT members not found, counts clamped at close', async () => {
    const m = new AgentMetrics({ processMetrics: false, health: { collector: () => ({ udpDirectionsForgotten: 4, listenerUnresolved: 2, deltaClamped: 1 }) } });
    const v = parse(await m.text());
    assert.equal(v.get('bpfagent_events_lost_total{reason="udp_direction_forgotten",side="agent"}'), 4);
    assert.equal(v.get('bpfagent_events_lost_total{reason="listener_unresolved",side="kernel"}'), 2);
    assert.equal(v.get('bpfagent_events_lost_total{reason="tcp_count_clamped",side="kernel"}'), 1);
    assert.equal([...v.keys()].filter((k) => k.startsWith('bpfagent_udp_directions_forgotten')).length, 0, 'no metric of its own');
    const status = lossStatus({ udpDirectionsForgotten: 4, listenerUnresolved: 2, deltaClamped: 1 });
    assert.equal(status.total, 7);
    assert.deepEqual([status.reasons['udp_direction_forgotten'], status.reasons['listener_unresolved'], status.reasons['tcp_count_clamped']], [4, 2, 1]);
  });

  test('every kernel counter is either a loss of the set or one of the activity counters named here', () => {
    // activity, not loss: records written, connections found at start, fwd_syns inserts and removals (their
    // difference less what is held is forwarded_syn_evicted), UDP table inserts (udp_flow_evicted likewise), and
    // closes of connections the agent never tracked (open at start, no process holding them; a connection the map
    // could not take is counted by connection_map_full when it opens, then here when it closes)
    const activity = ['untrackedClose', 'eventsSubmitted', 'fwdSynInserts', 'fwdSynRemoved', 'seededConnections', 'openReports', 'udpInserts0', 'udpInserts1', 'dnsEventsSubmitted', 'cgroupEventsSubmitted'];
    const losses = new Set(LOSS_COUNTERS.map((c) => c.key));
    for (const name of [...COUNTER_NAMES, ...NET_COUNTER_NAMES, ...CGROUP_COUNTER_NAMES]) assert.ok(losses.has(name) !== activity.includes(name), `${name}: in the loss set or named as activity, not both`);
  });

  test('a source that throws (stopping) leaves its metrics out, not the scrape', async () => {
    const m = new AgentMetrics({ processMetrics: false, health: { collector: () => { throw new Error('gone'); } } });
    const v = parse(await m.text());
    assert.equal(v.get('bpfagent_events_read_total{kind="tcp_connection"}'), undefined);
  });

  test('process metrics carry the bpfagent_ prefix; counters end in _total; every family has HELP and TYPE', async () => {
    const text = await new AgentMetrics().text();
    assert.match(text, /^bpfagent_process_cpu_seconds_total \d/m);
    assert.match(text, /^bpfagent_process_resident_memory_bytes \d/m);
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      assert.ok(name!.startsWith('bpfagent_'), name);
      if (type === 'counter') assert.ok(name!.endsWith('_total'), name);
      assert.ok(text.includes(`# HELP ${name} `), name);
    }
  });
});
