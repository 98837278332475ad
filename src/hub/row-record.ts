/**
 * A row of the flows table back into the record it was shipped as (the
 * `trace --json` contract, with `cluster` and `node`), for the connections of
 * an edge: what the ClickHouse sink flattened (clickhouse-schema.ts flowRow),
 * unflattened; the '' and 0 it wrote for what a record did not carry are left
 * out again.
 */
import type { K8sInfo, Locality, TcpRecord, UdpRecord } from '../events/records.js';
import { K8S_SIDE_COLUMNS, type FlowRow } from '../sinks/clickhouse-schema.js';

export type ShippedFlow = (TcpRecord | UdpRecord) & { cluster: string | null; node: string };

/** A value of a JSONEachRow answer (64-bit integers come as strings) as text, '' when absent. */
export const str = (v: unknown): string => (v === undefined || v === null ? '' : String(v));
/** ... as a number, 0 when absent. */
export const num = (v: unknown): number => (v === undefined || v === null || v === '' ? 0 : Number(v));

function k8s(r: FlowRow, side: 'local' | 'remote'): K8sInfo | undefined {
  const k: K8sInfo = {};
  for (const [field, name] of K8S_SIDE_COLUMNS[side]) {
    const v = str(r[name]);
    if (v) k[field] = v;
  }
  if (side === 'local' && num(r.local_host_network)) k.hostNetwork = true;
  return Object.keys(k).length ? k : undefined;
}

/** `ts` ('YYYY-MM-DD hh:mm:ss', UTC) and `ts_ms` as ISO-8601. */
export function rowTime(r: FlowRow): string {
  return new Date(Date.parse(`${str(r.ts).replace(' ', 'T')}Z`) + num(r.ts_ms)).toISOString();
}

export function rowRecord(r: FlowRow): ShippedFlow {
  const local: TcpRecord['local'] = {
    addr: str(r.local_addr),
    port: num(r.local_port),
    pid: num(r.local_pid),
    comm: str(r.local_comm),
    cgroupId: num(r.local_cgroup_id),
    netns: num(r.local_netns),
  };
  if (str(r.local_exe)) local.exe = str(r.local_exe);
  if (str(r.local_container_id)) local.containerId = str(r.local_container_id);
  if (str(r.local_container_runtime)) local.containerRuntime = str(r.local_container_runtime);
  const lk = k8s(r, 'local');
  if (lk) local.k8s = lk;
  const remote: TcpRecord['remote'] = { addr: str(r.remote_addr), port: num(r.remote_port) };
  if (str(r.remote_name)) remote.name = str(r.remote_name);
  if (str(r.remote_reached_addr)) remote.reached = { addr: str(r.remote_reached_addr), port: num(r.remote_reached_port) };
  const rk = k8s(r, 'remote');
  if (rk) remote.k8s = rk;
  const common = {
    ts: rowTime(r),
    family: (num(r.family) === 6 ? 6 : 4) as 4 | 6,
    direction: (str(r.direction) === 'inbound' ? 'inbound' : 'outbound') as 'inbound' | 'outbound',
    local,
    remote,
  };
  const locality = str(r.locality) ? { locality: str(r.locality) as Locality } : {};
  const where = { cluster: str(r.cluster) || null, node: str(r.node) };
  if (str(r.proto) === 'udp') {
    const from = str(r.direction_from);
    return {
      ...common,
      proto: 'udp',
      // rows written before the column have none: left out rather than guessed
      ...(from === 'first-datagram' || from === 'ports' ? { directionFrom: from } : {}),
      packetsSent: num(r.packets_sent),
      packetsReceived: num(r.packets_received),
      bytesSent: num(r.bytes_sent),
      bytesReceived: num(r.bytes_received),
      intervalMs: num(r.interval_ms),
      ...locality,
      ...where,
    } as ShippedFlow;
  }
  return {
    ...common,
    proto: 'tcp',
    outcome: (str(r.outcome) || 'closed') as TcpRecord['outcome'],
    bytesSent: num(r.bytes_sent),
    bytesReceived: num(r.bytes_received),
    retransmits: num(r.retransmits),
    srttUs: num(r.srtt_us),
    durationMs: num(r.duration_ms),
    ...locality,
    ...(str(r.state) === 'open' ? { state: 'open' } : {}),
    ...where,
  } as ShippedFlow;
}
