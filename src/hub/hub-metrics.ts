/**
 * The Prometheus metrics of `bpfagent hub` (docs/metrics.md), in one place:
 * its queries to ClickHouse and their failures, whether ClickHouse answers,
 * and prom-client's process metrics prefixed `bpfagent_hub_`.
 */
import { Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import { CallbackFamily } from '../metrics/families.js';

export interface HubCounts {
  queries: number;
  failures: number;
}

export class HubMetrics {
  readonly registry = new Registry();

  constructor(counts: () => HubCounts, clickhouseUp: () => boolean) {
    // read at scrape time from the store's own counts (as the agent's metrics are: metrics/families.ts)
    for (const f of [
      new CallbackFamily('bpfagent_hub_queries_total', 'queries the hub sent to ClickHouse', 'counter', () => [{ value: counts().queries }]),
      new CallbackFamily('bpfagent_hub_query_failures_total', 'queries ClickHouse did not answer (down, refused, timed out): each a 503', 'counter', () => [{ value: counts().failures }]),
      new CallbackFamily('bpfagent_hub_clickhouse_up', '1 when the last check of ClickHouse (SELECT 1, every 5 s) was answered', 'gauge', () => [{ value: clickhouseUp() ? 1 : 0 }]),
    ])
      this.registry.registerMetric(f as unknown as Metric);
    collectDefaultMetrics({ register: this.registry, prefix: 'bpfagent_hub_' });
  }

  async text(): Promise<{ text: string; contentType: string }> {
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
