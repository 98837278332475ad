/**
 * Decodes ring buffer batches into the records of the output contract
 * (README "Output contract"). Every record is length- and kind-checked;
 * whatever cannot be decoded is counted, never thrown.
 */
import { AF_INET, AF_INET6, formatAddr, isV4Mapped } from './addr.js';
import { DIRECTION, DNS_EVENT, EVENT_KIND, OUTCOME, TCP_CLOSE_EVENT } from './layout.js';
import { decodeDnsEvent, type DnsPacket } from './dns-event.js';
import type { MonotonicClock } from '../util/clock.js';
import type { TcpRecord } from './records.js';
import { cString, u64 } from './read.js';

export type { TcpRecord, LocalEndpoint, Endpoint } from './records.js';

export interface DecodeStats {
  /** TCP records decoded */
  records: number;
  /** DNS packets decoded */
  dnsPackets: number;
  /** frames shorter than their struct or of an unknown kind */
  decodeErrors: number;
}

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
    remote: {
      addr: formatAddr(rawFamily, b, off + F.raddr.offset),
      port: b.readUInt16LE(off + F.rport.offset),
    },
    bytesSent: u64(b, off + F.bytes_sent.offset),
    bytesReceived: u64(b, off + F.bytes_received.offset),
    retransmits: b.readUInt32LE(off + F.retransmits.offset),
    srttUs: b.readUInt32LE(off + F.srtt_us.offset),
    // µs precision; start and end are both monotonic ns
    durationMs: endNs > startNs ? Math.round((endNs - startNs) / 1e3) / 1e3 : 0,
  };
}

/** Where decoded ring buffer records go, by kind. */
export interface RecordSink {
  /** `endMs`: the record's end time as epoch ms (its `ts`) */
  tcp(record: TcpRecord, endMs: number): void;
  dns?(packet: DnsPacket): void;
}

/**
 * Walk a native batch of `[u32 length][record]` frames, dispatching on the
 * kind byte. Frames too short for their struct, of unknown kinds, or with
 * values outside their enums are counted in `stats.decodeErrors`.
 */
export function decodeBatch(batch: Buffer, clock: MonotonicClock, stats: DecodeStats, sink: RecordSink): void {
  let off = 0;
  while (off + 4 <= batch.length) {
    const len = batch.readUInt32LE(off);
    const start = off + 4;
    off = start + len;
    if (off > batch.length) {
      stats.decodeErrors++; // truncated batch: nothing after this can be framed
      return;
    }
    if (len < 1) {
      stats.decodeErrors++; // empty frame: skip it, the next one is still framed
      continue;
    }
    const kind = batch[start];
    if (kind === EVENT_KIND.TCP_CLOSE && len >= TCP_CLOSE_EVENT.size) {
      const rec = decodeTcpClose(batch, start, clock);
      if (rec) {
        stats.records++;
        sink.tcp(rec, tcpCloseEndMs(batch, start, clock));
        continue;
      }
    } else if (kind === EVENT_KIND.DNS && len >= DNS_EVENT.size) {
      const pkt = decodeDnsEvent(batch, start, clock);
      if (pkt) {
        stats.dnsPackets++;
        sink.dns?.(pkt);
        continue;
      }
    }
    stats.decodeErrors++;
  }
  if (off < batch.length) stats.decodeErrors++; // trailing bytes too short for a frame header
}
