/**
 * Loss is counted, never silent: overflow the ring buffer (agent stopped
 * while connections close) and the connection map (more concurrent
 * connections than it holds), then check the summary accounts for them;
 * the native reader failing to allocate for the records it reads (libc's
 * realloc made to fail there by an LD_PRELOAD) counts each one dropped.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TraceAgent } from '../helpers/agent.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { openConnections } from '../helpers/listen.js';
import { REPO_ROOT } from '../helpers/processes.js';

describe('loss accounting', { skip: KERNEL_SKIP }, () => {
  test('ring buffer overflow is counted, and everything submitted is delivered', async () => {
    // 4 KiB holds 32 records; the stopped agent cannot drain it
    const agent = new TraceAgent(['--ringbuf-size', '4k']);
    await agent.ready;
    process.kill(agent.child.pid!, 'SIGSTOP');
    let port = 0;
    try {
      const conns = await openConnections(100);
      port = conns.port;
      await conns.closeAll();
    } finally {
      process.kill(agent.child.pid!, 'SIGCONT');
    }
    const exit = await agent.stop();
    assert.equal(exit.code, 0, exit.stderr);
    const s = exit.summary!;
    const ours = agent.records.filter((r) => r.local.port === port || r.remote.port === port).length;
    assert.ok((s['lossRingbufFull'] as number) > 0, `expected ring buffer loss, summary ${JSON.stringify(s)}`);
    assert.ok(ours < 200, `only part of the 200 records fit, got ${ours}`);
    assert.ok(ours + (s['lossRingbufFull'] as number) >= 200, `records ${ours} + lost ${s['lossRingbufFull']} < 200`);
    // nothing is lost between kernel and stdout: every submitted record was printed
    assert.equal(s['records'], s['eventsSubmitted'], JSON.stringify(s));
    // (records of connections still open, the machine's own long-lived ones, come from the per-interval read, not the ring buffer)
    assert.equal(agent.records.filter((r) => r.proto === 'tcp' && r.state !== 'open').length, s['records']);
    assert.match(exit.stderr, /summary: \d+ TCP records.*; lost [1-9]\d* \(ringbuf full [1-9]/);
  });

  test('connection map overflow is counted', async () => {
    const agent = new TraceAgent(['--max-connections', '16']);
    await agent.ready;
    const conns = await openConnections(40); // 80 sockets, both ends
    await conns.closeAll();
    const exit = await agent.stop();
    assert.equal(exit.code, 0, exit.stderr);
    const lost = exit.summary!['lossSockMapFull'] as number;
    const ours = agent.records.filter((r) => r.local.port === conns.port || r.remote.port === conns.port).length;
    assert.ok(ours <= 16, `at most 16 tracked at once, got ${ours} records`);
    assert.ok(ours + lost >= 80, `records ${ours} + untracked ${lost} must cover all 80 sockets`);
  });

  test('UDP flows evicted from a full flow table are counted', async () => {
    const agent = new TraceAgent(['--max-udp-flows', '16', '--interval', '60s']);
    await agent.ready;
    // one unconnected socket, 40 destinations: 40 flows in one interval (nothing listens, so only these)
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const base = 30000 + (process.pid % 100) * 50;
    for (let i = 0; i < 40; i++) await new Promise<void>((r) => sock.send(Buffer.alloc(10), base + i, '127.0.0.1', () => r()));
    const localPort = sock.address().port;
    sock.close();
    const exit = await agent.stop();
    assert.equal(exit.code, 0, exit.stderr);
    const reported = new Set(agent.records.filter((r) => r.proto === 'udp' && r.local.port === localPort).map((r) => r.remote.port));
    const evicted = exit.summary!['udpEvicted'] as number;
    assert.ok(reported.size <= 16, `at most 16 flows fit, ${reported.size} reported`);
    assert.ok(evicted > 0, 'evictions counted');
    assert.ok(reported.size + evicted >= 40, `reported ${reported.size} + evicted ${evicted} must cover the 40 flows`);
  });

  test('records the native reader has no memory for are counted (reader_out_of_memory), and it reads on', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-conns-alloc-'));
    try {
      const shim = path.join(dir, 'fail-ring-alloc.so');
      const failing = path.join(dir, 'failing');
      execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', shim, path.join(REPO_ROOT, 'test/helpers/fail-ring-alloc.c'), '-ldl']);
      const agent = new TraceAgent(['--interval', '600s'], 'trace', { ...process.env, LD_PRELOAD: shim, FAIL_RING_ALLOC_WHILE: failing });
      await agent.ready;
      writeFileSync(failing, '');
      const lost = await openConnections(20);
      await lost.closeAll(); // waits 300 ms: read (and dropped) by then
      rmSync(failing);
      const kept = await openConnections(20);
      await kept.closeAll();
      await agent.waitFor((r) => r.local.port === kept.port || r.remote.port === kept.port, 40);
      const exit = await agent.stop();
      assert.equal(exit.code, 0, exit.stderr);
      const s = exit.summary!;
      const of = (port: number) => agent.records.filter((r) => r.proto === 'tcp' && (r.local.port === port || r.remote.port === port));
      assert.equal(of(lost.port).length, 0, 'no batch could be allocated: none of the first 40 records reached stdout');
      assert.equal(of(kept.port).length, 40, 'the reader went on: all 40 records once memory was there');
      assert.equal(s['tracingStopped'], 0, 'a failed allocation does not end the reader');
      // the first 40, and whatever else closed meanwhile (DNS packets too), each counted
      assert.ok((s['readerDropped'] as number) >= 40, JSON.stringify(s));
      // every TCP record submitted was either printed or counted
      assert.ok((s['records'] as number) + (s['readerDropped'] as number) >= (s['eventsSubmitted'] as number), JSON.stringify(s));
      assert.match(exit.stderr, /summary: .*; lost [1-9]\d* \(.*reader out of memory [1-9]/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
