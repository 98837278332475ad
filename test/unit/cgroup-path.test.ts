import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { findCgroup2Root } from '../../src/bpf/cgroup-root.js';
import { CgroupPaths } from '../../src/enrich/cgroup-path.js';
import { parseContainerCgroup, type ContainerInfo } from '../../src/enrich/container.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';

/**
 * Real cgroup v2 directories laid out as kubelet makes them, under a parent
 * named after this process so that concurrent runs never meet. Needs root.
 */
const base = `/bpfagent-test-${process.pid}`;
const hex = (seed: number): string => Array.from({ length: 64 }, (_, i) => ((seed * 7 + i * 13) % 16).toString(16)).join('');
const uid = (seed: number): string => {
  const h = hex(seed).slice(0, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};
const sd = (u: string): string => u.replace(/-/g, '_');

const layouts: Array<{ name: string; path: string; want: ContainerInfo }> = [
  {
    name: 'systemd driver, containerd, burstable',
    path: `${base}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${sd(uid(1))}.slice/cri-containerd-${hex(1)}.scope`,
    want: { id: hex(1), runtime: 'containerd', podUid: uid(1), qosClass: 'burstable' },
  },
  {
    name: 'systemd driver, CRI-O, guaranteed',
    path: `${base}/kubepods.slice/kubepods-pod${sd(uid(2))}.slice/crio-${hex(2)}.scope`,
    want: { id: hex(2), runtime: 'cri-o', podUid: uid(2), qosClass: 'guaranteed' },
  },
  {
    name: 'cgroupfs driver, containerd, besteffort',
    path: `${base}/kubepods/besteffort/pod${uid(3)}/${hex(3)}`,
    want: { id: hex(3), runtime: 'unknown', podUid: uid(3), qosClass: 'besteffort' },
  },
  {
    name: 'cgroupfs driver, CRI-O, burstable',
    path: `${base}/kubepods/burstable/pod${uid(4)}/crio-${hex(4)}`,
    want: { id: hex(4), runtime: 'cri-o', podUid: uid(4), qosClass: 'burstable' },
  },
];

let root = '';
let child: ChildProcess | undefined;

function rmTree(dir: string): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) rmTree(`${dir}/${e.name}`);
  rmdirSync(dir); // a cgroup directory goes whole, interface files included
}

describe('CgroupPaths on real cgroup v2 directories', { skip: KERNEL_SKIP }, () => {
  before(() => {
    root = findCgroup2Root() ?? '';
    assert.ok(root, 'cgroup2 is mounted');
    for (const l of layouts) mkdirSync(root + l.path, { recursive: true });
  });

  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
    // the kernel lets go of an exited task's cgroup a moment after it is reaped
    for (let i = 0; ; i++) {
      try {
        rmTree(root + base);
        break;
      } catch (err) {
        if (i >= 50) throw err;
        await sleep(20);
      }
    }
  });

  test('each kubelet layout: the inode finds the path, and the path names container, runtime, pod and QoS', () => {
    const paths = new CgroupPaths(root);
    for (const l of layouts) {
      const ino = statSync(root + l.path).ino;
      assert.equal(paths.pathOf(ino), l.path, l.name);
      assert.deepEqual(parseContainerCgroup(paths.pathOf(ino)!), l.want, l.name);
    }
    assert.equal(paths.stats.rescans, 1, 'one walk cached them all');
    assert.equal(paths.stats.hits, layouts.length * 2 - 1);
  });

  test('the root is "/", by id 1 and by its inode', () => {
    const paths = new CgroupPaths(root);
    assert.equal(paths.pathOf(1), '/');
    assert.equal(paths.pathOf(statSync(root).ino), '/');
  });

  test('rescans are rate-limited: an unknown id, then a cgroup created since, is found only after rescanMinMs', () => {
    let t = 0;
    const paths = new CgroupPaths(root, { rescanMinMs: 2000, now: () => t });
    const unknown = 0x7fff_ffff_fff0;
    assert.equal(paths.pathOf(unknown), undefined);
    assert.equal(paths.pathOf(unknown), undefined);
    assert.deepEqual([paths.stats.rescans, paths.stats.misses], [1, 2]);
    const fresh = `${base}/kubepods/besteffort/pod${uid(5)}/${hex(5)}`;
    mkdirSync(root + fresh, { recursive: true });
    const ino = statSync(root + fresh).ino;
    t += 1999;
    assert.equal(paths.pathOf(ino), undefined, 'no walk before rescanMinMs');
    t += 1;
    assert.equal(paths.pathOf(ino), fresh);
    assert.equal(paths.stats.rescans, 2);
  });

  test('bounded: a walk over more cgroups than maxEntries keeps the one asked for', () => {
    const paths = new CgroupPaths(root, { maxEntries: 2 });
    const wanted = layouts[0]!;
    assert.equal(paths.pathOf(statSync(root + wanted.path).ino), wanted.path);
    assert.ok(paths.size <= 2);
    assert.ok(paths.stats.evictions > 0);
    assert.equal(paths.pathOf(statSync(root + wanted.path).ino), wanted.path);
    assert.equal(paths.stats.rescans, 1);
  });

  test('a process moved into a container cgroup: found through /proc/PID/cgroup without walking the tree', async () => {
    const l = layouts[1]!;
    child = spawn('sleep', ['30'], { stdio: 'ignore' });
    await once(child, 'spawn');
    writeFileSync(`${root}${l.path}/cgroup.procs`, String(child.pid));
    assert.ok(readFileSync(`/proc/${child.pid}/cgroup`, 'utf8').includes(`0::${l.path}\n`));
    const ino = statSync(root + l.path).ino;
    const paths = new CgroupPaths(root, { now: () => 0 });
    assert.equal(paths.pathOf(ino, child.pid), l.path);
    assert.deepEqual([paths.stats.byPid, paths.stats.rescans], [1, 0]);
    assert.deepEqual(parseContainerCgroup(l.path), l.want);
    // a stale hint (the record's cgroup is not the one the pid is in now) is not believed
    const other = layouts[0]!;
    assert.equal(paths.pathOf(statSync(root + other.path).ino, child.pid), other.path);
    assert.deepEqual([paths.stats.byPid, paths.stats.rescans], [1, 1]);
    // a hint for a pid that does not exist is harmless
    assert.equal(paths.pathOf(ino, 0x3fffffff), l.path);
  });
});

describe('CgroupPaths learned ahead of need', () => {
  test('a cgroup reported as made is known without /proc or a walk, after it is gone, and bounded', () => {
    const paths = new CgroupPaths('/nonexistent/cgroup', { procRoot: '/nonexistent/proc', maxEntries: 2 });
    paths.learn(4242, `/docker/${hex(6)}`);
    assert.equal(paths.pathOf(4242, 0x3fffffff), `/docker/${hex(6)}`);
    assert.deepEqual([paths.stats.learned, paths.stats.hits, paths.stats.rescans], [1, 1, 0]);
    // a path the kernel had to cut is not believed; invalid ids are ignored
    paths.learn(4243, undefined);
    paths.learn(0, '/x');
    assert.deepEqual([paths.stats.learned, paths.size], [1, 1]);
    // the least recently used goes first
    paths.learn(4244, '/a');
    paths.pathOf(4242);
    paths.learn(4245, '/b');
    assert.deepEqual([paths.size, paths.stats.evictions, paths.pathOf(4244)], [2, 1, undefined]);
    assert.equal(paths.pathOf(4242), `/docker/${hex(6)}`);
  });
});

describe('CgroupPaths seeded at start', { skip: KERNEL_SKIP }, () => {
  test('seed() walks the whole tree once, and a later miss may still walk', () => {
    const r = findCgroup2Root();
    assert.ok(r, 'cgroup2 is mounted');
    const dir = `${r}${base}-seed/docker/${hex(7)}`;
    mkdirSync(dir, { recursive: true });
    try {
      let t = 0;
      const paths = new CgroupPaths(r, { now: () => t, procRoot: '/nonexistent/proc' });
      paths.seed();
      assert.equal(paths.stats.rescans, 1);
      assert.equal(paths.pathOf(statSync(dir).ino), `${base}-seed/docker/${hex(7)}`);
      assert.deepEqual([paths.stats.hits, paths.stats.rescans], [1, 1]);
      t += 1;
      assert.equal(paths.pathOf(0x7fff_ffff_fff1), undefined);
      assert.equal(paths.stats.rescans, 2, 'seeding does not hold back the next walk');
    } finally {
      rmTree(`${r}${base}-seed`);
    }
  });
});

describe('CgroupPaths never throws', () => {
  test('a root that does not exist: nothing found, no throw', () => {
    const paths = new CgroupPaths('/nonexistent/cgroup', { procRoot: '/nonexistent/proc' });
    assert.equal(paths.pathOf(12345, process.pid), undefined);
    assert.equal(paths.pathOf(1), '/');
    assert.equal(paths.stats.rescans, 1);
  });
});

describe('findCgroup2Root', () => {
  const line = (id: number, root: string, point: string): string => `${id} 1 0:${id} ${root} ${point} ro,nosuid - cgroup2 cgroup2 rw`;

  test('in a container with its own cgroup namespace: the host tree mounted elsewhere (inode 1) is taken, not the container\'s own', () => {
    const mountinfo = [line(30, '/', '/sys/fs/cgroup'), `31 1 0:5 / /proc rw - proc proc rw`, line(32, '/../../..', '/host/sys/fs/cgroup')].join('\n');
    const ino: Record<string, number> = { '/sys/fs/cgroup': 4711, '/host/sys/fs/cgroup': 1 };
    assert.equal(findCgroup2Root(mountinfo, (p) => ino[p]), '/host/sys/fs/cgroup');
  });

  test('no mount of the hierarchy root: the first of root "/"; none at all: undefined', () => {
    const mountinfo = [line(32, '/../x', '/a'), line(30, '/', '/sys/fs/cgroup/unified')].join('\n');
    assert.equal(findCgroup2Root(mountinfo, () => 99), '/sys/fs/cgroup/unified');
    assert.equal(findCgroup2Root('31 1 0:5 / /proc rw - proc proc rw', () => 1), undefined);
  });

  test('here: the mount found is the hierarchy root', { skip: KERNEL_SKIP }, () => {
    const r = findCgroup2Root();
    assert.ok(r);
    assert.equal(statSync(r).ino, 1);
  });
});
