/**
 * A ClickHouse server for the benchmarks, the tests' own (test/helpers/
 * clickhouse-server.ts: Debian's clickhouse-server from a temporary
 * directory, HTTP on a free loopback port): prints its URL on stdout, serves
 * until SIGTERM or SIGINT, then stops and removes its data.
 *
 *   node dist/bench/clickhouse-server.js [--query-log]
 */
import { ClickHouseServer } from '../test/helpers/clickhouse-server.js';

const server = await ClickHouseServer.start({ queryLog: process.argv.includes('--query-log') });
process.stdout.write(`${server.url}\n`);
const stop = (): void => {
  void server.kill().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
setInterval(() => {}, 1 << 30);
