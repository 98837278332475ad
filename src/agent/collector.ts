/**
 * The probes-to-records pipeline every command shares: attach the TCP and
 * UDP/DNS probes (loaded by src/bpf/probe-load.ts, which checks privileges
 * and kernel features), find the TCP connections and listeners already open,
 * decode what the probes report, pair DNS lookups, name remote addresses,
 * and hand each record to `onRecords` in batches. Once per interval come the
 * UDP flows and what each open TCP connection moved (its open record).
 *
 * stop() detaches every probe first and drains afterwards, so the summary it
 * returns accounts for everything that happened while attached.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { CgroupTracer } from '../bpf/cgroup-tracer.js';
import type { NetTracer, UdpDrain, UdpHook } from '../bpf/net-tracer.js';
import { loadProbes, type LoadedProbes } from '../bpf/probe-load.js';
import type { AttachMode, TcpTracer } from '../bpf/tcp-tracer.js';
import { decodeBatch, type DecodeStats, type RecordSink } from '../events/batch.js';
import type { AgentRecord, TcpRecord, UdpRecord } from '../events/records.js';
import { beginBatchTime, endBatchTime } from '../events/batch-time.js';
import { decodeUdpFlows } from '../events/udp-flow.js';
import { UdpDirections } from '../events/udp-direction.js';
import { decodeOpenRecords } from '../events/tcp-record.js';
import { DnsNameCache } from '../enrich/dns-cache.js';
import { DnsTracker } from '../enrich/dns-tracker.js';
import type { Enricher } from '../enrich/enricher.js';
import type { CgroupScope } from '../enrich/cgroup-scope.js';
import { nameRemote } from '../enrich/remote-names.js';
import { MonotonicClock } from '../util/clock.js';
import { describeLosses } from './loss-counters.js';
import { EnvironmentError } from '../util/errors.js';
import { StageGuard } from './stage-guard.js';

export interface CollectorOptions {
  attach: AttachMode | 'auto';
  btf: string | null;
  maxConnections: number;
  ringbufBytes: number;
  pollMs: number;
  intervalMs: number;
  maxUdpFlows: number;
  maxNatEntries: number;
  udpHook: UdpHook | 'auto';
  debug: boolean;
}

/** What stop() reports: every count of records made and of records lost. */
export type CollectorSummary = Record<string, number>;

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

/** Attach the cgroup_mkdir probe; undefined, with a warning, where it cannot attach. */
function attachCgroupTracer(cgroup: CgroupTracer, log: Logger): CgroupTracer | undefined {
  try {
    cgroup.attach();
    return cgroup;
  } catch (e) {
    if (!(e instanceof EnvironmentError)) throw e;
    log.warn(`${e.message}: cgroups are named from /proc and walks of the cgroup tree only`);
    return undefined;
  }
}

export class Collector {
  private readonly decoded: DecodeStats = { records: 0, dnsPackets: 0, decodeErrors: 0 };
  private readonly names = new DnsNameCache();
  private readonly dns: DnsTracker;
  private pending: AgentRecord[] = [];
  private udpRecords = 0;
  /** which end of each UDP flow is the client, remembered across intervals: as many flows as the kernel counts in one */
  private readonly directions: UdpDirections;
  /** the agent's time: records' times and every duration (see util/clock.ts) */
  readonly clock: MonotonicClock;
  private lastCollect: number;
  private collecting: Promise<void> = Promise.resolve();
  private tick: NodeJS.Timeout | undefined;
  private tcp!: TcpTracer;
  private net: NetTracer | undefined;
  private cgroup: CgroupTracer | undefined;
  private closed = false;
  /** open-connection records made (each interval's iterator read) */
  private openRecords = 0;
  /** iterator reads that failed (logged): their interval's open records are missing */
  private openReadErrors = 0;
  /** why TCP tracing stopped while the agent runs (the ring buffer reader failed), else undefined */
  tracingError: string | undefined;
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
    /** trace.cgroup: only these processes' records, before anything learns from them */
    private readonly scope?: CgroupScope,
    /** where exceptions of the per-batch path are caught and counted (shared with the caller's stages) */
    readonly guard: StageGuard = new StageGuard(log),
    clock?: MonotonicClock,
  ) {
    this.directions = new UdpDirections(opts.maxUdpFlows);
    this.clock = clock ?? new MonotonicClock();
    this.lastCollect = this.clock.nowMs();
    this.dns = new DnsTracker(this.names, (r) => {
      if (this.scope && !this.scope.admits(r)) return;
      // a record that cannot be enriched still goes out, without the names
      this.guard.run('enrich', () => this.enricher?.enrich(r));
      this.pending.push(r);
    }, undefined, undefined, (ms) => this.clock.iso(ms));
  }

  /**
   * Attach the probes `probes` loaded (begun by the caller, or here), then
   * read them: TCP first, then UDP/DNS.
   */
  async start(probes: Promise<LoadedProbes> = loadProbes(this.opts)): Promise<void> {
    const loaded = await probes;
    for (const n of loaded.notes) this.log[n.level](n.fields ?? {}, n.msg);
    const clock = this.clock;
    const batchTcp: TcpRecord[] = [];
    const sink: RecordSink = {
      tcp: (r, endMs) => {
        nameRemote(r, endMs, this.names);
        batchTcp.push(r);
      },
      dns: (p) => this.dns.handle(p),
      cgroup: (c) => this.enricher?.learnCgroup(c.id, c.path),
    };
    this.tcp = loaded.tcp;
    try {
      // cgroups first: once it is attached, a walk of the tree misses none (each existed for it or is reported)
      this.cgroup = loaded.cgroup && attachCgroupTracer(loaded.cgroup, this.log);
      this.enricher?.seedCgroups();
      this.tcp.attach((batch) => {
        // enriched as a whole once decoded (see Enricher.enrichAll), within the batch's time
        const outer = beginBatchTime();
        try {
          decodeBatch(batch, clock, this.decoded, sink, (e) => this.guard.caught('decode', e));
          this.scope?.keep(batchTcp);
          this.guard.run('enrich', () => this.enricher?.enrichAll(batchTcp));
          for (const r of batchTcp) this.pending.push(r);
        } finally {
          batchTcp.length = 0;
          endBatchTime(outer);
        }
        this.flush(false);
      }, this.opts.pollMs, (errno) => this.readerFailed(errno));
      // attached first, so that nothing opened meanwhile is missed; then what was open before
      await this.tcp.seed();
    } catch (e) {
      loaded.net?.close();
      this.tcp.close();
      this.cgroup?.close();
      throw e instanceof EnvironmentError ? e : new EnvironmentError(`find the TCP connections open at start: ${(e as Error).message.split('\n')[0]}`);
    }
    this.net = loaded.net && attachNetTracer(loaded.net, this.tcp, this.log);
    this.tick = setInterval(() => {
      // a failed interval end must not end the chain (nor the agent): the next interval goes on
      this.collecting = this.collecting.then(() => this.endInterval()).catch((e: unknown) => this.guard.caught('interval', e));
    }, this.opts.intervalMs);
    Object.assign(this.info, {
      attach: this.tcp.mode,
      programs: this.tcp.programs,
      features: loaded.features,
      udp: !!this.net,
      dns: !!this.net,
      hooks: this.hooks,
      missing: loaded.notes.filter((n) => n.level === 'warn').map((n) => n.msg),
      cgroupMkdir: this.cgroup?.program ?? false,
      startupMs: Math.round(performance.now()),
    });
  }

  /** Which hook serves each capability (null: not on this kernel; `missing` says why). */
  private get hooks(): Record<string, string | null> {
    const net = this.net?.hooks;
    return {
      tcp: `${this.tcp.mode} sock:inet_sock_set_state, tcp:tcp_send_reset, tcp:tcp_receive_reset`,
      dnat: `${this.tcp.mode} net:net_dev_start_xmit`,
      openConnections: 'iter/task_file (sock_files), at start and each interval',
      udp: net?.udp ?? null,
      dnsQueries: net?.dnsQueries ?? null,
      dnsAnswers: net?.dnsAnswers ?? null,
      dnsOverTcp: net?.dnsOverTcp ?? null,
      cgroups: this.cgroup?.hook ?? null,
    };
  }

  /** TCP tracing goes on: the ring buffer is being read. */
  get tracing(): boolean {
    return this.tracingError === undefined;
  }

  private readerFailed(errno: number): void {
    this.tracingError = `reading the kernel's ring buffer failed (errno ${errno}): no TCP records or DNS lookups are read any more; restart the agent`;
    this.log.error({ errno }, `tracing stopped: ${this.tracingError}`);
  }

  /** What each open TCP connection moved since its last record, as records. */
  private async emitOpenTcp(): Promise<void> {
    let out: Buffer;
    try {
      out = await this.tcp.readOpen();
    } catch (e) {
      this.openReadErrors++;
      this.log.error({ err: (e as Error).message }, `open TCP connections not read this interval: ${(e as Error).message.split('\n')[0]}`);
      return;
    }
    const records: TcpRecord[] = [];
    this.guard.run('decode', () => {
      this.decoded.decodeErrors += decodeOpenRecords(out, this.clock, (r, endMs) => {
        nameRemote(r, endMs, this.names);
        records.push(r);
      });
    });
    // trace.cgroup: open connections of processes outside the subtree are left out like their closed records
    this.scope?.keep(records);
    this.guard.run('enrich', () => this.enricher?.enrichAll(records));
    for (const r of records) this.pending.push(r);
    this.openRecords += records.length;
  }

  get description(): string {
    const h = this.hooks;
    const parts = Object.entries(h).map(([cap, hook]) => `${cap} via ${hook ?? 'none'}`);
    return parts.join('; ');
  }

  private flush(intervalEnd: boolean): void {
    if (!this.pending.length && !intervalEnd) return;
    const batch = this.pending;
    this.pending = [];
    this.guard.run('deliver', () => this.onRecords(batch, intervalEnd));
  }

  private emitUdp(drains: UdpDrain[]): void {
    const now = this.clock.nowMs();
    const flows: UdpRecord[] = [];
    for (const d of drains) {
      this.guard.run('decode', () => {
        // stamped on the wall clock; the interval's length on the monotonic one
        for (const r of decodeUdpFlows(d.dump, this.clock.wallMs(now), now - this.lastCollect, this.directions)) {
          nameRemote(r, now, this.names);
          flows.push(r);
        }
      });
    }
    this.scope?.keep(flows);
    this.guard.run('enrich', () => this.enricher?.enrichAll(flows));
    for (const r of flows) this.pending.push(r);
    this.udpRecords += flows.length;
    this.lastCollect = now;
  }

  private async endInterval(): Promise<void> {
    await this.emitOpenTcp();
    if (this.net) {
      const flows = await this.net.collectUdp();
      // the ring read up to the swap first: a cgroup the flows were made in is learned before they are enriched
      await this.tcp.sync();
      this.emitUdp([flows]);
    }
    const now = this.clock.nowMs();
    this.dns.sweep(now);
    this.names.sweep(now);
    this.flush(true);
    // a stepped wall clock is followed from the next interval on: this one ended in the old frame
    if (this.clock.watch()) {
      const step = this.clock.reanchor();
      this.log.warn({ stepMs: Math.round(step), correctionMs: Math.round(this.clock.correctionMs) }, `the wall clock was stepped by ${(step / 1000).toFixed(3)} s: records are stamped on it from now on; durations and intervals are unaffected`);
    }
  }

  /** Detach, drain, deliver the last records, free everything; returns the summary. */
  async stop(): Promise<CollectorSummary> {
    clearInterval(this.tick);
    await this.collecting;
    // what open connections moved since the last interval (a restarted agent counts from its own start)
    await this.emitOpenTcp();
    // every producer off first, then drain: what follows is complete
    this.tcp.detach();
    this.net?.detach();
    this.cgroup?.detach();
    await this.tcp.drain();
    if (this.net) this.emitUdp(this.net.drainAll());
    this.dns.flush(this.clock.nowMs());
    this.flush(true);
    const summary = this.stats();
    this.closed = true;
    this.tcp.close();
    this.net?.close();
    this.cgroup?.close();
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
      tcpOpenRecords: this.openRecords,
      tcpOpenReadErrors: this.openReadErrors,
      decodeErrors: this.decoded.decodeErrors,
      ...counters,
      fwdSynsEvicted: this.tcp.fwdSynsEvicted(counters),
      readerDropped: this.tcp.readerDropped(),
      tracingStopped: this.tracing ? 0 : 1,
      udpRecords: this.udpRecords,
      udpEvicted,
      udpDirectionsForgotten: this.directions.forgotten,
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
      ...(this.scope ? { outOfScope: this.scope.rejected } : {}),
      cgroupsMade: this.decoded.cgroups ?? 0,
      ...this.cgroup?.counters(),
      pipelineErrors: this.guard.total,
      clockSteps: this.clock.steps,
    };
  }
}

/** The summary as one sentence for the stderr log. */
export function describeSummary(s: CollectorSummary): string {
  const n = (k: string): number => s[k] ?? 0;
  return (
    `summary: ${n('records')} TCP records, ${n('tcpOpenRecords')} open TCP connection records, ${n('udpRecords')} UDP records, ${n('dnsLookups')} DNS lookups; ` +
    `lost ${describeLosses(s)}; ${n('seededConnections')} connections open at start tracked from then, ` +
    `${n('untrackedClose')} closed before they could be${n('tracingStopped') ? '; TCP tracing stopped early (see the error above)' : ''}`
  );
}

/**
 * Run until SIGINT/SIGTERM (or `stopOn` resolves): start the collector,
 * then, tracing already, wait for `readyWhen` (what start-up waits for
 * without holding tracing up: the Kubernetes lists, the sinks) and log
 * ready; stop, log the summary. `readyWhen` rejecting (a configuration
 * error found by a sink or Kubernetes) stops the collector and rejects.
 */
export async function runUntilSignalled(
  collector: Collector,
  log: Logger,
  onStopped: () => void | Promise<void>,
  stopOn?: Promise<string>,
  enrichment?: { stats(): Record<string, number>; stop(): Promise<void> },
  probes?: Promise<LoadedProbes>,
  readyWhen?: Promise<unknown>,
): Promise<number> {
  await collector.start(probes);
  return new Promise<number>((resolve, reject) => {
    let stopping = false;
    const stop = async (why: string, failure?: unknown): Promise<void> => {
      if (stopping) return;
      stopping = true;
      try {
        log.info(`stopping (${why})`);
        const summary = await collector.stop();
        await onStopped();
        await enrichment?.stop();
        // the collector's counts last: no enrichment count may stand in for one of them
        log.info({ ...enrichment?.stats(), ...summary }, describeSummary(summary));
      } catch (e) {
        failure ??= e;
      }
      if (failure !== undefined) reject(failure instanceof Error ? failure : new Error(String(failure)));
      else resolve(0);
    };
    process.once('SIGINT', () => void stop('SIGINT'));
    process.once('SIGTERM', () => void stop('SIGTERM'));
    void stopOn?.then((why) => stop(why));
    void Promise.resolve(readyWhen).then(
      () => {
        // only now: whoever waits for "ready" may signal us at once
        if (!stopping) log.info(collector.info, `ready: probes attached (${collector.description})`);
      },
      (e: unknown) => void stop(`start-up failed: ${(e as Error).message}`, e),
    );
  });
}
