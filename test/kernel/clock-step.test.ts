/**
 * A wall-clock step does not shift records by it. `bpfagent trace` runs
 * under libfaketime, whose offset the test changes while it runs (the
 * machine's clock is never touched; the agent's monotonic clock and the
 * kernel's are not faked): set back an hour, then forward again. Connections
 * made before, between and after the steps carry the wall time of their own
 * moment (the agent follows a step from the next interval end on), their
 * durations are exact, and a UDP flow that runs across both steps is
 * reported every interval with an interval of about a second, never one
 * stretched or made negative by the step.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TcpRecord, UdpRecord } from '../../src/events/records.js';
import { TraceAgent } from '../helpers/agent.js';
import { TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer } from '../helpers/processes.js';

const FAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const SKIP = KERNEL_SKIP || (!existsSync(FAKETIME) && process.env.CI !== 'true' ? `${FAKETIME} missing (bash scripts/install.sh --test)` : false);
const HOUR = 3_600_000;

describe('a wall-clock step, seen by the agent through libfaketime', { skip: SKIP }, () => {
  let net: TestNetwork;
  let dir: string;
  let agent: TraceAgent;
  const port = 27000 + (process.pid % 100) * 4;

  before(async () => {
    net = new TestNetwork(42);
    dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-hardening-clock-'));
    writeFileSync(path.join(dir, 'offset'), '+0\n');
    agent = new TraceAgent(['--interval', '1s'], 'trace', {
      ...process.env,
      LD_PRELOAD: FAKETIME,
      FAKETIME_TIMESTAMP_FILE: path.join(dir, 'offset'),
      FAKETIME_NO_CACHE: '1',
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
      NO_FAKE_STAT: '1',
    });
    await agent.ready;
  });

  after(async () => {
    await agent?.stop();
    net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A connection whose client waits `holdMs` before sending; its record and the real time around it. */
  async function connection(bytes: number, holdMs: number): Promise<{ r: TcpRecord; fromMs: number; toMs: number }> {
    const fromMs = Date.now();
    const server = new Peer('cksrv', ['server', '--host', net.b.ipv4, '--port', String(port), '--send', '5'], { netns: net.b.ns });
    await server.waitFor('listening');
    const c = new Peer('ckcli', ['client', '--host', net.b.ipv4, '--port', String(port), '--send', String(bytes), '--delay-send', String(holdMs)], { netns: net.a.ns });
    await c.waitFor('done');
    const [r] = await agent.waitFor((x) => x.local.comm === 'ckcli' && x.bytesSent === bytes);
    return { r: r!, fromMs, toMs: Date.now() };
  }

  let sinkPort = 0;
  let fromPort = 0;

  test('before, between and after the steps: each record on the clock of its moment; durations and UDP intervals exact', async () => {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const sink = dgram.createSocket('udp4');
    await new Promise<void>((r) => sink.bind(0, '127.0.0.1', r));
    sinkPort = sink.address().port;
    fromPort = udp.address().port;
    const sender = setInterval(() => udp.send(Buffer.alloc(32), sinkPort, '127.0.0.1'), 50);
    try {
      const setOffset = async (text: string): Promise<void> => {
        writeFileSync(path.join(dir, 'offset'), `${text}\n`);
        await new Promise((r) => setTimeout(r, 2500)); // an interval end notices it
      };
      const a = await connection(1111, 300);
      await setOffset('-1h');
      const b = await connection(2222, 300);
      await setOffset('+0');
      const c = await connection(3333, 300);

      const at = (x: { r: TcpRecord }) => Date.parse(x.r.ts);
      assert.ok(at(a) >= a.fromMs && at(a) <= a.toMs, `before: ${a.r.ts} in the real time of the connection`);
      assert.ok(at(b) >= b.fromMs - HOUR && at(b) <= b.toMs - HOUR, `set back an hour: ${b.r.ts} an hour before ${new Date(b.fromMs).toISOString()}`);
      assert.ok(at(c) >= c.fromMs && at(c) <= c.toMs, `set forward again: ${c.r.ts}`);
      for (const x of [a, b, c]) assert.ok(x.r.durationMs >= 300 && x.r.durationMs < 300 + (x.toMs - x.fromMs), `duration ${x.r.durationMs} ms: monotonic`);
    } finally {
      clearInterval(sender);
      udp.close();
      sink.close();
    }
    const exit = await agent.stop();
    assert.equal(exit.code, 0, exit.stderr);
    const ours = agent.udp((r: UdpRecord) => r.local.port === fromPort && r.remote.port === sinkPort && r.packetsSent > 0);
    assert.ok(ours.length >= 6, `the flow reported each interval: ${ours.length}`);
    // the last record is the exit's partial interval
    for (const r of ours.slice(0, -1)) assert.ok(r.intervalMs >= 700 && r.intervalMs <= 1600, `interval ${r.intervalMs} ms (${r.ts})`);
    assert.equal((exit.summary as { clockSteps: number }).clockSteps, 2);
    assert.match(exit.stderr, /the wall clock was stepped by -3(599\.9|600\.0)\d\d s/);
    assert.match(exit.stderr, /the wall clock was stepped by 3(599\.9|600\.0)\d\d s/);
  });
});
