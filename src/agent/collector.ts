/**
 * The probes-to-records pipeline every command shares: check privileges and
 * kernel features, load and attach the TCP and UDP/DNS probes, decode what
 * they report, pair DNS lookups, name remote addresses, and hand each record
 * to `onRecords` in batches. UDP flows come once per interval.
 *
 * stop() detaches every probe first and drains afterwards, so the summary it
 * returns accounts for everything that happened while attached.
 */
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import type { Logger } from 'pino';
import { findCgroup2Root } from '../bpf/cgroup-root.js';
import { ensureTracefs, probeKernelFeatures, requireBaseFeatures } from '../bpf/features.js';
import { isNativeError, loadNative, PROJECT_ROOT, type BpfNative } from '../bpf/native.js';
import { NetTracer, type UdpDrain } from '../bpf/net-tracer.js';
import { TcpTracer, type AttachMode } from '../bpf/tcp-tracer.js';
import { decodeBatch, type DecodeStats, type RecordSink } from '../events/batch.js';
import type { AgentRecord, TcpRecord, UdpRecord } from '../events/records.js';
import { beginBatchTime, endBatchTime } from '../events/batch-time.js';
import { decodeUdpFlows } from '../events/udp-flow.js';
import { DnsNameCache } from '../enrich/dns-cache.js';
import { DnsTracker } from '../enrich/dns-tracker.js';
import type { Enricher } from '../enrich/enricher.js';
import { nameRemote } from '../enrich/remote-names.js';
import { effectiveCapabilities, missingTracingCapabilities } from '../util/capabilities.js';
import { MonotonicClock } from '../util/clock.js';
import { EnvironmentError } from '../util/errors.js';

export const DEFAULT_BTF = '/sys/kernel/btf/vmlinux';
export const TCP_OBJECT = path.join(PROJECT_ROOT, 'build-bpf/tcp.bpf.o');
export const NET_OBJECT = path.join(PROJECT_ROOT, 'build-bpf/net.bpf.o');

export interface CollectorOptions {
  attach: AttachMode | 'auto';
  btf: string | null;
  maxConnections: number;
  ringbufBytes: number;
  pollMs: number;
  intervalMs: number;
  maxUdpFlows: number;
  debug: boolean;
}

/** What stop() reports: every count of records made and of records lost. */
export type CollectorSummary = Record<string, number>;

/** Fail early, in one line, when privileges are short. */
export function checkPrivileges(): void {
  const missing = missingTracingCapabilities(effectiveCapabilities());
  if (missing.length)
    throw new EnvironmentError(
      `missing capabilities ${missing.join(', ')}: run as root, or grant them (setcap cap_bpf,cap_perfmon+ep on the node binary)`,
    );
}

/**
 * The UDP/DNS object, loaded (not attached); undefined, with a warning, where
 * it cannot load: UDP and DNS are an addition, without cgroup v2 or a recent
 * kernel (6.3) TCP tracing goes on alone.
 */
async function loadNetTracer(native: BpfNative, ringFd: number, opts: CollectorOptions, log: Logger): Promise<NetTracer | undefined> {
  const cgroupRoot = findCgroup2Root();
  if (!cgroupRoot) {
    log.warn('cgroup v2 is not mounted (mount -t cgroup2 none /sys/fs/cgroup/unified): UDP flows and DNS are off');
    return undefined;
  }
  try {
    const net = await NetTracer.load(native, {
      objectPath: NET_OBJECT,
      btfPath: opts.btf,
      cgroupRoot,
      maxUdpFlows: opts.maxUdpFlows,
      ring: { fd: ringFd },
    });
    if (net.linearDnsOnly)
      log.warn('tracing programs cannot read whole packets on this kernel (skb dynptrs need Linux >= 6.12): DNS over TCP is not seen');
    return net;
  } catch (e) {
    if (!(e instanceof EnvironmentError)) throw e;
    log.warn(`${e.message}: UDP flows and DNS are off`);
    return undefined;
  }
}

/** Attach a loaded UDP/DNS object; undefined, with a warning, where it cannot attach. */
function attachNetTracer(net: NetTracer, tcp: TcpTracer, log: Logger): NetTracer | undefined {
  try {
    net.attach(tcp.xmitChain);
    return net;
  } catch (e) {
    if (!(e instanceof EnvironmentError)) throw e;
    log.warn(`${e.message}: UDP flows and DNS are off`);
    return undefined;
  }
}

export class Collector {
  private readonly decoded: DecodeStats = { records: 0, dnsPackets: 0, decodeErrors: 0 };
  private readonly names = new DnsNameCache();
  private readonly dns: DnsTracker;
  private pending: AgentRecord[] = [];
  private udpRecords = 0;
  private lastCollect = Date.now();
  private collecting: Promise<void> = Promise.resolve();
  private tick: NodeJS.Timeout | undefined;
  private tcp!: TcpTracer;
  private net: NetTracer | undefined;
  private closed = false;
  /** attach mode in use, UDP/DNS on or off: for the ready line */
  readonly info: Record<string, unknown> = {};

  /**
   * @param onRecords gets each batch of records; `intervalEnd` marks the batch
   *   that closes a UDP interval (after it, an interval's flows are complete).
   */
  constructor(
    private readonly opts: CollectorOptions,
    private readonly log: Logger,
    private readonly onRecords: (records: AgentRecord[], intervalEnd: boolean) => void,
    private readonly enricher?: Enricher,
  ) {
    this.dns = new DnsTracker(this.names, (r) => {
      this.enricher?.enrich(r);
      this.pending.push(r);
    });
  }

  /**
   * Load both objects side by side (each on a worker thread; they share one
   * ring buffer, made first), then attach: TCP first, then UDP/DNS.
   */
  async start(): Promise<void> {
    checkPrivileges();
    const native = loadNative();
    native.setDebug(this.opts.debug);
    const tracefs = ensureTracefs(native);
    const features = probeKernelFeatures(native, this.opts.btf ?? DEFAULT_BTF, tracefs);
    requireBaseFeatures(features);

    const clock = new MonotonicClock();
    const batchTcp: TcpRecord[] = [];
    const sink: RecordSink = {
      tcp: (r, endMs) => {
        nameRemote(r, endMs, this.names);
        batchTcp.push(r);
      },
      dns: (p) => this.dns.handle(p),
    };
    let ringFd: number;
    try {
      // named as the TCP object's ring: a reused map takes the kernel map's name, and the reader opens it by name
      ringFd = native.ringCreate('events', this.opts.ringbufBytes);
    } catch (e) {
      throw new EnvironmentError(`${(e as Error).message.split('\n')[0]}${isNativeError(e) && (e.errno === 1 || e.errno === 13) ? ': run as root or grant CAP_BPF' : ''}`);
    }
    const netLoad = loadNetTracer(native, ringFd, this.opts, this.log);
    const tcpLoad = TcpTracer.start(native, features, {
      objectPath: TCP_OBJECT,
      btfPath: this.opts.btf,
      mode: this.opts.attach,
      maxConnections: this.opts.maxConnections,
      ring: { fd: ringFd, bytes: this.opts.ringbufBytes },
      pollMs: this.opts.pollMs,
      onBatch: (batch) => {
        // enriched as a whole once decoded (see Enricher.enrichAll), within the batch's time
        const outer = beginBatchTime();
        try {
          decodeBatch(batch, clock, this.decoded, sink);
          this.enricher?.enrichAll(batchTcp);
          for (const r of batchTcp) this.pending.push(r);
        } finally {
          batchTcp.length = 0;
          endBatchTime(outer);
        }
        this.flush(false);
      },
      onFallback: (mode, reason) => this.log.info({ mode, reason }, `attach mode ${mode} passed over`),
    });
    try {
      // both settle before anything is thrown: no object is left loading
      const [tcp, net] = await Promise.allSettled([tcpLoad, netLoad]);
      if (tcp.status === 'rejected') {
        if (net.status === 'fulfilled') net.value?.close();
        throw tcp.reason;
      }
      this.tcp = tcp.value;
      if (net.status === 'rejected') {
        this.tcp.close();
        throw net.reason;
      }
      this.net = net.value && attachNetTracer(net.value, this.tcp, this.log);
    } finally {
      native.closeFd(ringFd); // each object holds its own copy
    }
    this.tick = setInterval(() => {
      this.collecting = this.collecting.then(() => this.endInterval());
    }, this.opts.intervalMs);
    Object.assign(this.info, {
      attach: this.tcp.mode,
      programs: this.tcp.programs,
      features,
      udp: !!this.net,
      dns: !!this.net,
      startupMs: Math.round(performance.now()),
    });
  }

  get description(): string {
    return `TCP via ${this.tcp.mode}${this.net ? '; UDP and DNS via tp_btf' : ''}`;
  }

  private flush(intervalEnd: boolean): void {
    if (!this.pending.length && !intervalEnd) return;
    const batch = this.pending;
    this.pending = [];
    this.onRecords(batch, intervalEnd);
  }

  private emitUdp(drains: UdpDrain[]): void {
    const now = Date.now();
    const flows: UdpRecord[] = [];
    for (const d of drains) {
      for (const r of decodeUdpFlows(d.dump, now, now - this.lastCollect)) {
        nameRemote(r, now, this.names);
        flows.push(r);
      }
    }
    this.enricher?.enrichAll(flows);
    for (const r of flows) this.pending.push(r);
    this.udpRecords += flows.length;
    this.lastCollect = now;
  }

  private async endInterval(): Promise<void> {
    if (this.net) this.emitUdp([await this.net.collectUdp()]);
    const now = Date.now();
    this.dns.sweep(now);
    this.names.sweep(now);
    this.flush(true);
  }

  /** Detach, drain, deliver the last records, free everything; returns the summary. */
  async stop(): Promise<CollectorSummary> {
    clearInterval(this.tick);
    await this.collecting;
    // every producer off first, then drain: what follows is complete
    this.tcp.detach();
    this.net?.detach();
    await this.tcp.drain();
    if (this.net) this.emitUdp(this.net.drainAll());
    this.dns.flush(Date.now());
    this.flush(true);
    const summary = this.stats();
    this.closed = true;
    this.tcp.close();
    this.net?.close();
    return summary;
  }

  /**
   * Every count of records made and lost so far, kernel counters included
   * (read live while attached; at stop, after the drain, they are final).
   */
  stats(): CollectorSummary {
    if (this.closed) throw new Error('collector: stats() after stop()');
    const counters = this.tcp.counters();
    const net = this.net?.counters();
    const udpEvicted = this.net?.evictedTotal ?? 0;
    return {
      records: this.decoded.records,
      decodeErrors: this.decoded.decodeErrors,
      ...counters,
      udpRecords: this.udpRecords,
      udpEvicted,
      dnsPackets: this.decoded.dnsPackets,
      dnsLookups: this.dns.stats.lookups,
      dnsMalformed: this.dns.stats.malformed,
      dnsUnmatchedAnswers: this.dns.stats.unmatchedAnswers,
      dnsPendingDropped: this.dns.stats.pendingDropped,
      lossDnsRingbufFull: net?.lossDnsRingbufFull ?? 0,
      dnsTruncated: net?.dnsTruncated ?? 0,
      dnsEventsSubmitted: net?.dnsEventsSubmitted ?? 0,
      nameCacheSize: this.names.size,
      nameCacheEvictions: this.names.evictions,
    };
  }
}

/** The summary as one sentence for the stderr log. */
export function describeSummary(s: CollectorSummary): string {
  const n = (k: string): number => s[k] ?? 0;
  const lost = n('lossRingbufFull') + n('lossSockMapFull') + n('decodeErrors') + n('udpEvicted') + n('lossDnsRingbufFull');
  return (
    `summary: ${n('records')} TCP records, ${n('udpRecords')} UDP records, ${n('dnsLookups')} DNS lookups; ` +
    `lost ${lost} (ring buffer full ${n('lossRingbufFull')}, connection map full ${n('lossSockMapFull')}, ` +
    `UDP flows evicted ${n('udpEvicted')}, DNS ring buffer full ${n('lossDnsRingbufFull')}, ` +
    `undecodable ${n('decodeErrors')}); ${n('dnsMalformed')} malformed DNS packets skipped; ` +
    `${n('untrackedClose')} connections opened before start not reported`
  );
}

/**
 * Run until SIGINT/SIGTERM (or `stopOn` resolves): start the collector, log
 * ready once the signal handlers are in place, stop, log the summary.
 */
export function runUntilSignalled(
  collector: Collector,
  log: Logger,
  onStopped: () => void | Promise<void>,
  stopOn?: Promise<string>,
  enrichment?: { stats(): Record<string, number>; stop(): Promise<void> },
): Promise<number> {
  return collector.start().then(() => new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (why: string): Promise<void> => {
      if (stopping) return;
      stopping = true;
      log.info(`stopping (${why})`);
      const summary = await collector.stop();
      await onStopped();
      await enrichment?.stop();
      log.info({ ...summary, ...enrichment?.stats() }, describeSummary(summary));
      resolve(0);
    };
    process.once('SIGINT', () => void stop('SIGINT'));
    process.once('SIGTERM', () => void stop('SIGTERM'));
    void stopOn?.then((why) => stop(why));
    // only now: whoever waits for "ready" may signal us at once
    log.info(collector.info, `ready: probes attached (${collector.description})`);
  }));
}
