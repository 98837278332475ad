/**
 * The addresses of this host: its own interfaces (re-read at most once a
 * minute), loopback, and the local addresses of sockets seen in any network
 * namespace here (containers' and pods' addresses, learned from records).
 * Bounded: the oldest learned address is forgotten first.
 */
import os from 'node:os';
import { isLoopback } from './locality.js';
import { batchNowMs } from '../events/batch-time.js';

export class HostAddresses {
  private interfaces = new Set<string>();
  private interfacesReadAt = -Infinity;
  private readonly learned = new Map<string, true>();

  constructor(
    private readonly maxLearned = 16384,
    /** the clock read once per ring buffer batch, not once per record */
    private readonly now: () => number = batchNowMs,
    private readonly readInterfaces: () => string[] = ownInterfaceAddresses,
  ) {}

  /** `addr` is the local address of a socket on this host. */
  learn(addr: string): void {
    if (this.learned.has(addr)) return;
    if (this.learned.size >= this.maxLearned) this.learned.delete(this.learned.keys().next().value!);
    this.learned.set(addr, true);
  }

  has(addr: string): boolean {
    if (isLoopback(addr) || this.learned.has(addr)) return true;
    const t = this.now();
    if (t - this.interfacesReadAt > 60_000) {
      this.interfaces = new Set(this.readInterfaces());
      this.interfacesReadAt = t;
    }
    return this.interfaces.has(addr);
  }

  get size(): number {
    return this.learned.size;
  }
}

function ownInterfaceAddresses(): string[] {
  return Object.values(os.networkInterfaces())
    .flatMap((list) => list ?? [])
    .map((i) => i.address.replace(/%.*$/, ''));
}
