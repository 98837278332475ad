/**
 * An exception in any stage of the per-batch path must not end the agent.
 * `bpfagent run` in this process, tracing real connections between two test
 * hosts; an exception is injected once into each stage in turn (decode,
 * enrichment, the interval's end, metrics, the flow table, the store, a
 * sink) by wrapping the method that stage calls. Each time: the exception is
 * counted under its stage in /metrics, and a connection made afterwards is
 * recorded exactly (its bytes), in the sinks and in the API. At the end the
 * agent stops normally and its summary counts the exceptions.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { z } from 'zod';
import { runAgent } from '../../src/cli/run.js';
import { loadConfig } from '../../src/config/load.js';
import { DnsTracker } from '../../src/enrich/dns-tracker.js';
import { Enricher } from '../../src/enrich/enricher.js';
import type { TcpRecord } from '../../src/events/records.js';
import { EdgeTable } from '../../src/flows/edge-table.js';
import { AgentMetrics } from '../../src/metrics/metrics.js';
import { defineSink } from '../../src/sinks/registry.js';
import type { FlowSink, ShippedRecord, SinkStats } from '../../src/sinks/sink.js';
import { MemoryFlowStore } from '../../src/store/memory-store.js';
import { MonotonicClock } from '../../src/util/clock.js';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { metricSum } from '../helpers/metrics-text.js';
import { Peer } from '../helpers/processes.js';
import { configFile, freePort } from '../helpers/run-agent.js';
import { until } from '../helpers/until.js';

/** faults still to throw, by stage */
const armed = new Map<string, number>();
const restore: Array<() => void> = [];

/** Make `proto[method]` throw once per armed fault of `stage`, else do its work. */
function inject(stage: string, proto: object, method: string): void {
  const target = proto as Record<string, (...a: unknown[]) => unknown>;
  const original = target[method]!;
  target[method] = function (this: unknown, ...args: unknown[]) {
    const left = armed.get(stage) ?? 0;
    if (left > 0) {
      armed.set(stage, left - 1);
      throw new Error(`injected ${stage} fault`);
    }
    return original.apply(this, args);
  };
  restore.push(() => (target[method] = original));
}

class MemorySink implements FlowSink {
  readonly ready = true;
  readonly got: ShippedRecord[] = [];
  constructor(readonly name: string) {}
  async start(): Promise<void> {}
  export(batch: readonly ShippedRecord[]): void {
    if (this.name === 'bomb' && (armed.get('sink') ?? 0) > 0) {
      armed.set('sink', armed.get('sink')! - 1);
      throw new Error('injected sink fault');
    }
    this.got.push(...batch);
  }
  async flush(): Promise<void> {}
  async shutdown(): Promise<void> {}
  stats(): SinkStats {
    return { exported: this.got.length, dropped: 0, queued: 0, failures: 0 };
  }
}

describe('bpfagent run: an exception in any stage is caught, counted, and tracing goes on', { skip: KERNEL_SKIP }, () => {
  let net: TestNetwork;
  let base: string;
  let run: Promise<number>;
  const logLines: string[] = [];
  const sinks: Record<string, MemorySink> = {};
  const port = 25500 + (process.pid % 100) * 4;
  let signalListenersBefore: Function[];
  let sent = 1000;

  before(async () => {
    net = new TestNetwork(41);
    inject('decode', MonotonicClock.prototype, 'iso');
    inject('enrich', Enricher.prototype, 'enrichAll');
    inject('interval', DnsTracker.prototype, 'sweep');
    inject('metrics', AgentMetrics.prototype, 'addRecords');
    inject('flows', EdgeTable.prototype, 'add');
    inject('store', MemoryFlowStore.prototype, 'addInterval');
    const listenPort = await freePort();
    base = `http://127.0.0.1:${listenPort}`;
    const registry = {
      memory: defineSink(z.object({}).strict(), () => (sinks.memory = new MemorySink('memory'))),
      bomb: defineSink(z.object({}).strict(), () => (sinks.bomb = new MemorySink('bomb'))),
    };
    const { config } = loadConfig({ env: { BPFAGENT_LISTEN: `127.0.0.1:${listenPort}`, BPFAGENT_INTERVAL: '500ms' }, file: configFile('sinks:\n  bomb: {}\n  memory: {}\n'), sinks: registry });
    const log = pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, cb) => (logLines.push(...c.toString().split('\n').filter(Boolean)), cb()) }));
    signalListenersBefore = process.listeners('SIGTERM');
    run = runAgent(config, log, { registry, sinkStartWaitMs: 1000 });
    await until(() => logLines.some((l) => l.includes('"msg":"ready')) || undefined, 'ready', 15_000, 50).catch((e: Error) => {
      throw new Error(`${e.message}:\n${logLines.join('\n')}`);
    });
  });

  after(() => {
    for (const r of restore) r();
    net?.destroy();
  });

  const errorsOf = async (stage: string): Promise<number> => metricSum(await (await fetch(`${base}/metrics`)).text(), 'bpfagent_pipeline_errors_total', { stage }) ?? NaN;

  /** One connection with a byte count of its own; resolves with its client record, once every sink has it (unless `wait` is false). */
  async function connection(wait = true): Promise<TcpRecord | undefined> {
    const bytes = ++sent;
    const server = new Peer('pfsrv', ['server', '--host', net.b.ipv4, '--port', String(port), '--send', '9'], { netns: net.b.ns });
    await server.waitFor('listening');
    const c = new Peer('pfcli', ['client', '--host', net.b.ipv4, '--port', String(port), '--send', String(bytes)], { netns: net.a.ns });
    const connected = await c.waitFor('connected');
    await c.waitFor('done');
    await server.exited;
    if (!wait) return undefined;
    const r = await until(() => {
      const found = ['memory', 'bomb'].map((s) =>
        sinks[s]!.got.find((r): r is ShippedRecord & TcpRecord => r.proto === 'tcp' && r.local.comm === 'pfcli' && r.bytesSent === bytes),
      );
      return found.every(Boolean) ? found[0] : undefined;
    }, `the record of the ${bytes}-byte connection in both sinks`, 10_000, 50);
    assert.deepEqual([r.local.pid, r.local.port, r.remote.port, r.bytesReceived, r.outcome], [connected.pid, Number(connected.localPort), port, 9, 'closed']);
    return r;
  }

  for (const stage of ['decode', 'enrich', 'interval', 'metrics', 'flows', 'store', 'sink']) {
    test(`${stage}: one exception, counted; the next connection is recorded exactly`, async () => {
      assert.equal(await errorsOf(stage), 0);
      armed.set(stage, 1);
      // (the host's other traffic, or the interval timer, may set it off first)
      const triggered = connection(false);
      await until(() => ((armed.get(stage) ?? 0) > 0 ? undefined : true), `the ${stage} fault to fire`, 10_000, 20);
      await triggered; // the fault may have cost this connection's record
      assert.equal(await errorsOf(stage), 1);
      const after = (await connection())!;
      if (stage === 'enrich') assert.ok(after.locality, 'enrichment works again');
      assert.ok(logLines.some((l) => l.includes(`"stage":"${stage}"`) && l.includes(`injected ${stage} fault`)), `logged for ${stage}`);
      // the store and the API: the edge of the connection made afterwards
      const deadlineApi = Date.now() + 5000;
      for (;;) {
        const g = (await (await fetch(`${base}/api/graph?window=1m&workload=pfcli`)).json()) as { edges: Array<{ bytesSent: number }> };
        if (g.edges.some((e) => e.bytesSent >= after.bytesSent)) break;
        if (Date.now() > deadlineApi) throw new Error(`no edge in the API after the ${stage} fault: ${JSON.stringify(g)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    });
  }

  test('the agent stops normally; the summary counts the exceptions', async () => {
    const ours = process.listeners('SIGTERM').filter((l) => !signalListenersBefore.includes(l));
    for (const l of ours) {
      process.removeListener('SIGTERM', l as (...a: unknown[]) => void);
      (l as (s: string) => void)('SIGTERM');
    }
    assert.equal(await run, 0);
    const summary = logLines.find((l) => l.includes('"msg":"summary:'))!;
    assert.equal((JSON.parse(summary) as { pipelineErrors: number }).pipelineErrors, 7);
    assert.match(summary, /pipeline exception 7\b/, 'a loss the summary line names');
  });
});
