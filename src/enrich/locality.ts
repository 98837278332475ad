/**
 * Where a remote end is, seen from this host, so cross-zone and egress
 * traffic can be summed: `same-host`, `same-zone`, `cross-zone`, `cluster`
 * (inside the cluster, zone unknown) or `external` (outside every known pod,
 * Service, node and configured cluster CIDR).
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { K8sInfo, Locality } from '../events/records.js';

export interface LocalityContext {
  /** this node's name and zone, when Kubernetes is known */
  nodeName?: string;
  zone?: string;
  /** an address of this host: its interfaces, loopback, or any network namespace's sockets seen here */
  isHostAddress(addr: string): boolean;
  /** configured cluster CIDRs (pod and service ranges) */
  inCluster(addr: string): boolean;
}

/** `remote` is what Kubernetes knows of the end really reached (the backend behind a ClusterIP, if any). */
export function classifyRemote(addr: string, remote: K8sInfo | undefined, ctx: LocalityContext): Locality {
  if (remote?.node !== undefined) {
    if (ctx.nodeName !== undefined && remote.node === ctx.nodeName) return 'same-host';
    if (remote.zone !== undefined && ctx.zone !== undefined) return remote.zone === ctx.zone ? 'same-zone' : 'cross-zone';
    return 'cluster';
  }
  if (ctx.isHostAddress(addr)) return 'same-host';
  if (remote !== undefined || ctx.inCluster(addr)) return 'cluster';
  return 'external';
}

/** Parse "10.0.0.0/8,fd00::/8": a usage error names the bad entry. */
export function parseCidrs(list: readonly string[]): BlockList {
  const b = new BlockList();
  for (const raw of list) {
    const cidr = raw.trim();
    if (!cidr) continue;
    const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr);
    const addr = m?.[1] ?? '';
    const prefix = Number(m?.[2]);
    const v4 = isIPv4(addr);
    if (!m || (!v4 && !isIPv6(addr)) || prefix > (v4 ? 32 : 128))
      throw new Error(`'${cidr}' is not a CIDR such as 10.244.0.0/16 or fd00:10::/56`);
    b.addSubnet(addr, prefix, v4 ? 'ipv4' : 'ipv6');
  }
  return b;
}

export function inBlockList(b: BlockList, addr: string): boolean {
  if (isIPv4(addr)) return b.check(addr, 'ipv4');
  if (isIPv6(addr)) return b.check(addr, 'ipv6');
  return false;
}

/**
 * A membership test for the cluster CIDRs that is cheap per record:
 * BlockList.check builds a SocketAddress each call (microseconds), so answers
 * are remembered per address (bounded); no CIDRs at all is a constant.
 */
export function clusterMatcher(cidrs: readonly string[], maxRemembered = 65_536): (addr: string) => boolean {
  if (!cidrs.some((c) => c.trim())) return () => false;
  const list = parseCidrs(cidrs);
  const seen = new Map<string, boolean>();
  return (addr) => {
    let v = seen.get(addr);
    if (v === undefined) {
      v = inBlockList(list, addr);
      if (seen.size >= maxRemembered) seen.clear();
      seen.set(addr, v);
    }
    return v;
  };
}

/** Loopback ranges: always this host. */
export function isLoopback(addr: string): boolean {
  return addr.startsWith('127.') || addr === '::1';
}
