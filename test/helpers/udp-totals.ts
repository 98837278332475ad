/** Sums of UDP records, and waiting for a flow's records to add up to what was sent. */
import assert from 'node:assert/strict';
import type { TraceAgent } from './agent.js';
import type { UdpRecord } from '../../src/events/records.js';

export interface Totals {
  packetsSent: number;
  bytesSent: number;
  packetsReceived: number;
  bytesReceived: number;
}

export function sum(records: UdpRecord[]): Totals {
  const t = { packetsSent: 0, bytesSent: 0, packetsReceived: 0, bytesReceived: 0 };
  for (const r of records) {
    t.packetsSent += r.packetsSent;
    t.bytesSent += r.bytesSent;
    t.packetsReceived += r.packetsReceived;
    t.bytesReceived += r.bytesReceived;
  }
  return t;
}

/** Wait for the totals of `agent`'s UDP records matching `pred` to reach `want`; then those records. */
export async function flowTotals(agent: TraceAgent, pred: (r: UdpRecord) => boolean, want: Totals, what: string): Promise<UdpRecord[]> {
  try {
    return await agent.until(() => {
      const rs = agent.udp(pred);
      return rs.length && JSON.stringify(sum(rs)) === JSON.stringify(want) ? rs : undefined;
    }, what);
  } catch (e) {
    assert.deepEqual(sum(agent.udp(pred)), want, `${what}: ${(e as Error).message}`);
    throw e;
  }
}

/** The sum of a list of sizes. */
export const total = (sizes: number[]): number => sizes.reduce((a, b) => a + b, 0);

/** Each record's direction and the rule that decided it, once each. */
export const decided = (records: UdpRecord[]): string[] => [...new Set(records.map((r) => `${r.direction} by ${r.directionFrom}`))];
