import { JsonBytes, jsonPiece } from './json-bytes.js';
import type { AgentRecord, K8sInfo, LocalEndpoint, RemoteEndpoint, TcpRecord } from '../events/records.js';

/*
 * TCP records are the high-volume kind: written field by field as bytes (see
 * JsonBytes). Addresses, enums, ids and times are the agent's own ASCII and
 * need no escaping; free text (comm, exe, names) is escaped. The other kinds
 * are few and go through JSON.stringify. Field order is the output contract's.
 */
const P = {
  ts: jsonPiece('{"ts":"'),
  proto: jsonPiece('","proto":"tcp","family":'),
  direction: jsonPiece(',"direction":"'),
  outcome: jsonPiece('","outcome":"'),
  localAddr: jsonPiece('","local":{"addr":"'),
  port: jsonPiece('","port":'),
  pid: jsonPiece(',"pid":'),
  comm: jsonPiece(',"comm":'),
  cgroupId: jsonPiece(',"cgroupId":'),
  netns: jsonPiece(',"netns":'),
  exe: jsonPiece(',"exe":'),
  containerId: jsonPiece(',"containerId":"'),
  containerRuntime: jsonPiece('","containerRuntime":"'),
  containerRuntimeOnly: jsonPiece(',"containerRuntime":"'),
  quote: jsonPiece('"'),
  k8s: jsonPiece(',"k8s":'),
  remoteAddr: jsonPiece('},"remote":{"addr":"'),
  name: jsonPiece(',"name":'),
  reachedAddr: jsonPiece(',"reached":{"addr":"'),
  close: jsonPiece('}'),
  bytesSent: jsonPiece('},"bytesSent":'),
  bytesReceived: jsonPiece(',"bytesReceived":'),
  retransmits: jsonPiece(',"retransmits":'),
  srttUs: jsonPiece(',"srttUs":'),
  durationMs: jsonPiece(',"durationMs":'),
  locality: jsonPiece(',"locality":"'),
  endWithQuote: jsonPiece('"}\n'),
  end: jsonPiece('}\n'),
  newline: jsonPiece('\n'),
};

/**
 * Kubernetes answers are frozen objects shared by every record of a pod or
 * service (the enricher remembers them): each is encoded once.
 */
const k8sJson = new WeakMap<K8sInfo, Uint8Array>();

function writeK8s(w: JsonBytes, k: K8sInfo): void {
  if (!Object.isFrozen(k)) return w.utf8(JSON.stringify(k));
  let bytes = k8sJson.get(k);
  if (bytes === undefined) {
    bytes = jsonPiece(JSON.stringify(k));
    k8sJson.set(k, bytes);
  }
  w.raw(bytes);
}

function writeLocal(w: JsonBytes, l: LocalEndpoint): void {
  w.ascii(l.addr);
  w.raw(P.port);
  w.number(l.port);
  w.raw(P.pid);
  w.number(l.pid);
  w.raw(P.comm);
  w.string(l.comm);
  w.raw(P.cgroupId);
  w.number(l.cgroupId);
  w.raw(P.netns);
  w.number(l.netns);
  if (l.exe !== undefined) {
    w.raw(P.exe);
    w.string(l.exe);
  }
  if (l.containerId !== undefined) {
    w.raw(P.containerId);
    w.ascii(l.containerId);
    if (l.containerRuntime !== undefined) {
      w.raw(P.containerRuntime);
      w.ascii(l.containerRuntime);
    }
    w.raw(P.quote);
  } else if (l.containerRuntime !== undefined) {
    w.raw(P.containerRuntimeOnly);
    w.ascii(l.containerRuntime);
    w.raw(P.quote);
  }
  if (l.k8s !== undefined) {
    w.raw(P.k8s);
    writeK8s(w, l.k8s);
  }
}

function writeRemote(w: JsonBytes, r: RemoteEndpoint): void {
  w.ascii(r.addr);
  w.raw(P.port);
  w.number(r.port);
  if (r.name !== undefined) {
    w.raw(P.name);
    w.string(r.name);
  }
  if (r.reached !== undefined) {
    w.raw(P.reachedAddr);
    w.ascii(r.reached.addr);
    w.raw(P.port);
    w.number(r.reached.port);
    w.raw(P.close);
  }
  if (r.k8s !== undefined) {
    w.raw(P.k8s);
    writeK8s(w, r.k8s);
  }
}

function writeTcp(w: JsonBytes, r: TcpRecord): void {
  w.raw(P.ts);
  w.ascii(r.ts);
  w.raw(P.proto);
  w.number(r.family);
  w.raw(P.direction);
  w.ascii(r.direction);
  w.raw(P.outcome);
  w.ascii(r.outcome);
  w.raw(P.localAddr);
  writeLocal(w, r.local);
  w.raw(P.remoteAddr);
  writeRemote(w, r.remote);
  w.raw(P.bytesSent);
  w.number(r.bytesSent);
  w.raw(P.bytesReceived);
  w.number(r.bytesReceived);
  w.raw(P.retransmits);
  w.number(r.retransmits);
  w.raw(P.srttUs);
  w.number(r.srttUs);
  w.raw(P.durationMs);
  w.number(r.durationMs);
  if (r.locality !== undefined) {
    w.raw(P.locality);
    w.ascii(r.locality);
    w.raw(P.endWithQuote);
  } else {
    w.raw(P.end);
  }
}

/** One JSON object per line, appended to `w`. */
export function writeJsonLines(w: JsonBytes, records: readonly AgentRecord[]): void {
  for (const r of records) {
    if (r.proto === 'tcp') {
      writeTcp(w, r);
    } else {
      w.utf8(JSON.stringify(r));
      w.raw(P.newline);
    }
  }
}

/** The same lines as text (for the low-volume users). */
export function formatJsonLines(records: readonly AgentRecord[]): string {
  if (!records.length) return '';
  const w = new JsonBytes(1024);
  writeJsonLines(w, records);
  return w.take().toString('utf8');
}
