/**
 * Pairs the DNS queries local clients send with the answers they receive,
 * producing one record per lookup, and teaches the name cache the addresses
 * each answer carries.
 *
 * An answer is seen as it arrives on a device, before any socket is known:
 * it belongs to the query sent from its destination address and port, in the
 * same network namespace, with the same id and question. A forwarded answer
 * is seen on every hop; only the copy arriving in the asking namespace
 * matches, the others are counted as unmatched and add nothing (they would
 * name addresses in namespaces that never asked).
 */
import type { DnsPacket } from '../events/dns-event.js';
import type { DnsRecord } from '../events/records.js';
import { parseDnsMessage, type DnsMessage } from './dns-message.js';
import type { DnsNameCache } from './dns-cache.js';

interface Pending {
  packet: DnsPacket;
  message: DnsMessage;
}

export interface DnsStats {
  lookups: number;
  /** packets that could not be parsed: counted and skipped */
  malformed: number;
  /** answers with no query seen in their namespace: copies on forwarding hops, queries older than the agent */
  unmatchedAnswers: number;
  /** pending queries dropped because too many were outstanding */
  pendingDropped: number;
}

export class DnsTracker {
  private readonly pending = new Map<string, Pending>();
  readonly stats: DnsStats = { lookups: 0, malformed: 0, unmatchedAnswers: 0, pendingDropped: 0 };

  constructor(
    private readonly cache: DnsNameCache,
    private readonly emit: (r: DnsRecord) => void,
    private readonly timeoutMs = 5000,
    private readonly maxPending = 10_000,
    /** a packet time as the record's `ts` (the collector's clock puts it on the wall clock) */
    private readonly iso: (ms: number) => string = (ms) => new Date(ms).toISOString(),
  ) {}

  /** The client's end (the query's source, the answer's destination), the id and the question. */
  private static key(p: DnsPacket, m: DnsMessage): string {
    const q = m.question;
    return `${p.local.netns}|${p.local.addr}|${p.local.port}|${m.id}|${q?.name ?? ''}|${q?.type ?? ''}`;
  }

  handle(packet: DnsPacket): void {
    const parsed = parseDnsMessage(packet.payload, packet.transport);
    if ('error' in parsed) {
      this.stats.malformed++;
      return;
    }
    const m = parsed.message;
    if (packet.direction === 'egress' && !m.isResponse) {
      this.pending.set(DnsTracker.key(packet, m), { packet, message: m });
      if (this.pending.size > this.maxPending) {
        this.pending.delete(this.pending.keys().next().value as string);
        this.stats.pendingDropped++;
      }
      return;
    }
    if (packet.direction !== 'ingress' || !m.isResponse) return;
    const key = DnsTracker.key(packet, m);
    const query = this.pending.get(key);
    if (!query) {
      this.stats.unmatchedAnswers++;
      return;
    }
    this.pending.delete(key);
    this.learn(query.packet, m);
    this.record(query.packet, m, packet.ts, packet.ts - query.packet.ts);
  }

  /** Every A/AAAA address of the answer maps to the name the client asked (before any CNAME). */
  private learn(packet: DnsPacket, m: DnsMessage): void {
    if (!m.question || m.rcode !== 'NOERROR') return;
    for (const a of m.answers) {
      if (a.type === 'A' || a.type === 'AAAA') this.cache.add(packet.local.netns, a.data, m.question.name, a.ttl, packet.ts);
    }
  }

  private record(query: DnsPacket, m: DnsMessage, endMs: number, latencyMs: number | null): void {
    this.stats.lookups++;
    this.emit({
      ts: this.iso(endMs),
      proto: 'dns',
      query: m.question?.name ?? '',
      qtype: m.question?.type ?? '',
      rcode: m.rcode,
      answers: m.answers,
      latencyMs: latencyMs === null ? null : Math.round(latencyMs * 1000) / 1000,
      transport: query.transport,
      local: query.local,
      remote: query.remote,
    });
  }

  /** Queries unanswered for longer than the timeout become TIMEOUT records. */
  sweep(nowMs: number): void {
    for (const [key, p] of this.pending) {
      if (nowMs - p.packet.ts < this.timeoutMs) continue;
      this.pending.delete(key);
      this.record(p.packet, { ...p.message, rcode: 'TIMEOUT', answers: [] }, nowMs, null);
    }
  }

  /** At exit: whatever is still pending is reported unanswered. */
  flush(nowMs: number): void {
    this.sweep(nowMs + this.timeoutMs);
  }
}
