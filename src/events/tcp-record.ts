/**
 * Decodes struct tcp_close_event into the TCP records of the output contract
 * (README, "TCP records"): a finished connection's (kind TCP_CLOSE, from the
 * ring buffer) or one interval of an open one's (kind TCP_OPEN, from the
 * sock_files iterator: `"state":"open"`, no outcome).
 */
import { AF_INET, AF_INET6, formatAddr, isV4Mapped } from './addr.js';
import { DIRECTION, EVENT_KIND, OUTCOME, TCP_CLOSE_EVENT, TCP_FLAGS } from './layout.js';
import type { MonotonicClock } from '../util/clock.js';
import type { TcpRecord } from './records.js';
import { cString, u16, u32, u64 } from './read.js';

export type { TcpRecord, LocalEndpoint, Endpoint } from './records.js';

const F = TCP_CLOSE_EVENT.fields;

/** End time of the tcp_close_event at `off`, epoch ms. */
export function tcpCloseEndMs(b: Buffer, off: number, clock: MonotonicClock): number {
  return clock.toEpochMs(u32(b, off + F.end_ns.offset + 4), u32(b, off + F.end_ns.offset));
}

/** The enums by their byte value, in arrays: an indexed load, not a property lookup by name. */
const DIRECTION_BY_BYTE = byByte(DIRECTION);
const OUTCOME_BY_BYTE = byByte(OUTCOME);

function byByte<T extends string>(e: Record<number, T>): (T | undefined)[] {
  const out = new Array<T | undefined>(256).fill(undefined);
  for (const [k, v] of Object.entries(e)) out[Number(k)] = v;
  return out;
}

/**
 * One tcp_close_event at `off` (either kind); the caller has checked the
 * length. `endMs`: its end time, when the caller has it already.
 */
export function decodeTcpClose(b: Buffer, off: number, clock: MonotonicClock, endMs = tcpCloseEndMs(b, off, clock)): TcpRecord | undefined {
  const direction = DIRECTION_BY_BYTE[b[off + F.direction.offset]!];
  const open = b[off + F.kind.offset] === EVENT_KIND.TCP_OPEN;
  const outcome = open ? undefined : OUTCOME_BY_BYTE[b[off + F.outcome.offset]!];
  const rawFamily = b[off + F.family.offset];
  if (!direction || (!open && !outcome) || (rawFamily !== AF_INET && rawFamily !== AF_INET6)) return undefined;
  const family = rawFamily === AF_INET || isV4Mapped(b, off + F.raddr.offset) ? 4 : 6;
  // end - start from the 32-bit halves: exact, where u64() of each is not above 2^53 ns (104 days of uptime)
  const durNs = (u32(b, off + F.end_ns.offset + 4) - u32(b, off + F.start_ns.offset + 4)) * 4294967296 + (u32(b, off + F.end_ns.offset) - u32(b, off + F.start_ns.offset));
  const r = {
    ts: clock.iso(endMs),
    proto: 'tcp',
    family,
    direction,
    ...(open ? { state: 'open' } : { outcome }),
    local: {
      addr: formatAddr(rawFamily, b, off + F.laddr.offset),
      port: u16(b, off + F.lport.offset),
      pid: u32(b, off + F.pid.offset),
      comm: cString(b, off + F.comm.offset, F.comm.size),
      cgroupId: u64(b, off + F.cgroup_id.offset),
      netns: u32(b, off + F.netns.offset),
    },
    remote: b[off + F.dnat.offset]
      ? {
          addr: formatAddr(rawFamily, b, off + F.raddr.offset),
          port: u16(b, off + F.rport.offset),
          reached: { addr: formatAddr(rawFamily, b, off + F.dnat_addr.offset), port: u16(b, off + F.dnat_port.offset) },
        }
      : { addr: formatAddr(rawFamily, b, off + F.raddr.offset), port: u16(b, off + F.rport.offset) },
    bytesSent: u64(b, off + F.bytes_sent.offset),
    bytesReceived: u64(b, off + F.bytes_received.offset),
    retransmits: u32(b, off + F.retransmits.offset),
    srttUs: u32(b, off + F.srtt_us.offset),
    // µs precision; start and end are both monotonic ns
    durationMs: durNs > 0 ? Math.round(durNs / 1e3) / 1e3 : 0,
  } as TcpRecord;
  if (b[off + F.flags.offset]! & TCP_FLAGS.SEEDED) r.openedBeforeStart = true;
  return r;
}

/**
 * What the sock_files iterator wrote: struct tcp_close_event records (kind
 * TCP_OPEN) back to back, no framing. Each goes to `onRecord` with its end
 * time; returns how many could not be decoded (a short tail, a bad value).
 */
export function decodeOpenRecords(b: Buffer, clock: MonotonicClock, onRecord: (r: TcpRecord, endMs: number) => void): number {
  const size = TCP_CLOSE_EVENT.size;
  let bad = b.length % size ? 1 : 0;
  for (let off = 0; off + size <= b.length; off += size) {
    const endMs = tcpCloseEndMs(b, off, clock);
    const r = b[off + F.kind.offset] === EVENT_KIND.TCP_OPEN ? decodeTcpClose(b, off, clock, endMs) : undefined;
    if (r) onRecord(r, endMs);
    else bad++;
  }
  return bad;
}
