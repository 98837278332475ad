/** struct udp_flow_key, udp_flow_value and udp_flow_cache buffers as the kernel fills them, for unit tests. */
import { UDP_FLOW_CACHE, UDP_FLOW_CACHED, UDP_FLOW_KEY, UDP_FLOW_VALUE } from '../../src/events/layout.js';

const K = UDP_FLOW_KEY.fields;
const V = UDP_FLOW_VALUE.fields;

export interface Counts {
  packetsSent?: number;
  bytesSent?: number;
  packetsReceived?: number;
  bytesReceived?: number;
  cgroupId?: number;
  comm?: string;
  firstSentNs?: number;
  firstReceivedNs?: number;
  seenFromStart?: boolean;
}

/** One struct udp_flow_value. */
export function value(c: Counts): Buffer {
  const b = Buffer.alloc(UDP_FLOW_VALUE.size);
  b.writeBigUInt64LE(BigInt(c.packetsSent ?? 0), V.packets_sent.offset);
  b.writeBigUInt64LE(BigInt(c.bytesSent ?? 0), V.bytes_sent.offset);
  b.writeBigUInt64LE(BigInt(c.packetsReceived ?? 0), V.packets_received.offset);
  b.writeBigUInt64LE(BigInt(c.bytesReceived ?? 0), V.bytes_received.offset);
  b.writeBigUInt64LE(BigInt(c.cgroupId ?? 0), V.cgroup_id.offset);
  if (c.comm) b.write(c.comm, V.comm.offset, 'latin1');
  b.writeBigUInt64LE(BigInt(c.firstSentNs ?? 0), V.first_sent_ns.offset);
  b.writeBigUInt64LE(BigInt(c.firstReceivedNs ?? 0), V.first_received_ns.offset);
  b[V.seen_from_start.offset] = c.seenFromStart ? 1 : 0;
  return b;
}

export function key(lport: number, rport: number, pid: number, portBound = false): Buffer {
  const b = Buffer.alloc(UDP_FLOW_KEY.size);
  b[K.port_bound.offset] = portBound ? 1 : 0;
  b.writeUInt32LE(4026531840, K.netns.offset);
  b.writeUInt32LE(pid, K.pid.offset);
  b.writeUInt16LE(lport, K.lport.offset);
  b.writeUInt16LE(rport, K.rport.offset);
  b[K.family.offset] = 2;
  Buffer.from([10, 0, 0, 1]).copy(b, K.laddr.offset);
  Buffer.from([10, 0, 0, 2]).copy(b, K.raddr.offset);
  return b;
}

/** One CPU's struct udp_flow_cache: the flows it cached, by direction. */
export function cache(egress?: [Buffer, Counts], ingress?: [Buffer, Counts]): Buffer {
  const b = Buffer.alloc(UDP_FLOW_CACHE.size);
  for (const [dir, flow] of [[UDP_FLOW_CACHE.fields.egress, egress], [UDP_FLOW_CACHE.fields.ingress, ingress]] as const) {
    if (!flow) continue;
    flow[0].copy(b, dir.offset + UDP_FLOW_CACHED.fields.key.offset);
    value(flow[1]).copy(b, dir.offset + UDP_FLOW_CACHED.fields.value.offset);
    b.writeUInt32LE(1, dir.offset + UDP_FLOW_CACHED.fields.used.offset);
  }
  return b;
}
