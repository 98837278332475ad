/** The sinks of `bpfagent run`: made through the registry, started (retried when down), fed, shut down in parallel within a bound. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { z } from 'zod';
import { SinkSet } from '../../src/agent/sink-set.js';
import { ship } from '../../src/cli/run.js';
import type { TcpRecord, UdpRecord } from '../../src/events/records.js';
import { defineSink, type SinkContext, type SinkRegistry } from '../../src/sinks/registry.js';
import type { FlowSink, ShippedRecord, SinkStats } from '../../src/sinks/sink.js';
import { UsageError } from '../../src/util/errors.js';

const log = pino({ level: 'silent' });

class FakeSink implements FlowSink {
  ready = false;
  starts = 0;
  got: ShippedRecord[] = [];
  shutdownWith: number | undefined;
  constructor(
    readonly name: string,
    readonly ctx: SinkContext,
    private readonly behaviour: { failStarts?: number; misconfigured?: boolean; hangShutdown?: boolean } = {},
  ) {}
  async start(): Promise<void> {
    this.starts++;
    if (this.behaviour.misconfigured) throw new UsageError('database "x" does not exist and may not be created');
    if (this.starts <= (this.behaviour.failStarts ?? 0)) throw new Error('ECONNREFUSED');
    this.ready = true;
  }
  export(batch: readonly ShippedRecord[]): void {
    this.got.push(...batch);
  }
  async flush(): Promise<void> {}
  async shutdown(timeoutMs: number): Promise<void> {
    this.shutdownWith = timeoutMs;
    if (this.behaviour.hangShutdown) await new Promise(() => undefined);
  }
  stats(): SinkStats {
    return { exported: this.got.length, dropped: 0, queued: 0, failures: this.starts - 1 };
  }
}

function registry(made: FakeSink[], behaviour: ConstructorParameters<typeof FakeSink>[2] = {}): SinkRegistry {
  const plugin = (name: string) =>
    defineSink(z.object({ level: z.number().default(1) }).strict(), (_cfg, ctx) => {
      const s = new FakeSink(name, ctx, behaviour);
      made.push(s);
      return s;
    });
  return { one: plugin('one'), two: plugin('two') };
}

const tcp = { ts: '2026-11-25T10:00:05.000Z', proto: 'tcp' } as TcpRecord;
const udp = { ts: '2026-11-25T10:00:10.000Z', proto: 'udp', intervalMs: 1000 } as UdpRecord;

describe('SinkSet', () => {
  test('only the sinks with a section are made, with the cluster, the node, the interval and a logger', async () => {
    const made: FakeSink[] = [];
    const set = await SinkSet.create({ two: { level: 1 } }, registry(made), { cluster: 'c1', node: 'n1', log, intervalMs: 5000 });
    assert.deepEqual(set.names, ['two']);
    assert.equal(made[0]!.ctx.node, 'n1');
    assert.equal(made[0]!.ctx.cluster, 'c1');
    assert.equal(made[0]!.ctx.intervalMs, 5000);
    assert.equal(set.ready, false);
    await set.start(1000);
    assert.equal(set.ready, true);
    assert.deepEqual(set.readiness(), { 'sink:two': true });
  });

  test('every sink gets every batch', async () => {
    const made: FakeSink[] = [];
    const set = await SinkSet.create({ one: {}, two: {} }, registry(made), { cluster: 'c1', node: 'n1', log, intervalMs: 1000 });
    await set.start(1000);
    const batch = ship([tcp, udp], { cluster: 'c1', node: 'n1' }, Date.parse('2026-11-25T10:00:00.000Z'), 10_000);
    set.export(batch);
    for (const s of made) assert.deepEqual(s.got, batch);
    assert.deepEqual(
      batch.map((r) => [r.cluster, r.node, r.intervalStart, r.intervalMs]),
      [
        ['c1', 'n1', '2026-11-25T10:00:00.000Z', 10_000],
        ['c1', 'n1', '2026-11-25T10:00:09.000Z', 1000], // UDP: the interval its counts cover
      ],
    );
  });

  test('a sink whose destination is down is retried, and not ready until it starts', async () => {
    const made: FakeSink[] = [];
    const set = await SinkSet.create({ one: {} }, registry(made, { failStarts: 1 }), { cluster: 'c1', node: 'n1', log, intervalMs: 1000 });
    await set.start(100); // gives up waiting; retries on
    assert.equal(set.ready, false);
    const deadline = Date.now() + 5000;
    while (!set.ready && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(set.ready, true);
    assert.equal(made[0]!.starts, 2);
    await set.shutdown(100);
  });

  test('a misconfigured sink stops start-up with a UsageError naming it', async () => {
    const set = await SinkSet.create({ one: {} }, registry([], { misconfigured: true }), { cluster: 'c1', node: 'n1', log, intervalMs: 1000 });
    await assert.rejects(set.start(1000), (e: unknown) => e instanceof UsageError && e.exitCode === 2 && e.message.startsWith('sinks.one: database'));
  });

  test('shutdown: every sink in parallel, each given the timeout; one that hangs is left behind in bounded time', async () => {
    const made: FakeSink[] = [];
    const set = await SinkSet.create({ one: {}, two: {} }, registry(made, { hangShutdown: true }), { cluster: 'c1', node: 'n1', log, intervalMs: 1000 });
    await set.start(1000);
    const t0 = Date.now();
    const outcome = await set.shutdown(300);
    const took = Date.now() - t0;
    assert.deepEqual(outcome, { one: 'timed out', two: 'timed out' });
    assert.ok(took >= 300 && took < 1000, `took ${took} ms`);
    assert.deepEqual(made.map((s) => s.shutdownWith), [300, 300]);
  });

  test('an unregistered sink section is a configuration error', async () => {
    await assert.rejects(() => SinkSet.create({ three: {} }, registry([]), { cluster: null, node: 'n', log, intervalMs: 1 }), /config: sinks.three: unknown sink, expected one of: one, two/);
  });
});
