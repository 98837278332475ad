/**
 * Loads bpf/net.bpf.c: UDP flow accounting from the sock_send_length and
 * sock_recv_length tracepoints (peers of unconnected sockets from cgroup
 * sock_addr programs on the cgroup v2 root), DNS capture from the device
 * tracepoints. DNS packets go into the TCP tracer's ring
 * buffer (one ring, one order); UDP counts stay in the kernel until
 * collectUdp() swaps and drains a flow table.
 */
import type { BpfNative, LinkHandle, ObjectHandle } from './native.js';
import { isNativeError } from './native.js';
import { NET_COUNTER_NAMES, type NetCounterName } from '../events/layout.js';
import { readPerCpuCounters } from './percpu-counters.js';
import { EnvironmentError } from '../util/errors.js';
import type { MapDump } from './native.js';
import { addCachedFlows } from '../events/udp-flow.js';

const CGROUP_PROGRAMS = ['sock_create', 'udp4_sendmsg', 'udp6_sendmsg', 'udp4_recvmsg', 'udp6_recvmsg'] as const;
const TRACING_PROGRAMS = ['udp_send', 'udp_recv', 'dns_receive'] as const;
/** on net:net_dev_start_xmit: tail-called by the TCP object's program there when it has one (see `xmitChain`) */
const XMIT_PROGRAM = 'dns_xmit';

/** How the programs read packets, newest kernels first (see net.bpf.c's skb_dynptr and direct_reads). */
export const READ_MODES = [
  { skbDynptr: true, directReads: true },
  { skbDynptr: true, directReads: false },
  { skbDynptr: false, directReads: false },
] as const;
type ReadMode = (typeof READ_MODES)[number];

/** The object did not load in one read mode: the next mode may (any other failure is the same in all of them). */
class LoadRefused extends EnvironmentError {}

export interface NetTracerOptions {
  objectPath: string;
  btfPath: string | null;
  cgroupRoot: string;
  /** capacity of each of the two UDP flow tables */
  maxUdpFlows: number;
  /** the TCP object: its ring buffer (map `events`, of this size) is shared */
  ring: { obj: ObjectHandle; map: string; bytes: number };
  /**
   * A program array of the TCP object whose net_dev_start_xmit program
   * tail-calls slot 0: dns_xmit goes there rather than on the tracepoint
   * itself (one program run per packet instead of two).
   */
  xmitChain?: { obj: ObjectHandle; map: string };
}

export interface UdpDrain {
  dump: MapDump;
  /** flows the LRU table evicted during the interval (their counts are lost) */
  evicted: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class NetTracer {
  private links: LinkHandle[] = [];
  private slot = 0;
  /** inserts per slot already accounted for */
  private insertsSeen = [0, 0];
  evictedTotal = 0;

  private constructor(
    private readonly native: BpfNative,
    private readonly obj: ObjectHandle,
  ) {}

  /**
   * The newest ways of reading packets need recent kernels: skb dynptrs in
   * tracing programs (Linux 6.12), plain loads from packet memory (later).
   * A load the verifier refuses is retried the older way (a failure to
   * attach, or missing tracepoints, is not: no mode changes it); with no dynptr,
   * only the packets' linear part is read (TCP keeps its payload in page
   * fragments: DNS over TCP is then not seen, nor the parts of UDP answers
   * a driver put there).
   */
  static start(native: BpfNative, opts: NetTracerOptions): NetTracer {
    let first: unknown;
    for (const mode of READ_MODES) {
      try {
        const tracer = NetTracer.load(native, opts, mode);
        tracer.linearDnsOnly = !mode.skbDynptr;
        return tracer;
      } catch (e) {
        if (!(e instanceof LoadRefused)) throw e;
        first ??= e;
      }
    }
    throw first;
  }

  /** true when DNS payloads are read from the packets' linear part only (see start) */
  linearDnsOnly = false;
  private chained: { obj: ObjectHandle; map: string } | undefined;

  private static load(native: BpfNative, opts: NetTracerOptions, mode: ReadMode): NetTracer {
    let obj: ObjectHandle;
    try {
      obj = native.open(opts.objectPath, opts.btfPath);
    } catch (e) {
      throw new EnvironmentError(`${(e as Error).message.split('\n')[0]}; rebuild with 'npm install'`);
    }
    const tracer = new NetTracer(native, obj);
    let loaded = false;
    try {
      native.setMaxEntries(obj, 'udp_flows_0', opts.maxUdpFlows);
      native.setMaxEntries(obj, 'udp_flows_1', opts.maxUdpFlows);
      native.setMaxEntries(obj, 'dns_events', opts.ring.bytes);
      native.setGlobal(obj, 'skb_dynptr', Buffer.from([mode.skbDynptr ? 1 : 0]));
      native.setGlobal(obj, 'direct_reads', Buffer.from([mode.directReads ? 1 : 0]));
      native.reuseMap(obj, 'dns_events', opts.ring.obj, opts.ring.map);
      native.load(obj);
      loaded = true;
      for (const p of CGROUP_PROGRAMS) tracer.links.push(native.attachCgroup(obj, p, opts.cgroupRoot));
      for (const p of TRACING_PROGRAMS) tracer.links.push(native.attach(obj, p));
      if (opts.xmitChain) {
        native.chainProgram(opts.xmitChain.obj, opts.xmitChain.map, 0, obj, XMIT_PROGRAM);
        tracer.chained = opts.xmitChain;
      } else {
        tracer.links.push(native.attach(obj, XMIT_PROGRAM));
      }
    } catch (e) {
      tracer.detach();
      native.close(obj);
      const msg = (e as Error).message;
      const noTracepoints = /sock_(send|recv)_length/.test(msg);
      const hint = noTracepoints
        ? ' (needs the sock:sock_send_length and sock:sock_recv_length tracepoints, Linux >= 6.3)'
        : isNativeError(e) && (e.errno === 1 || e.errno === 13)
          ? ': run as root or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN'
          : '';
      const Failure = loaded || noTracepoints ? EnvironmentError : LoadRefused;
      throw new Failure(`UDP and DNS probes: ${msg.split('\n')[0]}${hint}`);
    }
    return tracer;
  }

  counters(): Record<NetCounterName, number> {
    return readPerCpuCounters(this.native, this.obj, 'net_counters', NET_COUNTER_NAMES);
  }

  /**
   * Point the programs at the other flow table, let in-flight programs finish
   * with the old one, then drain it: the counts of exactly one interval.
   */
  async collectUdp(): Promise<UdpDrain> {
    const old = this.slot;
    this.slot = 1 - old;
    const key = Buffer.alloc(4);
    const value = Buffer.alloc(4);
    value.writeUInt32LE(this.slot);
    this.native.mapUpdate(this.obj, 'udp_slot', key, value);
    await sleep(5); // programs run in microseconds; 5 ms is ample
    return this.drainSlot(old);
  }

  /** The flows of one table and of its per-CPU cache element, which is emptied. */
  private drainSlot(slot: number): UdpDrain {
    const cpus = this.native.numPossibleCpus();
    const inserts = this.counters()[slot === 0 ? 'udpInserts0' : 'udpInserts1'];
    const table = this.native.mapDump(this.obj, `udp_flows_${slot}`, true);
    const evicted = Math.max(0, inserts - this.insertsSeen[slot]! - table.count);
    this.insertsSeen[slot] = inserts;
    this.evictedTotal += evicted;
    const key = Buffer.alloc(4);
    key.writeUInt32LE(slot);
    const cache = this.native.mapLookup(this.obj, 'udp_cache', key);
    if (!cache) return { dump: table, evicted };
    this.native.mapUpdate(this.obj, 'udp_cache', key, Buffer.alloc(cache.length));
    return { dump: addCachedFlows(table, cache, cpus), evicted };
  }

  /** Detach the programs (the shared ring is drained by its owner). */
  detach(): void {
    for (const l of this.links.splice(0)) this.native.detach(l);
    if (this.chained) this.native.mapDelete(this.chained.obj, this.chained.map, Buffer.alloc(4));
    this.chained = undefined;
  }

  /** After detach: what both tables still hold. */
  drainAll(): UdpDrain[] {
    return [this.drainSlot(this.slot), this.drainSlot(1 - this.slot)];
  }

  close(): void {
    this.native.close(this.obj);
  }
}
