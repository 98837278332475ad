import type { AgentRecord, LocalEndpoint, RemoteEndpoint, TcpRecord } from '../events/records.js';

const str = JSON.stringify;

function local(l: LocalEndpoint): string {
  let out = `{"addr":"${l.addr}","port":${l.port},"pid":${l.pid},"comm":${str(l.comm)},"cgroupId":${l.cgroupId},"netns":${l.netns}`;
  if (l.exe !== undefined) out += `,"exe":${str(l.exe)}`;
  if (l.containerId !== undefined) out += `,"containerId":"${l.containerId}"`;
  if (l.containerRuntime !== undefined) out += `,"containerRuntime":"${l.containerRuntime}"`;
  if (l.k8s !== undefined) out += `,"k8s":${str(l.k8s)}`;
  return out + '}';
}

function remote(r: RemoteEndpoint): string {
  let out = `{"addr":"${r.addr}","port":${r.port}`;
  if (r.name !== undefined) out += `,"name":${str(r.name)}`;
  if (r.reached !== undefined) out += `,"reached":{"addr":"${r.reached.addr}","port":${r.reached.port}}`;
  if (r.k8s !== undefined) out += `,"k8s":${str(r.k8s)}`;
  return out + '}';
}

/**
 * TCP records are the high-volume kind: written field by field, which is
 * several times cheaper than JSON.stringify. Addresses, enums and numbers need
 * no escaping; free text (comm, name) goes through JSON.stringify.
 */
function tcpLine(r: TcpRecord): string {
  return (
    `{"ts":"${r.ts}","proto":"tcp","family":${r.family},"direction":"${r.direction}","outcome":"${r.outcome}",` +
    `"local":${local(r.local)},"remote":${remote(r.remote)},"bytesSent":${r.bytesSent},"bytesReceived":${r.bytesReceived},` +
    `"retransmits":${r.retransmits},"srttUs":${r.srttUs},"durationMs":${r.durationMs}` +
    (r.locality !== undefined ? `,"locality":"${r.locality}"}\n` : '}\n')
  );
}

/** One JSON object per line; a batch becomes one write. */
export function formatJsonLines(records: readonly AgentRecord[]): string {
  let out = '';
  for (const r of records) out += r.proto === 'tcp' ? tcpLine(r) : str(r) + '\n';
  return out;
}
