import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { addCachedFlows, decodeUdpFlows } from '../../src/events/udp-flow.js';
import { UdpDirections } from '../../src/events/udp-direction.js';
import { UDP_FLOW_VALUE } from '../../src/events/layout.js';
import { cache, key, value } from '../helpers/udp-flow-buffers.js';

const V = UDP_FLOW_VALUE.fields;

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
    const records = decodeUdpFlows(merged, Date.UTC(2026, 0, 1), 1000, new UdpDirections(16));
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
    assert.throws(() => addCachedFlows(table, cache(), 2), /expected 280x2/);
  });

  test('merged parts keep the earliest first-datagram times of each kind', () => {
    const k = key(5000, 53, 42);
    const table = { count: 1, keys: k, values: value({ packetsReceived: 1, firstReceivedNs: 900, firstSentNs: 0, seenFromStart: true }) };
    const cpus = [cache([k, { packetsSent: 1, firstSentNs: 700 }]), cache([k, { packetsSent: 1, firstSentNs: 650 }], [k, { packetsReceived: 1, firstReceivedNs: 990 }])];
    const merged = addCachedFlows(table, Buffer.concat(cpus), 2);
    assert.equal(merged.count, 1);
    assert.deepEqual(
      [merged.values.readBigUInt64LE(V.first_sent_ns.offset), merged.values.readBigUInt64LE(V.first_received_ns.offset), merged.values[V.seen_from_start.offset]],
      [650n, 900n, 1],
    );
  });
});
