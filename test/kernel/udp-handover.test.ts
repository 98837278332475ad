/**
 * The agent hands the UDP flow table and per-CPU cache over every interval
 * while datagrams are being counted: with the shortest interval (100 ms) and
 * a stream of datagrams from two senders lasting many intervals, every
 * datagram sent and every datagram read is counted once, in some interval.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { udpSuite } from '../helpers/udp-suite.js';
import { Peer } from '../helpers/processes.js';
import { flowTotals } from '../helpers/udp-totals.js';

const N = 30_000;
/** datagram i is 1 + i % 61 bytes */
const BYTES = Array.from({ length: N }, (_, i) => 1 + (i % 61)).reduce((a, b) => a + b, 0);

const sender = (to: string, port: number) =>
  [
    'import json, socket, time',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    `for i in range(${N}):`,
    `    s.sendto(b"x" * (1 + i % 61), ("${to}", ${port}))`,
    '    if i % 1000 == 999: time.sleep(0.05)  # about 1.5 s in all: many intervals',
    'print(json.dumps({"event": "done", "localPort": s.getsockname()[1]}), flush=True)',
  ].join('\n');

const receiver = (host: string, port: number) =>
  [
    'import json, socket',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    's.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)',
    `s.bind(("${host}", ${port}))`,
    'print(json.dumps({"event": "listening"}), flush=True)',
    'n = b = 0',
    's.settimeout(10)',
    'while True:',
    '    try:',
    '        d, _ = s.recvfrom(2048)',
    '    except socket.timeout:',
    '        break',
    '    n += 1; b += len(d)',
    `    if n == ${2 * N}: break`,
    '    s.settimeout(1)',
    'print(json.dumps({"event": "done", "received": n, "bytes": b}), flush=True)',
  ].join('\n');

describe('UDP flow tables handed over while counting', { skip: KERNEL_SKIP }, () => {
  const suite = udpSuite(9, '100ms');

  test('two senders across many 100 ms intervals: every datagram sent and read counted once', async () => {
    const port = 27000 + (process.pid % 1000);
    const recv = new Peer('uhorecv', ['-c', receiver(suite.net().b.ipv4, port)], { netns: suite.net().b.ns, script: 'python3' });
    await recv.waitFor('listening');
    const senders = [0, 1].map(() => new Peer('uhosend', ['-c', sender(suite.net().b.ipv4, port)], { netns: suite.net().a.ns, script: 'python3' }));
    const ports = (await Promise.all(senders.map((s) => s.waitFor('done', 60_000)))).map((e) => e['localPort'] as number);
    const got = await recv.waitFor('done', 60_000);
    const none = { packetsReceived: 0, bytesReceived: 0 };
    for (const [i, s] of senders.entries()) {
      const rs = await flowTotals(suite.agent(), (r) => r.local.pid === s.pid && r.remote.port === port, { packetsSent: N, bytesSent: BYTES, ...none }, `sender ${i}`);
      assert.ok(new Set(rs.map((r) => r.ts)).size >= 8, `counted over many intervals: ${rs.length} records`);
    }
    // what the receiver read, from both senders (a datagram its buffer dropped was never read)
    const read = (p: number) => (r: { local: { pid: number }; remote: { port: number } }) => r.local.pid === recv.pid && r.remote.port === p;
    await suite.agent().until(() => {
      const rs = suite.agent().udp((r) => ports.some((p) => read(p)(r)));
      const n = rs.reduce((a, r) => a + r.packetsReceived, 0);
      return n === got['received'] ? true : undefined;
    }, `the receiver's ${got['received']} reads counted`, 15_000);
    const rs = suite.agent().udp((r) => ports.some((p) => read(p)(r)));
    assert.deepEqual(
      [rs.reduce((a, r) => a + r.packetsReceived, 0), rs.reduce((a, r) => a + r.bytesReceived, 0), rs.reduce((a, r) => a + r.packetsSent, 0)],
      [got['received'], got['bytes'], 0],
    );
  });
});
