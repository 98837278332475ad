import type { TcpRecord, UdpRecord } from '../events/records.js';
import type { DnsNameCache } from './dns-cache.js';

/**
 * Put the DNS name on a record's remote end, as it stood when the traffic
 * began: connection start for TCP, interval start for UDP. `endMs` is the
 * record's end time (its `ts`), passed to save parsing it back.
 */
export function nameRemote(r: TcpRecord | UdpRecord, endMs: number, cache: DnsNameCache): void {
  const start = endMs - (r.proto === 'tcp' ? r.durationMs : r.intervalMs);
  const name = cache.lookup(r.local.netns, r.remote.addr, start);
  if (name !== undefined) r.remote.name = name;
}
