/**
 * `trace.cgroup`: only the records of processes in one cgroup v2 subtree.
 * The kernel programs see the whole host; an agent that is one of several
 * "nodes" on one kernel (kind and k3d nodes are containers of one host; the
 * cluster test's nodes are network namespaces of one) must report its own
 * node's processes only, or every node would report everyone's connections.
 * Decided by each record's cgroup (cgroup-path.ts: the pid's, else the
 * cached tree); a record whose cgroup cannot be told (a socket closed where
 * no process was, a cgroup already gone) is out of scope. Out-of-scope
 * records are counted (`outOfScope`), never reported.
 */
import type { AgentRecord } from '../events/records.js';

export interface CgroupPathSource {
  pathOf(cgroupId: number, pidHint?: number): string | undefined;
}

export class CgroupScope {
  /** records left out since start */
  rejected = 0;
  private readonly prefix: string;

  /** `path`: the subtree's path below the cgroup v2 root ('/kubepods.slice', '/bpfagent/node-1') */
  constructor(
    readonly path: string,
    private readonly cgroups: CgroupPathSource,
  ) {
    this.prefix = path.replace(/\/+$/, '') || '/';
  }

  /** Is this record's process in the subtree? */
  admits(r: AgentRecord): boolean {
    const p = this.cgroups.pathOf(r.local.cgroupId, r.local.pid || undefined);
    const ok = p !== undefined && (this.prefix === '/' || p === this.prefix || p.startsWith(`${this.prefix}/`));
    if (!ok) this.rejected++;
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
