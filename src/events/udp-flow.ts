/** Decodes a drained UDP flow table (struct udp_flow_key -> struct udp_flow_value) into records. */
import { AF_INET, formatAddr } from './addr.js';
import { UDP_FLOW_KEY, UDP_FLOW_VALUE } from './layout.js';
import { cString, u64 } from './read.js';
import type { UdpRecord } from './records.js';
import type { MapDump } from '../bpf/native.js';

const K = UDP_FLOW_KEY.fields;
const V = UDP_FLOW_VALUE.fields;

/** `dump` holds `count` keys and values back to back; `endMs` closes the interval. */
export function decodeUdpFlows(dump: MapDump, endMs: number, intervalMs: number): UdpRecord[] {
  const keySize = dump.count ? dump.keys.length / dump.count : 0;
  const valueSize = dump.count ? dump.values.length / dump.count : 0;
  if (dump.count && (keySize !== UDP_FLOW_KEY.size || valueSize < UDP_FLOW_VALUE.size))
    throw new Error(`udp flow table: entries are ${keySize}+${valueSize} bytes, expected ${UDP_FLOW_KEY.size}+${UDP_FLOW_VALUE.size}`);
  const ts = new Date(endMs).toISOString();
  const out: UdpRecord[] = [];
  for (let i = 0; i < dump.count; i++) {
    const k = dump.keys;
    const ko = i * keySize;
    const v = dump.values;
    const vo = i * valueSize;
    const family = k[ko + K.family.offset]!;
    out.push({
      ts,
      proto: 'udp',
      family: family === AF_INET ? 4 : 6,
      local: {
        addr: formatAddr(family, k, ko + K.laddr.offset),
        port: k.readUInt16LE(ko + K.lport.offset),
        pid: k.readUInt32LE(ko + K.pid.offset),
        comm: cString(v, vo + V.comm.offset, V.comm.size),
        cgroupId: u64(v, vo + V.cgroup_id.offset),
        netns: k.readUInt32LE(ko + K.netns.offset),
      },
      remote: { addr: formatAddr(family, k, ko + K.raddr.offset), port: k.readUInt16LE(ko + K.rport.offset) },
      packetsSent: u64(v, vo + V.packets_sent.offset),
      packetsReceived: u64(v, vo + V.packets_received.offset),
      bytesSent: u64(v, vo + V.bytes_sent.offset),
      bytesReceived: u64(v, vo + V.bytes_received.offset),
      intervalMs,
    });
  }
  return out;
}
