/**
 * A @clickhouse/client client for a configured connection, the same for the
 * sink (writes) and the hub (reads): credentials taken out of the URL (the
 * client would warn on stderr about them) unless given apart, gzip request
 * bodies (18.16 reads them), the client's own logging off (failures surface
 * through the caller's errors and counters).
 */
import { createClient, ClickHouseLogLevel, type ClickHouseClient } from '@clickhouse/client';
import type { ClickHouseConnection } from './sink-configs.js';

export function clickhouseClient(config: ClickHouseConnection, application = 'bpfagent'): ClickHouseClient {
  const url = new URL(config.url);
  const username = config.username ?? (url.username ? decodeURIComponent(url.username) : 'default');
  const password = config.password ?? (url.password ? decodeURIComponent(url.password) : '');
  url.username = '';
  url.password = '';
  return createClient({
    url: url.toString(),
    username,
    password,
    request_timeout: config.requestTimeoutMs,
    application,
    compression: { request: true, response: false },
    log: { level: ClickHouseLogLevel.OFF },
  });
}

/** The URL without credentials, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return url;
  }
}
