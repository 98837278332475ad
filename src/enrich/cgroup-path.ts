import { readdirSync, readFileSync, statSync } from 'node:fs';

/**
 * cgroup v2 id -> path relative to the cgroup2 root.
 *
 * The id bpf_get_current_cgroup_id returns is the kernfs node id, which on
 * 64-bit kernels is the inode number of the cgroup's directory. Ids are never
 * reused, so a cached path stays right for as long as it is kept.
 *
 * Cheapest and exact first: the pid's /proc/PID/cgroup names a path, and its
 * inode confirms it (the process may have moved since the record). Otherwise
 * the cache; otherwise a walk of the whole tree, at most once per rescanMinMs,
 * so that ids of cgroups already removed cannot make it walk on every record.
 *
 * The cache is filled ahead of need: by a walk of the whole tree at start
 * (seed) and by the kernel's report of every cgroup made since (learn, from
 * bpf/cgroup.bpf.c), so that a cgroup removed before its processes' records
 * are read (a short-lived container) is still known. Bounded: the least
 * recently used paths go first.
 */

export interface CgroupPathStats {
  /** answered by the pid's /proc/PID/cgroup */
  byPid: number;
  /** answered from the cache */
  hits: number;
  /** not found (tree walked, or a walk not yet due) */
  misses: number;
  rescans: number;
  evictions: number;
  /** paths reported by the kernel as cgroups were made */
  learned: number;
}

/** The cgroup v2 root's id (its kernfs node is always number 1). */
const ROOT_ID = 1;

export class CgroupPaths {
  private readonly rescanMinMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly procRoot: string;
  private readonly paths = new Map<number, string>();
  private lastScanMs = -Infinity;
  private readonly rootIno: number | undefined;
  readonly stats: CgroupPathStats = { byPid: 0, hits: 0, misses: 0, rescans: 0, evictions: 0, learned: 0 };

  constructor(
    readonly root: string,
    opts: { rescanMinMs?: number; now?: () => number; maxEntries?: number; /** default /proc */ procRoot?: string } = {},
  ) {
    this.rescanMinMs = opts.rescanMinMs ?? 2000;
    this.maxEntries = Math.max(1, opts.maxEntries ?? 65536);
    this.now = opts.now ?? Date.now;
    this.procRoot = opts.procRoot ?? '/proc';
    this.rootIno = inode(root);
  }

  get size(): number {
    return this.paths.size;
  }

  /** Path of cgroup `cgroupId` ("/" for the root), `pidHint` a process seen in it; undefined when it cannot be found. */
  pathOf(cgroupId: number, pidHint?: number): string | undefined {
    if (cgroupId === ROOT_ID || cgroupId === this.rootIno) return '/';
    if (!(cgroupId > 0)) return undefined; // 0: no cgroup v2 id was taken
    if (pidHint !== undefined && pidHint > 0) {
      const p = this.pathOfPid(pidHint);
      if (p !== undefined && inode(this.root + p) === cgroupId) {
        this.stats.byPid++;
        this.remember(cgroupId, p);
        return p;
      }
    }
    const cached = this.paths.get(cgroupId);
    if (cached !== undefined) {
      this.stats.hits++;
      this.remember(cgroupId, cached);
      return cached;
    }
    const now = this.now();
    if (now - this.lastScanMs >= this.rescanMinMs) {
      this.lastScanMs = now;
      const found = this.rescan(cgroupId);
      if (found !== undefined) return found;
    }
    this.stats.misses++;
    return undefined;
  }

  /** A cgroup made: its id and path from the root (undefined: too long for the kernel's report; a walk finds it). */
  learn(cgroupId: number, path: string | undefined): void {
    if (path === undefined || !(cgroupId > 0)) return;
    this.stats.learned++;
    this.remember(cgroupId, path);
  }

  /** Walk the whole tree now (a later miss may still walk: this is not counted against rescanMinMs). */
  seed(): void {
    this.rescan(0);
  }

  /** The cgroup v2 path in /proc/PID/cgroup (its "0::" line; hybrid hosts list v1 hierarchies too). */
  private pathOfPid(pid: number): string | undefined {
    let text: string;
    try {
      text = readFileSync(`${this.procRoot}/${pid}/cgroup`, 'utf8');
    } catch {
      return undefined;
    }
    for (const line of text.split('\n')) {
      if (line.startsWith('0::/')) return line.slice(3);
    }
    return undefined;
  }

  /** Walk the tree, caching every cgroup; the one wanted is cached last so that the bound cannot push it out. */
  private rescan(wanted: number): string | undefined {
    this.stats.rescans++;
    let found: string | undefined;
    const stack: string[] = [''];
    while (stack.length > 0) {
      const rel = stack.pop()!;
      let dirents;
      try {
        dirents = readdirSync(this.root + rel, { withFileTypes: true });
      } catch {
        continue; // removed while walking, or unreadable
      }
      for (const d of dirents) {
        if (!d.isDirectory()) continue;
        const child = `${rel}/${d.name}`;
        const ino = inode(this.root + child);
        if (ino === undefined) continue;
        if (ino === wanted) found = child;
        else this.remember(ino, child);
        stack.push(child);
      }
    }
    if (found !== undefined) this.remember(wanted, found);
    return found;
  }

  private remember(id: number, path: string): void {
    this.paths.delete(id); // re-insert at the end: Map order is the LRU order
    this.paths.set(id, path);
    while (this.paths.size > this.maxEntries) {
      this.paths.delete(this.paths.keys().next().value as number);
      this.stats.evictions++;
    }
  }
}

function inode(path: string): number | undefined {
  try {
    return Number(statSync(path, { bigint: true }).ino);
  } catch {
    return undefined;
  }
}
