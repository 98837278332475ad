/**
 * `bpfagent flows`: connections and UDP flows aggregated into edges (caller,
 * callee, server port, protocol, observing side), printed once per interval.
 */
import type { Logger } from 'pino';
import { MonotonicClock } from '../util/clock.js';
import { Collector, runUntilSignalled } from '../agent/collector.js';
import { checkPrivileges, type LoadedProbes } from '../bpf/probe-load.js';
import { startEnrichment } from '../agent/enrichment.js';
import { EdgeTable, type Edge } from '../flows/edge-table.js';
import type { TraceOptions } from './trace-options.js';

export const FLOWS_HELP = `Usage: bpfagent flows [options]

Every --interval (default 10s), print the edges of that interval: who called
whom (process, workload, DNS name or address), on which server port and
protocol, as seen by the client or the server side, with connections, failures
by kind, bytes and packets each way, retransmits and an RTT histogram.
Client ports never split an edge. Needs root.

Options: the same as 'bpfagent trace' (see 'bpfagent trace --help').
  --json        one JSON object per edge per line (see README, "Edges")
`;

export interface EdgeLine {
  ts: string;
  intervalMs: number;
  proto: Edge['proto'];
  observedBy: Edge['observedBy'];
  source: Edge['source'];
  destination: Edge['destination'];
  port: number;
  locality?: string;
  connections: number;
  failed: Edge['failed'];
  bytesSent: number;
  bytesReceived: number;
  packetsSent: number;
  packetsReceived: number;
  retransmits: number;
  rttUs: ReturnType<Edge['rttUs']['toJSON']>;
}

function line(e: Edge, ts: string, intervalMs: number): EdgeLine {
  const { rttUs, ...rest } = e;
  return { ts, intervalMs, ...rest, rttUs: rttUs.toJSON() };
}

function text(e: EdgeLine): string {
  const failed = e.failed.refused + e.failed.timeout + e.failed.reset;
  const traffic = e.proto === 'tcp' ? `${e.connections} conn, ${failed} failed` : `${e.packetsSent}/${e.packetsReceived} pkts`;
  return `${e.ts.slice(11, 23)} ${e.proto} ${e.source.id} -> ${e.destination.id}:${e.port} (${e.observedBy}) ${traffic}, ${e.bytesSent}/${e.bytesReceived} bytes\n`;
}

/** `probes`: their loading, begun by the caller before it imported this (see beginProbeLoad). */
export async function runFlows(opts: TraceOptions, log: Logger, probes?: Promise<LoadedProbes>): Promise<number> {
  checkPrivileges();
  const enrichment = await startEnrichment(opts, log);
  const table = new EdgeTable();
  // internal time (monotonic): a stepped wall clock changes the lines' ts, never their intervalMs
  const clock = new MonotonicClock();
  let intervalStart = clock.nowMs();
  const collector = new Collector(opts, log, (records, intervalEnd) => {
    for (const r of records) table.add(r);
    if (!intervalEnd) return;
    const now = clock.nowMs();
    const ts = clock.iso(now);
    const lines = table.drain().map((e) => line(e, ts, now - intervalStart));
    intervalStart = now;
    if (lines.length) process.stdout.write(lines.map((l) => (opts.json ? JSON.stringify(l) + '\n' : text(l))).join(''));
  }, enrichment.enricher, undefined, undefined, clock);
  return runUntilSignalled(
    collector,
    log,
    () => {
      if (table.overflowed) log.warn({ edgesOverflowed: table.overflowed }, `${table.overflowed} records went to the overflow edge`);
    },
    undefined,
    enrichment,
    probes,
    enrichment.synced,
  );
}
