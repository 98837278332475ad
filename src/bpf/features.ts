/**
 * Kernel feature probes, run once at start. Each answers available or not
 * with the reason and the kernel that would have it, so that the agent can
 * pick its attach points and, when nothing fits, say exactly what is missing.
 */
import { existsSync } from 'node:fs';
import {
  BPF_MAP_TYPE_ARRAY,
  BPF_MAP_TYPE_RINGBUF,
  BPF_PROG_TYPE_RAW_TRACEPOINT,
  BPF_PROG_TYPE_TRACEPOINT,
  type BpfNative,
} from './native.js';
import { seccompFiltered } from '../util/capabilities.js';
import { EnvironmentError } from '../util/errors.js';

export interface Feature {
  available: boolean;
  /** Why not, including the minimum kernel when it is the kernel's fault. */
  reason?: string;
  /** the bpf() system call itself was refused: not the kernel's fault */
  refused?: boolean;
}

export interface KernelFeatures {
  btf: Feature;
  ringbuf: Feature;
  tpBtf: Feature;
  rawTp: Feature;
  tracepoint: Feature;
}

/**
 * bpf() itself refused (not even an array map can be made) although the
 * capabilities were checked: in a container, its seccomp profile. The default profiles of
 * Docker before 23.0 and containerd before 1.6.9 (so Kubernetes'
 * RuntimeDefault there) allow bpf() only to CAP_SYS_ADMIN, not to CAP_BPF;
 * else a security module (SELinux, AppArmor, lockdown).
 */
export function bpfRefused(seccompFilter: boolean): string {
  return seccompFilter
    ? 'the bpf() system call was refused although CAP_BPF (or CAP_SYS_ADMIN) is held: this process\'s seccomp filter blocks it (the default profiles of Docker < 23 and containerd < 1.6.9 allow it only with CAP_SYS_ADMIN): run the container with seccomp unconfined (Kubernetes: securityContext.seccompProfile.type: Unconfined; docker: --security-opt seccomp=unconfined)'
    : 'the bpf() system call was refused although CAP_BPF (or CAP_SYS_ADMIN) is held: a security module (SELinux, AppArmor, kernel lockdown) blocks it';
}

export const TRACEFS_CANDIDATES = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];

/** Find a mounted tracefs, mounting one at /sys/kernel/tracing when none is. */
export function ensureTracefs(native: BpfNative): string | undefined {
  const mounted = TRACEFS_CANDIDATES.find((d) => existsSync(`${d}/events`));
  if (mounted) return mounted;
  try {
    native.mount('tracefs', '/sys/kernel/tracing', 'tracefs');
    return existsSync('/sys/kernel/tracing/events') ? '/sys/kernel/tracing' : undefined;
  } catch {
    return undefined;
  }
}

function progType(native: BpfNative, type: number, what: string, minKernel: string): Feature {
  const r = native.probeProgType(type);
  if (r === 1) return { available: true };
  if (r === 0) return { available: false, reason: `${what} not supported (requires Linux >= ${minKernel})` };
  return { available: false, reason: `${what}: probe inconclusive (error ${-r})` };
}

export function probeKernelFeatures(native: BpfNative, btfPath: string, tracefs: string | undefined): KernelFeatures {
  const btf: Feature = existsSync(btfPath)
    ? { available: true }
    : {
        available: false,
        reason: `kernel BTF not found at ${btfPath} (needs CONFIG_DEBUG_INFO_BTF=y, Linux >= 5.4, or pass --btf FILE)`,
      };
  const rb = native.probeMapType(BPF_MAP_TYPE_RINGBUF);
  // every kernel has array maps (3.19): where not even one can be made, bpf() itself is refused
  const refused = rb !== 1 && native.probeMapType(BPF_MAP_TYPE_ARRAY) !== 1;
  const ringbuf: Feature =
    rb === 1
      ? { available: true }
      : refused
        ? { available: false, reason: bpfRefused(seccompFiltered()), refused: true }
        : { available: false, reason: 'BPF ring buffer not supported (requires Linux >= 5.8)' };
  // libbpf cannot probe TRACING programs without a target; the trial load
  // of the tp_btf flavour is the real probe (see TcpTracer.start).
  const tpBtf: Feature = btf.available
    ? { available: true }
    : { available: false, reason: 'BTF tracepoints (tp_btf) need kernel BTF (Linux >= 5.5)' };
  const rawTp = progType(native, BPF_PROG_TYPE_RAW_TRACEPOINT, 'raw tracepoints', '4.17');
  const tracepointProg = progType(native, BPF_PROG_TYPE_TRACEPOINT, 'tracepoint programs', '4.7');
  const stateFormat = tracefs ? `${tracefs}/events/sock/inet_sock_set_state/format` : undefined;
  const tracepoint: Feature = !tracepointProg.available
    ? tracepointProg
    : !tracefs
      ? { available: false, reason: 'tracefs not mounted and could not be mounted at /sys/kernel/tracing (needs CAP_SYS_ADMIN)' }
      : stateFormat && existsSync(stateFormat)
        ? { available: true }
        : { available: false, reason: 'tracepoint sock/inet_sock_set_state missing (requires Linux >= 4.16)' };
  return { btf, ringbuf, tpBtf, rawTp, tracepoint };
}

/** Throw when a feature that every attach mode needs is absent. */
export function requireBaseFeatures(f: KernelFeatures): void {
  // refused, the probe tells nothing of the kernel: that is all there is to say
  if (f.ringbuf.refused) throw new EnvironmentError(f.ringbuf.reason!);
  const missing = [f.btf, f.ringbuf].filter((x) => !x.available).map((x) => x.reason);
  if (missing.length) throw new EnvironmentError(`this kernel cannot run bpfagent: ${missing.join('; ')}`);
}
