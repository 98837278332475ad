/** Decodes a drained UDP flow table (struct udp_flow_key -> struct udp_flow_value) into records. */
import { AF_INET, formatAddr } from './addr.js';
import { UDP_FLOW_CACHE, UDP_FLOW_CACHED, UDP_FLOW_KEY, UDP_FLOW_VALUE } from './layout.js';
import { cString, u64 } from './read.js';
import type { UdpRecord } from './records.js';
import type { UdpDirections } from './udp-direction.js';
import type { MapDump } from '../bpf/native.js';

const K = UDP_FLOW_KEY.fields;
const V = UDP_FLOW_VALUE.fields;

/**
 * Add the flows of the per-CPU cache (udp_cache_N's element: each CPU's
 * struct udp_flow_cache, 8-byte aligned) to a drained flow table: a flow also
 * in the table gets its counts added, another becomes one more entry.
 */
export function addCachedFlows(table: MapDump, cache: Buffer, cpus: number): MapDump {
  const stride = Math.ceil(UDP_FLOW_CACHE.size / 8) * 8;
  if (cache.length !== stride * cpus)
    throw new Error(`udp flow cache: ${cache.length} bytes, expected ${stride}x${cpus}`);
  if (table.values.length !== table.count * UDP_FLOW_VALUE.size)
    throw new Error(`udp flow table: ${table.values.length} value bytes for ${table.count} entries, expected ${UDP_FLOW_VALUE.size} each`);
  const tableValues = Buffer.from(table.values);
  const index = new Map<string, number>();
  for (let i = 0; i < table.count; i++) index.set(table.keys.toString('latin1', i * UDP_FLOW_KEY.size, (i + 1) * UDP_FLOW_KEY.size), i);
  const extraKeys: Buffer[] = [];
  const extraValues: Buffer[] = [];
  for (let cpu = 0; cpu < cpus; cpu++) {
    for (const dir of [UDP_FLOW_CACHE.fields.egress, UDP_FLOW_CACHE.fields.ingress]) {
      const at = cpu * stride + dir.offset;
      if (cache.readUInt32LE(at + UDP_FLOW_CACHED.fields.used.offset) === 0) continue;
      const key = cache.subarray(at, at + UDP_FLOW_KEY.size);
      const valueAt = at + UDP_FLOW_CACHED.fields.value.offset;
      const value = cache.subarray(valueAt, valueAt + UDP_FLOW_VALUE.size);
      const i = index.get(key.toString('latin1'));
      if (i === undefined) {
        index.set(key.toString('latin1'), table.count + extraKeys.length);
        extraKeys.push(Buffer.from(key));
        extraValues.push(Buffer.from(value));
      } else if (i < table.count) {
        addFlowValue(tableValues, i * UDP_FLOW_VALUE.size, value);
      } else {
        addFlowValue(extraValues[i - table.count]!, 0, value);
      }
    }
  }
  return {
    count: table.count + extraKeys.length,
    keys: Buffer.concat([table.keys, ...extraKeys]),
    values: Buffer.concat([tableValues, ...extraValues]),
  };
}

/**
 * Add the counters of `from` (a struct udp_flow_value) to the one at
 * `to[off]`, keep the earlier first-datagram times; take its owner if that
 * has none.
 */
function addFlowValue(to: Buffer, off: number, from: Buffer): void {
  for (const f of [V.packets_sent, V.bytes_sent, V.packets_received, V.bytes_received])
    to.writeBigUInt64LE(to.readBigUInt64LE(off + f.offset) + from.readBigUInt64LE(f.offset), off + f.offset);
  for (const f of [V.first_sent_ns, V.first_received_ns]) {
    const t = from.readBigUInt64LE(f.offset);
    const had = to.readBigUInt64LE(off + f.offset);
    if (t && (!had || t < had)) to.writeBigUInt64LE(t, off + f.offset);
  }
  to[off + V.seen_from_start.offset] ||= from[V.seen_from_start.offset]!;
  if (hasOwner(from, 0) && !hasOwner(to, off)) from.copy(to, off + V.cgroup_id.offset, V.cgroup_id.offset, V.comm.offset + V.comm.size);
}

function hasOwner(b: Buffer, off: number): boolean {
  return b.readBigUInt64LE(off + V.cgroup_id.offset) !== 0n || b[off + V.comm.offset] !== 0;
}

/**
 * `dump` holds `count` keys and values back to back; `endMs` closes the
 * interval. `directions` decides each flow's direction and remembers it
 * for the intervals that follow.
 */
export function decodeUdpFlows(dump: MapDump, endMs: number, intervalMs: number, directions: UdpDirections): UdpRecord[] {
  const keySize = dump.count ? dump.keys.length / dump.count : 0;
  const valueSize = dump.count ? dump.values.length / dump.count : 0;
  if (dump.count && (keySize !== UDP_FLOW_KEY.size || valueSize < UDP_FLOW_VALUE.size))
    throw new Error(`udp flow table: entries are ${keySize}+${valueSize} bytes, expected ${UDP_FLOW_KEY.size}+${UDP_FLOW_VALUE.size}`);
  const ts = new Date(endMs).toISOString();
  const decided = directions.decide(dump, keySize, valueSize);
  const out: UdpRecord[] = [];
  for (let i = 0; i < dump.count; i++) {
    const k = dump.keys;
    const ko = i * keySize;
    const v = dump.values;
    const vo = i * valueSize;
    const family = k[ko + K.family.offset]!;
    const lport = k.readUInt16LE(ko + K.lport.offset);
    const rport = k.readUInt16LE(ko + K.rport.offset);
    const { direction, directionFrom } = decided[i]!;
    out.push({
      ts,
      proto: 'udp',
      family: family === AF_INET ? 4 : 6,
      direction,
      directionFrom,
      local: {
        addr: formatAddr(family, k, ko + K.laddr.offset),
        port: lport,
        pid: k.readUInt32LE(ko + K.pid.offset),
        comm: cString(v, vo + V.comm.offset, V.comm.size),
        cgroupId: u64(v, vo + V.cgroup_id.offset),
        netns: k.readUInt32LE(ko + K.netns.offset),
      },
      remote: { addr: formatAddr(family, k, ko + K.raddr.offset), port: rport },
      packetsSent: u64(v, vo + V.packets_sent.offset),
      packetsReceived: u64(v, vo + V.packets_received.offset),
      bytesSent: u64(v, vo + V.bytes_sent.offset),
      bytesReceived: u64(v, vo + V.bytes_received.offset),
      intervalMs,
    });
  }
  return out;
}
