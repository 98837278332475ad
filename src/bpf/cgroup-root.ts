import { readFileSync } from 'node:fs';

/**
 * Mount point of the cgroup v2 hierarchy (unified mode: /sys/fs/cgroup;
 * hybrid mode: usually /sys/fs/cgroup/unified), from /proc/self/mountinfo.
 */
export function findCgroup2Root(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string | undefined {
  for (const line of mountinfo.split('\n')) {
    // "<id> <parent> <maj:min> <root> <mount point> <opts> [optional...] - <fstype> <source> <super opts>"
    const [left, right] = line.split(' - ');
    if (!left || !right || right.split(' ')[0] !== 'cgroup2') continue;
    const fields = left.split(' ');
    if (fields[3] === '/') return fields[4]?.replace(/\\040/g, ' ');
  }
  return undefined;
}
