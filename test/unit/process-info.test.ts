import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CMDLINE_MAX, ProcessInfoCache, parseProcStat } from '../../src/enrich/process-info.js';

let root: string;

/**
 * A fixture /proc/PID: stat with the given comm, ppid and start time, cmdline
 * from args, exe symlink, and task/TID/comm for the main thread and one more
 * thread per name in `threads`.
 */
function proc(
  pid: number,
  p: { comm: string; ppid?: number; start: number; args?: string[]; exe?: string; threads?: string[] },
): void {
  const dir = join(root, String(pid));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  // fields 3..52 as the kernel writes them: state, ppid, ..., starttime is field 22
  const fields = ['S', String(p.ppid ?? 1), ...Array.from({ length: 17 }, (_, i) => String(i + 10)), String(p.start), ...Array(30).fill('0')];
  writeFileSync(join(dir, 'stat'), `${pid} (${p.comm}) ${fields.join(' ')}\n`);
  writeFileSync(join(dir, 'cmdline'), (p.args ?? [p.comm]).map((a) => a + '\0').join(''));
  symlinkSync(p.exe ?? `/usr/bin/${p.comm}`, join(dir, 'exe'));
  [p.comm, ...(p.threads ?? [])].forEach((name, i) => {
    mkdirSync(join(dir, 'task', String(pid + i)), { recursive: true });
    writeFileSync(join(dir, 'task', String(pid + i), 'comm'), `${name}\n`);
  });
}

function gone(pid: number): void {
  rmSync(join(root, String(pid)), { recursive: true, force: true });
}

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

before(() => {
  root = mkdtempSync(join(tmpdir(), 'bpfagent-proc-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

describe('parseProcStat', () => {
  test('comm with spaces and parentheses: the fields are those after the last ")"', () => {
    const st = parseProcStat('42 (a) b (c)) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 1 2 3\n');
    assert.deepEqual(st, { comm: 'a) b (c)', ppid: 7, startTicks: 123456 });
  });
  test('garbage is undefined, not a throw', () => {
    assert.equal(parseProcStat(''), undefined);
    assert.equal(parseProcStat('42 (x'), undefined);
    assert.equal(parseProcStat('42 (x) S'), undefined);
  });
});

/**
 * Asks for `stayed`, in that order (each a hit), then for `evicted` (each a
 * miss). The asking itself makes them the most recently used.
 */
function assertKept(c: ProcessInfoCache, stayed: number[], evicted: number[]): void {
  const misses = c.stats.misses;
  for (const pid of stayed) c.get(pid);
  assert.equal(c.stats.misses, misses, `${stayed.join(', ')} stayed`);
  for (const pid of evicted) c.get(pid);
  assert.equal(c.stats.misses, misses + evicted.length, `${evicted.join(', ')} evicted`);
}

describe('ProcessInfoCache (fixture /proc)', () => {
  test('a normal process: exe, cmdline, ppid, start time, comm; the second lookup is a hit', () => {
    proc(100, { comm: 'nginx', ppid: 1, start: 5000, args: ['nginx', '-g', 'daemon off;'], exe: '/usr/sbin/nginx' });
    const c = new ProcessInfoCache({ procRoot: root });
    const want = { pid: 100, exe: '/usr/sbin/nginx', cmdline: 'nginx -g daemon off;', ppid: 1, startTicks: 5000, comm: 'nginx' };
    assert.deepEqual(c.get(100, 'nginx'), want);
    assert.deepEqual(c.get(100, 'nginx'), want);
    assert.deepEqual([c.stats.misses, c.stats.hits, c.size], [1, 1, 1]);
  });

  test('comm with spaces and ")"; a deleted executable loses its " (deleted)" suffix', () => {
    proc(101, { comm: 'my (odd)) prog', ppid: 100, start: 6000, exe: '/opt/app/bin/server (deleted)' });
    const c = new ProcessInfoCache({ procRoot: root });
    const info = c.get(101, 'my (odd)) prog')!;
    assert.deepEqual([info.comm, info.ppid, info.startTicks, info.exe], ['my (odd)) prog', 100, 6000, '/opt/app/bin/server']);
  });

  test('a long cmdline is cut to CMDLINE_MAX characters ending with an ellipsis; one just fitting is kept whole', () => {
    const long = ['java', '-cp', 'x'.repeat(5000), 'Main'];
    proc(102, { comm: 'java', start: 1, args: long });
    const fits = ['y'.repeat(CMDLINE_MAX - 2), 'z'];
    proc(103, { comm: 'fits', start: 1, args: fits });
    proc(104, { comm: 'utf8', start: 1, args: ['é'.repeat(1000)] });
    const c = new ProcessInfoCache({ procRoot: root });
    const cut = c.get(102)!.cmdline;
    assert.equal(cut.length, CMDLINE_MAX);
    assert.ok(cut.startsWith('java -cp xxx'));
    assert.ok(cut.endsWith('x…'));
    assert.equal(c.get(103)!.cmdline, fits.join(' '));
    assert.equal(c.get(103)!.cmdline.length, CMDLINE_MAX);
    const u = c.get(104)!.cmdline;
    assert.equal(u, 'é'.repeat(CMDLINE_MAX - 1) + '…', 'multi-byte characters are cut whole');
  });

  test('pid reuse: another start time after revalidateMs is a new process, counted', () => {
    proc(110, { comm: 'worker', start: 7000, args: ['worker', '--old'] });
    const t = clock();
    const c = new ProcessInfoCache({ procRoot: root, revalidateMs: 1000, now: t.now });
    assert.equal(c.get(110)!.cmdline, 'worker --old');
    proc(110, { comm: 'worker', start: 9000, args: ['worker', '--new'] });
    t.advance(500);
    assert.equal(c.get(110)!.cmdline, 'worker --old', 'within revalidateMs the cache answers without reading /proc');
    t.advance(600);
    const info = c.get(110)!;
    assert.deepEqual([info.cmdline, info.startTicks], ['worker --new', 9000]);
    assert.equal(c.stats.reused, 1);
  });

  test('pid reuse: a different comm is caught at once, without waiting for revalidation', () => {
    proc(111, { comm: 'bash', start: 100 });
    const t = clock();
    const c = new ProcessInfoCache({ procRoot: root, now: t.now });
    assert.equal(c.get(111, 'bash')!.comm, 'bash');
    proc(111, { comm: 'curl', start: 200, exe: '/usr/bin/curl' });
    const info = c.get(111, 'curl')!;
    assert.deepEqual([info.comm, info.exe, info.startTicks], ['curl', '/usr/bin/curl', 200]);
    assert.equal(c.stats.reused, 1);
  });

  test('an exec (same pid, same start time, new comm) is re-read but is not a reuse', () => {
    proc(114, { comm: 'sh', start: 500, args: ['sh', '-c', 'exec sleep 9'], exe: '/bin/dash' });
    const c = new ProcessInfoCache({ procRoot: root, now: clock().now });
    assert.equal(c.get(114, 'sh')!.exe, '/bin/dash');
    proc(114, { comm: 'sleep', start: 500, args: ['sleep', '9'], exe: '/bin/sleep' });
    const info = c.get(114, 'sleep')!;
    assert.deepEqual([info.comm, info.exe, info.cmdline, info.startTicks], ['sleep', '/bin/sleep', 'sleep 9', 500]);
    assert.equal(c.stats.reused, 0);
  });

  test('a record made before an exec gets nothing: no thread carries its comm any more', () => {
    proc(115, { comm: 'sleep', start: 600, args: ['sleep', '1'], exe: '/bin/sleep' });
    const t = clock();
    const c = new ProcessInfoCache({ procRoot: root, revalidateMs: 1000, now: t.now });
    // bash connected, then exec'd sleep before its record was read: sleep's exe is not bash's
    assert.equal(c.get(115, 'bash'), undefined);
    assert.equal(c.get(115, 'sleep')!.exe, '/bin/sleep', "the new image's own records still get it");
    const misses = c.stats.misses;
    assert.equal(c.get(115, 'bash'), undefined, 'remembered: no second look at /proc');
    assert.deepEqual([c.stats.otherImage, c.stats.misses, c.stats.reused, c.size], [2, misses, 0, 1]);
    // asked again once due: a thread named so since is believed
    proc(115, { comm: 'sleep', start: 600, args: ['sleep', '1'], exe: '/bin/sleep', threads: ['bash'] });
    t.advance(1000);
    assert.equal(c.get(115, 'bash')!.exe, '/bin/sleep');
  });

  test('a thread name is not a reuse: the start time is checked once, then the name is known', () => {
    proc(112, { comm: 'node', start: 300, threads: ['libuv-worker'] });
    const c = new ProcessInfoCache({ procRoot: root, now: clock().now });
    c.get(112, 'node');
    const misses = c.stats.misses;
    assert.equal(c.get(112, 'libuv-worker')!.comm, 'node');
    assert.equal(c.get(112, 'libuv-worker')!.comm, 'node');
    assert.deepEqual([c.stats.reused, c.stats.misses], [0, misses]);
  });

  test('comm is compared on its first 15 characters, as the kernel truncates it', () => {
    proc(113, { comm: 'averyverylongna', start: 400 });
    const c = new ProcessInfoCache({ procRoot: root, now: clock().now });
    assert.ok(c.get(113, 'averyverylongname'));
    assert.ok(c.get(113, 'averyverylongna'));
    assert.equal(c.stats.reused, 0);
  });

  test('a gone process is undefined, remembered briefly, then looked up again', () => {
    const t = clock();
    const c = new ProcessInfoCache({ procRoot: root, revalidateMs: 1000, now: t.now });
    for (let i = 0; i < 100; i++) assert.equal(c.get(120, 'ghost'), undefined);
    assert.deepEqual([c.stats.misses, c.stats.gone], [1, 1], 'a storm of records for a dead pid reads /proc once');
    proc(120, { comm: 'ghost', start: 1 });
    assert.equal(c.get(120, 'ghost'), undefined, 'still remembered as gone');
    t.advance(1000);
    assert.equal(c.get(120, 'ghost')!.comm, 'ghost');
  });

  test('a cached process that exits is undefined at its next check', () => {
    proc(121, { comm: 'short', start: 1 });
    const t = clock();
    const c = new ProcessInfoCache({ procRoot: root, revalidateMs: 1000, now: t.now });
    assert.ok(c.get(121));
    gone(121);
    t.advance(1000);
    assert.equal(c.get(121), undefined);
    assert.deepEqual([c.size, c.stats.gone], [0, 1]);
  });

  test('unreadable parts are empty, never a throw (kernel thread: no exe, empty cmdline)', () => {
    const dir = join(root, '130');
    mkdirSync(dir);
    writeFileSync(join(dir, 'stat'), '130 (kworker/0:1) I 2 0 0 0 -1 69238880 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0\n');
    writeFileSync(join(dir, 'cmdline'), '');
    const c = new ProcessInfoCache({ procRoot: root });
    assert.deepEqual(c.get(130), { pid: 130, exe: '', cmdline: '', ppid: 2, startTicks: 55, comm: 'kworker/0:1' });
    assert.equal(new ProcessInfoCache({ procRoot: join(root, 'nowhere') }).get(1), undefined);
  });

  test('bounded: the least recently used entry goes, counted', () => {
    for (let pid = 200; pid < 210; pid++) proc(pid, { comm: `p${pid}`, start: pid });
    const c = new ProcessInfoCache({ procRoot: root, maxEntries: 3, now: clock().now });
    c.get(200);
    c.get(201);
    c.get(202);
    c.get(200); // 200 is now the most recent: 201 goes next
    c.get(203);
    assert.equal(c.size, 3);
    assert.equal(c.stats.evictions, 1);
    assertKept(c, [200, 202, 203], [201]);
    for (let pid = 200; pid < 210; pid++) c.get(pid);
    assert.equal(c.size, 3);
  });
});

describe('ProcessInfoCache recency order', () => {
  test('hits, re-reads, reuse and exits keep the least recently used first out, and the size exact', () => {
    for (let pid = 300; pid < 306; pid++) proc(pid, { comm: `q${pid}`, start: pid });
    const t = clock();
    const c = new ProcessInfoCache({ procRoot: root, maxEntries: 3, revalidateMs: 1000, now: t.now });
    c.get(300);
    c.get(301);
    c.get(302);
    c.get(302); // already the newest
    c.get(300); // order now 301, 302, 300
    t.advance(1500);
    c.get(301); // revalidated from /proc, still the same process: the newest; order 302, 300, 301
    c.get(303); // evicts 302
    assert.equal(c.size, 3);
    assertKept(c, [300, 301, 303], []);
    // 301 reused by a new process: its entry goes from the middle of the list
    proc(301, { comm: 'q301', start: 99_999 });
    t.advance(1500);
    assert.equal(c.get(301)!.startTicks, 99_999);
    assert.equal(c.stats.reused, 1);
    assert.equal(c.size, 3);
    // 300 exits: gone at its next check, its entry dropped
    gone(300);
    t.advance(1500);
    assert.equal(c.get(300), undefined);
    assert.equal(c.size, 2);
    c.get(304);
    c.get(305); // evicts the least recent of 303, 301, 304: 303
    assert.equal(c.size, 3);
    assertKept(c, [301, 304, 305], [303]);
  });
});

describe('ProcessInfoCache (real /proc)', () => {
  test('this process: exe is node, ppid is our parent', () => {
    const c = new ProcessInfoCache();
    const info = c.get(process.pid)!;
    assert.equal(info.exe, process.execPath);
    assert.equal(info.ppid, process.ppid);
    assert.equal(info.pid, process.pid);
    assert.ok(info.startTicks > 0);
    assert.ok(info.cmdline.startsWith(process.argv0) || info.cmdline.includes('node'), info.cmdline);
  });
});
