/** Records and intervals for the store's unit tests: explicit times from T0, the clock the tests control. */
import type { TcpRecord } from '../../src/events/records.js';
import { EdgeTable } from '../../src/flows/edge-table.js';
import type { FlowRecord, RecordingFlowStore } from '../../src/store/flow-store.js';

export const T0 = Date.parse('2026-11-25T12:00:00.000Z');
let nextPort = 40000;

/** A TCP record; `at` is ms after T0. */
export function tcp(o: Partial<TcpRecord> & { at?: number; comm?: string; from?: string; to?: string; port?: number; name?: string } = {}): TcpRecord {
  const { at = 0, comm = 'cli', from = '10.0.0.1', to = '10.0.0.2', port = 443, name, ...rest } = o;
  const outbound = (rest.direction ?? 'outbound') === 'outbound';
  const eph = nextPort++;
  return {
    ts: new Date(T0 + at).toISOString(), proto: 'tcp', family: 4, direction: 'outbound', outcome: 'closed',
    local: { addr: outbound ? from : to, port: outbound ? eph : port, pid: 7, comm, cgroupId: 1, netns: 1 },
    remote: { addr: outbound ? to : from, port: outbound ? port : eph, ...(name ? { name } : {}) },
    bytesSent: 0, bytesReceived: 0, retransmits: 0, srttUs: 0, durationMs: 1, locality: 'same-host',
    ...rest,
  };
}

/** The server's record of the same connection as client record `c`. */
export function serverSide(c: TcpRecord, comm: string, at = 0): TcpRecord {
  return {
    ...c,
    ts: new Date(Date.parse(c.ts) + at).toISOString(),
    direction: 'inbound',
    local: { addr: c.remote.addr, port: c.remote.port, pid: 9, comm, cgroupId: 2, netns: 2 },
    remote: { addr: c.local.addr, port: c.local.port },
    bytesSent: c.bytesReceived,
    bytesReceived: c.bytesSent,
  };
}

/** Feed records as one interval ending at T0 + endAt. */
export function interval(store: RecordingFlowStore, endAt: number, records: FlowRecord[], maxEdges = 10_000): void {
  const t = new EdgeTable(undefined, maxEdges);
  for (const r of records) t.add(r);
  store.addInterval(T0 + endAt, 1000, t.drain(), records);
}
