import { readFileSync } from 'node:fs';

/** Capability numbers from include/uapi/linux/capability.h. */
const CAP = { CAP_SYS_ADMIN: 21, CAP_PERFMON: 38, CAP_BPF: 39 } as const;

/** Effective capability set of this process, from /proc/self/status. */
export function effectiveCapabilities(status = readFileSync('/proc/self/status', 'utf8')): bigint {
  const line = status.split('\n').find((l) => l.startsWith('CapEff:'));
  if (!line) return 0n;
  return BigInt('0x' + line.slice('CapEff:'.length).trim());
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
