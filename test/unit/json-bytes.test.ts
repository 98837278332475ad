import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { prng } from '../../bench/pipeline.js';
import { JsonBytes } from '../../src/output/json-bytes.js';
import { formatJsonLines } from '../../src/output/jsonl.js';
import type { K8sInfo, TcpRecord } from '../../src/events/records.js';

function written(write: (w: JsonBytes) => void): string {
  const w = new JsonBytes(8); // tiny, so that growth is exercised too
  write(w);
  return w.take().toString('utf8');
}

describe('JsonBytes', () => {
  test('numbers read exactly as JSON.stringify writes them', () => {
    const cases = [
      0, -0, 1, 9, 10, 99, 100, 4026532457, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 1e21, -1, -0.5, 0.001, 0.01, 0.1, 0.343,
      0.34, 1.5, 12.25, 1000.001, 123456.789, 1e-7, 0.1 + 0.2, 1 / 3, Number.MAX_VALUE, NaN, Infinity, -Infinity,
    ];
    const rnd = prng(7);
    for (let i = 0; i < 5000; i++) {
      cases.push(Math.round(rnd() * 10 ** (1 + Math.floor(rnd() * 9))) / 1000, rnd() * 1e6, Math.floor(rnd() * 2 ** 53));
    }
    for (const x of cases) assert.equal(written((w) => w.number(x)), JSON.stringify(x), `number ${x}`);
  });

  test('strings escape as JSON.stringify escapes them, UTF-8 included', () => {
    const cases = ['', 'churn', 'a"b', 'back\\slash', 'nl\n', 'tab\t', '\u0000\u001f', '\u007f', 'é', '日本', '😀', '\ud800'];
    const rnd = prng(11);
    for (let i = 0; i < 3000; i++) {
      let s = '';
      const n = Math.floor(rnd() * 20);
      for (let j = 0; j < n; j++) {
        const r = rnd();
        s += String.fromCharCode(r < 0.8 ? 0x20 + Math.floor(rnd() * 95) : r < 0.9 ? Math.floor(rnd() * 0x20) : Math.floor(rnd() * 0xffff));
      }
      cases.push(s);
    }
    for (const s of cases) assert.equal(written((w) => w.string(s)), JSON.stringify(s), `string ${JSON.stringify(s)}`);
  });

  test('take() hands over a copy and starts again', () => {
    const w = new JsonBytes(4);
    w.ascii('first');
    const a = w.take();
    w.ascii('2nd');
    assert.equal(a.toString(), 'first');
    assert.equal(w.take().toString(), '2nd');
    assert.equal(w.length, 0);
  });
});

describe('TCP records as bytes', () => {
  /** A record with its keys in the contract's order, so that JSON.stringify is the reference. */
  function randomRecord(rnd: () => number): TcpRecord {
    const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const maybe = <T>(v: T): T | undefined => (rnd() < 0.5 ? v : undefined);
    const text = (): string => pick(['churn', 'node', 'a"b\\c', 'nl\nx', 'é日😀', 'kworker/0:1', '']);
    const k8s = (): K8sInfo => {
      const k: K8sInfo = { namespace: pick(['payments', 'pay"ments', 'ns']), pod: 'checkout-1', workload: 'checkout' };
      if (rnd() < 0.5) k.zone = 'zone-a';
      return rnd() < 0.5 ? Object.freeze(k) : k;
    };
    const local: TcpRecord['local'] = {
      addr: pick(['127.0.0.1', '10.1.2.3', 'fd00::1', '::1']),
      port: Math.floor(rnd() * 65536),
      pid: Math.floor(rnd() * 4194304),
      comm: text(),
      cgroupId: Math.floor(rnd() * 2 ** 40),
      netns: 4026531840 + Math.floor(rnd() * 1000),
    };
    const exe = maybe('/usr/bin/' + text());
    if (exe !== undefined) local.exe = exe;
    if (rnd() < 0.3) local.containerId = 'ab'.repeat(32);
    if (rnd() < 0.3) local.containerRuntime = pick(['containerd', 'cri-o']);
    if (rnd() < 0.3) local.k8s = k8s();
    const remote: TcpRecord['remote'] = { addr: pick(['10.96.0.10', '2001:db8::5']), port: Math.floor(rnd() * 65536) };
    if (rnd() < 0.3) remote.name = pick(['example.com', 'wéird"name']);
    if (rnd() < 0.3) remote.reached = { addr: '10.244.1.7', port: 8080 };
    if (rnd() < 0.3) remote.k8s = k8s();
    const r: TcpRecord = {
      ts: new Date(1.7e12 + Math.floor(rnd() * 1e10)).toISOString(),
      proto: 'tcp',
      family: pick([4, 6] as const),
      direction: pick(['outbound', 'inbound'] as const),
      outcome: pick(['closed', 'reset', 'refused', 'timeout'] as const),
      local,
      remote,
      bytesSent: Math.floor(rnd() * 2 ** (rnd() * 50)),
      bytesReceived: Math.floor(rnd() * 2 ** (rnd() * 50)),
      retransmits: Math.floor(rnd() * 5),
      srttUs: Math.floor(rnd() * 100000),
      durationMs: pick([0, Math.round(rnd() * 1e9) / 1e3, Math.round(rnd() * 1e3) / 1e3, 12]),
    };
    if (rnd() < 0.5) r.locality = pick(['same-host', 'same-zone', 'cross-zone', 'cluster', 'external'] as const);
    return r;
  }

  test('each line is byte for byte what JSON.stringify writes', () => {
    const rnd = prng(42);
    const records = Array.from({ length: 2000 }, () => randomRecord(rnd));
    const lines = formatJsonLines(records).split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, records.length);
    records.forEach((r, i) => assert.equal(lines[i], JSON.stringify(r), `record ${i}`));
  });

  test('records of one pid whose other fields change (pid reuse, exec, new pod) are written as they are', () => {
    const rnd = prng(9);
    const records = Array.from({ length: 3000 }, () => {
      const r = randomRecord(rnd);
      r.local.pid = 100 + Math.floor(rnd() * 3); // few pids, so that most records find an earlier one
      return r;
    });
    const lines = formatJsonLines(records).trimEnd().split('\n');
    records.forEach((r, i) => assert.equal(lines[i], JSON.stringify(r), `record ${i}`));
  });

  test('a shared frozen Kubernetes answer is written the same each time', () => {
    const rnd = prng(5);
    const k8s = Object.freeze({ namespace: 'a', pod: 'p' });
    const records = [randomRecord(rnd), randomRecord(rnd)];
    for (const r of records) r.local.k8s = k8s;
    const lines = formatJsonLines(records).trimEnd().split('\n');
    lines.forEach((l, i) => assert.equal(l, JSON.stringify(records[i])));
  });
});
