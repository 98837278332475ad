/** The hub's store from its `hub:` configuration: the agents' tables in ClickHouse. */
import type { AgentConfig } from '../config/schema.js';
import type { PricePerGB } from '../server/api-usage.js';
import { clickhouseClient, redactUrl } from '../sinks/clickhouse-client.js';
import { tableNames } from '../sinks/clickhouse-schema.js';
import { ClickHouseFlowStore } from './clickhouse-store.js';

export function openHubStore(cfg: AgentConfig['hub'], opts: { statusTtlMs?: number; chunkMs?: number } = {}): ClickHouseFlowStore {
  const ch = cfg.clickhouse;
  return new ClickHouseFlowStore({
    client: clickhouseClient(ch, 'bpfagent-hub'),
    tables: tableNames(ch.database, ch.tablePrefix),
    database: ch.database,
    flowsTable: `${ch.tablePrefix}flows`,
    where: redactUrl(ch.url),
    retentionMs: cfg.maxWindow,
    maxEdges: cfg.maxEdges,
    ...opts,
  });
}

/** `hub.pricePerGB` as the API's prices by locality (only those given). */
export function pricesOf(cfg: AgentConfig['hub']): PricePerGB | null {
  const p = cfg.pricePerGB;
  const out: PricePerGB = {};
  for (const [key, locality] of [
    ['sameHost', 'same-host'],
    ['sameZone', 'same-zone'],
    ['crossZone', 'cross-zone'],
    ['cluster', 'cluster'],
    ['external', 'external'],
  ] as const) {
    const v = p[key];
    if (v !== null) out[locality] = v;
  }
  return Object.keys(out).length ? out : null;
}
