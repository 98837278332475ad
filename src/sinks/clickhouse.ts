/**
 * The ClickHouse flow sink: TCP connections and UDP flows into one MergeTree
 * table, DNS lookups into another, inserted in batches (JSONEachRow over
 * HTTP, @clickhouse/client). It creates its database and tables at start.
 *
 * Works with ClickHouse 18.16 (what Debian 12 ships) and current releases:
 * the server's version decides whether the tables get a TTL (>= 19.6); on
 * older servers the sink drops day partitions past `ttlDays` itself, at start
 * and every hour.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { clickhouseClient, redactUrl } from './clickhouse-client.js';
import type { Logger } from 'pino';
import { BatchingSink } from './batching-sink.js';
import type { ShippedRecord } from './sink.js';
import { UsageError } from '../util/errors.js';
import type { DnsRecord, TcpRecord, UdpRecord } from '../events/records.js';
import {
  createTableStatement,
  dnsRow,
  DNS_COLUMNS,
  DNS_ORDER_BY,
  DNS_PARTITION_BY,
  FLOW_COLUMNS,
  FLOW_ORDER_BY,
  FLOW_PARTITION_BY,
  flowRow,
  missingColumnStatements,
  quoteIdent,
  quoteString,
  tableNames,
  ttlClause,
  type TableNames,
} from './clickhouse-schema.js';
import { clickhouseSinkSchema, type ClickHouseSinkConfig, type ClickHouseSinkOptions } from './sink-configs.js';

/** How old rows go away. */
export type Retention = 'ttl' | 'agent' | 'none';

export interface ClickHouseServerInfo {
  version: string;
  /** `ttl`: the tables' TTL (ClickHouse >= 19.6); `agent`: this sink drops old day partitions; `none`: ttlDays is 0 */
  retention: Retention;
}

/** Does this server version know MergeTree TTL (19.6 and later)? */
export function supportsTtl(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map((p) => Number.parseInt(p, 10));
  return major > 19 || (major === 19 && minor >= 6);
}

export { redactUrl };

const PRUNE_EVERY_MS = 3_600_000;

export class ClickHouseSink extends BatchingSink {
  readonly name = 'clickhouse';
  readonly config: ClickHouseSinkConfig;
  readonly tables: TableNames;
  private readonly client: ClickHouseClient;
  private pruneTimer: NodeJS.Timeout | undefined;
  private serverInfo: ClickHouseServerInfo | undefined;
  /**
   * Records of a batch already inserted into one table when the insert into
   * the other failed: the retry of that batch skips them, so a partly failed
   * batch is not inserted twice.
   */
  private readonly inserted = new WeakSet<ShippedRecord>();

  /**
   * `ctx.log`: where the server version, retention mode and partition drops are logged;
   * `ctx.now`: the clock retention is judged by (tests give their own)
   */
  constructor(options: ClickHouseSinkOptions = {}, private readonly ctx: { log?: Logger; now?: () => number } = {}) {
    const config = clickhouseSinkSchema.parse(options);
    super(config.batching);
    this.config = config;
    this.tables = tableNames(config.database, config.tablePrefix);
    this.client = clickhouseClient(config);
  }

  /** The server's version and how retention is done; known once started. */
  get server(): ClickHouseServerInfo | undefined {
    return this.serverInfo;
  }

  protected async open(): Promise<void> {
    const where = redactUrl(this.config.url);
    let version: string;
    try {
      const rs = await this.client.query({ query: 'SELECT version() AS version', format: 'JSONEachRow' });
      const rows = await rs.json<{ version: string }>();
      version = rows[0]?.version ?? '';
    } catch (e) {
      throw startError(`clickhouse sink: cannot query the server at ${where}: ${message(e)}`, e);
    }
    try {
      await this.client.command({ query: `CREATE DATABASE IF NOT EXISTS ${quoteIdent(this.config.database)}` });
      const days = this.config.ttlDays;
      const ttl = days > 0 && supportsTtl(version);
      const onlyDropParts = ttl && (await this.knowsMergeTreeSetting('ttl_only_drop_parts'));
      const ttlSpec = ttl ? { days, onlyDropParts } : undefined;
      await this.client.command({ query: createTableStatement(this.tables.flows, FLOW_COLUMNS, FLOW_PARTITION_BY, FLOW_ORDER_BY, ttlSpec) });
      await this.client.command({ query: createTableStatement(this.tables.dns, DNS_COLUMNS, DNS_PARTITION_BY, DNS_ORDER_BY, ttlSpec) });
      // tables an older bpfagent made lack the columns added since (cluster, state)
      const added = [
        ...(await this.ensureColumns(`${this.config.tablePrefix}flows`, this.tables.flows, FLOW_COLUMNS)),
        ...(await this.ensureColumns(`${this.config.tablePrefix}dns`, this.tables.dns, DNS_COLUMNS)),
      ];
      if (added.length) this.ctx.log?.info({ added }, `clickhouse: added columns ${added.join(', ')} to tables made by an older bpfagent`);
      if (ttl) {
        // tables made before the server was upgraded have no TTL yet
        for (const t of [this.tables.flows, this.tables.dns]) await this.ensureTtl(t, days);
      }
      this.serverInfo = { version, retention: days === 0 ? 'none' : ttl ? 'ttl' : 'agent' };
      this.ctx.log?.info(
        { url: where, version, retention: this.serverInfo.retention, tables: [this.tables.flows, this.tables.dns] },
        `clickhouse ${version} at ${where}: tables ready, retention ${days ? `${days} days by ${ttl ? 'TTL' : 'dropping day partitions'}` : 'off'}`,
      );
      if (this.serverInfo.retention === 'agent') {
        await this.prune();
        this.pruneTimer = setInterval(
          () => void this.prune().catch((e: unknown) => this.ctx.log?.warn({ err: message(e) }, 'clickhouse: dropping old partitions failed')),
          PRUNE_EVERY_MS,
        );
        this.pruneTimer.unref();
      }
    } catch (e) {
      throw startError(`clickhouse sink: cannot create the tables in database ${this.config.database} at ${where} (ClickHouse ${version}): ${message(e)}`, e);
    }
  }

  protected async send(batch: ShippedRecord[]): Promise<void> {
    const flows: ShippedRecord[] = [];
    const dns: ShippedRecord[] = [];
    for (const r of batch) {
      if (this.inserted.has(r)) continue;
      (r.proto === 'dns' ? dns : flows).push(r);
    }
    if (flows.length) {
      await this.client.insert({
        table: this.tables.flows,
        values: flows.map((r) => flowRow(r as ShippedRecord & (TcpRecord | UdpRecord))),
        format: 'JSONEachRow',
      });
      for (const r of flows) this.inserted.add(r);
    }
    if (dns.length) {
      await this.client.insert({ table: this.tables.dns, values: dns.map((r) => dnsRow(r as ShippedRecord & DnsRecord)), format: 'JSONEachRow' });
    }
    // all of the batch is in: the same objects handed over again would be new records
    for (const r of batch) this.inserted.delete(r);
  }

  protected async close(): Promise<void> {
    clearInterval(this.pruneTimer);
    await this.client.close();
  }

  /**
   * Retention on servers without TTL: drop the day partitions of both tables
   * older than `ttlDays` (whole days, UTC). Returns the partitions dropped.
   */
  async prune(now = new Date(this.ctx.now?.() ?? Date.now())): Promise<string[]> {
    const cutoff = new Date(now.getTime() - this.config.ttlDays * 86_400_000);
    const oldest = cutoff.getUTCFullYear() * 10_000 + (cutoff.getUTCMonth() + 1) * 100 + cutoff.getUTCDate();
    const dropped: string[] = [];
    for (const table of [`${this.config.tablePrefix}flows`, `${this.config.tablePrefix}dns`]) {
      const rs = await this.client.query({
        query: `SELECT DISTINCT partition FROM system.parts WHERE database = ${quoteString(this.config.database)} AND table = ${quoteString(table)} AND active`,
        format: 'JSONEachRow',
      });
      for (const { partition } of await rs.json<{ partition: string }>()) {
        const day = Number(partition);
        if (!Number.isInteger(day) || day >= oldest) continue;
        await this.client.command({ query: `ALTER TABLE ${quoteIdent(this.config.database)}.${quoteIdent(table)} DROP PARTITION ${day}` });
        dropped.push(`${table}/${partition}`);
        this.ctx.log?.info({ table, partition }, `clickhouse: dropped partition ${partition} of ${table} (older than ${this.config.ttlDays} days)`);
      }
    }
    return dropped;
  }

  private async knowsMergeTreeSetting(name: string): Promise<boolean> {
    try {
      const rs = await this.client.query({ query: `SELECT name FROM system.merge_tree_settings WHERE name = ${quoteString(name)}`, format: 'JSONEachRow' });
      return (await rs.json()).length > 0;
    } catch {
      return false;
    }
  }

  /**
   * The migration of tables made before a column existed: every column of
   * `columns` the table lacks is added (old rows read '' or 0 there).
   * Returns `table.column` for each column added. Several agents starting
   * at once may race to add the same column: one that finds it added
   * meanwhile (code 44, DUPLICATE_COLUMN) goes on.
   */
  private async ensureColumns(name: string, table: string, columns: readonly string[]): Promise<string[]> {
    const rs = await this.client.query({
      query: `SELECT name FROM system.columns WHERE database = ${quoteString(this.config.database)} AND table = ${quoteString(name)}`,
      format: 'JSONEachRow',
    });
    const existing = new Set((await rs.json<{ name: string }>()).map((r) => r.name));
    const added: string[] = [];
    for (const statement of missingColumnStatements(table, columns, existing)) {
      try {
        await this.client.command({ query: statement });
      } catch (e) {
        if (!/\bCode: 44\b|DUPLICATE_COLUMN|already exists/i.test(message(e))) throw e;
      }
      added.push(`${name}.${/ADD COLUMN `([^`]+)`/.exec(statement)?.[1] ?? '?'}`);
    }
    return added;
  }

  private async ensureTtl(table: string, days: number): Promise<void> {
    const [db, name] = [this.config.database, table === this.tables.flows ? `${this.config.tablePrefix}flows` : `${this.config.tablePrefix}dns`];
    const rs = await this.client.query({
      query: `SELECT engine_full FROM system.tables WHERE database = ${quoteString(db)} AND name = ${quoteString(name)}`,
      format: 'JSONEachRow',
    });
    const [row] = await rs.json<{ engine_full: string }>();
    if (row && !/\bTTL\b/.test(row.engine_full)) await this.client.command({ query: `ALTER TABLE ${table} MODIFY ${ttlClause(days)}` });
  }

  /** The client, for queries (clickhouse-queries.ts) on the sink's own connection. */
  get clickhouse(): ClickHouseClient {
    return this.client;
  }
}

/**
 * The server refused the credentials or the rights to create the tables: a
 * misconfiguration (UsageError: `bpfagent run` stops, exit 2), where a
 * server that cannot be reached is retried.
 */
const REFUSED = /Wrong password|Unknown user|Authentication failed|AUTHENTICATION_FAILED|REQUIRED_PASSWORD|Not enough privileges|ACCESS_DENIED|readonly mode|\bCode: (164|192|193|194|497|516)\b/i;

function startError(text: string, cause: unknown): Error {
  return REFUSED.test(message(cause)) ? new UsageError(text) : new Error(text);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
