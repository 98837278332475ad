/**
 * Property-based tests of the DNS path with random, truncated, mutated and
 * hostile input: nothing throws, nothing hangs, every bad packet is counted.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import { parseDnsMessage } from '../../src/enrich/dns-message.js';
import { DnsTracker } from '../../src/enrich/dns-tracker.js';
import { DnsNameCache } from '../../src/enrich/dns-cache.js';
import { decodeBatch, type DecodeStats } from '../../src/events/batch.js';
import { DNS_EVENT, EVENT_KIND } from '../../src/events/layout.js';
import type { DnsPacket } from '../../src/events/dns-event.js';
import type { DnsRecord } from '../../src/events/records.js';
import { MonotonicClock } from '../../src/util/clock.js';

const RUNS = 2000;

const nameArb = fc
  .array(fc.stringMatching(/^[a-z0-9-]{1,20}$/), { minLength: 1, maxLength: 5 })
  .map((labels) => labels.join('.'));

const ipv4Arb = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((t) => t.join('.'));

/** A well-formed response with A and CNAME answers. */
const responseArb = fc.record({ id: fc.nat(65535), name: nameArb, addrs: fc.array(ipv4Arb, { maxLength: 6 }), cname: fc.option(nameArb) }).map((r) =>
  dnsPacket.encode({
    type: 'response',
    id: r.id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'A', name: r.name }],
    answers: [
      ...(r.cname ? [{ type: 'CNAME' as const, name: r.name, ttl: 30, data: r.cname }] : []),
      ...r.addrs.map((a) => ({ type: 'A' as const, name: r.cname ?? r.name, ttl: 60, data: a })),
    ],
  }),
);

function packet(payload: Buffer, direction: 'egress' | 'ingress', transport: 'udp' | 'tcp' = 'udp'): DnsPacket {
  return {
    ts: 1000,
    family: 4,
    transport,
    direction,
    local: { addr: '10.0.0.1', port: 40000, pid: 1, comm: 'x', cgroupId: 1, netns: 1 },
    remote: { addr: '10.0.0.2', port: 53 },
    payload,
    truncated: false,
  };
}

function isWellFormedResult(r: ReturnType<typeof parseDnsMessage>): boolean {
  if ('error' in r) return typeof r.error === 'string' && r.error.length > 0;
  const m = r.message;
  return typeof m.id === 'number' && typeof m.rcode === 'string' && Array.isArray(m.answers) &&
    m.answers.every((a) => typeof a.name === 'string' && typeof a.type === 'string' && typeof a.data === 'string');
}

describe('DNS parsing never throws', () => {
  test('random bytes, over UDP and TCP framing', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (bytes, tcp) => {
        const r = parseDnsMessage(Buffer.from(bytes), tcp ? 'tcp' : 'udp');
        assert.ok(isWellFormedResult(r));
      }),
      { numRuns: RUNS },
    );
  });

  test('every truncation of a valid response', () => {
    fc.assert(
      fc.property(responseArb, (full) => {
        for (let len = 0; len < full.length; len++) assert.ok(isWellFormedResult(parseDnsMessage(full.subarray(0, len), 'udp')));
        const whole = parseDnsMessage(full, 'udp');
        assert.ok('message' in whole, 'the untruncated response parses');
      }),
      { numRuns: 300 },
    );
  });

  test('random byte mutations of a valid response', () => {
    fc.assert(
      fc.property(responseArb, fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 8 }), (full, flips) => {
        const b = Buffer.from(full);
        for (const [at, v] of flips) b[at % b.length] = v;
        assert.ok(isWellFormedResult(parseDnsMessage(b, 'udp')));
      }),
      { numRuns: RUNS },
    );
  });

  test('a name compression pointer to itself is an error, not a hang', () => {
    const header = Buffer.from([0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0]);
    const loop = Buffer.from([0xc0, 12, 0, 1, 0, 1]); // name at offset 12 points to offset 12
    const r = parseDnsMessage(Buffer.concat([header, loop]), 'udp');
    assert.ok('error' in r, JSON.stringify(r));
  });

  test('a TCP message split across segments is reported as such', () => {
    const r = parseDnsMessage(Buffer.from([0x01, 0x00, 0x12, 0x34]), 'tcp');
    assert.deepEqual(r, { error: 'tcp: message of 256 bytes split across segments' });
  });
});

/** The query a response answers: the same message with the QR bit clear. */
function queryOf(response: Buffer): Buffer {
  const q = Buffer.from(response);
  q[2] = q[2]! & 0x7f;
  return q;
}

describe('DnsTracker counts what it skips', () => {
  test('malformed packets and answers nobody asked for are counted one for one; answered queries are lookups', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.uint8Array({ maxLength: 100 }).map((b) => ({ junk: Buffer.from(b) })), responseArb.map((ok) => ({ ok }))), { maxLength: 30 }), (items) => {
        const cache = new DnsNameCache();
        const out: DnsRecord[] = [];
        const tracker = new DnsTracker(cache, (r) => out.push(r));
        let expectedMalformed = 0;
        let expectedUnmatched = 0;
        let expectedLookups = 0;
        for (const it of items) {
          if ('junk' in it) {
            if ('error' in parseDnsMessage(it.junk, 'udp')) expectedMalformed++;
            else if (dnsPacket.decode(it.junk).type === 'response') expectedUnmatched++;
            tracker.handle(packet(it.junk, 'ingress'));
          } else {
            expectedLookups++;
            tracker.handle(packet(queryOf(it.ok), 'egress'));
            tracker.handle(packet(it.ok, 'ingress'));
          }
        }
        assert.equal(tracker.stats.malformed, expectedMalformed);
        assert.equal(tracker.stats.unmatchedAnswers, expectedUnmatched);
        assert.equal(tracker.stats.lookups, expectedLookups);
        assert.equal(out.length, expectedLookups);
      }),
      { numRuns: 500 },
    );
  });

  test('an answer is the lookup of the namespace that asked: copies on other hops name nothing', () => {
    const cache = new DnsNameCache();
    const out: DnsRecord[] = [];
    const tracker = new DnsTracker(cache, (r) => out.push(r));
    const answer = dnsPacket.encode({
      type: 'response',
      id: 7,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type: 'A', name: 'asked.test' }],
      answers: [{ type: 'A', name: 'asked.test', ttl: 60, data: '192.0.2.9' }],
    });
    const inNetns = (p: DnsPacket, netns: number): DnsPacket => ({ ...p, local: { ...p.local, netns } });
    tracker.handle(inNetns(packet(queryOf(answer), 'egress'), 5));
    tracker.handle(inNetns(packet(answer, 'ingress'), 1)); // the node's copy, on its way to namespace 5
    assert.deepEqual([out.length, tracker.stats.unmatchedAnswers, cache.lookup(1, '192.0.2.9', 1000)], [0, 1, undefined]);
    tracker.handle(inNetns(packet(answer, 'ingress'), 5));
    assert.deepEqual([out.length, out[0]?.query, out[0]?.latencyMs, cache.lookup(5, '192.0.2.9', 1000)], [1, 'asked.test', 0, 'asked.test']);
  });
});

describe('decodeBatch with hostile DNS frames', () => {
  test('random dns_event frames: each is decoded or counted, never thrown', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 0, maxLength: DNS_EVENT.size + 8 }), { maxLength: 10 }), (frames) => {
        const parts: Buffer[] = [];
        for (const f of frames) {
          const body = Buffer.from(f);
          if (body.length) body[0] = EVENT_KIND.DNS;
          const h = Buffer.alloc(4);
          h.writeUInt32LE(body.length);
          parts.push(h, body);
        }
        const stats: DecodeStats = { records: 0, dnsPackets: 0, decodeErrors: 0 };
        let handled = 0;
        decodeBatch(Buffer.concat(parts), new MonotonicClock(0, 0n), stats, {
          tcp: () => assert.fail('no TCP records here'),
          dns: (p) => {
            handled++;
            assert.ok(p.payload.length <= DNS_EVENT.fields.data.size);
          },
        });
        assert.equal(stats.dnsPackets, handled);
        assert.equal(stats.dnsPackets + stats.decodeErrors, frames.length);
      }),
      { numRuns: RUNS },
    );
  });
});
