/**
 * Walks the ring buffer batches the native reader hands over and dispatches
 * each record on its kind byte. Every record is length- and kind-checked;
 * whatever cannot be decoded is counted, never thrown.
 */
import { CGROUP_MKDIR_EVENT, DNS_EVENT, EVENT_KIND, TCP_CLOSE_EVENT } from './layout.js';
import { decodeCgroupMkdir, type CgroupMade } from './cgroup-event.js';
import { decodeDnsEvent, type DnsPacket } from './dns-event.js';
import { decodeTcpClose, tcpCloseEndMs } from './tcp-record.js';
import type { TcpRecord } from './records.js';
import { u32 } from './read.js';
import { beginBatchTime, endBatchTime } from './batch-time.js';
import type { MonotonicClock } from '../util/clock.js';

export interface DecodeStats {
  /** TCP records decoded */
  records: number;
  /** DNS packets decoded */
  dnsPackets: number;
  /** cgroup_mkdir events decoded */
  cgroups?: number;
  /** frames shorter than their struct or of an unknown kind */
  decodeErrors: number;
}

/** Where decoded ring buffer records go, by kind. */
export interface RecordSink {
  /** `endMs`: the record's end time as epoch ms (its `ts`) */
  tcp(record: TcpRecord, endMs: number): void;
  dns?(packet: DnsPacket): void;
  /** a cgroup made: handled before any record that follows it in the ring */
  cgroup?(made: CgroupMade): void;
}

/**
 * Walk a native batch of `[u32 length][record]` frames, dispatching on the
 * kind byte. Frames too short for their struct, of unknown kinds, or with
 * values outside their enums are counted in `stats.decodeErrors`. While the
 * sink handles the batch's records, `batchNowMs()` is the batch's time.
 */
export function decodeBatch(batch: Buffer, clock: MonotonicClock, stats: DecodeStats, sink: RecordSink, onException: (e: unknown) => void = rethrow): void {
  const outer = beginBatchTime();
  try {
    decodeFrames(batch, clock, stats, sink, onException);
  } finally {
    endBatchTime(outer);
  }
}

function rethrow(e: unknown): never {
  throw e;
}

/**
 * A frame whose decoding or handling throws is handed to `onException` and
 * skipped: the frames after it are still framed, so one bad record costs
 * only itself.
 */
function decodeFrames(batch: Buffer, clock: MonotonicClock, stats: DecodeStats, sink: RecordSink, onException: (e: unknown) => void): void {
  let off = 0;
  while (off + 4 <= batch.length) {
    const len = u32(batch, off);
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
    try {
      if (decodeFrame(batch, start, len, clock, stats, sink)) continue;
    } catch (e) {
      onException(e);
      continue;
    }
    stats.decodeErrors++;
  }
  if (off < batch.length) stats.decodeErrors++; // trailing bytes too short for a frame header
}

/** One frame to the sink; false when it is not a record this agent knows. */
function decodeFrame(batch: Buffer, start: number, len: number, clock: MonotonicClock, stats: DecodeStats, sink: RecordSink): boolean {
  const kind = batch[start];
  if (kind === EVENT_KIND.TCP_CLOSE && len >= TCP_CLOSE_EVENT.size) {
    const endMs = tcpCloseEndMs(batch, start, clock);
    const rec = decodeTcpClose(batch, start, clock, endMs);
    if (!rec) return false;
    stats.records++;
    sink.tcp(rec, endMs);
    return true;
  }
  if (kind === EVENT_KIND.DNS && len >= DNS_EVENT.size) {
    const pkt = decodeDnsEvent(batch, start, clock);
    if (!pkt) return false;
    stats.dnsPackets++;
    sink.dns?.(pkt);
    return true;
  }
  if (kind === EVENT_KIND.CGROUP_MKDIR && len >= CGROUP_MKDIR_EVENT.size) {
    const made = decodeCgroupMkdir(batch, start);
    if (!made) return false;
    stats.cgroups = (stats.cgroups ?? 0) + 1;
    sink.cgroup?.(made);
    return true;
  }
  return false;
}
