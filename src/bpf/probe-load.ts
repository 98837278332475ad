/**
 * Loading the kernel programs, begun as soon as the options are known: both
 * objects load on worker threads (libbpf parsing the kernel's BTF, the
 * verifier) while the rest of the agent's modules are imported and its
 * enrichment starts. Each takes ~50-100 ms; side by side, start-up waits for
 * the longer one only. Nothing is attached here: the collector attaches
 * once it can take records.
 *
 * This module imports little on purpose: it runs before the logger and the
 * rest of the pipeline are loaded, and hands back what it would have logged.
 */
import path from 'node:path';
import { findCgroup2Root } from './cgroup-root.js';
import { ensureTracefs, probeKernelFeatures, requireBaseFeatures, type KernelFeatures } from './features.js';
import { describeNativeError, loadNative, PROJECT_ROOT, type BpfNative } from './native.js';
import { CgroupTracer } from './cgroup-tracer.js';
import { chooseUdpHook, NetTracer, type UdpHook } from './net-tracer.js';
import { TcpTracer, type AttachMode } from './tcp-tracer.js';
import { effectiveCapabilities, kubernetesCapability, missingNetCapabilities, missingTracingCapabilities } from '../util/capabilities.js';
import { EnvironmentError } from '../util/errors.js';

export const DEFAULT_BTF = '/sys/kernel/btf/vmlinux';
export const TCP_OBJECT = path.join(PROJECT_ROOT, 'build-bpf/tcp.bpf.o');
export const NET_OBJECT = path.join(PROJECT_ROOT, 'build-bpf/net.bpf.o');
export const CGROUP_OBJECT = path.join(PROJECT_ROOT, 'build-bpf/cgroup.bpf.o');

export interface ProbeLoadOptions {
  attach: AttachMode | 'auto';
  btf: string | null;
  maxConnections: number;
  ringbufBytes: number;
  maxUdpFlows: number;
  maxNatEntries: number;
  /** where UDP is counted: chosen by feature probes (auto), or one variant */
  udpHook: UdpHook | 'auto';
  debug: boolean;
}

/** A line for the log, kept until there is one. */
export interface ProbeNote {
  level: 'info' | 'warn';
  msg: string;
  fields?: Record<string, unknown>;
}

export interface LoadedProbes {
  native: BpfNative;
  features: KernelFeatures;
  /** loaded, not attached */
  tcp: TcpTracer;
  /** loaded, not attached; undefined where UDP and DNS cannot be traced (see notes) */
  net: NetTracer | undefined;
  /** loaded, not attached; undefined where cgroup_mkdir cannot be traced (see notes) */
  cgroup: CgroupTracer | undefined;
  notes: ProbeNote[];
}

/** Fail early, in one line, when privileges are short. */
export function checkPrivileges(): void {
  const missing = missingTracingCapabilities(effectiveCapabilities());
  if (missing.length)
    throw new EnvironmentError(
      `missing capabilities ${missing.join(', ')}: run as root, or grant them (setcap cap_bpf,cap_perfmon+ep on the node binary; in a container, securityContext.capabilities.add: [${missing.map(kubernetesCapability).join(', ')}])`,
    );
}

/**
 * Check privileges and kernel features, then load both objects side by side.
 * They share one ring buffer, made first. Rejects with EnvironmentError when
 * TCP tracing cannot work; the UDP/DNS object is an addition (without cgroup
 * v2 or Linux 6.3 TCP tracing goes on alone, with a warning in `notes`).
 */
export async function loadProbes(opts: ProbeLoadOptions): Promise<LoadedProbes> {
  checkPrivileges();
  const native = loadNative();
  native.setDebug(opts.debug);
  const tracefs = ensureTracefs(native);
  const features = probeKernelFeatures(native, opts.btf ?? DEFAULT_BTF, tracefs);
  requireBaseFeatures(features);
  const notes: ProbeNote[] = [];
  let ringFd: number;
  try {
    // named as the TCP object's ring: a reused map takes the kernel map's name, and the reader opens it by name
    ringFd = native.ringCreate('events', opts.ringbufBytes);
  } catch (e) {
    throw new EnvironmentError(describeNativeError(e, 'CAP_BPF'));
  }
  try {
    const netLoad = loadNet(native, ringFd, opts, notes, tracefs);
    const tcpLoad = TcpTracer.load(native, features, {
      objectPath: TCP_OBJECT,
      btfPath: opts.btf,
      mode: opts.attach,
      maxConnections: opts.maxConnections,
      maxNatEntries: opts.maxNatEntries,
      ring: { fd: ringFd, bytes: opts.ringbufBytes },
      onFallback: (mode, reason) => notes.push({ level: 'info', msg: `attach mode ${mode} passed over`, fields: { mode, reason } }),
    });
    const cgroupLoad = loadCgroup(native, features, ringFd, opts, tracefs, notes);
    // all settle before anything is thrown: no object is left loading
    const [tcp, net, cgroup] = await Promise.allSettled([tcpLoad, netLoad, cgroupLoad]);
    if (tcp.status === 'rejected' || net.status === 'rejected' || cgroup.status === 'rejected') {
      for (const r of [tcp, net, cgroup]) if (r.status === 'fulfilled') r.value?.close();
      // the TCP object's failure first: without it nothing runs
      throw [tcp, net, cgroup].map((r) => (r.status === 'rejected' ? (r.reason as unknown) : undefined)).find((x) => x !== undefined);
    }
    return { native, features, tcp: tcp.value, net: net.value, cgroup: cgroup.value, notes };
  } finally {
    native.closeFd(ringFd); // each object holds its own copy
  }
}

/**
 * loadProbes(), started now: for callers that go on with other work (module
 * imports) and await it later. A failure waits for that await, not reported
 * meanwhile as an unhandled rejection.
 */
export function beginProbeLoad(opts: ProbeLoadOptions): Promise<LoadedProbes> {
  const loading = loadProbes(opts);
  loading.catch(() => {});
  return loading;
}

/** Close what a begun load loaded, once it is known that nothing will attach it. */
export function discardProbes(probes: Promise<LoadedProbes>): void {
  probes.then(
    (p) => {
      p.tcp.close();
      p.net?.close();
      p.cgroup?.close();
    },
    () => undefined,
  );
}

async function loadNet(
  native: BpfNative,
  ringFd: number,
  opts: ProbeLoadOptions,
  notes: ProbeNote[],
  tracefs: string | undefined,
): Promise<NetTracer | undefined> {
  const missingCaps = missingNetCapabilities(effectiveCapabilities());
  if (missingCaps.length) {
    notes.push({
      level: 'warn',
      msg: `missing capability ${missingCaps.join(', ')} (the cgroup socket programs that count UDP need it; in a container, securityContext.capabilities.add: [${missingCaps.map(kubernetesCapability).join(', ')}]): UDP flows and DNS are off`,
    });
    return undefined;
  }
  const cgroupRoot = findCgroup2Root();
  if (!cgroupRoot) {
    notes.push({ level: 'warn', msg: 'cgroup v2 is not mounted (mount -t cgroup2 none /sys/fs/cgroup/unified): UDP flows and DNS are off' });
    return undefined;
  }
  try {
    const udp = chooseUdpHook(native, tracefs, opts.udpHook, opts.btf ?? DEFAULT_BTF);
    const net = await NetTracer.load(native, { objectPath: NET_OBJECT, btfPath: opts.btf, cgroupRoot, maxUdpFlows: opts.maxUdpFlows, ring: { fd: ringFd }, udp });
    if (net.linearDnsOnly)
      notes.push({
        level: 'warn',
        msg: 'tracing programs cannot read whole packets on this kernel (skb dynptrs need Linux >= 6.12; before, page fragments are read on x86-64 through the addresses of page_offset_base and vmemmap_base in /proc/kallsyms, not found here): DNS over TCP is not seen',
      });
    return net;
  } catch (e) {
    if (!(e instanceof EnvironmentError)) throw e;
    notes.push({ level: 'warn', msg: `${e.message}: UDP flows and DNS are off` });
    return undefined;
  }
}

/** Without it, a container gone before its records are read may leave them without their container: a warning, not a failure. */
async function loadCgroup(
  native: BpfNative,
  features: KernelFeatures,
  ringFd: number,
  opts: ProbeLoadOptions,
  tracefs: string | undefined,
  notes: ProbeNote[],
): Promise<CgroupTracer | undefined> {
  try {
    return await CgroupTracer.load(native, features, { objectPath: CGROUP_OBJECT, btfPath: opts.btf, ring: { fd: ringFd }, tracefs, mode: opts.attach });
  } catch (e) {
    if (!(e instanceof EnvironmentError)) throw e;
    notes.push({ level: 'warn', msg: `${e.message}: cgroups are named from /proc and walks of the cgroup tree only (a container gone before its records are read leaves them without it)` });
    return undefined;
  }
}
