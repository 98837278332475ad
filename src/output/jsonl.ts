import { JsonBytes, jsonPiece } from './json-bytes.js';
import { LOCALITIES, type AgentRecord, type K8sInfo, type LocalEndpoint, type RemoteEndpoint, type TcpRecord } from '../events/records.js';

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
  state: jsonPiece('","state":"'),
  openedBeforeStart: jsonPiece(',"openedBeforeStart":true'),
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

/** What a local end says after its address and port: the same for every record of a process. */
interface LocalTail {
  comm: string;
  cgroupId: number;
  netns: number;
  exe: string | undefined;
  containerId: string | undefined;
  containerRuntime: string | undefined;
  k8s: K8sInfo | undefined;
  bytes: Uint8Array;
}

/**
 * The encoded tails of the processes seen last, by pid: a hit when every
 * field is the same (a reused pid, a new exe or pod make a new one).
 */
const localTails = new Map<number, LocalTail>();
const MAX_LOCAL_TAILS = 4096;
const tailScratch = new JsonBytes(1024);

function sameTail(t: LocalTail, l: LocalEndpoint): boolean {
  return (
    t.comm === l.comm &&
    t.cgroupId === l.cgroupId &&
    t.netns === l.netns &&
    t.exe === l.exe &&
    t.containerId === l.containerId &&
    t.containerRuntime === l.containerRuntime &&
    t.k8s === l.k8s
  );
}

function localTail(l: LocalEndpoint): Uint8Array {
  const cached = localTails.get(l.pid);
  if (cached !== undefined && sameTail(cached, l)) return cached.bytes;
  writeLocalTail(tailScratch, l);
  const bytes = new Uint8Array(tailScratch.take());
  if (localTails.size >= MAX_LOCAL_TAILS) localTails.clear();
  localTails.set(l.pid, {
    comm: l.comm,
    cgroupId: l.cgroupId,
    netns: l.netns,
    exe: l.exe,
    containerId: l.containerId,
    containerRuntime: l.containerRuntime,
    k8s: l.k8s,
    bytes,
  });
  return bytes;
}

function writeLocalTail(w: JsonBytes, l: LocalEndpoint): void {
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

function writeLocal(w: JsonBytes, l: LocalEndpoint): void {
  w.ascii(l.addr);
  w.raw(P.port);
  w.number(l.port);
  // a Kubernetes answer that may still change is not kept
  if (l.k8s !== undefined && !Object.isFrozen(l.k8s)) writeLocalTail(w, l);
  else w.raw(localTail(l));
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

/*
 * The text between the time and the local address depends only on family,
 * direction and outcome (or state, for an open connection's record), and the
 * end of the line only on locality: each combination is encoded once and
 * copied whole.
 */
const FAMILIES = [4, 6] as const;
const DIRECTIONS = ['outbound', 'inbound'] as const;
/** the four outcomes, then the state of an open connection's record */
const OUTCOMES = ['closed', 'reset', 'refused', 'timeout', 'open'] as const;

/** By (direction, outcome, family) index: see headIndex(). */
const HEADS: Uint8Array[] = [];
for (const d of DIRECTIONS) {
  for (const o of OUTCOMES) {
    for (const f of FAMILIES) {
      const what = o === 'open' ? `"state":"open"` : `"outcome":"${o}"`;
      HEADS.push(jsonPiece(`","proto":"tcp","family":${f},"direction":"${d}",${what},"local":{"addr":"`));
    }
  }
}

/** Comparisons, not keyed lookups: the record's strings are the same few constants, compared by pointer. */
function headIndex(r: TcpRecord): number {
  const d = r.direction === 'outbound' ? 0 : r.direction === 'inbound' ? 1 : -1;
  const o =
    r.state === 'open'
      ? r.outcome === undefined ? 4 : -1
      : r.outcome === 'closed' ? 0 : r.outcome === 'reset' ? 1 : r.outcome === 'refused' ? 2 : r.outcome === 'timeout' ? 3 : -1;
  const f = r.family === 4 ? 0 : r.family === 6 ? 1 : -1;
  return d < 0 || o < 0 || f < 0 ? -1 : (d * OUTCOMES.length + o) * FAMILIES.length + f;
}

const ENDS = LOCALITIES.map((l) => jsonPiece(`,"locality":"${l}"}\n`));

function localityIndex(l: string): number {
  for (let i = 0; i < LOCALITIES.length; i++) if (l === LOCALITIES[i]) return i;
  return -1;
}

function writeTcp(w: JsonBytes, r: TcpRecord): void {
  w.raw(P.ts);
  w.ascii(r.ts);
  const head = headIndex(r);
  if (head >= 0) {
    w.raw(HEADS[head]!);
  } else {
    // not one of the contract's values: written as it is
    w.raw(P.proto);
    w.number(r.family);
    w.raw(P.direction);
    w.ascii(r.direction);
    if (r.state !== undefined) {
      w.raw(P.state);
      w.ascii(r.state);
    }
    if (r.outcome !== undefined) {
      w.raw(P.outcome);
      w.ascii(r.outcome);
    }
    w.raw(P.localAddr);
  }
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
  if (r.openedBeforeStart) w.raw(P.openedBeforeStart);
  if (r.locality === undefined) {
    w.raw(P.end);
    return;
  }
  const end = localityIndex(r.locality);
  if (end >= 0) {
    w.raw(ENDS[end]!);
  } else {
    w.raw(P.locality);
    w.ascii(r.locality);
    w.raw(P.endWithQuote);
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

/** One writer for formatJsonLines: it is used synchronously and hands out text. */
const textWriter = new JsonBytes(16 * 1024);

/** The same lines as text (the sinks format each shipped record with it). */
export function formatJsonLines(records: readonly AgentRecord[]): string {
  if (!records.length) return '';
  writeJsonLines(textWriter, records);
  return textWriter.takeText();
}
