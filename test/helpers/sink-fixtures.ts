/** What the sink unit tests share: the shipping fields of a record, fast batching, and waiting on a condition. */

/** The fields a sink adds to every record it ships. */
export const SHIP = { cluster: 'prod-eu' as string | null, node: 'node-1', intervalStart: '2026-01-01T00:00:00.000Z', intervalMs: 10000 };

/** Batching quick enough for a test: flush every 20 ms, retry after 50-200 ms; the bounds given, or the sink's defaults. */
export const testBatching = ({ maxQueued, maxBatch }: { maxQueued?: number; maxBatch?: number }) => ({
  flushIntervalMs: 20, retryBaseMs: 50, retryMaxMs: 200, ...(maxQueued ? { maxQueued } : {}), ...(maxBatch ? { maxBatch } : {}),
});

/** Poll `cond` every 10 ms until it holds; throws after `ms`. */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
