import { readFileSync } from 'node:fs';

/** Capability numbers from include/uapi/linux/capability.h. */
const CAP = { CAP_NET_ADMIN: 12, CAP_SYS_ADMIN: 21, CAP_PERFMON: 38, CAP_BPF: 39 } as const;

/** Effective capability set of this process, from /proc/self/status. */
export function effectiveCapabilities(status = readFileSync('/proc/self/status', 'utf8')): bigint {
  const line = status.split('\n').find((l) => l.startsWith('CapEff:'));
  if (!line) return 0n;
  return BigInt('0x' + line.slice('CapEff:'.length).trim());
}

/** Whether a seccomp filter is on this process (the Seccomp line of /proc/self/status: 2). */
export function seccompFiltered(status = readFileSync('/proc/self/status', 'utf8')): boolean {
  return /^Seccomp:\s*2$/m.test(status);
}

const has = (caps: bigint, bit: number): boolean => ((caps >> BigInt(bit)) & 1n) === 1n;

/**
 * Capabilities missing for loading tracing programs: CAP_BPF and CAP_PERFMON
 * (Linux >= 5.8), either of which CAP_SYS_ADMIN stands in for.
 */
export function missingTracingCapabilities(caps: bigint): string[] {
  if (has(caps, CAP.CAP_SYS_ADMIN)) return [];
  const missing: string[] = [];
  if (!has(caps, CAP.CAP_BPF)) missing.push('CAP_BPF');
  if (!has(caps, CAP.CAP_PERFMON)) missing.push('CAP_PERFMON');
  return missing;
}

/**
 * Capabilities missing for the cgroup socket programs UDP flows are counted
 * with (cgroup/sendmsg, recvmsg, sock_create...: the kernel loads them only
 * with CAP_NET_ADMIN, for which CAP_SYS_ADMIN stands in).
 */
export function missingNetCapabilities(caps: bigint): string[] {
  return has(caps, CAP.CAP_SYS_ADMIN) || has(caps, CAP.CAP_NET_ADMIN) ? [] : ['CAP_NET_ADMIN'];
}

/** A capability's name as Kubernetes writes it (securityContext.capabilities.add): CAP_BPF -> BPF. */
export const kubernetesCapability = (cap: string): string => cap.replace(/^CAP_/, '');
