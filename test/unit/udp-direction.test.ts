import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { UdpDirections, directionByPorts } from '../../src/events/udp-direction.js';
import { decodeUdpFlows } from '../../src/events/udp-flow.js';
import { key, value, type Counts } from '../helpers/udp-flow-buffers.js';
import type { MapDump } from '../../src/bpf/native.js';

/** One drained interval of [key, counts] entries. */
const drain = (...entries: [Buffer, Counts][]): MapDump => ({
  count: entries.length,
  keys: Buffer.concat(entries.map((e) => e[0])),
  values: Buffer.concat(entries.map((e) => value(e[1]))),
});

const decide = (d: UdpDirections, dump: MapDump): string[] =>
  decodeUdpFlows(dump, 0, 1000, d).map((r) => `${r.local.pid} ${r.direction} by ${r.directionFrom}`);

describe('UDP direction', () => {
  test('the end that sent the first datagram is the client, whatever the ports', () => {
    const d = new UdpDirections(16);
    assert.deepEqual(
      decide(d, drain(
        [key(11056, 53, 1, true), { packetsSent: 1, packetsReceived: 1, firstSentNs: 100, firstReceivedNs: 200, seenFromStart: true }],
        [key(53, 11056, 2, true), { packetsSent: 1, packetsReceived: 1, firstSentNs: 190, firstReceivedNs: 150, seenFromStart: true }],
        [key(45000, 47000, 3, true), { packetsReceived: 4, firstReceivedNs: 10, seenFromStart: true }],
      )),
      ['1 outbound by first-datagram', '2 inbound by first-datagram', '3 inbound by first-datagram'],
    );
  });

  test('remembered across intervals: a later interval that begins with a reply keeps the flow\'s direction', () => {
    const d = new UdpDirections(16);
    decide(d, drain([key(40000, 41000, 1, true), { packetsSent: 1, firstSentNs: 100, seenFromStart: true }]));
    assert.deepEqual(
      decide(d, drain([key(40000, 41000, 1, true), { packetsSent: 1, packetsReceived: 1, firstSentNs: 900, firstReceivedNs: 800, seenFromStart: true }])),
      ['1 outbound by first-datagram'],
    );
    assert.equal(d.size, 1);
  });

  test('one flow read and sent by two processes: the earliest datagram of either decides, for both', () => {
    const d = new UdpDirections(16);
    assert.deepEqual(
      decide(d, drain(
        [key(5353, 6000, 1, true), { packetsSent: 1, firstSentNs: 500, seenFromStart: true }],
        [key(5353, 6000, 2, true), { packetsReceived: 1, firstReceivedNs: 400, seenFromStart: true }],
      )),
      ['1 inbound by first-datagram', '2 inbound by first-datagram'],
    );
  });

  test('a socket older than the agent: the ports decide, and are not remembered', () => {
    const d = new UdpDirections(16);
    assert.deepEqual(
      decide(d, drain(
        [key(20000, 123, 1, true), { packetsReceived: 1, firstReceivedNs: 10 }],
        [key(123, 20000, 2, true), { packetsSent: 1, firstSentNs: 10 }],
      )),
      ['1 outbound by ports', '2 inbound by ports'],
    );
    assert.equal(d.size, 0);
  });

  test('bounded: the flow unseen longest is forgotten first, counted, and decided afresh when it comes back', () => {
    const d = new UdpDirections(2);
    const sent = { packetsSent: 1, firstSentNs: 1, seenFromStart: true };
    decide(d, drain([key(30001, 9, 1, true), sent], [key(30002, 9, 1, true), sent]));
    decide(d, drain([key(30001, 9, 1, true), { packetsReceived: 1, firstReceivedNs: 5, seenFromStart: true }])); // seen again: kept
    decide(d, drain([key(30003, 9, 1, true), sent])); // 30002 goes
    assert.deepEqual([d.size, d.forgotten], [2, 1]);
    assert.deepEqual(decide(d, drain([key(30002, 9, 1, true), { packetsReceived: 1, firstReceivedNs: 9, seenFromStart: true }])), ['1 inbound by first-datagram']);
    assert.equal(d.forgotten, 2);
    // more new flows in one interval than it holds: each still decided by its own first datagram
    const wide = new UdpDirections(1);
    assert.deepEqual(decide(wide, drain([key(1, 2, 1, true), sent], [key(3, 4, 1, true), { packetsReceived: 1, firstReceivedNs: 1, seenFromStart: true }])),
      ['1 outbound by first-datagram', '1 inbound by first-datagram']);
  });

  test('the ports rule, for flows whose first datagram was not seen', () => {
    const cases: [boolean, number, number, 'outbound' | 'inbound'][] = [
      [false, 45000, 8125, 'outbound'], // a port the kernel chose
      [false, 40000, 45000, 'outbound'],
      [false, 5000, 0, 'outbound'], // a receiver that did not ask who sent
      [true, 8125, 45000, 'inbound'], // a port the process bound: a server's
      [true, 33000, 32800, 'inbound'],
      [true, 123, 123, 'inbound'],
      [true, 5000, 0, 'inbound'],
      [true, 11056, 53, 'outbound'], // a bound port calling a well-known one
      [true, 53, 11056, 'inbound'],
      [true, 40123, 8125, 'outbound'], // an ephemeral-range port calling a lower one
    ];
    for (const [bound, lport, rport, want] of cases) assert.equal(directionByPorts(bound, lport, rport), want, `${bound} ${lport} ${rport}`);
  });
});
