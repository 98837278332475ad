/**
 * The ring buffer's reader thread ending on its own (polling failed) stops
 * TCP tracing: the collector says so (tracing false, the error kept and
 * logged), which /readyz and /api/status read; an end the agent asked for is
 * not a failure. A real poll error cannot be caused from outside the native
 * addon, so the addon is the injected binding here, answering as it does
 * (callback(null, -errno)).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Writable } from 'node:stream';
import { Collector } from '../../src/agent/collector.js';
import { TcpTracer } from '../../src/bpf/tcp-tracer.js';
import type { BpfNative, ObjectHandle, RingCallback, RingHandle } from '../../src/bpf/native.js';
import type { KernelFeatures } from '../../src/bpf/features.js';

/** The native calls the tracer makes, answered as the addon would for an object with no traffic. */
function binding(): { native: BpfNative; ring: () => RingCallback } {
  let cb: RingCallback | undefined;
  const native = {
    open: () => ({}) as ObjectHandle,
    programs: () => [{ name: 'btf_state', section: 'tp_btf/inet_sock_set_state', autoload: true }],
    setAutoload: () => undefined,
    setMaxEntries: () => undefined,
    reuseMapFd: () => undefined,
    setGlobal: () => undefined,
    loadAsync: () => Promise.resolve(),
    attach: () => ({}),
    ringOpen: (_o: ObjectHandle, _m: string, f: RingCallback) => ((cb = f), {} as RingHandle),
    ringStop: () => cb?.(null, 0),
    ringDropped: () => 0,
    iterReadAsync: () => Promise.resolve(Buffer.alloc(0)),
    mapUpdate: () => undefined,
    mapDump: () => ({ count: 0, keys: Buffer.alloc(0), values: Buffer.alloc(0) }),
    detach: () => undefined,
    close: () => undefined,
  } as unknown as BpfNative;
  return { native, ring: () => cb! };
}

const yes = { available: true };
const FEATURES: KernelFeatures = { btf: yes, ringbuf: yes, tpBtf: yes, rawTp: yes, tracepoint: yes };
const OPTS = { attach: 'tp_btf' as const, btf: null, maxConnections: 16, ringbufBytes: 4096, pollMs: 10, intervalMs: 60_000, maxUdpFlows: 16, maxNatEntries: 16, debug: false };

async function started(): Promise<{ collector: Collector; ring: () => RingCallback; logged: string[] }> {
  const { native, ring } = binding();
  const tcp = await TcpTracer.load(native, FEATURES, { objectPath: 'x', btfPath: null, mode: 'tp_btf', maxConnections: 16, maxNatEntries: 16, ring: { fd: 3, bytes: 4096 } });
  const logged: string[] = [];
  const log = pino({}, new Writable({ write: (c: Buffer, _e, done) => (logged.push(c.toString()), done()) }));
  const collector = new Collector(OPTS, log, () => undefined);
  await collector.start(Promise.resolve({ native, features: FEATURES, tcp, net: undefined, notes: [] }));
  return { collector, ring, logged };
}

describe('the ring buffer reader ending on a poll error', () => {
  test('tracing stops: the collector says so, keeps the error, logs it and counts it in its stats', async () => {
    const { collector, ring, logged } = await started();
    assert.equal(collector.tracing, true);
    assert.equal(collector.stats()['tracingStopped'], 0);
    ring()(null, -9); // EBADF from epoll_wait
    assert.equal(collector.tracing, false);
    assert.match(collector.tracingError!, /reading the kernel's ring buffer failed \(errno 9\)/);
    assert.equal(collector.stats()['tracingStopped'], 1);
    await new Promise((r) => setImmediate(r));
    const line = logged.map((l) => JSON.parse(l) as { level: number; msg: string }).find((l) => l.msg.startsWith('tracing stopped'));
    assert.equal(line?.level, 50, 'logged as an error');
    await collector.stop();
  });

  test('the end that stop() asks for is not a failure', async () => {
    const { collector } = await started();
    const summary = await collector.stop();
    assert.equal(summary['tracingStopped'], 0);
    assert.equal(collector.tracingError, undefined);
  });
});
