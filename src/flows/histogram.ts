/** A fixed-bucket histogram, cumulative like Prometheus's: counts[i] = observations <= bounds[i]. */
export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Array<number>(bounds.length + 1).fill(0); // the last is +Inf
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) if (v <= this.bounds[i]!) this.counts[i]!++;
    this.counts[this.bounds.length]!++;
  }

  toJSON(): { bounds: readonly number[]; counts: number[]; sum: number; count: number } {
    return { bounds: this.bounds, counts: [...this.counts], sum: this.sum, count: this.count };
  }
}

/** RTT buckets in microseconds: 50 µs (loopback) to 1 s (another continent, or trouble). */
export const RTT_BOUNDS_US = [50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000] as const;
