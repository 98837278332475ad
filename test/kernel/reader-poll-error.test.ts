/**
 * The ring buffer's native reader thread ending on a real poll error, with
 * the real probes and the real addon: the epoll descriptor libbpf's ring
 * buffer waits on is taken from under it (closed, its number then held by
 * /dev/null), so the thread's next epoll_wait() fails (EINVAL, or EBADF if it
 * ran between the two), the thread ends and hands the errno over. The agent
 * must not stay ready reporting nothing: /readyz 503, /api/status and
 * /metrics say tracing stopped, and so does the exit summary; the web UI (in
 * Chromium) shows it, with the events lost as /api/status counts them (a
 * connection map of 16 makes some: the one loss set, read by every view).
 * (test/unit/reader-failure.test.ts covers the same path over an injected
 * binding, and the records the reader drops for lack of memory.)
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Writable } from 'node:stream';
import pino from 'pino';
import { configSchema } from '../../src/config/schema.js';
import { runAgent } from '../../src/cli/run.js';
import { agentBrowser, CHROMIUM_SKIP } from '../helpers/chromium.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { openConnections } from '../helpers/listen.js';
import { REPO_ROOT } from '../helpers/processes.js';
import { until } from '../helpers/until.js';

const SKIP = KERNEL_SKIP || CHROMIUM_SKIP;
const { fmtCount } = (await import(pathToFileURL(path.join(REPO_ROOT, 'src/ui/static/format.js')).href)) as { fmtCount: (n: number) => string };

/** This process's epoll descriptors. */
function epollFds(): Set<number> {
  const out = new Set<number>();
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${name}`) === 'anon_inode:[eventpoll]') out.add(Number(name));
    } catch {
      // the directory's own descriptor, gone once listed
    }
  }
  return out;
}

/** Close fd and hold its number with /dev/null, so that nothing else (whose descriptor libbpf would close at the end) gets it. */
function replaceWithDevNull(fd: number): void {
  closeSync(fd);
  const extra: number[] = [];
  for (let i = 0; i < 1024; i++) {
    const got = openSync('/dev/null', 'r');
    if (got === fd) break;
    extra.push(got);
  }
  for (const e of extra) closeSync(e);
}

describe('bpfagent run whose ring buffer reader fails to poll', { skip: SKIP }, () => {
  test('tracing stops and the agent says so: /readyz 503, /api/status tracing.ok false with the errno, bpfagent_tracing 0, the web UI, the summary', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, done) => (lines.push(JSON.parse(c.toString()) as Record<string, unknown>), done()) }));
    const cfg = configSchema().parse({ listen: '127.0.0.1:0', interval: '1h', trace: { maxConnections: 16 } });
    const before = epollFds();
    const exited = runAgent(cfg, log);
    const waitFor = <T>(what: string, f: () => T | undefined | Promise<T | undefined>): Promise<T> =>
      until(f, what, 10_000, 10).catch((e: Error) => {
        throw new Error(`${e.message}; logged ${JSON.stringify(lines.map((l) => l['msg']))}`);
      });
    try {
      const listen = await waitFor('the listener', () => lines.find((l) => typeof l['listen'] === 'string')?.['listen'] as string | undefined);
      await waitFor('ready', () => lines.find((l) => String(l['msg']).startsWith('ready:')));
      const get = async (p: string): Promise<{ status: number; body: string }> => {
        const r = await fetch(`http://${listen}${p}`);
        return { status: r.status, body: await r.text() };
      };
      assert.equal((await get('/readyz')).status, 200);
      assert.match((await get('/metrics')).body, /^bpfagent_tracing 1$/m);
      // 80 sockets, a connection map of 16: most are lost (connection_map_full)
      await (await openConnections(40)).closeAll();

      // the one epoll descriptor made since: the ring buffer's (node's own event loop made its own before)
      const made = [...epollFds()].filter((fd) => !before.has(fd));
      assert.equal(made.length, 1, `one new epoll descriptor, the ring buffer's: ${JSON.stringify(made)}`);
      replaceWithDevNull(made[0]!);

      const ready = await waitFor('/readyz 503', async () => {
        const r = await get('/readyz');
        return r.status === 503 ? r : undefined;
      });
      assert.deepEqual(JSON.parse(ready.body), { status: 'not ready', checks: { probes: true, tracing: false } });
      const status = JSON.parse((await get('/api/status')).body) as { tracing: { ok: boolean; error: string } };
      assert.equal(status.tracing.ok, false);
      assert.match(status.tracing.error, /^reading the kernel's ring buffer failed \(errno (22|9)\)/);
      assert.match((await get('/metrics')).body, /^bpfagent_tracing 0$/m);
      const logged = lines.find((l) => String(l['msg']).startsWith('tracing stopped:'));
      assert.equal(logged?.['level'], 50, 'logged as an error');
      assert.ok(logged?.['errno'] === 22 || logged?.['errno'] === 9, JSON.stringify(logged));

      // the web UI's status line: what its own /api/status answer says, lost and tracing stopped
      const profile = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-conns-chromium-'));
      const { context, page } = await agentBrowser(profile, `http://${listen}/`);
      try {
        const answer = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/status');
        await page.goto(`http://${listen}/`);
        const seen = (await (await answer).json()) as { lost: { total: number; reasons: Record<string, number> }; tracing: { ok: boolean; error: string } };
        assert.ok(seen.lost.reasons['connection_map_full']! >= 64, JSON.stringify(seen.lost));
        assert.equal(seen.tracing.ok, false);
        const text = await waitFor('the status line', async () => {
          const t = (await page.textContent('#status')) ?? '';
          return t.includes('tracing stopped') ? t : undefined;
        });
        assert.ok(text.includes(` · ${fmtCount(seen.lost.total)} events lost · tracing stopped: ${seen.tracing.error}`), text);
        assert.ok(await page.locator('#status.stale').count(), 'shown as a problem');
      } finally {
        await context.close();
        rmSync(profile, { recursive: true, force: true });
      }
    } finally {
      process.emit('SIGTERM');
    }
    assert.equal(await exited, 0);
    const summary = lines.find((l) => String(l['msg']).startsWith('summary:'));
    assert.equal(summary?.['tracingStopped'], 1, JSON.stringify(summary));
    assert.match(String(summary?.['msg']), /; TCP tracing stopped early/);
  });
});
