/**
 * Aggregates connection and flow records into edges: who talked to whom, on
 * which server port, over which protocol, as seen by which side, during one
 * interval. Keys never hold client ports (the server side of an edge is its
 * listening port), so the number of edges stays bounded by the services and
 * callers, not by connections. The table itself is bounded too: once it holds
 * `maxEdges`, further new edges are folded into one overflow edge, and counted.
 */
import type { AgentRecord, K8sInfo, TcpRecord, UdpRecord } from '../events/records.js';
import { Histogram, RTT_BOUNDS_US } from './histogram.js';

/** One end of an edge, as specific as what is known about it. */
export interface EdgeEnd {
  /** the identity the edge is keyed by, e.g. "payments/checkout", "process:curl", "dns:api.example.com", "10.0.0.7" */
  id: string;
  namespace?: string;
  workload?: string;
  workloadKind?: string;
  service?: string;
  process?: string;
  name?: string;
  node?: string;
  addr?: string;
}

export interface Edge {
  proto: 'tcp' | 'udp';
  /** which end's agent saw it: the caller's (client) or the callee's (server); both may report the same traffic */
  observedBy: 'client' | 'server';
  source: EdgeEnd;
  destination: EdgeEnd;
  /** the server's port */
  port: number;
  locality?: string;
  connections: number;
  failed: { refused: number; timeout: number; reset: number };
  bytesSent: number;
  bytesReceived: number;
  packetsSent: number;
  packetsReceived: number;
  retransmits: number;
  rttUs: Histogram;
}

/** Turns a record into the two ends of its edge: the caller (source) and the callee (destination). */
export type EdgeEnds = (r: TcpRecord | UdpRecord, clientIsLocal: boolean) => { source: EdgeEnd; destination: EdgeEnd; locality?: string };

/**
 * Edge ends are made once per identity and shared (frozen) by every record
 * and edge that has it: per record, finding its ends is a map lookup, not a
 * few objects and strings. Kubernetes answers are shared objects too (the
 * cluster index remembers them), so they are looked up by identity first.
 * Bounded: past `MAX_ENDS` ends of a kind, that kind starts over (safe: edges
 * are keyed by id, so a fresh end object for a known id changes nothing).
 */
const MAX_ENDS = 16_384;

class EndInterner {
  /** by identity of the (shared, frozen) Kubernetes answer: a Map, cleared with the rest, is cheaper than a WeakMap here */
  private readonly byK8s = new Map<K8sInfo, EdgeEnd | null>();
  private readonly byId = new Map<string, EdgeEnd>();
  private readonly processes = new Map<string, EdgeEnd>();
  private readonly names = new Map<string, EdgeEnd>();
  private readonly addrs = new Map<string, EdgeEnd>();

  private intern(id: string, make: () => EdgeEnd): EdgeEnd {
    let e = this.byId.get(id);
    if (!e) {
      if (this.byId.size >= MAX_ENDS) {
        this.byId.clear();
        this.byK8s.clear();
      }
      e = Object.freeze(make());
      this.byId.set(id, e);
    }
    return e;
  }

  /** A workload, else a Service alone, else a node; null when the answer names none of them. */
  k8s(k: K8sInfo, addr: string): EdgeEnd | null {
    let e = this.byK8s.get(k);
    if (e !== undefined) return e;
    e = null;
    if (k.workload !== undefined) {
      const id = `${k.namespace ?? ''}/${k.workload}`;
      e = this.intern(id, () => {
        const end: EdgeEnd = { id, namespace: k.namespace, workload: k.workload, workloadKind: k.workloadKind };
        if (k.service !== undefined) end.service = k.service;
        return end;
      });
    } else if (k.service !== undefined) {
      const id = `svc:${k.namespace ?? ''}/${k.service}`;
      e = this.intern(id, () => ({ id, namespace: k.namespace, service: k.service }));
    } else if (k.node !== undefined) {
      const id = `node:${k.node}`;
      e = this.intern(id, () => ({ id, node: k.node, addr }));
    }
    if (this.byK8s.size >= MAX_ENDS) this.byK8s.clear();
    this.byK8s.set(k, e);
    return e;
  }

  private plain(map: Map<string, EdgeEnd>, key: string, make: () => EdgeEnd): EdgeEnd {
    let e = map.get(key);
    if (!e) {
      if (map.size >= MAX_ENDS) map.clear();
      e = Object.freeze(make());
      map.set(key, e);
    }
    return e;
  }

  process(comm: string): EdgeEnd {
    return this.plain(this.processes, comm, () => ({ id: `process:${comm}`, process: comm }));
  }

  name(name: string, addr: string): EdgeEnd {
    return this.plain(this.names, name, () => ({ id: `dns:${name}`, name, addr }));
  }

  addr(addr: string): EdgeEnd {
    return this.plain(this.addrs, addr, () => ({ id: addr, addr }));
  }
}

const ENDS = new EndInterner();

/** The local end: a Kubernetes workload, else the process by command name. */
function localEnd(r: TcpRecord | UdpRecord): EdgeEnd {
  const lk = r.local.k8s;
  return (lk?.workload !== undefined ? ENDS.k8s(lk, r.local.addr) : null) ?? ENDS.process(r.local.comm);
}

/** The remote end: a workload or Service first; a node's address only after a DNS name; else the address reached. */
function remoteEnd(r: TcpRecord | UdpRecord): EdgeEnd {
  const rk = r.remote.k8s;
  const name = r.remote.name;
  const addr = r.remote.reached?.addr ?? r.remote.addr;
  let remote: EdgeEnd | null = null;
  if (rk && (rk.workload !== undefined || rk.service !== undefined)) remote = ENDS.k8s(rk, addr);
  if (!remote && name !== undefined) remote = ENDS.name(name, addr);
  if (!remote && rk?.node !== undefined) remote = ENDS.k8s(rk, addr);
  return remote ?? ENDS.addr(addr);
}

/**
 * The ends of an edge, as specific as what is known: a Kubernetes workload,
 * else (remote) a Service dialled, a DNS name, a node, an address; else
 * (local) the process by command name. Ends are shared: read, never change them.
 */
export const recordEnds: EdgeEnds = (r, clientIsLocal) => {
  const local = localEnd(r);
  const remote = remoteEnd(r);
  return clientIsLocal ? { source: local, destination: remote, locality: r.locality } : { source: remote, destination: local, locality: r.locality };
};

/** UDP has no caller and callee: the end on the ephemeral (or, failing that, higher) port is taken as the client. */
export function udpClientIsLocal(r: UdpRecord): boolean {
  const EPHEMERAL = 32768;
  const localEphemeral = r.local.port >= EPHEMERAL;
  const remoteEphemeral = r.remote.port >= EPHEMERAL;
  if (localEphemeral !== remoteEphemeral) return localEphemeral;
  return r.local.port > r.remote.port;
}

const OVERFLOW: EdgeEnd = { id: '(overflow)' };

/** The edges of one record key (local end, remote end) by port and side: nearly always one, so a short chain. */
interface PortSlot {
  key: number;
  edge: Edge;
  next: PortSlot | undefined;
}

/**
 * Record keys of one local end: what `recordEnds` makes the remote end of, a
 * shared Kubernetes answer (by identity), a DNS name or an address. Names and
 * addresses are kept apart: a name may be spelt like an address.
 */
interface RemoteIndex {
  byAnswer: Map<K8sInfo, PortSlot>;
  byName: Map<string, PortSlot>;
  byAddr: Map<string, PortSlot>;
}

export class EdgeTable {
  /** every edge by "source id, destination id, port and side": the edges' identity; built only for a record key not yet seen */
  private edges = new Map<string, Edge>();
  /**
   * The edge of a record, found from what the record carries (shared
   * Kubernetes answers, command names, DNS names, addresses) without making
   * its ends or a key string: local key, then remote key, then the port.
   * Several record keys may lead to one edge (a Kubernetes answer replaced by
   * an equal one after a change of the cluster): `edges` unites them.
   * Bounded: cleared when it holds too many keys, and rebuilt as records come.
   */
  private index = new Map<K8sInfo | string, RemoteIndex>();
  private indexed = 0;
  private count = 0;
  /** records folded into the overflow edge since start */
  overflowed = 0;

  constructor(
    private readonly ends: EdgeEnds = recordEnds,
    readonly maxEdges = 10_000,
  ) {}

  get size(): number {
    return this.count;
  }

  add(r: AgentRecord): void {
    if (r.proto === 'dns') return;
    const clientIsLocal = r.proto === 'tcp' ? r.direction === 'outbound' : udpClientIsLocal(r);
    const port = clientIsLocal ? (r.proto === 'tcp' && r.remote.reached ? r.remote.reached.port : r.remote.port) : r.local.port;
    const key = port * 4 + (r.proto === 'udp' ? 2 : 0) + (clientIsLocal ? 0 : 1);
    const edge = this.ends === recordEnds ? this.indexedEdge(r, key, clientIsLocal) : this.edgeOf(r, key, clientIsLocal, this.ends(r, clientIsLocal));
    count(edge, r, clientIsLocal);
  }

  /** The edge of `r` through the index; on a miss, through its ends and `edges`, then indexed. */
  private indexedEdge(r: TcpRecord | UdpRecord, key: number, clientIsLocal: boolean): Edge {
    const lk = r.local.k8s;
    const localKey = lk?.workload !== undefined ? lk : r.local.comm;
    let remotes = this.index.get(localKey);
    // the same choice as remoteEnd, on what the record carries
    const rk = r.remote.k8s;
    const name = r.remote.name;
    let byRemote: Map<K8sInfo, PortSlot> | Map<string, PortSlot>;
    let remoteKey: K8sInfo | string;
    if (rk && (rk.workload !== undefined || rk.service !== undefined)) {
      byRemote = (remotes ??= this.newRemoteIndex(localKey)).byAnswer;
      remoteKey = rk;
    } else if (name !== undefined) {
      byRemote = (remotes ??= this.newRemoteIndex(localKey)).byName;
      remoteKey = name;
    } else if (rk?.node !== undefined) {
      byRemote = (remotes ??= this.newRemoteIndex(localKey)).byAnswer;
      remoteKey = rk;
    } else {
      byRemote = (remotes ??= this.newRemoteIndex(localKey)).byAddr;
      remoteKey = r.remote.reached?.addr ?? r.remote.addr;
    }
    const first = (byRemote as Map<K8sInfo | string, PortSlot>).get(remoteKey);
    for (let s = first; s !== undefined; s = s.next) if (s.key === key) return s.edge;

    const local = localEnd(r);
    const remote = remoteEnd(r);
    const ends = clientIsLocal ? { source: local, destination: remote, locality: r.locality } : { source: remote, destination: local, locality: r.locality };
    const edge = this.edgeOf(r, key, clientIsLocal, ends);
    if (edge.source === OVERFLOW) return edge; // past the bound, a new record key creates nothing
    if (this.indexed >= 2 * this.maxEdges + 1024) {
      this.index.clear();
      this.indexed = 0;
      return edge;
    }
    (byRemote as Map<K8sInfo | string, PortSlot>).set(remoteKey, { key, edge, next: first });
    this.indexed++;
    return edge;
  }

  private newRemoteIndex(localKey: K8sInfo | string): RemoteIndex {
    const remotes: RemoteIndex = { byAnswer: new Map(), byName: new Map(), byAddr: new Map() };
    this.index.set(localKey, remotes);
    return remotes;
  }

  /** The edge of these ends, made if new; past the bound, the overflow edge. */
  private edgeOf(r: TcpRecord | UdpRecord, key: number, clientIsLocal: boolean, ends: { source: EdgeEnd; destination: EdgeEnd; locality?: string }): Edge {
    const id = edgeId(ends.source, ends.destination, key);
    let edge = this.edges.get(id);
    if (edge) return edge;
    if (this.count >= this.maxEdges) {
      this.overflowed++;
      const side = key & 3;
      const overflowId = edgeId(OVERFLOW, OVERFLOW, side);
      edge = this.edges.get(overflowId);
      if (!edge) {
        edge = newEdge(r.proto, clientIsLocal, OVERFLOW, OVERFLOW, 0, ends.locality);
        this.edges.set(overflowId, edge);
        this.count++;
      }
      return edge;
    }
    edge = newEdge(r.proto, clientIsLocal, ends.source, ends.destination, key >> 2, ends.locality);
    this.edges.set(id, edge);
    this.count++;
    return edge;
  }

  /** The edges of the interval now ending; the table starts empty again. */
  drain(): Edge[] {
    const out = [...this.edges.values()];
    this.edges = new Map();
    this.index = new Map();
    this.indexed = 0;
    this.count = 0;
    return out;
  }
}

/** An edge's identity: ids cannot hold a NUL. */
function edgeId(source: EdgeEnd, destination: EdgeEnd, key: number): string {
  return `${source.id}\0${destination.id}\0${key}`;
}

function newEdge(proto: 'tcp' | 'udp', clientIsLocal: boolean, source: EdgeEnd, destination: EdgeEnd, port: number, locality: string | undefined): Edge {
  return {
    proto,
    observedBy: clientIsLocal ? 'client' : 'server',
    source,
    destination,
    port,
    locality,
    connections: 0,
    failed: { refused: 0, timeout: 0, reset: 0 },
    bytesSent: 0,
    bytesReceived: 0,
    packetsSent: 0,
    packetsReceived: 0,
    retransmits: 0,
    rttUs: new Histogram(RTT_BOUNDS_US),
  };
}

/** Adds a record to its edge: bytes and packets in the caller -> callee direction. */
function count(edge: Edge, r: TcpRecord | UdpRecord, clientIsLocal: boolean): void {
  edge.bytesSent += clientIsLocal ? r.bytesSent : r.bytesReceived;
  edge.bytesReceived += clientIsLocal ? r.bytesReceived : r.bytesSent;
  if (r.proto === 'tcp') {
    edge.connections++;
    if (r.outcome !== 'closed') edge.failed[r.outcome]++;
    edge.retransmits += r.retransmits;
    if (r.srttUs > 0) edge.rttUs.observe(r.srttUs);
  } else {
    edge.packetsSent += clientIsLocal ? r.packetsSent : r.packetsReceived;
    edge.packetsReceived += clientIsLocal ? r.packetsReceived : r.packetsSent;
  }
}
