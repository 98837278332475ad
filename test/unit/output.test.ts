import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TcpRecord } from '../../src/events/tcp-record.js';
import { formatJsonLines } from '../../src/output/jsonl.js';
import { formatTableRows, tableHeader } from '../../src/output/table.js';

function record(over: Partial<TcpRecord> = {}, local: Partial<TcpRecord['local']> = {}, remote: Partial<TcpRecord['remote']> = {}): TcpRecord {
  return {
    ts: '2024-05-06T07:08:10.500Z',
    proto: 'tcp',
    family: 4,
    direction: 'outbound',
    outcome: 'closed',
    bytesSent: 5_000_000_123,
    bytesReceived: 77,
    retransmits: 2,
    srttUs: 1234,
    durationMs: 2345.679,
    ...over,
    local: { addr: '10.0.0.7', port: 54321, pid: 4242, comm: 'curl', cgroupId: 4_886_718_345, netns: 4_026_531_840, ...local },
    remote: { addr: '93.184.216.34', port: 443, ...remote },
  };
}

const V4 = record();
const V6_IN = record(
  { family: 6, direction: 'inbound', outcome: 'reset', bytesSent: 0, bytesReceived: 123_456, retransmits: 0, srttUs: 87, durationMs: 0.042 },
  { addr: '2001:db8::1', port: 8080, pid: 1, comm: 'nginx: worker' },
  { addr: 'fe80::42', port: 50000 },
);
const REFUSED = record({ outcome: 'refused', durationMs: 0 }, { pid: 4_194_304, comm: 'a' }, { addr: '127.0.0.1', port: 1 });

describe('formatJsonLines', () => {
  test('one parseable JSON object per line, nothing else', () => {
    const out = formatJsonLines([V4, V6_IN, REFUSED]);
    assert.ok(out.endsWith('\n'));
    const lines = out.split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, 3);
    assert.deepEqual(
      lines.map((l) => JSON.parse(l) as unknown),
      [V4, V6_IN, REFUSED],
    );
  });

  test('numbers stay numbers, field names are the contract', () => {
    const o = JSON.parse(formatJsonLines([V4]).trimEnd()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(o).sort(), [
      'bytesReceived',
      'bytesSent',
      'direction',
      'durationMs',
      'family',
      'local',
      'outcome',
      'proto',
      'remote',
      'retransmits',
      'srttUs',
      'ts',
    ]);
    assert.equal(o.bytesSent, 5_000_000_123);
    assert.deepEqual(o.local, { addr: '10.0.0.7', port: 54321, pid: 4242, comm: 'curl', cgroupId: 4_886_718_345, netns: 4_026_531_840 });
  });

  test('an open connection\'s record: "state":"open" where the outcome would be, no outcome; openedBeforeStart after durationMs', () => {
    const { outcome: _none, ...open } = record({ locality: 'same-host' });
    const r = { ...open, state: 'open', openedBeforeStart: true } as TcpRecord;
    const line = formatJsonLines([r]);
    assert.match(line, /"direction":"outbound","state":"open","local":/);
    assert.match(line, /"durationMs":2345.679,"openedBeforeStart":true,"locality":"same-host"\}\n$/);
    assert.deepEqual(JSON.parse(line), r);
    assert.doesNotMatch(line, /outcome/);
    // a closed record is as it always was: no state, no openedBeforeStart
    assert.doesNotMatch(formatJsonLines([V4]), /state|openedBeforeStart/);
  });

  test('a comm with quotes, backslashes and control bytes stays on one line', () => {
    const out = formatJsonLines([record({}, { comm: 'a"b\\c\nd\te' })]);
    assert.equal(out.split('\n').length, 2);
    assert.equal((JSON.parse(out) as TcpRecord).local.comm, 'a"b\\c\nd\te');
  });

  test('no records -> nothing', () => {
    assert.equal(formatJsonLines([]), '');
  });

  test('enriched records: exe, container, Kubernetes on both ends, locality; parse back equal', () => {
    const k8sLocal = { namespace: 'pay"ments', pod: 'checkout-1', workload: 'checkout', workloadKind: 'Deployment', node: 'n1', zone: 'a' };
    const r = record(
      { locality: 'cross-zone' },
      { exe: '/usr/bin/my "app"', containerId: 'ab'.repeat(32), containerRuntime: 'containerd', k8s: k8sLocal },
      { name: 'ledger.svc', reached: { addr: '10.244.2.9', port: 8080 }, k8s: { namespace: 'payments', service: 'ledger', pod: 'ledger-0', zone: 'b' } },
    );
    const out = formatJsonLines([r]);
    assert.equal(out.split('\n').length, 2);
    assert.deepEqual(JSON.parse(out), r);
    assert.equal((JSON.parse(out) as TcpRecord).locality, 'cross-zone');
  });
});

const COLUMNS = ['TIME', 'PID', 'COMM', 'DIR', 'LOCAL', 'REMOTE', 'OUTCOME', 'TX_BYTES', 'RX_BYTES', 'RETR', 'RTT_US', 'MS'];
const RIGHT = new Set(['PID', 'TX_BYTES', 'RX_BYTES', 'RETR', 'RTT_US', 'MS']);

/** The cells a row should show, in column order. */
function expectedCells(r: TcpRecord): string[] {
  const ep = (a: string, p: number) => (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);
  return [
    r.ts.slice(11, 23),
    String(r.local.pid),
    r.local.comm,
    r.direction === 'outbound' ? 'OUT' : 'IN',
    ep(r.local.addr, r.local.port),
    ep(r.remote.addr, r.remote.port),
    r.outcome ?? r.state ?? '',
    String(r.bytesSent),
    String(r.bytesReceived),
    String(r.retransmits),
    String(r.srttUs),
    r.durationMs.toFixed(3),
  ];
}

/**
 * Checks that each cell of `row` sits under its header: text columns start where
 * the header name starts, number columns end where it ends.
 */
function assertAligned(header: string, row: string, cells: string[]): void {
  let hFrom = 0;
  let rFrom = 0;
  COLUMNS.forEach((name, i) => {
    const h = header.indexOf(name, hFrom);
    assert.ok(h >= 0, `header has ${name}`);
    const cell = cells[i]!;
    const at = row.indexOf(cell, rFrom);
    assert.ok(at >= 0, `row ${JSON.stringify(row)} has ${JSON.stringify(cell)} after column ${rFrom}`);
    if (RIGHT.has(name)) assert.equal(at + cell.length, h + name.length, `${name} '${cell}' ends under its header in ${JSON.stringify(row)}`);
    else assert.equal(at, h, `${name} '${cell}' starts under its header in ${JSON.stringify(row)}`);
    hFrom = h + name.length;
    rFrom = at + cell.length;
  });
}

describe('table', () => {
  test('header: every column name, in order, one line', () => {
    const header = tableHeader();
    assert.ok(header.endsWith('\n'));
    assert.equal(header.split('\n').length, 2);
    assert.deepEqual(header.trim().split(/\s+/), COLUMNS);
  });

  test('rows: one line per record, every cell under its header, IPv6 endpoints bracketed', () => {
    const header = tableHeader().trimEnd();
    const records = [V4, V6_IN, REFUSED];
    const lines = formatTableRows(records).split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, 3);
    lines.forEach((row, i) => assertAligned(header, row, expectedCells(records[i]!)));
  });

  test('cell contents', () => {
    const [v4, v6] = formatTableRows([V4, V6_IN]).split('\n');
    assert.match(v4!, /^07:08:10\.500 +4242 curl +OUT 10\.0\.0\.7:54321 +93\.184\.216\.34:443 +closed +5000000123 +77 +2 +1234 +2345\.679$/);
    assert.match(v6!, /^07:08:10\.500 +1 nginx: worker +IN +\[2001:db8::1\]:8080 +\[fe80::42\]:50000 +reset +0 +123456 +0 +87 +0\.042$/);
  });

  test('no records -> nothing', () => {
    assert.equal(formatTableRows([]), '');
  });

  test(
    'a full-length IPv6 endpoint keeps the later columns aligned',
    () => {
      const header = tableHeader().trimEnd();
      const r = record(
        { family: 6 },
        { addr: '2001:db8:85a3:8d3:1319:8a2e:370:7348', port: 54321 },
        { addr: 'fd12:3456:789a:1:ffff:eeee:dddd:cccc', port: 443 },
      );
      assertAligned(header, formatTableRows([r]).trimEnd(), expectedCells(r));
    },
  );
});
