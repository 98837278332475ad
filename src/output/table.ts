import type { AgentRecord, DnsRecord, RemoteEndpoint, TcpRecord, UdpRecord } from '../events/records.js';

/** Columns of the human-readable trace output: header, width, cell. */
/** Widths fit the longest value (a full IPv6 endpoint is 47 characters). */
const COLUMNS: ReadonlyArray<[string, number, (r: TcpRecord) => string]> = [
  ['TIME', 12, (r) => r.ts.slice(11, 23)],
  ['PID', 7, (r) => String(r.local.pid)],
  ['COMM', 15, (r) => r.local.comm],
  ['DIR', 3, (r) => (r.direction === 'outbound' ? 'OUT' : 'IN')],
  ['LOCAL', 47, (r) => endpoint(r.local.addr, r.local.port)],
  ['REMOTE', 47, (r) => remote(r.remote)],
  ['OUTCOME', 7, (r) => r.outcome ?? r.state ?? ''],
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

/** The DNS name when one is known: that is what a person wants to read. */
function remote(r: RemoteEndpoint): string {
  return r.name ? `${r.name}:${r.port}` : endpoint(r.addr, r.port);
}

function cell(name: string, width: number, text: string): string {
  return RIGHT_ALIGNED.has(name) ? text.padStart(width) : text.padEnd(width);
}

export function tableHeader(): string {
  return COLUMNS.map(([name, width]) => cell(name, width, name)).join(' ').trimEnd() + '\n';
}

function row(cells: string[]): string {
  return cells.map((text, i) => cell(COLUMNS[i]![0], COLUMNS[i]![1], text)).join(' ').trimEnd() + '\n';
}

/** UDP rows reuse the TCP columns: packets in OUTCOME, the interval in MS. */
function udpRow(r: UdpRecord): string {
  return row([
    r.ts.slice(11, 23), String(r.local.pid), r.local.comm, 'UDP',
    endpoint(r.local.addr, r.local.port), remote(r.remote), `${r.packetsSent}/${r.packetsReceived}p`,
    String(r.bytesSent), String(r.bytesReceived), '-', '-', r.intervalMs.toFixed(3),
  ]);
}

/** DNS rows: the fixed columns up to OUTCOME (the rcode), then the lookup. */
function dnsRow(r: DnsRecord): string {
  const head = row([
    r.ts.slice(11, 23), String(r.local.pid), r.local.comm, 'DNS',
    endpoint(r.local.addr, r.local.port), endpoint(r.remote.addr, r.remote.port), r.rcode,
  ]).trimEnd();
  const answers = r.answers.map((a) => `${a.type} ${a.data}`).join(', ');
  const latency = r.latencyMs === null ? '' : ` (${r.latencyMs.toFixed(3)} ms)`;
  return `${head} ${r.qtype} ${r.query}${answers ? ` -> ${answers}` : ''}${latency}\n`;
}

export function formatTableRows(records: readonly AgentRecord[]): string {
  let out = '';
  for (const r of records) {
    if (r.proto === 'udp') out += udpRow(r);
    else if (r.proto === 'dns') out += dnsRow(r);
    else out += COLUMNS.map(([name, width, f]) => cell(name, width, f(r as TcpRecord))).join(' ').trimEnd() + '\n';
  }
  return out;
}
