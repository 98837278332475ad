import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeOpenRecords, decodeTcpClose, type TcpRecord } from '../../src/events/tcp-record.js';
import { decodeBatch, type DecodeStats } from '../../src/events/batch.js';
import { TCP_CLOSE_EVENT } from '../../src/events/layout.js';
import { MonotonicClock } from '../../src/util/clock.js';

const F = TCP_CLOSE_EVENT.fields;

/** Wall clock 2024-05-06T07:08:09.000Z when CLOCK_MONOTONIC read 5 days. */
const NOW_MS = Date.UTC(2024, 4, 6, 7, 8, 9, 0);
const MONO_NS = 432_000_000_000_000n;
const clock = () => new MonotonicClock(NOW_MS, MONO_NS);

interface EventFields {
  kind: number;
  family: number;
  direction: number;
  outcome: number;
  pid: number;
  startNs: bigint;
  endNs: bigint;
  cgroupId: bigint;
  bytesSent: bigint;
  bytesReceived: bigint;
  retransmits: number;
  srttUs: number;
  netns: number;
  lport: number;
  rport: number;
  laddr: number[];
  raddr: number[];
  ownerSource: number;
  skErr: number;
  /** enum bpfagent_tcp_flags */
  flags?: number;
  comm: Buffer;
  /** where a DNAT sent the connection, if one did */
  dnat?: { addr: number[]; port: number };
}

const END_NS = MONO_NS + 1_500_250_000n; // 1.50025 s after the clock was taken

const BASE: EventFields = {
  kind: 1,
  family: 2,
  direction: 1,
  outcome: 2,
  pid: 4_000_123,
  startNs: END_NS - 2_345_678_912n, // 2345.678912 ms
  endNs: END_NS,
  cgroupId: 0x1_2345_6789n, // > 2^32
  bytesSent: 5_000_000_123n,
  bytesReceived: 4_294_967_296n + 17n,
  retransmits: 3_000_000_000, // > 2^31: must stay unsigned
  srttUs: 1234,
  netns: 4_026_531_840,
  lport: 54_321, // > 2^15: must stay unsigned
  rport: 443,
  laddr: [10, 0, 0, 7],
  raddr: [93, 184, 216, 34],
  ownerSource: 1,
  skErr: 104,
  comm: Buffer.from('curl\0xxxxxxxxxx\0', 'latin1'),
};

/** A tcp_close_event written field by field from the layout offsets; `extra` trailing bytes. */
function event(over: Partial<EventFields> = {}, extra = 0): Buffer {
  const e = { ...BASE, ...over };
  const b = Buffer.alloc(TCP_CLOSE_EVENT.size + extra, 0xa5);
  b.writeUInt8(e.kind, F.kind.offset);
  b.writeUInt8(e.family, F.family.offset);
  b.writeUInt8(e.direction, F.direction.offset);
  b.writeUInt8(e.outcome, F.outcome.offset);
  b.writeUInt32LE(e.pid, F.pid.offset);
  b.writeBigUInt64LE(e.startNs, F.start_ns.offset);
  b.writeBigUInt64LE(e.endNs, F.end_ns.offset);
  b.writeBigUInt64LE(e.cgroupId, F.cgroup_id.offset);
  b.writeBigUInt64LE(e.bytesSent, F.bytes_sent.offset);
  b.writeBigUInt64LE(e.bytesReceived, F.bytes_received.offset);
  b.writeUInt32LE(e.retransmits, F.retransmits.offset);
  b.writeUInt32LE(e.srttUs, F.srtt_us.offset);
  b.writeUInt32LE(e.netns, F.netns.offset);
  b.writeUInt16LE(e.lport, F.lport.offset);
  b.writeUInt16LE(e.rport, F.rport.offset);
  b.fill(0, F.laddr.offset, F.laddr.offset + F.laddr.size);
  Buffer.from(e.laddr).copy(b, F.laddr.offset);
  b.fill(0, F.raddr.offset, F.raddr.offset + F.raddr.size);
  Buffer.from(e.raddr).copy(b, F.raddr.offset);
  b.writeUInt8(e.ownerSource, F.owner_source.offset);
  b.writeUInt8(e.skErr, F.sk_err.offset);
  b.writeUInt8(e.flags ?? 0, F.flags.offset);
  b.fill(0, F.pad.offset, F.pad.offset + F.pad.size);
  assert.equal(e.comm.length, F.comm.size);
  e.comm.copy(b, F.comm.offset);
  b.fill(0, F.dnat_addr.offset, F.pad2.offset + F.pad2.size);
  if (e.dnat) {
    Buffer.from(e.dnat.addr).copy(b, F.dnat_addr.offset);
    b.writeUInt16LE(e.dnat.port, F.dnat_port.offset);
    b.writeUInt8(1, F.dnat.offset);
  }
  return b;
}

/** [u32 LE length][bytes] per record; `length` overrides the written length. */
function frame(record: Buffer, length = record.length): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32LE(length);
  return Buffer.concat([h, record]);
}

function decodeAll(batch: Buffer): { records: TcpRecord[]; stats: DecodeStats } {
  const stats: DecodeStats = { records: 0, dnsPackets: 0, decodeErrors: 0 };
  const records: TcpRecord[] = [];
  decodeBatch(batch, clock(), stats, { tcp: (r) => records.push(r) });
  return { records, stats };
}

function v6(groups: number[]): number[] {
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(g, i * 2));
  return [...b];
}

const EXPECTED_V4: TcpRecord = {
  ts: '2024-05-06T07:08:10.500Z',
  proto: 'tcp',
  family: 4,
  direction: 'outbound',
  outcome: 'reset',
  local: { addr: '10.0.0.7', port: 54_321, pid: 4_000_123, comm: 'curl', cgroupId: 4_886_718_345, netns: 4_026_531_840 },
  remote: { addr: '93.184.216.34', port: 443 },
  bytesSent: 5_000_000_123,
  bytesReceived: 4_294_967_313,
  retransmits: 3_000_000_000,
  srttUs: 1234,
  durationMs: 2345.679,
};

describe('decodeOpenRecords: what the tcp_conns iterator wrote', () => {
  const open = (over: Partial<EventFields> = {}) => event({ kind: 3, outcome: 0, ...over });
  const { outcome: _closed, ...expectedOpen } = EXPECTED_V4;

  test('back to back, no framing: each an open record, state "open" and no outcome', () => {
    const got: Array<[TcpRecord, number]> = [];
    const bad = decodeOpenRecords(Buffer.concat([open(), open({ bytesSent: 7n, flags: 1 })]), clock(), (r, endMs) => got.push([r, endMs]));
    assert.equal(bad, 0);
    assert.deepEqual(got.map(([r]) => r), [
      { ...expectedOpen, state: 'open' },
      { ...expectedOpen, state: 'open', bytesSent: 7, openedBeforeStart: true },
    ]);
    assert.equal(got[0]![1], NOW_MS + 1500.25); // its end time, for naming the remote end
  });

  test('a close record, a bad direction or a short tail are counted, not decoded', () => {
    const got: TcpRecord[] = [];
    const bad = decodeOpenRecords(Buffer.concat([event(), open({ direction: 9 }), open(), Buffer.alloc(10)]), clock(), (r) => got.push(r));
    assert.equal(bad, 3);
    assert.equal(got.length, 1);
  });
});

describe('decodeBatch: a valid record', () => {
  test('AF_INET: every field', () => {
    const { records, stats } = decodeAll(frame(event()));
    assert.deepEqual(stats, { records: 1, dnsPackets: 0, decodeErrors: 0 });
    assert.equal(records.length, 1);
    const r = records[0]!;
    assert.equal(r.ts, '2024-05-06T07:08:10.500Z');
    assert.equal(r.proto, 'tcp');
    assert.equal(r.family, 4);
    assert.equal(r.direction, 'outbound');
    assert.equal(r.outcome, 'reset');
    assert.equal(r.local.addr, '10.0.0.7');
    assert.equal(r.local.port, 54_321);
    assert.equal(r.local.pid, 4_000_123);
    assert.equal(r.local.comm, 'curl');
    assert.equal(r.local.cgroupId, 0x1_2345_6789);
    assert.equal(r.local.netns, 4_026_531_840);
    assert.equal(r.remote.addr, '93.184.216.34');
    assert.equal(r.remote.port, 443);
    assert.equal(r.bytesSent, 5_000_000_123);
    assert.equal(r.bytesReceived, 2 ** 32 + 17);
    assert.equal(r.retransmits, 3_000_000_000);
    assert.equal(r.srttUs, 1234);
    assert.equal(r.durationMs, 2345.679);
    // and nothing else
    assert.deepEqual(r, EXPECTED_V4);
  });

  test('AF_INET6 with v4-mapped addresses is family 4 with IPv4 text', () => {
    const { records } = decodeAll(
      frame(
        event({
          family: 10,
          laddr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 7],
          raddr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3],
        }),
      ),
    );
    assert.equal(records.length, 1);
    assert.equal(records[0]!.family, 4);
    assert.equal(records[0]!.local.addr, '10.0.0.7');
    assert.equal(records[0]!.remote.addr, '10.1.2.3');
  });

  test('AF_INET6: family 6, inbound, each outcome', () => {
    const outcomes = { 1: 'closed', 2: 'reset', 3: 'refused', 4: 'timeout' } as const;
    for (const [value, name] of Object.entries(outcomes)) {
      const { records, stats } = decodeAll(
        frame(
          event({
            family: 10,
            direction: 2,
            outcome: Number(value),
            laddr: v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]),
            raddr: v6([0xfe80, 0, 0, 0, 0, 0, 0, 0x42]),
          }),
        ),
      );
      assert.deepEqual(stats, { records: 1, dnsPackets: 0, decodeErrors: 0 });
      const r = records[0]!;
      assert.equal(r.family, 6);
      assert.equal(r.direction, 'inbound');
      assert.equal(r.outcome, name);
      assert.equal(r.local.addr, '2001:db8::1');
      assert.equal(r.remote.addr, 'fe80::42');
    }
  });

  test('comm: trimmed at the first NUL; all 16 bytes when there is none', () => {
    const cases: [Buffer, string][] = [
      [Buffer.from('nginx: worker\0\0\0', 'latin1'), 'nginx: worker'],
      [Buffer.from('0123456789abcdef', 'latin1'), '0123456789abcdef'],
      [Buffer.alloc(16), ''],
    ];
    for (const [comm, text] of cases) assert.equal(decodeAll(frame(event({ comm }))).records[0]!.local.comm, text);
  });

  test('durationMs is 0 when end is not after start; microsecond rounding', () => {
    assert.equal(decodeAll(frame(event({ startNs: END_NS + 5n }))).records[0]!.durationMs, 0);
    assert.equal(decodeAll(frame(event({ startNs: END_NS }))).records[0]!.durationMs, 0);
    assert.equal(decodeAll(frame(event({ startNs: END_NS - 499n }))).records[0]!.durationMs, 0);
    assert.equal(decodeAll(frame(event({ startNs: END_NS - 1_500n }))).records[0]!.durationMs, 0.002);
  });

  test('ts follows end_ns through the clock offset', () => {
    const r = decodeAll(frame(event({ endNs: MONO_NS - 60_000_000_000n, startNs: MONO_NS - 61_000_000_000n }))).records[0]!;
    assert.equal(r.ts, '2024-05-06T07:07:09.000Z');
    assert.equal(r.durationMs, 1000);
  });

  test('several records in one batch, in order', () => {
    const { records, stats } = decodeAll(
      Buffer.concat([frame(event({ pid: 1 })), frame(event({ pid: 2 })), frame(event({ pid: 3 }))]),
    );
    assert.deepEqual(stats, { records: 3, dnsPackets: 0, decodeErrors: 0 });
    assert.deepEqual(
      records.map((r) => r.local.pid),
      [1, 2, 3],
    );
  });

  test('a record longer than the struct (a newer version) still decodes, and so does the next', () => {
    const { records, stats } = decodeAll(Buffer.concat([frame(event({ pid: 7 }, 24)), frame(event({ pid: 8 }))]));
    assert.deepEqual(stats, { records: 2, dnsPackets: 0, decodeErrors: 0 });
    assert.deepEqual(records[0], { ...EXPECTED_V4, local: { ...EXPECTED_V4.local, pid: 7 } });
    assert.equal(records[1]!.local.pid, 8);
  });

  test('decodeTcpClose reads at an offset', () => {
    const b = Buffer.concat([Buffer.alloc(13, 0xff), event()]);
    assert.deepEqual(decodeTcpClose(b, 13, clock()), EXPECTED_V4);
  });

  test('an empty batch decodes to nothing', () => {
    assert.deepEqual(decodeAll(Buffer.alloc(0)), { records: [], stats: { records: 0, dnsPackets: 0, decodeErrors: 0 } });
  });
});

describe('decodeBatch: malformed input is counted, never thrown', () => {
  test('[good, unknown kind, good] -> 2 records, 1 error', () => {
    const { records, stats } = decodeAll(
      Buffer.concat([frame(event({ pid: 1 })), frame(event({ kind: 7 })), frame(event({ pid: 3 }))]),
    );
    assert.deepEqual(stats, { records: 2, dnsPackets: 0, decodeErrors: 1 });
    assert.deepEqual(
      records.map((r) => r.local.pid),
      [1, 3],
    );
  });

  test('kind 0 is unknown', () => {
    assert.deepEqual(decodeAll(frame(event({ kind: 0 }))).stats, { records: 0, dnsPackets: 0, decodeErrors: 1 });
  });

  test('a record shorter than the struct is an error; the next one decodes', () => {
    const short = event().subarray(0, TCP_CLOSE_EVENT.size - 1);
    const { records, stats } = decodeAll(Buffer.concat([frame(short), frame(event({ pid: 9 }))]));
    assert.deepEqual(stats, { records: 1, dnsPackets: 0, decodeErrors: 1 });
    assert.equal(records[0]!.local.pid, 9);
    assert.deepEqual(decodeAll(frame(Buffer.from([1]))).stats, { records: 0, dnsPackets: 0, decodeErrors: 1 });
  });

  for (const [what, over] of [
    ['direction 0', { direction: 0 }],
    ['direction 3', { direction: 3 }],
    ['outcome 0', { outcome: 0 }],
    ['outcome 5', { outcome: 5 }],
    ['family 0', { family: 0 }],
    ['family 7', { family: 7 }],
    ['family AF_UNIX', { family: 1 }],
  ] as [string, Partial<EventFields>][]) {
    test(`unknown ${what} -> error, neighbours still decode`, () => {
      const { records, stats } = decodeAll(
        Buffer.concat([frame(event({ pid: 1 })), frame(event(over)), frame(event({ pid: 3 }))]),
      );
      assert.deepEqual(stats, { records: 2, dnsPackets: 0, decodeErrors: 1 });
      assert.deepEqual(
        records.map((r) => r.local.pid),
        [1, 3],
      );
    });
  }

  test('frame length 0 -> error', () => {
    const { records, stats } = decodeAll(Buffer.concat([frame(event({ pid: 1 })), frame(Buffer.alloc(0))]));
    assert.deepEqual(stats, { records: 1, dnsPackets: 0, decodeErrors: 1 });
    assert.equal(records[0]!.local.pid, 1);
  });

  test('frame length beyond the end of the batch (truncated) -> error, earlier records kept', () => {
    const whole = event({ pid: 2 });
    const { records, stats } = decodeAll(
      Buffer.concat([frame(event({ pid: 1 })), frame(whole.subarray(0, 50), whole.length)]),
    );
    assert.deepEqual(stats, { records: 1, dnsPackets: 0, decodeErrors: 1 });
    assert.equal(records[0]!.local.pid, 1);
  });

  test('a huge length does not throw', () => {
    const { records, stats } = decodeAll(frame(event(), 0xffff_ffff));
    assert.deepEqual(stats, { records: 0, dnsPackets: 0, decodeErrors: 1 });
    assert.deepEqual(records, []);
  });

  test('a record whose handling throws is handed to onException alone; the frames after it still decode', () => {
    const stats: DecodeStats = { records: 0, dnsPackets: 0, decodeErrors: 0 };
    const pids: number[] = [];
    const caught: string[] = [];
    const sink = {
      tcp: (r: TcpRecord) => {
        if (r.local.pid === 2) throw new Error('boom');
        pids.push(r.local.pid);
      },
    };
    decodeBatch(Buffer.concat([1, 2, 3].map((pid) => frame(event({ pid })))), clock(), stats, sink, (e) => caught.push((e as Error).message));
    assert.deepEqual(pids, [1, 3]);
    assert.deepEqual(caught, ['boom']);
    assert.equal(stats.decodeErrors, 0, 'not an undecodable record: an exception, counted by the caller');
    // without onException it propagates (a programming error in a test or tool is not hidden)
    assert.throws(() => decodeBatch(frame(event({ pid: 2 })), clock(), stats, sink), /boom/);
  });

  test('stats accumulate across batches', () => {
    const stats: DecodeStats = { records: 5, dnsPackets: 0, decodeErrors: 2 };
    const c = clock();
    decodeBatch(frame(event()), c, stats, { tcp: () => {} });
    decodeBatch(frame(event({ kind: 9 })), c, stats, { tcp: () => {} });
    assert.deepEqual(stats, { records: 6, dnsPackets: 0, decodeErrors: 3 });
  });
});

describe('decodeTcpClose: DNAT', () => {
  test('a connection a DNAT rule sent elsewhere: remote is what was dialled, reached is where it went', () => {
    const r = decodeTcpClose(event({ raddr: [10, 96, 0, 10], rport: 80, dnat: { addr: [10, 244, 1, 7], port: 8080 } }), 0, clock());
    assert.deepEqual(r?.remote, { addr: '10.96.0.10', port: 80, reached: { addr: '10.244.1.7', port: 8080 } });
  });

  test('without DNAT there is no reached', () => {
    const r = decodeTcpClose(event(), 0, clock());
    assert.deepEqual(r?.remote, { addr: '93.184.216.34', port: 443 });
  });
});
