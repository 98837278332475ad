/**
 * Kernel timestamps are CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns), and
 * so is process.hrtime (libuv uses CLOCK_MONOTONIC). One offset taken at
 * start turns them into wall-clock milliseconds.
 */
export class MonotonicClock {
  private readonly offsetMs: number;

  constructor(nowMs = Date.now(), monoNs = process.hrtime.bigint()) {
    this.offsetMs = nowMs - Number(monoNs) / 1e6;
  }

  private lastMs = NaN;
  private lastIso = '';

  /** ns given as two 32-bit halves, to stay exact without BigInt on the hot path */
  toEpochMs(hi: number, lo: number): number {
    return (hi * 4294967296 + lo) / 1e6 + this.offsetMs;
  }

  /** ISO-8601 text of an epoch ms time; records close together share it, so the last one is kept. */
  iso(epochMs: number): string {
    const ms = Math.floor(epochMs);
    if (ms !== this.lastMs) {
      this.lastMs = ms;
      this.lastIso = new Date(ms).toISOString();
    }
    return this.lastIso;
  }
}
