/**
 * `bpfagent run` in this process, with a sink registered for the test: real
 * connections reach the sink as ShippedRecords; /readyz waits for the sink;
 * SIGTERM flushes and shuts the sink down within shutdownTimeout, exit 0.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { z } from 'zod';
import { runAgent } from '../../src/cli/run.js';
import { loadConfig } from '../../src/config/load.js';
import type { TcpRecord } from '../../src/events/records.js';
import { defineSink } from '../../src/sinks/registry.js';
import type { FlowSink, ShippedRecord, SinkStats } from '../../src/sinks/sink.js';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer } from '../helpers/processes.js';
import { configFile, freePort } from '../helpers/run-agent.js';

class MemorySink implements FlowSink {
  readonly name = 'memory';
  ready = false;
  readonly got: ShippedRecord[] = [];
  delivered = 0;
  shutdownWith: number | undefined;
  private open!: () => void;
  readonly opened = new Promise<void>((r) => (this.open = r));
  constructor(readonly config: { label: string }) {}
  /** start() completes when the test says so */
  letStart(): void {
    this.open();
  }
  async start(): Promise<void> {
    await this.opened;
    this.ready = true;
  }
  export(batch: readonly ShippedRecord[]): void {
    this.got.push(...batch);
  }
  async flush(): Promise<void> {
    this.delivered = this.got.length;
  }
  async shutdown(timeoutMs: number): Promise<void> {
    this.shutdownWith = timeoutMs;
    await this.flush();
    this.ready = false;
  }
  stats(): SinkStats {
    return { exported: this.delivered, dropped: 0, queued: this.got.length - this.delivered, failures: 0 };
  }
}

describe('bpfagent run: sinks', { skip: KERNEL_SKIP }, () => {
  let net: TestNetwork;
  let sink: MemorySink | undefined;
  const logLines: string[] = [];
  let run: Promise<number>;
  let base: string;
  const port = 31500 + (process.pid % 100) * 4;
  let signalListenersBefore: Function[];

  before(async () => {
    net = new TestNetwork(18);
    const listenPort = await freePort();
    base = `http://127.0.0.1:${listenPort}`;
    const registry = {
      memory: defineSink(z.object({ label: z.string() }).strict(), (cfg) => (sink = new MemorySink(cfg))),
      // a sink whose shutdown never ends: the agent must not wait for it past the timeout
      stuck: defineSink(z.object({}).strict(), () => {
        const m = new MemorySink({ label: 'stuck' });
        m.letStart();
        m.shutdown = () => new Promise<void>(() => undefined);
        return m;
      }),
    };
    const { config } = loadConfig({
      env: { BPFAGENT_LISTEN: `127.0.0.1:${listenPort}`, BPFAGENT_INTERVAL: '1s', BPFAGENT_NODE_NAME: 'test-node', BPFAGENT_CLUSTER_NAME: 'test-cluster', BPFAGENT_SHUTDOWN_TIMEOUT: '1500ms', BPFAGENT_SINKS_MEMORY_LABEL: 'x' },
      file: configFile('sinks:\n  stuck: {}\n'),
      sinks: registry,
    });
    const log = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          logLines.push(...chunk.toString().split('\n').filter(Boolean));
          cb();
        },
      }),
    );
    signalListenersBefore = process.listeners('SIGTERM');
    run = runAgent(config, log, { registry, sinkStartWaitMs: 300 });
  });

  after(() => net?.destroy());

  const readyLine = async (): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const l = logLines.find((x) => x.includes('"msg":"ready'));
      if (l) return JSON.parse(l) as Record<string, unknown>;
      if (Date.now() > deadline) throw new Error(`no ready line:\n${logLines.join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  test('ready with the probes attached, but /readyz 503 until the sink has started', async () => {
    const ready = await readyLine();
    assert.deepEqual([ready.node, ready.sinks, ready.sinksReady], ['test-node', ['memory', 'stuck'], false]);
    assert.deepEqual(sink?.config, { label: 'x' });
    let r = await fetch(`${base}/readyz`);
    assert.equal(r.status, 503);
    assert.deepEqual(await r.json(), { status: 'not ready', checks: { probes: true, tracing: true, 'sink:memory': false, 'sink:stuck': true } });
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    sink!.letStart();
    await sink!.opened;
    r = await fetch(`${base}/readyz`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { status: 'ready', checks: { probes: true, tracing: true, 'sink:memory': true, 'sink:stuck': true } });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /^bpfagent_sink_ready\{sink="memory"\} 1$/m);
  });

  test('connections reach the sink as ShippedRecords: cluster, node, interval', async () => {
    const server = new Peer('ssrv', ['server', '--host', net.b.ipv4, '--port', String(port), '--send', '7'], { netns: net.b.ns });
    await server.waitFor('listening');
    const c = new Peer('scli', ['client', '--host', net.b.ipv4, '--port', String(port), '--send', '4242'], { netns: net.a.ns });
    await c.waitFor('done');
    const deadline = Date.now() + 10_000;
    let mine: Array<ShippedRecord & TcpRecord> = [];
    while (Date.now() < deadline) {
      mine = sink!.got.filter((r): r is ShippedRecord & TcpRecord => r.proto === 'tcp' && r.remote.port === port && r.local.comm === 'scli');
      if (mine.length) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(mine.length, 1, JSON.stringify(sink!.got.slice(-5)));
    const r = mine[0]!;
    assert.deepEqual([r.cluster, r.node, r.intervalMs, r.bytesSent, r.bytesReceived, r.outcome], ['test-cluster', 'test-node', 1000, 4242, 7, 'closed']);
    // shipped with the interval in progress when it was read: the one it ended in, or, when it ended in the
    // last poll interval (100 ms, more on a loaded machine) before an interval's end, the next one
    assert.ok(Date.parse(r.intervalStart) <= Date.parse(r.ts) + 500, `${r.intervalStart} <= ${r.ts} + 500 ms`);
    assert.ok(Date.parse(r.ts) - Date.parse(r.intervalStart) < 3000, `${r.intervalStart} .. ${r.ts}`);
  });

  test('SIGTERM: sinks shut down in parallel with the timeout (a stuck one left behind in bounded time), listener closed, exit 0', async () => {
    // deliver SIGTERM to the agent's handlers only (not to the test runner's)
    const ours = process.listeners('SIGTERM').filter((l) => !signalListenersBefore.includes(l));
    assert.ok(ours.length >= 1);
    const t0 = Date.now();
    for (const l of ours) {
      process.removeListener('SIGTERM', l as (...a: unknown[]) => void);
      (l as (s: string) => void)('SIGTERM');
    }
    assert.equal(await run, 0);
    const took = Date.now() - t0;
    assert.ok(took >= 1500 && took < 6000, `stopped in ${took} ms`);
    assert.equal(sink!.shutdownWith, 1500);
    assert.equal(sink!.delivered, sink!.got.length);
    await assert.rejects(fetch(`${base}/healthz`), 'the listener is closed');
    assert.ok(logLines.some((l) => l.includes('"msg":"sinks shut down"') && l.includes('"memory":"flushed"') && l.includes('"stuck":"timed out"')), logLines.join('\n'));
    assert.ok(logLines.some((l) => l.includes('"msg":"summary:')), 'summary logged');
  });
});
