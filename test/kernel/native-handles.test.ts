/**
 * The native addon's handles are safe in any order: detach(), ringStop() and
 * close(), each twice, in all 90 orderings, on a loaded and attached TCP
 * object, and the garbage collector finalizing the object's handle before
 * its link and ring handles (and the other way round). Run by
 * test/helpers/native-orders.ts in a child process: once with the addon as
 * built, once with the addon rebuilt with AddressSanitizer (gcc
 * -fsanitize=address, libasan preloaded into node), which reports any use
 * after free or double free that the plain build might survive by luck.
 * (Before link and ring handles were reference-counted, the plain build
 * aborted with "free(): invalid size" and ASan reported a heap-use-after-free
 * in ringStop after close.)
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { helperScript, REPO_ROOT } from '../helpers/processes.js';

const ADDON = path.join(REPO_ROOT, 'build/Release/bpfagent_native.node');

function orders(addon: string, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--expose-gc', helperScript('native-orders'), addon], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

describe('native handles: detach, ringStop and close in any order', { skip: KERNEL_SKIP }, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-asan-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('every ordering, and the garbage collector in both orders: no call throws, nothing crashes', () => {
    const r = orders(ADDON);
    assert.equal(r.status, 0, `exit ${r.status} ${r.signal ?? ''}\n${r.stderr}`);
    assert.deepEqual(JSON.parse(r.stdout), { orders: 93, calls: 633, errors: [] });
  });

  test('the same under AddressSanitizer: no use after free, no double free', () => {
    const asanAddon = path.join(dir, 'bpfagent_native.node');
    execFileSync('gcc', ['-shared', '-fPIC', '-std=gnu11', '-g', '-O1', '-fno-omit-frame-pointer', '-fsanitize=address', '-I/usr/include/node', path.join(REPO_ROOT, 'native/bpf_addon.c'), '-lbpf', '-lelf', '-lz', '-lpthread', '-o', asanAddon], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const libasan = execFileSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();
    assert.ok(path.isAbsolute(libasan), `libasan found (${libasan}): install gcc`);
    // node itself is not instrumented: its own allocations are not checked, nor leaks (detect_leaks=0)
    const r = orders(asanAddon, { LD_PRELOAD: libasan, ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=0:exitcode=99' });
    assert.doesNotMatch(r.stderr, /AddressSanitizer/, r.stderr);
    assert.equal(r.status, 0, `exit ${r.status} ${r.signal ?? ''}\n${r.stderr}`);
    assert.deepEqual(JSON.parse(r.stdout), { orders: 93, calls: 633, errors: [] });
  });
});
