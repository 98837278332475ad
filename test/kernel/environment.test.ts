/**
 * Missing privileges and kernel features: one clear line and exit code 2,
 * nothing on stdout.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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

  test('a kubeconfig that is missing or not YAML: names the file and the cause, exit 2, nothing traced', () => {
    const missing = run([process.execPath, AGENT_JS, 'trace', '--json', '--kubeconfig', '/nonexistent/kubeconfig']);
    assert.equal(missing.code, 2, missing.stderr);
    assert.equal(missing.stdout, '');
    assert.match(missing.stderr, /^bpfagent: kubernetes: cannot load kubeconfig '\/nonexistent\/kubeconfig' \(--kubeconfig\): ENOENT/);
    assert.equal(missing.stderr.trim().split('\n').length, 1, 'one line');

    const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-kc-'));
    writeFileSync(path.join(dir, 'kubeconfig'), 'clusters: [\n');
    const bad = run([process.execPath, AGENT_JS, 'trace', '--json', '--kubeconfig', path.join(dir, 'kubeconfig')]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.equal(bad.stdout, '');
    assert.ok(bad.stderr.includes(`cannot load kubeconfig '${path.join(dir, 'kubeconfig')}'`), bad.stderr);
    // one line: refused before the probes were attached (no collector to stop, no summary)
    assert.match(bad.stderr, /^bpfagent: kubernetes: cannot load kubeconfig /);
    assert.equal(bad.stderr.trim().split('\n').length, 1, `one line: ${bad.stderr}`);
  });
});
