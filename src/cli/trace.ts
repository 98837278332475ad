/**
 * `bpfagent trace`: attach the probes and print one record per finished TCP
 * connection, per UDP flow and interval, and per DNS lookup. stdout carries
 * records only; logs go to stderr.
 */
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import type { Logger } from 'pino';
import { findCgroup2Root } from '../bpf/cgroup-root.js';
import { ensureTracefs, probeKernelFeatures, requireBaseFeatures } from '../bpf/features.js';
import { loadNative, PROJECT_ROOT, type BpfNative } from '../bpf/native.js';
import { NetTracer, type UdpDrain } from '../bpf/net-tracer.js';
import { TcpTracer } from '../bpf/tcp-tracer.js';
import { decodeBatch, type DecodeStats, type RecordSink } from '../events/batch.js';
import { decodeUdpFlows } from '../events/udp-flow.js';
import { DnsNameCache } from '../enrich/dns-cache.js';
import { DnsTracker } from '../enrich/dns-tracker.js';
import { nameRemote } from '../enrich/remote-names.js';
import { RecordWriter } from '../output/writer.js';
import { effectiveCapabilities, missingTracingCapabilities } from '../util/capabilities.js';
import { MonotonicClock } from '../util/clock.js';
import { EnvironmentError } from '../util/errors.js';
import type { TraceOptions } from './trace-options.js';

export const DEFAULT_BTF = '/sys/kernel/btf/vmlinux';
export const TCP_OBJECT = path.join(PROJECT_ROOT, 'build-bpf/tcp.bpf.o');
export const NET_OBJECT = path.join(PROJECT_ROOT, 'build-bpf/net.bpf.o');

/** Fail early, in one line, when privileges are short. */
export function checkPrivileges(): void {
  const missing = missingTracingCapabilities(effectiveCapabilities());
  if (missing.length)
    throw new EnvironmentError(
      `missing capabilities ${missing.join(', ')}: run as root, or grant them (setcap cap_bpf,cap_perfmon+ep on the node binary)`,
    );
}

/** UDP and DNS are an addition: without cgroup v2 or a recent kernel, TCP tracing goes on alone. */
function startNetTracer(native: BpfNative, tcp: TcpTracer, opts: TraceOptions, log: Logger): NetTracer | undefined {
  const cgroupRoot = findCgroup2Root();
  if (!cgroupRoot) {
    log.warn('cgroup v2 is not mounted (mount -t cgroup2 none /sys/fs/cgroup/unified): UDP flows and DNS are off');
    return undefined;
  }
  try {
    return NetTracer.start(native, {
      objectPath: NET_OBJECT,
      btfPath: opts.btf,
      cgroupRoot,
      maxUdpFlows: opts.maxUdpFlows,
      ring: { obj: tcp.obj, map: 'events', bytes: opts.ringbufBytes },
    });
  } catch (e) {
    if (!(e instanceof EnvironmentError)) throw e;
    log.warn(`${e.message}: UDP flows and DNS are off`);
    return undefined;
  }
}

export async function runTrace(opts: TraceOptions, log: Logger): Promise<number> {
  checkPrivileges();
  const native: BpfNative = loadNative();
  native.setDebug(opts.debug);
  const tracefs = ensureTracefs(native);
  const features = probeKernelFeatures(native, opts.btf ?? DEFAULT_BTF, tracefs);
  requireBaseFeatures(features);

  const clock = new MonotonicClock();
  const stats: DecodeStats = { records: 0, dnsPackets: 0, decodeErrors: 0 };
  const writer = new RecordWriter(process.stdout, opts.json);
  const names = new DnsNameCache();
  const dns = new DnsTracker(names, (r) => writer.add(r));
  const sink: RecordSink = {
    tcp: (r, endMs) => {
      nameRemote(r, endMs, names);
      writer.add(r);
    },
    dns: (p) => dns.handle(p),
  };

  const tcp = TcpTracer.start(native, features, {
    objectPath: TCP_OBJECT,
    btfPath: opts.btf,
    mode: opts.attach,
    maxConnections: opts.maxConnections,
    ringbufBytes: opts.ringbufBytes,
    pollMs: opts.pollMs,
    onBatch: (batch) => {
      decodeBatch(batch, clock, stats, sink);
      writer.flush();
    },
    onFallback: (mode, reason) => log.info({ mode, reason }, `attach mode ${mode} passed over`),
  });
  const net = startNetTracer(native, tcp, opts, log);
  writer.header();

  let udpRecords = 0;
  let lastCollect = Date.now();
  const emitUdp = (drains: UdpDrain[]): void => {
    const now = Date.now();
    for (const d of drains) {
      for (const r of decodeUdpFlows(d.dump, now, now - lastCollect)) {
        nameRemote(r, now, names);
        writer.add(r);
        udpRecords++;
      }
    }
    lastCollect = now;
  };
  // One collection at a time; stop() waits for the one in progress.
  let collecting: Promise<void> = Promise.resolve();
  const tick = setInterval(() => {
    collecting = collecting.then(async () => {
      if (net) emitUdp([await net.collectUdp()]);
      dns.sweep(Date.now());
      names.sweep(Date.now());
      writer.flush();
    });
  }, opts.intervalMs);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (why: string): Promise<void> => {
      if (stopping) return;
      stopping = true;
      log.info(`stopping (${why})`);
      clearInterval(tick);
      await collecting;
      // every producer off first, then drain: what follows is complete
      tcp.detach();
      net?.detach();
      await tcp.drain();
      if (net) emitUdp(net.drainAll());
      dns.flush(Date.now());
      writer.flush();
      const counters = tcp.counters();
      const netCounters = net?.counters();
      const udpEvicted = net?.evictedTotal ?? 0;
      tcp.close();
      net?.close();
      const lost =
        counters.lossRingbufFull + counters.lossSockMapFull + stats.decodeErrors + udpEvicted +
        (netCounters?.lossDnsRingbufFull ?? 0);
      log.info(
        {
          records: stats.records,
          decodeErrors: stats.decodeErrors,
          ...counters,
          udpRecords,
          udpEvicted,
          dnsPackets: stats.dnsPackets,
          dnsLookups: dns.stats.lookups,
          dnsMalformed: dns.stats.malformed,
          dnsUnmatchedAnswers: dns.stats.unmatchedAnswers,
          dnsPendingDropped: dns.stats.pendingDropped,
          lossDnsRingbufFull: netCounters?.lossDnsRingbufFull ?? 0,
          dnsTruncated: netCounters?.dnsTruncated ?? 0,
          dnsEventsSubmitted: netCounters?.dnsEventsSubmitted ?? 0,
          nameCacheSize: names.size,
          nameCacheEvictions: names.evictions,
        },
        `summary: ${stats.records} TCP records, ${udpRecords} UDP records, ${dns.stats.lookups} DNS lookups; ` +
          `lost ${lost} (ring buffer full ${counters.lossRingbufFull}, connection map full ${counters.lossSockMapFull}, ` +
          `UDP flows evicted ${udpEvicted}, DNS ring buffer full ${netCounters?.lossDnsRingbufFull ?? 0}, ` +
          `undecodable ${stats.decodeErrors}); ${dns.stats.malformed} malformed DNS packets skipped; ` +
          `${counters.untrackedClose} connections opened before start not reported`,
      );
      resolve(0);
    };
    process.once('SIGINT', () => void stop('SIGINT'));
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      // the reader went away (EPIPE): stop quietly instead of crashing
      writer.markBroken();
      void stop(`stdout ${e.code ?? e.message}`);
    });
    // only now: whoever waits for "ready" may signal us at once
    log.info(
      { attach: tcp.mode, programs: tcp.programs, udp: !!net, dns: !!net, startupMs: Math.round(performance.now()) },
      `ready: probes attached (TCP via ${tcp.mode}${net ? '; UDP and DNS via cgroup programs' : ''})`,
    );
  });
}
