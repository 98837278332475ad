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
import type { LoadedProbes } from '../../src/bpf/probe-load.js';
import { configSchema } from '../../src/config/schema.js';
import { runAgent } from '../../src/cli/run.js';

/** The native calls the tracer makes, answered as the addon would for an object with no traffic. */
function binding(dropped = { n: 0 }): { native: BpfNative; ring: () => RingCallback } {
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
    ringDropped: () => dropped.n,
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
const OPTS = { attach: 'tp_btf' as const, btf: null, maxConnections: 16, ringbufBytes: 4096, pollMs: 10, intervalMs: 60_000, maxUdpFlows: 16, maxNatEntries: 16, udpHook: 'auto' as const, debug: false };

async function loaded(native: BpfNative): Promise<LoadedProbes> {
  const tcp = await TcpTracer.load(native, FEATURES, { objectPath: 'x', btfPath: null, mode: 'tp_btf', maxConnections: 16, maxNatEntries: 16, ring: { fd: 3, bytes: 4096 } });
  return { native, features: FEATURES, tcp, net: undefined, cgroup: undefined, notes: [] };
}

async function started(): Promise<{ collector: Collector; ring: () => RingCallback; logged: string[] }> {
  const { native, ring } = binding();
  const logged: string[] = [];
  const log = pino({}, new Writable({ write: (c: Buffer, _e, done) => (logged.push(c.toString()), done()) }));
  const collector = new Collector(OPTS, log, () => undefined);
  await collector.start(loaded(native));
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

describe('bpfagent run with its ring buffer reader ended by a poll error', { skip: process.getuid?.() !== 0 && process.env.CI !== 'true' ? 'bpfagent run checks its privileges: run as root' : false }, () => {
  test('/readyz turns 503 (checks.tracing false); /api/status and /metrics say so; records the reader dropped are in the one loss set', async () => {
    const dropped = { n: 0 };
    const { native, ring } = binding(dropped);
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, done) => (lines.push(JSON.parse(c.toString()) as Record<string, unknown>), done()) }));
    const cfg = configSchema().parse({ listen: '127.0.0.1:0', interval: '1h' });
    const exited = runAgent(cfg, log, { probes: loaded(native) });
    const until = async <T>(f: () => T | undefined): Promise<T> => {
      for (let i = 0; i < 500; i++) {
        const v = f();
        if (v !== undefined) return v;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`timed out; logged ${JSON.stringify(lines.map((l) => l['msg']))}`);
    };
    try {
      const listen = await until(() => lines.find((l) => typeof l['listen'] === 'string')?.['listen'] as string | undefined);
      await until(() => lines.find((l) => String(l['msg']).startsWith('ready:')));
      const get = async (p: string): Promise<{ status: number; body: string }> => {
        const r = await fetch(`http://${listen}${p}`);
        return { status: r.status, body: await r.text() };
      };
      assert.equal((await get('/readyz')).status, 200);
      assert.match((await get('/metrics')).body, /^bpfagent_tracing 1$/m);

      dropped.n = 3; // the native reader could not allocate for three records
      ring()(null, -9); // then its epoll_wait failed: the thread ended
      const ready = await get('/readyz');
      assert.equal(ready.status, 503);
      assert.deepEqual(JSON.parse(ready.body), { status: 'not ready', checks: { probes: true, tracing: false } });
      const status = JSON.parse((await get('/api/status')).body) as { tracing: { ok: boolean; error: string }; lost: { total: number; reasons: Record<string, number> } };
      assert.equal(status.tracing.ok, false);
      assert.match(status.tracing.error, /reading the kernel's ring buffer failed \(errno 9\)/);
      assert.equal(status.lost.reasons['reader_out_of_memory'], 3);
      assert.equal(status.lost.total, 3);
      const metrics = (await get('/metrics')).body;
      assert.match(metrics, /^bpfagent_tracing 0$/m);
      assert.match(metrics, /^bpfagent_events_lost_total\{reason="reader_out_of_memory",side="agent"\} 3$/m);
    } finally {
      process.emit('SIGTERM');
    }
    assert.equal(await exited, 0);
    const summary = lines.find((l) => String(l['msg']).startsWith('summary:'));
    assert.match(String(summary?.['msg']), /lost 3 \(.*reader out of memory 3.*; TCP tracing stopped early/);
  });
});
