/**
 * `trace.cgroup`: only the records of processes in one cgroup v2 subtree.
 * The kernel programs see the whole host; an agent that is one of several
 * "nodes" on one kernel (kind and k3d nodes are containers of one host; the
 * cluster test's nodes are network namespaces of one) must report its own
 * node's processes only, or every node would report everyone's connections.
 * Decided by each record's cgroup (cgroup-path.ts: the pid's, else the
 * cached tree); a record whose cgroup cannot be told (a socket closed where
 * no process was, a cgroup already gone) is out of scope. Out-of-scope
 * records are counted (`outOfScope`), never reported. The verdict is kept
 * per cgroup id (ids are never reused, cgroup-path.ts), so only a record of
 * a cgroup not seen before costs a lookup (a read of /proc/PID/cgroup).
 */
import type { AgentRecord } from '../events/records.js';

export interface CgroupPathSource {
  pathOf(cgroupId: number, pidHint?: number): string | undefined;
}

export class CgroupScope {
  /** records left out since start */
  rejected = 0;
  private readonly prefix: string;
  /** in the subtree or not, by cgroup id (those whose path was found; bounded, the oldest go first) */
  private readonly verdicts = new Map<number, boolean>();

  /** `path`: the subtree's path below the cgroup v2 root ('/kubepods.slice', '/bpfagent/node-1') */
  constructor(
    readonly path: string,
    private readonly cgroups: CgroupPathSource,
    private readonly maxCgroups = 16384,
  ) {
    this.prefix = path.replace(/\/+$/, '') || '/';
  }

  /** Is this record's process in the subtree? */
  admits(r: AgentRecord): boolean {
    const ok = this.verdict(r.local.cgroupId, r.local.pid);
    if (!ok) this.rejected++;
    return ok;
  }

  private verdict(cgroupId: number, pid: number): boolean {
    const known = this.verdicts.get(cgroupId);
    if (known !== undefined) return known;
    const p = this.cgroups.pathOf(cgroupId, pid || undefined);
    // not kept: a cgroup not found yet may be learned or found by a later walk
    if (p === undefined) return false;
    const ok = this.prefix === '/' || p === this.prefix || p.startsWith(`${this.prefix}/`);
    if (this.verdicts.size >= this.maxCgroups) this.verdicts.delete(this.verdicts.keys().next().value!);
    this.verdicts.set(cgroupId, ok);
    return ok;
  }

  /** The records of `records` in scope, in place (the array is shortened). */
  keep<T extends AgentRecord>(records: T[]): T[] {
    let n = 0;
    for (const r of records) if (this.admits(r)) records[n++] = r;
    records.length = n;
    return records;
  }
}

/** A `trace.cgroup` value as a path below the root: absolute under the root mount, or already relative ('/x'). */
export function scopePath(value: string, root: string): string {
  const v = value.replace(/\/+$/, '');
  if (v.startsWith(`${root}/`)) return v.slice(root.length);
  return v.startsWith('/') ? v : `/${v}`;
}
