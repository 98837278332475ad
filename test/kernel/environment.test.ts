/**
 * Missing privileges and kernel features: one clear line and exit code 2,
 * nothing on stdout.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { AGENT_JS } from '../helpers/processes.js';

function run(cmd: string[]) {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('environment errors', { skip: KERNEL_SKIP }, () => {
  test('without capabilities (dropped in a child): names CAP_BPF and CAP_PERFMON, exit 2', () => {
    const r = run(['setpriv', '--bounding-set=-all', '--inh-caps=-all', process.execPath, AGENT_JS, 'trace', '--json']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^bpfagent: missing capabilities CAP_BPF, CAP_PERFMON: run as root/);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  });

  test('as an unprivileged user: same clear error', () => {
    const r = run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, AGENT_JS, 'trace']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /missing capabilities CAP_BPF, CAP_PERFMON/);
  });

  test('kernel BTF missing: names the file and the kernel option', () => {
    const r = run([process.execPath, AGENT_JS, 'trace', '--json', '--btf', '/nonexistent/vmlinux']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /kernel BTF not found at \/nonexistent\/vmlinux \(needs CONFIG_DEBUG_INFO_BTF=y/);
  });

  test('kernel BTF unreadable as BTF: says which file and why, exit 2', () => {
    const r = run([process.execPath, AGENT_JS, 'trace', '--json', '--btf', '/etc/hostname']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /\/etc\/hostname/);
  });
});
