/**
 * Address -> DNS name, learned from answers that local clients received, per
 * network namespace (the same address can mean different hosts in different
 * namespaces). Entries respect the answer's TTL; the most recent answer for an
 * address wins. Bounded: past `maxEntries` the least recently answered entry
 * goes, and is counted.
 */
interface Entry {
  netns: number;
  addr: string;
  name: string;
  answeredMs: number;
  expiresMs: number;
}

/** How long an expired entry is kept, so that a record ending later can still be judged by its start time. */
const RETAIN_EXPIRED_MS = 10 * 60_000;

export class DnsNameCache {
  /** every entry, in answer order (Map order): the oldest answered is evicted first */
  private readonly order = new Map<string, Entry>();
  /** the same entries by namespace, then address: lookups (one per record) build no key string */
  private readonly byNetns = new Map<number, Map<string, Entry>>();
  evictions = 0;

  constructor(readonly maxEntries = 100_000) {}

  get size(): number {
    return this.order.size;
  }

  /** `name` is the name the client asked for; `addr` came in an A/AAAA answer with `ttlSec`. */
  add(netns: number, addr: string, name: string, ttlSec: number, nowMs: number): void {
    const key = `${netns}|${addr}`;
    this.order.delete(key); // re-insert at the end: Map order is answer order
    const e: Entry = { netns, addr, name, answeredMs: nowMs, expiresMs: nowMs + Math.max(0, ttlSec) * 1000 };
    this.order.set(key, e);
    let inNs = this.byNetns.get(netns);
    if (!inNs) {
      this.byNetns.set(netns, (inNs = new Map()));
      this.namespacesChanged();
    }
    inNs.set(addr, e);
    while (this.order.size > this.maxEntries) {
      const [oldestKey, oldest] = this.order.entries().next().value as [string, Entry];
      this.remove(oldestKey, oldest);
      this.evictions++;
    }
  }

  private remove(key: string, e: Entry): void {
    this.order.delete(key);
    const inNs = this.byNetns.get(e.netns);
    if (inNs?.get(e.addr) === e) {
      inNs.delete(e.addr);
      if (!inNs.size) {
        this.byNetns.delete(e.netns);
        this.namespacesChanged();
      }
    }
  }

  /** The name for `addr` as it stood at `atMs`: answered by then and not yet expired. */
  lookup(netns: number, addr: string, atMs: number): string | undefined {
    const e = this.inNetns(netns)?.get(addr);
    if (!e || atMs > e.expiresMs) return undefined;
    return e.name;
  }

  /**
   * The entries of one namespace. Nearly every record is from the namespace of
   * the one before, and namespace inodes are too large for the cheapest Map
   * keys, so the last one asked is remembered (forgotten when the namespaces
   * change).
   */
  private inNetns(netns: number): Map<string, Entry> | undefined {
    if (netns !== this.lastNetns) {
      this.lastNetns = netns;
      this.lastInNetns = this.byNetns.get(netns);
    }
    return this.lastInNetns;
  }

  private lastNetns = NaN;
  private lastInNetns: Map<string, Entry> | undefined;

  private namespacesChanged(): void {
    this.lastNetns = NaN;
    this.lastInNetns = undefined;
  }

  /** Drop entries long expired. */
  sweep(nowMs: number): void {
    for (const [key, e] of this.order) if (nowMs - e.expiresMs > RETAIN_EXPIRED_MS) this.remove(key, e);
  }
}
