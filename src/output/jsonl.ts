import type { TcpRecord } from '../events/tcp-record.js';

/** One JSON object per line; a batch becomes one write. */
export function formatJsonLines(records: readonly TcpRecord[]): string {
  let out = '';
  for (const r of records) out += JSON.stringify(r) + '\n';
  return out;
}
