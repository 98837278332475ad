import type { TcpRecord } from '../events/tcp-record.js';

/** Columns of the human-readable trace output: header, width, cell. */
/** Widths fit the longest value (a full IPv6 endpoint is 47 characters). */
const COLUMNS: ReadonlyArray<[string, number, (r: TcpRecord) => string]> = [
  ['TIME', 12, (r) => r.ts.slice(11, 23)],
  ['PID', 7, (r) => String(r.local.pid)],
  ['COMM', 15, (r) => r.local.comm],
  ['DIR', 3, (r) => (r.direction === 'outbound' ? 'OUT' : 'IN')],
  ['LOCAL', 47, (r) => endpoint(r.local.addr, r.local.port)],
  ['REMOTE', 47, (r) => endpoint(r.remote.addr, r.remote.port)],
  ['OUTCOME', 7, (r) => r.outcome],
  ['TX_BYTES', 14, (r) => String(r.bytesSent)],
  ['RX_BYTES', 14, (r) => String(r.bytesReceived)],
  ['RETR', 4, (r) => String(r.retransmits)],
  ['RTT_US', 7, (r) => String(r.srttUs)],
  ['MS', 12, (r) => r.durationMs.toFixed(3)],
];

const RIGHT_ALIGNED = new Set(['PID', 'TX_BYTES', 'RX_BYTES', 'RETR', 'RTT_US', 'MS']);

function endpoint(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

function cell(name: string, width: number, text: string): string {
  return RIGHT_ALIGNED.has(name) ? text.padStart(width) : text.padEnd(width);
}

export function tableHeader(): string {
  return COLUMNS.map(([name, width]) => cell(name, width, name)).join(' ').trimEnd() + '\n';
}

export function formatTableRows(records: readonly TcpRecord[]): string {
  let out = '';
  for (const r of records) out += COLUMNS.map(([name, width, f]) => cell(name, width, f(r))).join(' ').trimEnd() + '\n';
  return out;
}
