/**
 * Loads bpf/net.bpf.c: UDP flow accounting from the sock_send_length and
 * sock_recv_length tracepoints (peers of unconnected sockets from cgroup
 * sock_addr programs on the cgroup v2 root), DNS capture from the device
 * tracepoints. DNS packets go into the ring buffer the TCP tracer reads (one
 * ring, one order); UDP counts stay in the kernel until collectUdp() swaps
 * and drains a flow table. It loads while the TCP object does (load), and
 * attaches once that one is loaded too (attach).
 */
import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { btfFileHasNames } from './btf-names.js';
import type { BpfNative, LinkHandle, ObjectHandle } from './native.js';
import { describeNativeError, openObject } from './native.js';
import { NET_COUNTER_NAMES, type NetCounterName } from '../events/layout.js';
import { readPerCpuCounters } from './percpu-counters.js';
import { EnvironmentError } from '../util/errors.js';
import type { MapDump } from './native.js';
import { addCachedFlows } from '../events/udp-flow.js';
import { UDP_FLOW_CACHE } from '../events/layout.js';
import { findDirectMap, type DirectMap } from './direct-map.js';

const CGROUP_PROGRAMS = ['sock_create', 'udp4_bind', 'udp6_bind', 'udp_release'] as const;
const TRACING_PROGRAMS = ['dns_receive'] as const;

interface UdpHookVariant {
  /** tracing programs: where sends and receives end */
  tracing: readonly string[];
  /** cgroup programs on the cgroup v2 root: where the peers of unconnected sockets are learned */
  cgroup: readonly string[];
  describe: string;
}

/**
 * Where UDP sends and receives are counted, one variant per kernel (see
 * net.bpf.c): fexit on the inet socket operations, which read the peer
 * from the call's msghdr (no socket lock, no BPF atomics: Linux 5.10 and
 * later with BPF trampolines); else the sock:sock_send_length/
 * sock_recv_length tracepoints (Linux 6.3+), with the peers of unconnected
 * sockets from cgroup sock_addr programs (which make the kernel take the
 * socket lock for each of their calls); else kprobes (kernels without
 * either: arm64 before 6.0, kernels without ftrace direct calls).
 */
/** Where UDP is counted, in the order `auto` tries them. */
export const UDP_HOOK_NAMES = ['fexit', 'tp_btf', 'kprobe'] as const;
export type UdpHook = (typeof UDP_HOOK_NAMES)[number];

export const UDP_HOOKS: Record<UdpHook, UdpHookVariant> = {
  fexit: {
    tracing: ['udp_send_fexit4', 'udp_send_fexit6', 'udp_recv_fexit4', 'udp_recv_fexit6'],
    cgroup: [],
    describe: 'fexit inet_sendmsg, inet6_sendmsg, inet_recvmsg, inet6_recvmsg (peers from the msghdr)',
  },
  tp_btf: {
    tracing: ['udp_send', 'udp_recv'],
    cgroup: ['udp4_sendmsg', 'udp6_sendmsg', 'udp4_recvmsg', 'udp6_recvmsg'],
    describe: 'tp_btf sock:sock_send_length, sock:sock_recv_length, cgroup/sendmsg4/6, cgroup/recvmsg4/6',
  },
  kprobe: {
    tracing: ['udp_send_kprobe4', 'udp_send_kretprobe4', 'udp_send_kprobe6', 'udp_send_kretprobe6', 'udp_recv_kprobe'],
    cgroup: [],
    describe: 'kprobe/kretprobe udp_sendmsg, udpv6_sendmsg, kprobe skb_consume_udp (peers from the msghdr and the datagram)',
  },
};
const programsOf = (h: UdpHookVariant): string[] => [...h.tracing, ...h.cgroup];
const ALL_UDP_PROGRAMS: readonly string[] = Object.values(UDP_HOOKS).flatMap(programsOf);

/** The UDP hook a kernel gets, and whether its tracing programs reach sk storage (see net.bpf.c's tracing_sk_storage). */
export interface UdpHookChoice {
  hook: UdpHook;
  tracingSkStorage: boolean;
}

/** BPF_FUNC_sk_storage_get (include/uapi/linux/bpf.h): in tracing programs from Linux 5.11 */
const BPF_FUNC_SK_STORAGE_GET = 107;

/** The UDP tracepoints as BTF names them (see btf-names.ts). */
const UDP_TRACEPOINT_TYPES = ['btf_trace_sock_send_length', 'btf_trace_sock_recv_length'] as const;

/**
 * Whether the kernel has the UDP tracepoints: tracefs shows them, or, where
 * no tracefs is mounted (a container's /sys/kernel/tracing is empty, and
 * mounting one needs CAP_SYS_ADMIN), the kernel's BTF `btf` names them.
 */
export function hasUdpTracepoints(tracefs: string | undefined, btf: string | undefined): boolean {
  return tracefs
    ? existsSync(`${tracefs}/events/sock/sock_send_length`) && existsSync(`${tracefs}/events/sock/sock_recv_length`)
    : btf !== undefined && btfFileHasNames(btf, UDP_TRACEPOINT_TYPES)?.size === UDP_TRACEPOINT_TYPES.length;
}

const errnoName = (r: number): string => Object.entries(osConstants.errno).find(([, v]) => v === -r)?.[0] ?? `error ${-r}`;

/**
 * The UDP hook for this kernel, by feature probes (`wanted`: one only, or
 * 'auto': the first that works, in UDP_HOOKS order): fexit where a BPF
 * trampoline attaches to inet_sendmsg, else the tracepoints when tracefs
 * shows them, else kprobes when the kernel has them (the perf kprobe PMU or
 * tracefs kprobe_events, as libbpf attaches them). Throws EnvironmentError
 * naming what each lacks. Kprobes have no sk storage: tracingSkStorage is
 * false with them.
 */
export function chooseUdpHook(native: BpfNative, tracefs: string | undefined, wanted: UdpHook | 'auto' = 'auto', btf?: string): UdpHookChoice {
  const why: string[] = [];
  for (const hook of wanted === 'auto' ? UDP_HOOK_NAMES : [wanted]) {
    if (hook === 'fexit') {
      const r = native.probeFexit('inet_sendmsg', 0);
      if (r === 1) return { hook, tracingSkStorage: native.probeFexit('inet_sendmsg', BPF_FUNC_SK_STORAGE_GET) !== 0 };
      why.push(`fexit: no BPF trampoline attaches to inet_sendmsg (${errnoName(r)}; needs Linux >= 5.5 with ftrace direct calls)`);
    } else if (hook === 'tp_btf') {
      if (hasUdpTracepoints(tracefs, btf)) return { hook, tracingSkStorage: true };
      why.push('tp_btf: no sock:sock_send_length and sock:sock_recv_length tracepoints (needs Linux >= 6.3)');
    } else {
      if (existsSync('/sys/bus/event_source/devices/kprobe/type') || (tracefs && existsSync(`${tracefs}/kprobe_events`)))
        return { hook, tracingSkStorage: false };
      why.push('kprobe: no kprobes (needs CONFIG_KPROBES and CONFIG_KPROBE_EVENTS)');
    }
  }
  throw new EnvironmentError(`UDP and DNS probes: ${why.join('; ')}`);
}
/** on net:net_dev_start_xmit: tail-called by the TCP object's program there when it has one (see `xmitChain`) */
const XMIT_PROGRAM = 'dns_xmit';

/** How the programs read packets, newest kernels first (see net.bpf.c's skb_dynptr and direct_reads). */
export const READ_MODES = [
  { skbDynptr: true, directReads: true },
  { skbDynptr: true, directReads: false },
  { skbDynptr: false, directReads: false },
] as const;
type ReadMode = (typeof READ_MODES)[number];

/** The kernel has no sock_send_length/sock_recv_length tracepoints (before Linux 6.3): no read mode helps. */
const missingTracepoints = (e: unknown): boolean => /sock_(send|recv)_length/.test((e as Error).message);

/** The object did not load in one read mode: the next mode may (any other failure is the same in all of them). */
class LoadRefused extends EnvironmentError {}

export interface NetTracerOptions {
  objectPath: string;
  btfPath: string | null;
  cgroupRoot: string;
  /** capacity of each of the two UDP flow tables */
  maxUdpFlows: number;
  /** the ring buffer the TCP tracer reads (see BpfNative.ringCreate): `dns_events` becomes it */
  ring: { fd: number };
  /** where UDP is counted (chooseUdpHook) */
  udp: UdpHookChoice;
}

export interface UdpDrain {
  dump: MapDump;
  /** flows the LRU table evicted during the interval (their counts are lost) */
  evicted: number;
}

export class NetTracer {
  private links: LinkHandle[] = [];
  private slot = 0;
  /** inserts per slot already accounted for */
  private insertsSeen = [0, 0];
  evictedTotal = 0;

  private constructor(
    private readonly native: BpfNative,
    private readonly obj: ObjectHandle,
    private readonly cgroupRoot: string,
    readonly udpHook: UdpHook,
  ) {}

  /**
   * Open and load, not attached yet. The newest ways of reading packets need
   * recent kernels: skb dynptrs in tracing programs (Linux 6.12), plain loads
   * from packet memory (later). A load the verifier refuses is retried the
   * older way (missing tracepoints are not: no mode changes that); with no
   * dynptr, only the packets' linear part is read (TCP keeps its payload in
   * page fragments: DNS over TCP is then not seen, nor the parts of UDP
   * answers a driver put there).
   */
  static async load(native: BpfNative, opts: NetTracerOptions): Promise<NetTracer> {
    let first: unknown;
    for (const mode of READ_MODES) {
      try {
        const tracer = await NetTracer.loadInMode(native, opts, mode);
        if (!mode.skbDynptr) {
          // page fragments through the kernel's direct map (x86-64), else the linear part only
          const dm = await findDirectMap();
          if (dm) tracer.setDirectMap(dm);
          else tracer.linearDnsOnly = true;
        }
        tracer.skbDynptr = mode.skbDynptr;
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
  /** DNS payloads are read through skb dynptrs (else the linear part and, unless linearDnsOnly, page fragments) */
  private skbDynptr = true;

  /** Where the kernel maps memory, for reading page fragments without dynptrs (net.bpf.c's direct_map). */
  private setDirectMap(dm: DirectMap): void {
    const v = Buffer.alloc(16);
    v.writeBigUInt64LE(dm.pageOffsetBase, 0);
    v.writeBigUInt64LE(dm.vmemmapBase, 8);
    this.native.mapUpdate(this.obj, 'direct_map', Buffer.alloc(4), v);
  }
  private chained: { obj: ObjectHandle; map: string } | undefined;

  private static async loadInMode(native: BpfNative, opts: NetTracerOptions, mode: ReadMode): Promise<NetTracer> {
    const obj = openObject(native, opts.objectPath, opts.btfPath);
    try {
      native.setMaxEntries(obj, 'udp_flows_0', opts.maxUdpFlows);
      native.setMaxEntries(obj, 'udp_flows_1', opts.maxUdpFlows);
      native.setMaxEntries(obj, 'udp_local_addrs', opts.maxUdpFlows);
      // sock_infos' stand-in where tracing programs have no sk storage (Linux < 5.11): one entry per open UDP socket
      native.setMaxEntries(obj, 'sock_infos_by_cookie', opts.udp.tracingSkStorage ? 1 : opts.maxUdpFlows);
      native.setGlobal(obj, 'tracing_sk_storage', Buffer.from([opts.udp.tracingSkStorage ? 1 : 0]));
      native.setGlobal(obj, 'skb_dynptr', Buffer.from([mode.skbDynptr ? 1 : 0]));
      native.setGlobal(obj, 'direct_reads', Buffer.from([mode.directReads ? 1 : 0]));
      native.reuseMapFd(obj, 'dns_events', opts.ring.fd);
      const udp = programsOf(UDP_HOOKS[opts.udp.hook]);
      for (const p of ALL_UDP_PROGRAMS) native.setAutoload(obj, p, udp.includes(p));
      await native.loadAsync(obj);
    } catch (e) {
      native.close(obj);
      throw new (missingTracepoints(e) ? EnvironmentError : LoadRefused)(NetTracer.failure(e));
    }
    const tracer = new NetTracer(native, obj, opts.cgroupRoot, opts.udp.hook);
    tracer.emptyCache(1); // udp_cache_0 is all zeros, as its `table` wants
    return tracer;
  }

  private static failure(e: unknown): string {
    const what = missingTracepoints(e)
      ? `${(e as Error).message.split('\n')[0]} (needs the sock:sock_send_length and sock:sock_recv_length tracepoints, Linux >= 6.3, or fexit, Linux >= 5.5 with ftrace direct calls)`
      : describeNativeError(e, 'CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN');
    return `UDP and DNS probes: ${what}`;
  }

  /**
   * Attach every program. `xmitChain`: a program array of the TCP object
   * whose net_dev_start_xmit program tail-calls slot 0; dns_xmit goes there
   * rather than on the tracepoint itself (one program run per packet
   * instead of two). On failure everything is detached and the object
   * closed (EnvironmentError: no read mode would change it).
   */
  attach(xmitChain?: { obj: ObjectHandle; map: string }): void {
    try {
      const udp = UDP_HOOKS[this.udpHook];
      for (const p of [...CGROUP_PROGRAMS, ...udp.cgroup]) this.links.push(this.native.attachCgroup(this.obj, p, this.cgroupRoot));
      for (const p of [...TRACING_PROGRAMS, ...udp.tracing]) this.links.push(this.native.attach(this.obj, p));
      if (xmitChain) {
        this.native.chainProgram(xmitChain.obj, xmitChain.map, 0, this.obj, XMIT_PROGRAM);
        this.chained = xmitChain;
      } else {
        this.links.push(this.native.attach(this.obj, XMIT_PROGRAM));
      }
    } catch (e) {
      this.detach();
      this.close();
      throw new EnvironmentError(NetTracer.failure(e));
    }
  }

  /** Which hook serves each capability of this object (null: not on this kernel). */
  get hooks(): Record<'udp' | 'dnsQueries' | 'dnsAnswers' | 'dnsOverTcp', string | null> {
    const queries = this.chained ? 'tp_btf net:net_dev_start_xmit (tail call)' : 'tp_btf net:net_dev_start_xmit';
    return {
      udp: UDP_HOOKS[this.udpHook].describe,
      dnsQueries: queries,
      dnsAnswers: 'tp_btf net:netif_receive_skb',
      dnsOverTcp: this.linearDnsOnly
        ? null
        : `${queries}, tp_btf net:netif_receive_skb (${this.skbDynptr ? 'skb dynptr' : 'page fragments through the direct map'})`,
    };
  }

  counters(): Record<NetCounterName, number> {
    return readPerCpuCounters(this.native, this.obj, 'net_counters', NET_COUNTER_NAMES);
  }

  /**
   * Point the programs at the other cache and table, then drain the old
   * ones: the counts of exactly one interval. The swap settles once the
   * kernel has waited out an RCU grace period, after which no program writes
   * into the old ones (see udp_current in net.bpf.c).
   */
  async collectUdp(): Promise<UdpDrain> {
    const old = this.slot;
    await this.native.setInnerMapAsync(this.obj, 'udp_current', 0, `udp_cache_${1 - old}`);
    this.slot = 1 - old;
    return this.drainSlot(old);
  }

  /** Zero every CPU's copy of cache `slot`, but for the table it goes with. */
  private emptyCache(slot: number): void {
    const cpus = this.native.numPossibleCpus();
    const stride = Math.ceil(UDP_FLOW_CACHE.size / 8) * 8;
    const value = Buffer.alloc(stride * cpus);
    for (let cpu = 0; cpu < cpus; cpu++) value.writeUInt32LE(slot, cpu * stride + UDP_FLOW_CACHE.fields.table.offset);
    this.native.mapUpdate(this.obj, `udp_cache_${slot}`, Buffer.alloc(4), value);
  }

  /** The flows of one table and of its per-CPU cache, which is emptied. Only for a table no program writes. */
  private drainSlot(slot: number): UdpDrain {
    const cpus = this.native.numPossibleCpus();
    const inserts = this.counters()[slot === 0 ? 'udpInserts0' : 'udpInserts1'];
    const table = this.native.mapDump(this.obj, `udp_flows_${slot}`, true);
    const evicted = Math.max(0, inserts - this.insertsSeen[slot]! - table.count);
    this.insertsSeen[slot] = inserts;
    this.evictedTotal += evicted;
    const cache = this.native.mapLookup(this.obj, `udp_cache_${slot}`, Buffer.alloc(4));
    if (!cache) return { dump: table, evicted };
    this.emptyCache(slot);
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
