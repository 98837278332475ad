/**
 * The hub's time window against a real ClickHouse (Debian's 18.16): rows of
 * three hours in a table made by the sink, from 97 callers (so that the
 * sorting key's later columns do not follow the time); a window in the last hour reads
 * that hour's granules only, not the day's, and counts its rows exactly to
 * the millisecond.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { windowCondition } from '../../src/hub/edge-query.js';
import { ClickHouseSink } from '../../src/sinks/clickhouse.js';
import { CLICKHOUSE_SKIP, ClickHouseServer } from '../helpers/clickhouse-server.js';

const HOUR_ROWS = 50_000; // six granules of 8192 rows an hour
// three whole hours of yesterday, a row every 72 ms
const START_S = Math.floor(Date.now() / 86_400_000) * 86_400 - 86_400 + 9 * 3600;
const T0 = START_S * 1000;

describe("the hub's window over ClickHouse", { skip: CLICKHOUSE_SKIP }, () => {
  let ch: ClickHouseServer;
  before(async () => {
    ch = await ClickHouseServer.start();
    const sink = new ClickHouseSink({ url: ch.url, database: 'win', ttlDays: 0 });
    await sink.start();
    await sink.shutdown(1000);
    // row n at T0 + 72 n ms: HOUR_ROWS per hour
    await ch.query(
      `INSERT INTO win.flows (cluster, ts, ts_ms, proto, observed_by, src_id, dst_id) SELECT 'c', toDateTime(${START_S} + intDiv(number * 72, 1000), 'UTC'), toUInt16((number * 72) % 1000), 'tcp', 'client', concat('w', toString(number % 97)), 'b' FROM numbers(${3 * HOUR_ROWS})`,
    );
  });
  after(async () => ch?.kill());

  const count = async (fromMs: number, toMs: number): Promise<{ n: number; read: number }> => {
    const body = JSON.parse(await ch.query(`SELECT count() AS n FROM win.flows WHERE ${windowCondition({ fromMs, toMs })} FORMAT JSON`)) as {
      data: Array<{ n: string }>;
      statistics: { rows_read: number };
    };
    return { n: Number(body.data[0]!.n), read: body.statistics.rows_read };
  };

  /** How many of the rows (row n at T0 + 72 n ms) are in (from, to]. */
  const rowsIn = (from: number, to: number): number => Array.from({ length: 3 * HOUR_ROWS }, (_, i) => T0 + 72 * i).filter((t) => t > from && t <= to).length;

  test('a window in the last hour reads that hour, not the day; rows counted exactly', async () => {
    // (T0 + 2 h + 10 min, T0 + 2 h + 20 min]: rows 108334 .. 116666
    const from = T0 + 7_800_000;
    const to = T0 + 8_400_000;
    const { n, read } = await count(from, to);
    const expected = rowsIn(from, to);
    assert.equal(n, expected);
    assert.ok(read <= HOUR_ROWS + 2 * 8192, `read ${read} rows of ${3 * HOUR_ROWS} for a window in one hour`);
  });

  test('a window across an hour boundary reads both hours', async () => {
    const from = T0 + 3_000_000;
    const to = T0 + 4_200_000;
    const { n, read } = await count(from, to);
    const expected = rowsIn(from, to);
    assert.equal(n, expected);
    assert.ok(read >= expected && read <= 2 * HOUR_ROWS + 2 * 8192, `read ${read}`);
  });
});
