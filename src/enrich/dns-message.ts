/**
 * Turns captured DNS bytes into a small, plain description, with dns-packet
 * doing the parsing. Never throws: malformed, truncated or hostile input
 * comes back as { error } for the caller to count and skip.
 */
import dnsPacket from 'dns-packet';
import type { DnsAnswer } from '../events/records.js';

export interface DnsMessage {
  id: number;
  isResponse: boolean;
  rcode: string;
  /** first question; absent in some hostile or odd messages */
  question?: { name: string; type: string };
  answers: DnsAnswer[];
}

export type ParseResult = { message: DnsMessage } | { error: string };

/** Names compare case-insensitively and without the root dot. */
export function normalizeName(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}

function answerData(a: dnsPacket.Answer): string {
  const data = (a as { data?: unknown }).data;
  if (typeof data === 'string') return data;
  if (typeof data === 'number') return String(data);
  if (Buffer.isBuffer(data)) return data.toString('hex');
  if (Array.isArray(data)) return data.map((d) => (Buffer.isBuffer(d) ? d.toString() : String(d))).join(' ');
  return data === undefined ? '' : JSON.stringify(data);
}

/** `payload` as captured: for TCP it starts with the 2-byte length prefix. */
export function parseDnsMessage(payload: Buffer, transport: 'udp' | 'tcp'): ParseResult {
  let bytes = payload;
  if (transport === 'tcp') {
    if (payload.length < 2) return { error: 'tcp: no length prefix' };
    const len = payload.readUInt16BE(0);
    if (payload.length < 2 + len) return { error: `tcp: message of ${len} bytes split across segments` };
    bytes = payload.subarray(2, 2 + len);
  }
  if (bytes.length < 12) return { error: `message of ${bytes.length} bytes is shorter than a DNS header` };
  let decoded: dnsPacket.Packet;
  try {
    decoded = dnsPacket.decode(bytes);
  } catch (e) {
    return { error: `malformed: ${(e as Error).message}` };
  }
  try {
    const q = decoded.questions?.[0];
    return {
      message: {
        id: decoded.id ?? 0,
        isResponse: decoded.type === 'response',
        rcode: (decoded as { rcode?: string }).rcode ?? 'NOERROR',
        question: q && typeof q.name === 'string' ? { name: normalizeName(q.name), type: String(q.type) } : undefined,
        answers: (decoded.answers ?? []).map((a) => ({
          name: normalizeName(String(a.name ?? '')),
          type: String(a.type),
          ttl: (a as { ttl?: number }).ttl ?? 0,
          data: answerData(a),
        })),
      },
    };
  } catch (e) {
    return { error: `malformed: ${(e as Error).message}` };
  }
}
