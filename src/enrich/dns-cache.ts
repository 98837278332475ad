/**
 * Address -> DNS name, learned from answers that local clients received, per
 * network namespace (the same address can mean different hosts in different
 * namespaces). Entries respect the answer's TTL; the most recent answer for an
 * address wins. Bounded: past `maxEntries` the least recently answered entry
 * goes, and is counted.
 */
interface Entry {
  name: string;
  answeredMs: number;
  expiresMs: number;
}

/** How long an expired entry is kept, so that a record ending later can still be judged by its start time. */
const RETAIN_EXPIRED_MS = 10 * 60_000;

export class DnsNameCache {
  private readonly entries = new Map<string, Entry>();
  evictions = 0;

  constructor(readonly maxEntries = 100_000) {}

  get size(): number {
    return this.entries.size;
  }

  private static key(netns: number, addr: string): string {
    return `${netns}|${addr}`;
  }

  /** `name` is the name the client asked for; `addr` came in an A/AAAA answer with `ttlSec`. */
  add(netns: number, addr: string, name: string, ttlSec: number, nowMs: number): void {
    const key = DnsNameCache.key(netns, addr);
    this.entries.delete(key); // re-insert at the end: Map order is answer order
    this.entries.set(key, { name, answeredMs: nowMs, expiresMs: nowMs + Math.max(0, ttlSec) * 1000 });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
      this.evictions++;
    }
  }

  /** The name for `addr` as it stood at `atMs`: answered by then and not yet expired. */
  lookup(netns: number, addr: string, atMs: number): string | undefined {
    const e = this.entries.get(DnsNameCache.key(netns, addr));
    if (!e || atMs > e.expiresMs) return undefined;
    return e.name;
  }

  /** Drop entries long expired. */
  sweep(nowMs: number): void {
    for (const [key, e] of this.entries) if (nowMs - e.expiresMs > RETAIN_EXPIRED_MS) this.entries.delete(key);
  }
}
