import type { TcpRecord, UdpRecord } from '../events/records.js';
import type { DnsNameCache } from './dns-cache.js';

/**
 * Put the DNS name on a record's remote end, as it stood when the traffic
 * began: connection start for TCP, interval start for UDP.
 */
export function nameRemote(r: TcpRecord | UdpRecord, cache: DnsNameCache): void {
  const end = Date.parse(r.ts);
  const start = r.proto === 'tcp' ? end - r.durationMs : end - r.intervalMs;
  const name = cache.lookup(r.local.netns, r.remote.addr, start);
  if (name) r.remote.name = name;
}
