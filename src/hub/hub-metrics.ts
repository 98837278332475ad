/**
 * The Prometheus metrics of `bpfagent hub` (docs/metrics.md), in one place:
 * its queries to ClickHouse and their failures, whether ClickHouse answers,
 * and prom-client's process metrics prefixed `bpfagent_hub_`.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export interface HubCounts {
  queries: number;
  failures: number;
}

export class HubMetrics {
  readonly registry = new Registry();

  constructor(counts: () => HubCounts, clickhouseUp: () => boolean) {
    const queries = new Counter({ name: 'bpfagent_hub_queries_total', help: 'queries the hub sent to ClickHouse', registers: [this.registry] });
    const failures = new Counter({ name: 'bpfagent_hub_query_failures_total', help: 'queries ClickHouse did not answer (down, refused, timed out): each a 503', registers: [this.registry] });
    let seen: HubCounts = { queries: 0, failures: 0 };
    // counters follow the store's own counts, read at scrape time
    const sync = (): void => {
      const now = counts();
      queries.inc(now.queries - seen.queries);
      failures.inc(now.failures - seen.failures);
      seen = { ...now };
    };
    new Gauge({
      name: 'bpfagent_hub_clickhouse_up',
      help: '1 when the last check of ClickHouse (SELECT 1, every 5 s) was answered',
      registers: [this.registry],
      collect() {
        sync();
        this.set(clickhouseUp() ? 1 : 0);
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'bpfagent_hub_' });
  }

  async text(): Promise<{ text: string; contentType: string }> {
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
