/** Decodes struct dns_event: the packet's metadata and its captured DNS payload. */
import { AF_INET, AF_INET6, formatAddr } from './addr.js';
import { DNS_EVENT, PACKET_DIRECTION } from './layout.js';
import { cString, u64 } from './read.js';
import type { LocalEndpoint, Endpoint } from './records.js';
import type { MonotonicClock } from '../util/clock.js';

export interface DnsPacket {
  /** epoch ms */
  ts: number;
  family: 4 | 6;
  transport: 'udp' | 'tcp';
  /** sent by the local client (a query) or received by it (an answer) */
  direction: 'egress' | 'ingress';
  local: LocalEndpoint;
  remote: Endpoint;
  /** the DNS bytes captured (for TCP, with the 2-byte length prefix) */
  payload: Buffer;
  /** the packet carried more than was captured */
  truncated: boolean;
}

const F = DNS_EVENT.fields;

export function decodeDnsEvent(b: Buffer, off: number, clock: MonotonicClock): DnsPacket | undefined {
  const family = b[off + F.family.offset];
  const protocol = b[off + F.protocol.offset];
  const direction = b[off + F.direction.offset];
  if ((family !== AF_INET && family !== AF_INET6) || (protocol !== 6 && protocol !== 17)) return undefined;
  if (direction !== PACKET_DIRECTION.EGRESS && direction !== PACKET_DIRECTION.INGRESS) return undefined;
  const payloadLen = b.readUInt16LE(off + F.payload_len.offset);
  const captured = Math.min(b.readUInt16LE(off + F.captured_len.offset), F.data.size);
  const dataStart = off + F.data.offset;
  return {
    ts: clock.toEpochMs(b.readUInt32LE(off + F.ts_ns.offset + 4), b.readUInt32LE(off + F.ts_ns.offset)),
    family: family === AF_INET ? 4 : 6,
    transport: protocol === 17 ? 'udp' : 'tcp',
    direction: direction === PACKET_DIRECTION.EGRESS ? 'egress' : 'ingress',
    local: {
      addr: formatAddr(family, b, off + F.laddr.offset),
      port: b.readUInt16LE(off + F.lport.offset),
      pid: b.readUInt32LE(off + F.pid.offset),
      comm: cString(b, off + F.comm.offset, F.comm.size),
      cgroupId: u64(b, off + F.cgroup_id.offset),
      netns: b.readUInt32LE(off + F.netns.offset),
    },
    remote: { addr: formatAddr(family, b, off + F.raddr.offset), port: b.readUInt16LE(off + F.rport.offset) },
    // copy: the batch buffer is reused for nothing, but a copy keeps the packet small
    payload: Buffer.from(b.subarray(dataStart, dataStart + captured)),
    truncated: captured < payloadLen,
  };
}
