import type { AgentRecord } from '../events/records.js';

/** One JSON object per line; a batch becomes one write. */
export function formatJsonLines(records: readonly AgentRecord[]): string {
  let out = '';
  for (const r of records) out += JSON.stringify(r) + '\n';
  return out;
}
