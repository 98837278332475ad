/** Decodes struct tcp_close_event into the TCP record of the output contract (README, "TCP records"). */
import { AF_INET, AF_INET6, formatAddr, isV4Mapped } from './addr.js';
import { DIRECTION, OUTCOME, TCP_CLOSE_EVENT } from './layout.js';
import type { MonotonicClock } from '../util/clock.js';
import type { TcpRecord } from './records.js';
import { cString, u64 } from './read.js';

export type { TcpRecord, LocalEndpoint, Endpoint } from './records.js';

const F = TCP_CLOSE_EVENT.fields;

/** End time of the tcp_close_event at `off`, epoch ms. */
export function tcpCloseEndMs(b: Buffer, off: number, clock: MonotonicClock): number {
  return clock.toEpochMs(b.readUInt32LE(off + F.end_ns.offset + 4), b.readUInt32LE(off + F.end_ns.offset));
}

/** One tcp_close_event at `off`; the caller has checked the length. */
export function decodeTcpClose(b: Buffer, off: number, clock: MonotonicClock): TcpRecord | undefined {
  const direction = DIRECTION[b[off + F.direction.offset] as keyof typeof DIRECTION];
  const outcome = OUTCOME[b[off + F.outcome.offset] as keyof typeof OUTCOME];
  const rawFamily = b[off + F.family.offset];
  if (!direction || !outcome || (rawFamily !== AF_INET && rawFamily !== AF_INET6)) return undefined;
  const family = rawFamily === AF_INET || isV4Mapped(b, off + F.raddr.offset) ? 4 : 6;
  const endMs = tcpCloseEndMs(b, off, clock);
  const startNs = u64(b, off + F.start_ns.offset);
  const endNs = u64(b, off + F.end_ns.offset);
  return {
    ts: clock.iso(endMs),
    proto: 'tcp',
    family,
    direction,
    outcome,
    local: {
      addr: formatAddr(rawFamily, b, off + F.laddr.offset),
      port: b.readUInt16LE(off + F.lport.offset),
      pid: b.readUInt32LE(off + F.pid.offset),
      comm: cString(b, off + F.comm.offset, F.comm.size),
      cgroupId: u64(b, off + F.cgroup_id.offset),
      netns: b.readUInt32LE(off + F.netns.offset),
    },
    remote: b[off + F.dnat.offset]
      ? {
          addr: formatAddr(rawFamily, b, off + F.raddr.offset),
          port: b.readUInt16LE(off + F.rport.offset),
          reached: { addr: formatAddr(rawFamily, b, off + F.dnat_addr.offset), port: b.readUInt16LE(off + F.dnat_port.offset) },
        }
      : { addr: formatAddr(rawFamily, b, off + F.raddr.offset), port: b.readUInt16LE(off + F.rport.offset) },
    bytesSent: u64(b, off + F.bytes_sent.offset),
    bytesReceived: u64(b, off + F.bytes_received.offset),
    retransmits: b.readUInt32LE(off + F.retransmits.offset),
    srttUs: b.readUInt32LE(off + F.srtt_us.offset),
    // µs precision; start and end are both monotonic ns
    durationMs: endNs > startNs ? Math.round((endNs - startNs) / 1e3) / 1e3 : 0,
  };
}
