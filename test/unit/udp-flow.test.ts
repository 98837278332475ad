import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { addCachedFlows, decodeUdpFlows, udpDirection } from '../../src/events/udp-flow.js';
import { UDP_FLOW_CACHE, UDP_FLOW_CACHED, UDP_FLOW_KEY, UDP_FLOW_VALUE } from '../../src/events/layout.js';

const K = UDP_FLOW_KEY.fields;
const V = UDP_FLOW_VALUE.fields;

interface Counts {
  packetsSent?: number;
  bytesSent?: number;
  packetsReceived?: number;
  bytesReceived?: number;
  cgroupId?: number;
  comm?: string;
}

/** One struct udp_flow_value. */
function value(c: Counts): Buffer {
  const b = Buffer.alloc(UDP_FLOW_VALUE.size);
  b.writeBigUInt64LE(BigInt(c.packetsSent ?? 0), V.packets_sent.offset);
  b.writeBigUInt64LE(BigInt(c.bytesSent ?? 0), V.bytes_sent.offset);
  b.writeBigUInt64LE(BigInt(c.packetsReceived ?? 0), V.packets_received.offset);
  b.writeBigUInt64LE(BigInt(c.bytesReceived ?? 0), V.bytes_received.offset);
  b.writeBigUInt64LE(BigInt(c.cgroupId ?? 0), V.cgroup_id.offset);
  if (c.comm) b.write(c.comm, V.comm.offset, 'latin1');
  return b;
}

function key(lport: number, rport: number, pid: number, portBound = false): Buffer {
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
function cache(egress?: [Buffer, Counts], ingress?: [Buffer, Counts]): Buffer {
  const b = Buffer.alloc(UDP_FLOW_CACHE.size);
  for (const [dir, flow] of [[UDP_FLOW_CACHE.fields.egress, egress], [UDP_FLOW_CACHE.fields.ingress, ingress]] as const) {
    if (!flow) continue;
    flow[0].copy(b, dir.offset + UDP_FLOW_CACHED.fields.key.offset);
    value(flow[1]).copy(b, dir.offset + UDP_FLOW_CACHED.fields.value.offset);
    b.writeUInt32LE(1, dir.offset + UDP_FLOW_CACHED.fields.used.offset);
  }
  return b;
}

describe('per-CPU UDP flow cache', () => {
  test('cached flows are added to the same flow of the table, or to each other, or become entries', () => {
    const table = {
      count: 1,
      keys: key(5000, 53, 42),
      values: value({ packetsSent: 1, bytesSent: 10 }),
    };
    const cpus = [
      cache([key(5000, 53, 42), { packetsSent: 4, bytesSent: 40, cgroupId: 7, comm: 'dig' }], [key(9, 9, 0), { packetsReceived: 2, bytesReceived: 20 }]),
      cache(undefined, [key(9, 9, 0), { packetsReceived: 3, bytesReceived: 30 }]),
    ];
    const merged = addCachedFlows(table, Buffer.concat(cpus), 2);
    const records = decodeUdpFlows(merged, Date.UTC(2026, 0, 1), 1000);
    assert.deepEqual(
      records.map((r) => [r.local.port, r.local.comm, r.local.cgroupId, r.packetsSent, r.bytesSent, r.packetsReceived, r.bytesReceived]),
      [
        [5000, 'dig', 7, 5, 50, 0, 0],
        [9, '', 0, 0, 0, 5, 50],
      ],
    );
    assert.equal(table.values.readBigUInt64LE(V.packets_sent.offset), 1n, 'the table dump is left as it was');
  });

  test('an empty cache adds nothing; a cache of the wrong size is refused', () => {
    const table = { count: 1, keys: key(1, 2, 3), values: value({ packetsSent: 1 }) };
    const same = addCachedFlows(table, Buffer.concat([cache(), cache()]), 2);
    assert.equal(same.count, 1);
    assert.deepEqual(same.values, table.values);
    assert.throws(() => addCachedFlows(table, cache(), 2), /expected 232x2/);
  });
});

describe('UDP direction', () => {
  test('a port the kernel chose is a client\'s; a port the process bound a server\'s, unless an ephemeral one calling a lower port', () => {
    const cases: [boolean, number, number, 'outbound' | 'inbound'][] = [
      [false, 45000, 8125, 'outbound'],
      [false, 40000, 45000, 'outbound'], // both in the ephemeral range: no port guess
      [false, 5000, 0, 'outbound'], // a receiver that did not ask who sent
      [true, 8125, 45000, 'inbound'],
      [true, 33000, 32800, 'inbound'], // a server on a high port, its client's port lower
      [true, 123, 123, 'inbound'],
      [true, 5000, 0, 'inbound'],
      [true, 40123, 53, 'outbound'], // a resolver that bound a random source port
    ];
    for (const [bound, lport, rport, want] of cases) assert.equal(udpDirection(bound, lport, rport), want, `${bound} ${lport} ${rport}`);
    const dump = { count: 2, keys: Buffer.concat([key(33000, 32800, 1, true), key(32800, 33000, 2)]), values: Buffer.concat([value({}), value({})]) };
    assert.deepEqual(decodeUdpFlows(dump, 0, 1000).map((r) => [r.local.pid, r.direction]), [[1, 'inbound'], [2, 'outbound']]);
  });
});
