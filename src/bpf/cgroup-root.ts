import { readFileSync, statSync } from 'node:fs';

/** The root directory of a cgroup v2 hierarchy is kernfs node 1, whatever namespace looks at it. */
const HIERARCHY_ROOT_INO = 1;

function inodeOf(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

/**
 * Mount point of the cgroup v2 hierarchy's root (unified mode: /sys/fs/cgroup;
 * hybrid mode: usually /sys/fs/cgroup/unified), from /proc/self/mountinfo.
 *
 * In a container with a cgroup namespace of its own (Kubernetes on cgroup v2)
 * the runtime's /sys/fs/cgroup is the container's own cgroup, shown as the
 * mount's root "/"; the host's tree, mounted from the host (a hostPath), shows
 * a root of "/../.." there. So the mount whose directory is the hierarchy's
 * root directory (inode 1) is taken first, wherever it is mounted; failing
 * that, the first cgroup2 mount of root "/".
 */
export function findCgroup2Root(
  mountinfo = readFileSync('/proc/self/mountinfo', 'utf8'),
  inode: (path: string) => number | undefined = inodeOf,
): string | undefined {
  const mounts: Array<{ root: string; point: string }> = [];
  for (const line of mountinfo.split('\n')) {
    // "<id> <parent> <maj:min> <root> <mount point> <opts> [optional...] - <fstype> <source> <super opts>"
    const [left, right] = line.split(' - ');
    if (!left || !right || right.split(' ')[0] !== 'cgroup2') continue;
    const fields = left.split(' ');
    const point = fields[4]?.replace(/\\040/g, ' ');
    if (point !== undefined) mounts.push({ root: fields[3] ?? '', point });
  }
  return (mounts.find((m) => inode(m.point) === HIERARCHY_ROOT_INO) ?? mounts.find((m) => m.root === '/'))?.point;
}
