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

  /** ns given as two 32-bit halves, to stay exact without BigInt on the hot path */
  toEpochMs(hi: number, lo: number): number {
    return (hi * 4294967296 + lo) / 1e6 + this.offsetMs;
  }
}
