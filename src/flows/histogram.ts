/** A fixed-bucket histogram, cumulative like Prometheus's: counts[i] = observations <= bounds[i]. */
export class Histogram {
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.buckets = new Array<number>(bounds.length + 1).fill(0); // the last is +Inf
  }

  /** per bucket, not cumulative: an observation touches one slot; `counts` adds them up when read */
  private readonly buckets: number[];

  observe(v: number): void {
    this.sum += v;
    this.count++;
    this.buckets[bucketOf(this.bounds, v)]!++;
  }

  /** A histogram of observations counted elsewhere: `buckets` per bucket (not cumulative), the last being +Inf. */
  static of(bounds: readonly number[], buckets: ArrayLike<number>, sum: number, count: number): Histogram {
    const h = new Histogram(bounds);
    for (let i = 0; i < h.buckets.length; i++) h.buckets[i] = buckets[i]!;
    h.sum = sum;
    h.count = count;
    return h;
  }

  /** cumulative counts, the last being +Inf */
  get counts(): number[] {
    const out = new Array<number>(this.buckets.length);
    let acc = 0;
    for (let i = 0; i < this.buckets.length; i++) out[i] = acc += this.buckets[i]!;
    return out;
  }

  toJSON(): { bounds: readonly number[]; counts: number[]; sum: number; count: number } {
    return { bounds: this.bounds, counts: this.counts, sum: this.sum, count: this.count };
  }
}

/** RTT buckets in microseconds: 50 µs (loopback) to 1 s (another continent, or trouble). */
export const RTT_BOUNDS_US = [50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000] as const;

/** The bucket of `v`: the first bound it does not exceed, else bounds.length (+Inf). */
export function bucketOf(bounds: readonly number[], v: number): number {
  let i = 0;
  while (i < bounds.length && v > bounds[i]!) i++;
  return i;
}
