/**
 * trace.cgroup: records of processes in the subtree are kept, the others
 * (another node's, one whose cgroup cannot be told) left out and counted.
 * Over a real directory tree (CgroupPaths finds ids as inode numbers, as on
 * cgroupfs), no kernel needed.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CgroupPaths } from '../../src/enrich/cgroup-path.js';
import { CgroupScope, scopePath } from '../../src/enrich/cgroup-scope.js';
import type { TcpRecord } from '../../src/events/records.js';

describe('CgroupScope', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-cgscope-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const dir = (rel: string): number => {
    mkdirSync(path.join(root, rel), { recursive: true });
    return statSync(path.join(root, rel)).ino;
  };
  const rec = (cgroupId: number): TcpRecord =>
    ({ ts: '', proto: 'tcp', local: { addr: '10.0.0.1', port: 1, pid: 0, comm: 'x', cgroupId, netns: 1 }, remote: { addr: '10.0.0.2', port: 2 } }) as TcpRecord;

  test("a node's subtree: its pods' processes in, another node's and unknown ones out, counted", () => {
    const mine = dir('node-1/kubepods.slice/kubepods-pod1.slice/cri-containerd-aa.scope');
    const node = dir('node-1');
    const theirs = dir('node-10/kubepods.slice/kubepods-pod2.slice');
    const scope = new CgroupScope(scopePath(`${root}/node-1/`, root), new CgroupPaths(root, { rescanMinMs: 0 }));
    assert.equal(scope.path, '/node-1');
    const records = [rec(mine), rec(theirs), rec(node), rec(0), rec(999_999_999)];
    assert.deepEqual(scope.keep(records).map((r) => r.local.cgroupId), [mine, node]);
    assert.equal(scope.rejected, 3, 'node-10 (a prefix of the name is not the subtree), no cgroup, an unknown cgroup');
    assert.equal(scopePath('node-1', root), '/node-1');
    assert.equal(scopePath('/kubepods.slice', root), '/kubepods.slice');
  });

  test('a cgroup is looked up once: its verdict is kept, a cgroup not found yet is asked again', () => {
    const mine = dir('node-2/app.scope');
    const theirs = dir('node-3/app.scope');
    const paths = new CgroupPaths(root, { rescanMinMs: 0 });
    const asked: number[] = [];
    const scope = new CgroupScope('/node-2', { pathOf: (id, pid) => (asked.push(id), paths.pathOf(id, pid)) });
    const records = [rec(mine), rec(theirs), rec(mine), rec(theirs), rec(999_999_998), rec(999_999_998)];
    assert.deepEqual(scope.keep(records).map((r) => r.local.cgroupId), [mine, mine]);
    assert.equal(scope.rejected, 4);
    assert.deepEqual(asked, [mine, theirs, 999_999_998, 999_999_998]);
  });
});
