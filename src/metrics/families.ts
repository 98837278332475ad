/**
 * Metric families for prom-client's registry whose label sets are bounded:
 * past `limit` label sets, values of new label sets go to one series whose
 * every label is "(overflow)", and each such update is counted. prom-client's
 * own Counter and Histogram cannot do this, nor take a histogram whose bucket
 * counts were aggregated elsewhere (the flow table's), hence these.
 *
 * Each family implements what prom-client's Registry asks of a metric:
 * `name`, `help`, `type` and `get()`.
 */

export const OVERFLOW = '(overflow)';

/** One exposed value: prom-client's registry prints `metricName ?? name`{labels} value. */
export interface ExposedValue {
  metricName?: string;
  labels: Record<string, string>;
  value: number;
}

/** What prom-client's Registry reads from a metric's get() (its typings want a collect() this does not need). */
export interface ExposedFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  aggregator: 'sum';
  values: ExposedValue[];
}

type Labels = Record<string, string>;

interface Series {
  labels: Labels;
  value: number;
}

interface HistogramSeries {
  labels: Labels;
  /** cumulative: counts[i] observations <= bounds[i]; the last is +Inf */
  counts: number[];
  sum: number;
  count: number;
}

export interface Bounded {
  readonly name: string;
  readonly seriesCount: number;
}

/** Called with the family's name each time a value goes to the overflow series. */
export type OnOverflow = (family: string) => void;

abstract class BoundedFamily<S extends { labels: Labels }> implements Bounded {
  protected readonly series = new Map<string, S>();
  readonly aggregator = 'sum' as const;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    readonly limit: number,
    private readonly onOverflow: OnOverflow,
  ) {}

  get seriesCount(): number {
    return this.series.size;
  }

  /** The series for these labels, made if there is room, else the overflow series. */
  protected seriesFor(labels: Labels, make: (labels: Labels) => S): S {
    let key = '';
    for (const n of this.labelNames) key += (labels[n] ?? '') + '\u0000';
    let s = this.series.get(key);
    if (s) return s;
    if (this.series.size >= this.limit) {
      this.onOverflow(this.name);
      key = OVERFLOW;
      s = this.series.get(key);
      if (s) return s;
      labels = Object.fromEntries(this.labelNames.map((n) => [n, OVERFLOW]));
    } else {
      labels = Object.fromEntries(this.labelNames.map((n) => [n, labels[n] ?? '']));
    }
    s = make(labels);
    this.series.set(key, s);
    return s;
  }

  reset(): void {
    this.series.clear();
  }
}

/** A counter (or gauge) with bounded label sets. */
export class BoundedCounter extends BoundedFamily<Series> {
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    limit: number,
    onOverflow: OnOverflow,
    readonly type: 'counter' | 'gauge' = 'counter',
  ) {
    super(name, help, labelNames, limit, onOverflow);
  }

  inc(labels: Labels, v: number): void {
    this.seriesFor(labels, (l) => ({ labels: l, value: 0 })).value += v;
  }

  /** The value of a label set (tests). */
  value(labels: Labels): number | undefined {
    for (const s of this.series.values()) if (this.labelNames.every((n) => s.labels[n] === (labels[n] ?? ''))) return s.value;
    return undefined;
  }

  get(): Promise<ExposedFamily> {
    const values = [...this.series.values()].map((s) => ({ labels: { ...s.labels }, value: s.value }));
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }
}

/** A histogram with fixed bounds and bounded label sets, fed with already-aggregated bucket counts. */
export class BoundedHistogram extends BoundedFamily<HistogramSeries> {
  readonly type = 'histogram' as const;

  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    /** upper bounds, in the unit of the metric (e.g. seconds) */
    readonly bounds: readonly number[],
    limit: number,
    onOverflow: OnOverflow,
  ) {
    super(name, help, labelNames, limit, onOverflow);
  }

  /** Add cumulative bucket counts (bounds.length + 1 of them, the last +Inf), their sum and count. */
  add(labels: Labels, counts: readonly number[], sum: number, count: number): void {
    if (counts.length !== this.bounds.length + 1) throw new Error(`${this.name}: ${counts.length} bucket counts for ${this.bounds.length} bounds`);
    const s = this.seriesFor(labels, (l) => ({ labels: l, counts: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 }));
    for (let i = 0; i < counts.length; i++) s.counts[i]! += counts[i]!;
    s.sum += sum;
    s.count += count;
  }

  get(): Promise<ExposedFamily> {
    const values: ExposedValue[] = [];
    for (const s of this.series.values()) {
      for (let i = 0; i <= this.bounds.length; i++)
        values.push({
          metricName: `${this.name}_bucket`,
          labels: { ...s.labels, le: i < this.bounds.length ? String(this.bounds[i]) : '+Inf' },
          value: s.counts[i]!,
        });
      values.push({ metricName: `${this.name}_sum`, labels: { ...s.labels }, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: { ...s.labels }, value: s.count });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: 'histogram', aggregator: this.aggregator, values });
  }
}

/** A family whose values are read at scrape time (from the agent's own counters). */
export class CallbackFamily {
  readonly aggregator = 'sum' as const;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
    private readonly read: () => Array<{ labels?: Labels; value: number }>,
  ) {}

  get(): Promise<ExposedFamily> {
    let values: Array<{ labels: Labels; value: number }>;
    try {
      values = this.read().map((v) => ({ labels: v.labels ?? {}, value: v.value }));
    } catch {
      values = []; // a source gone (stopping): report nothing rather than fail the scrape
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }
}
