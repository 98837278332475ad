/**
 * Property-based tests of the event decoder (fast-check), the path every
 * kernel record takes: struct tcp_close_event encoded here from random field
 * values by the layout (the one checked against the objects' BTF) decodes to
 * exactly those values; random, truncated and mis-framed batches never throw,
 * and every frame is a record, a DNS packet or a counted decode error.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeBatch, type DecodeStats } from '../../src/events/batch.js';
import { decodeOpenRecords } from '../../src/events/tcp-record.js';
import { DIRECTION, DNS_EVENT, EVENT_KIND, OUTCOME, TCP_CLOSE_EVENT, TCP_FLAGS } from '../../src/events/layout.js';
import type { TcpRecord } from '../../src/events/records.js';
import { MonotonicClock } from '../../src/util/clock.js';

const RUNS = 500;
const F = TCP_CLOSE_EVENT.fields;
/** the clock's offset is fixed, so times are exact: kernel ns 0 is epoch ms 1_700_000_000_000 */
const clock = new MonotonicClock(1_700_000_000_000, 0n);

const v4Bytes = (a: string): number[] => a.split('.').map(Number);
/** RFC 5952 text (the URL parser's serialisation: lower case, the first longest run of zero groups compressed) */
const canonicalV6 = (a: string): string => new URL(`http://[${a}]/`).hostname.slice(1, -1);
function v6Bytes(a: string): number[] {
  const c = canonicalV6(a);
  const [head, tail] = c.includes('::') ? c.split('::') : [c, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]);
}

interface Fields {
  kind: 1 | 3;
  v6: boolean;
  laddr: string;
  raddr: string;
  lport: number;
  rport: number;
  direction: 1 | 2;
  outcome: 1 | 2 | 3 | 4;
  pid: number;
  comm: string;
  cgroupId: number;
  netns: number;
  startNs: bigint;
  durNs: bigint;
  bytesSent: number;
  bytesReceived: number;
  retransmits: number;
  srttUs: number;
  seeded: boolean;
  dnat: { addr: string; port: number } | null;
}

const v6Arb = fc.ipV6().filter((a) => !/^::ffff:/i.test(canonicalV6(a)) && !/^::$/.test(canonicalV6(a)));
const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const safe = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const fieldsArb: fc.Arbitrary<Fields> = fc.boolean().chain((v6) => {
  const addr = v6 ? v6Arb : fc.ipV4();
  return fc.record({
    kind: fc.constantFrom(1 as const, 3 as const),
    v6: fc.constant(v6),
    laddr: addr,
    raddr: addr,
    lport: fc.integer({ min: 0, max: 65535 }),
    rport: fc.integer({ min: 0, max: 65535 }),
    direction: fc.constantFrom(1 as const, 2 as const),
    outcome: fc.constantFrom(1 as const, 2 as const, 3 as const, 4 as const),
    pid: u32,
    // by character, not stringMatching, which generates and filters: 50 times slower here
    comm: fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 15 }),
    cgroupId: safe,
    netns: u32,
    startNs: fc.bigInt({ min: 0n, max: 2n ** 62n }),
    durNs: fc.bigInt({ min: 0n, max: 10n ** 15n }),
    bytesSent: safe,
    bytesReceived: safe,
    retransmits: u32,
    srttUs: u32,
    seeded: fc.boolean(),
    dnat: fc.option(fc.record({ addr, port: fc.integer({ min: 0, max: 65535 }) }), { nil: null }),
  });
});

function encode(f: Fields): Buffer {
  const b = Buffer.alloc(TCP_CLOSE_EVENT.size);
  const put = (off: number, bytes: number[]) => bytes.forEach((x, i) => (b[off + i] = x));
  const addr = (a: string) => (f.v6 ? v6Bytes(a) : v4Bytes(a));
  b[F.kind.offset] = f.kind;
  b[F.family.offset] = f.v6 ? 10 : 2;
  b[F.direction.offset] = f.direction;
  b[F.outcome.offset] = f.kind === EVENT_KIND.TCP_CLOSE ? f.outcome : 0;
  b.writeUInt32LE(f.pid, F.pid.offset);
  b.writeBigUInt64LE(f.startNs, F.start_ns.offset);
  b.writeBigUInt64LE(f.startNs + f.durNs, F.end_ns.offset);
  b.writeBigUInt64LE(BigInt(f.cgroupId), F.cgroup_id.offset);
  b.writeBigUInt64LE(BigInt(f.bytesSent), F.bytes_sent.offset);
  b.writeBigUInt64LE(BigInt(f.bytesReceived), F.bytes_received.offset);
  b.writeUInt32LE(f.retransmits, F.retransmits.offset);
  b.writeUInt32LE(f.srttUs, F.srtt_us.offset);
  b.writeUInt32LE(f.netns, F.netns.offset);
  b.writeUInt16LE(f.lport, F.lport.offset);
  b.writeUInt16LE(f.rport, F.rport.offset);
  put(F.laddr.offset, addr(f.laddr));
  put(F.raddr.offset, addr(f.raddr));
  b[F.flags.offset] = f.seeded ? TCP_FLAGS.SEEDED : 0;
  b.write(f.comm, F.comm.offset, 'latin1');
  if (f.dnat) {
    put(F.dnat_addr.offset, addr(f.dnat.addr));
    b.writeUInt16LE(f.dnat.port, F.dnat_port.offset);
    b[F.dnat.offset] = 1;
  }
  return b;
}

function expected(f: Fields): TcpRecord {
  const text = (a: string) => (f.v6 ? canonicalV6(a) : a);
  const endNs = f.startNs + f.durNs;
  return {
    ts: new Date(Math.floor(Number(endNs) / 1e6 + 1_700_000_000_000)).toISOString(),
    proto: 'tcp',
    family: f.v6 ? 6 : 4,
    direction: DIRECTION[f.direction],
    ...(f.kind === EVENT_KIND.TCP_OPEN ? { state: 'open' as const } : { outcome: OUTCOME[f.outcome] }),
    local: { addr: text(f.laddr), port: f.lport, pid: f.pid, comm: f.comm, cgroupId: f.cgroupId, netns: f.netns },
    remote: f.dnat ? { addr: text(f.raddr), port: f.rport, reached: { addr: text(f.dnat.addr), port: f.dnat.port } } : { addr: text(f.raddr), port: f.rport },
    bytesSent: f.bytesSent,
    bytesReceived: f.bytesReceived,
    retransmits: f.retransmits,
    srttUs: f.srttUs,
    durationMs: endNs > f.startNs ? Math.round(Number(f.durNs) / 1e3) / 1e3 : 0,
    ...(f.seeded ? { openedBeforeStart: true } : {}),
  } as TcpRecord;
}

/** `[u32 length][frame]` each, as the native reader hands them over. */
function frame(...frames: Buffer[]): Buffer {
  return Buffer.concat(frames.flatMap((f) => [Buffer.from(Uint32Array.of(f.length).buffer), f]));
}

const newStats = (): DecodeStats => ({ records: 0, dnsPackets: 0, decodeErrors: 0 });

describe('tcp_close_event: what the kernel wrote is what the record says', () => {
  test('closed connections from the ring buffer, field by field (v4 and v6, DNAT, seeded, u64 counters)', () => {
    fc.assert(
      fc.property(fc.array(fieldsArb.map((f) => ({ ...f, kind: 1 as const })), { minLength: 1, maxLength: 20 }), (all) => {
        const got: TcpRecord[] = [];
        const stats = newStats();
        decodeBatch(frame(...all.map(encode)), clock, stats, { tcp: (r) => got.push(r) });
        assert.deepEqual(stats, { records: all.length, dnsPackets: 0, decodeErrors: 0 });
        assert.deepEqual(got, all.map(expected));
      }),
      { numRuns: RUNS },
    );
  });

  test('open connections from the iterator (back to back, no framing), field by field', () => {
    fc.assert(
      fc.property(fc.array(fieldsArb.map((f) => ({ ...f, kind: 3 as const })), { maxLength: 20 }), (all) => {
        const got: TcpRecord[] = [];
        const bad = decodeOpenRecords(Buffer.concat(all.map(encode)), clock, (r) => got.push(r));
        assert.equal(bad, 0);
        assert.deepEqual(got, all.map(expected));
      }),
      { numRuns: RUNS },
    );
  });
});

describe('hostile batches', () => {
  /** A frame: a valid TCP record, one with a byte changed, a DNS-sized frame of random bytes, random bytes of any kind and length. */
  const frameArb = fc.oneof(
    fieldsArb.map((f) => ({ buf: encode({ ...f, kind: 1 }), valid: true })),
    fc.tuple(fieldsArb, fc.nat(TCP_CLOSE_EVENT.size - 1), fc.nat(255)).map(([f, at, v]) => {
      const buf = encode({ ...f, kind: 1 });
      buf[at] = v;
      return { buf, valid: undefined };
    }),
    fc.uint8Array({ minLength: DNS_EVENT.size, maxLength: DNS_EVENT.size }).map((a) => ({ buf: Buffer.from([EVENT_KIND.DNS, ...a.subarray(1)]), valid: undefined })),
    fc.tuple(fc.nat(255), fc.uint8Array({ maxLength: 300 })).map(([kind, a]) => ({ buf: Buffer.from([kind, ...a]), valid: undefined })),
    fc.constant({ buf: Buffer.alloc(0), valid: false }),
  );

  test('every frame is a record, a DNS packet, a cgroup made or a counted decode error; nothing throws', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 12 }), (frames) => {
        const stats = newStats();
        let tcp = 0;
        let dns = 0;
        decodeBatch(frame(...frames.map((f) => f.buf)), clock, stats, { tcp: () => tcp++, dns: () => dns++ });
        assert.equal(stats.records + stats.dnsPackets + (stats.cgroups ?? 0) + stats.decodeErrors, frames.length);
        assert.deepEqual([stats.records, stats.dnsPackets], [tcp, dns]);
        assert.ok(stats.records >= frames.filter((f) => f.valid === true).length);
        assert.ok(stats.decodeErrors >= frames.filter((f) => f.valid === false).length);
      }),
      { numRuns: RUNS },
    );
  });

  test('a batch cut anywhere: the whole frames before the cut are decoded, the cut is one error', () => {
    fc.assert(
      fc.property(fc.array(fieldsArb.map((f) => encode({ ...f, kind: 1 })), { minLength: 1, maxLength: 6 }), fc.double({ min: 0, max: 1, noNaN: true }), (frames, at) => {
        const whole = frame(...frames);
        const cut = Math.floor(at * whole.length);
        const stats = newStats();
        decodeBatch(whole.subarray(0, cut), clock, stats, { tcp: () => undefined });
        const framed = Math.floor(cut / (4 + TCP_CLOSE_EVENT.size));
        assert.equal(stats.records, framed);
        assert.equal(stats.decodeErrors, cut % (4 + TCP_CLOSE_EVENT.size) ? 1 : 0);
      }),
      { numRuns: RUNS },
    );
  });

  test('random bytes as a batch: never throws, never more records than frames could hold', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (a) => {
        const stats = newStats();
        decodeBatch(Buffer.from(a), clock, stats, { tcp: () => undefined, dns: () => undefined });
        assert.ok(stats.records * (4 + TCP_CLOSE_EVENT.size) <= a.length);
      }),
      { numRuns: RUNS },
    );
  });

  test('the iterator output with a short tail or bad values: counted, the rest decoded', () => {
    fc.assert(
      fc.property(fc.array(fieldsArb.map((f) => ({ ...f, kind: 3 as const })), { maxLength: 8 }), fc.nat(TCP_CLOSE_EVENT.size - 1), fc.nat(255), (all, tail, badDirection) => {
        fc.pre(badDirection !== 1 && badDirection !== 2);
        const bufs = all.map(encode);
        if (bufs.length) bufs[0]![F.direction.offset] = badDirection;
        const got: TcpRecord[] = [];
        const bad = decodeOpenRecords(Buffer.concat([...bufs, Buffer.alloc(tail)]), clock, (r) => got.push(r));
        assert.equal(bad, (bufs.length ? 1 : 0) + (tail ? 1 : 0));
        assert.deepEqual(got, all.slice(1).map(expected));
      }),
      { numRuns: RUNS },
    );
  });
});
