/**
 * Aggregates connection and flow records into edges: who talked to whom, on
 * which server port, over which protocol, as seen by which side, during one
 * interval. Keys never hold client ports (the server side of an edge is its
 * listening port), so the number of edges stays bounded by the services and
 * callers, not by connections. The table itself is bounded too: once it holds
 * `maxEdges`, further new edges are folded into one overflow edge, and counted.
 */
import type { AgentRecord, K8sInfo, TcpRecord, UdpRecord } from '../events/records.js';
import { bucketOf, Histogram, RTT_BOUNDS_US } from './histogram.js';

/** One end of an edge, as specific as what is known about it. */
export interface EdgeEnd {
  /** the identity the edge is keyed by, e.g. "payments/checkout", "process:curl", "dns:api.example.com", "10.0.0.7" (a hub: prefixed by `<cluster>:`) */
  id: string;
  /** a hub's ends: the cluster the end is in ('' for agents without clusterName: then no prefix) */
  cluster?: string;
  namespace?: string;
  workload?: string;
  workloadKind?: string;
  service?: string;
  process?: string;
  name?: string;
  node?: string;
  addr?: string;
}

/** What an edge counts (edges, stored edges, API and ClickHouse summaries), whatever form its RTT takes. */
export interface TrafficTotals {
  /** TCP connections ended, and how many failed */
  connections: number;
  failed: { refused: number; timeout: number; reset: number };
  /** caller to callee, and back */
  bytesSent: number;
  bytesReceived: number;
  packetsSent: number;
  packetsReceived: number;
  retransmits: number;
}

export interface Edge extends TrafficTotals {
  proto: 'tcp' | 'udp';
  /** which end's agent saw it: the caller's (client) or the callee's (server); both may report the same traffic */
  observedBy: 'client' | 'server';
  source: EdgeEnd;
  destination: EdgeEnd;
  /** the server's port */
  port: number;
  locality?: string;
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

const OVERFLOW: EdgeEnd = { id: '(overflow)' };

/** The edges of one record key (local end, remote end) by port and side: nearly always one, so a short chain. */
interface PortSlot {
  key: number;
  /** the edge's row */
  row: number;
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

/** What an edge is, fixed when it is made; its counts are in the table's rows. */
type EdgeHead = Pick<Edge, 'proto' | 'observedBy' | 'source' | 'destination' | 'port' | 'locality'>;

/*
 * Each edge's counts are one row of a Float64Array chunk (exact for integers below
 * 2^53, like any number): adding a record writes to one or two cache lines
 * instead of following an edge object to its failure counts and histogram.
 * Edge objects are made when the table is drained.
 */
const C_CONNECTIONS = 0;
const C_REFUSED = 1;
const C_TIMEOUT = 2;
const C_RESET = 3;
const C_BYTES_SENT = 4;
const C_BYTES_RECEIVED = 5;
const C_PACKETS_SENT = 6;
const C_PACKETS_RECEIVED = 7;
const C_RETRANSMITS = 8;
const C_RTT_SUM = 9;
const C_RTT_COUNT = 10;
/** per-bucket RTT counts (not cumulative), +Inf last */
const C_RTT_BUCKETS = 11;
const ROW = C_RTT_BUCKETS + RTT_BOUNDS_US.length + 1;
/**
 * Rows are kept in chunks of this many (about 200 kB each): the table grows
 * without copying or doubling, and a drained table's chunks go back to the
 * system whole.
 */
const CHUNK_ROWS = 1024;
const CHUNK_SHIFT = 10;

export class EdgeTable {
  /** every edge's row by "source id, destination id, port and side": the edges' identity; built only for a record key not yet seen */
  private rows = new Map<string, number>();
  private heads: EdgeHead[] = [];
  private chunks: Float64Array[] = [];
  /**
   * The row of a record, found from what the record carries (shared
   * Kubernetes answers, command names, DNS names, addresses) without making
   * its ends or a key string: local key, then remote key, then the port.
   * Several record keys may lead to one edge (a Kubernetes answer replaced by
   * an equal one after a change of the cluster): `rows` unites them.
   * Bounded: cleared when it holds too many keys, and rebuilt as records come.
   */
  private index = new Map<K8sInfo | string, RemoteIndex>();
  private indexed = 0;
  /** records folded into the overflow edge since start */
  overflowed = 0;

  constructor(
    private readonly ends: EdgeEnds = recordEnds,
    readonly maxEdges = 10_000,
  ) {}

  get size(): number {
    return this.heads.length;
  }

  add(r: AgentRecord): void {
    if (r.proto === 'dns') return;
    const clientIsLocal = r.direction === 'outbound';
    const port = clientIsLocal ? (r.proto === 'tcp' && r.remote.reached ? r.remote.reached.port : r.remote.port) : r.local.port;
    const key = port * 4 + (r.proto === 'udp' ? 2 : 0) + (clientIsLocal ? 0 : 1);
    const row = this.ends === recordEnds ? this.indexedRow(r, key, clientIsLocal) : this.rowOf(r, key, clientIsLocal, this.ends(r, clientIsLocal));
    this.count(row, r, clientIsLocal);
  }

  /** The row of `r` through the index; on a miss, through its ends and `rows`, then indexed. */
  private indexedRow(r: TcpRecord | UdpRecord, key: number, clientIsLocal: boolean): number {
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
    for (let s = first; s !== undefined; s = s.next) if (s.key === key) return s.row;

    const local = localEnd(r);
    const remote = remoteEnd(r);
    const ends = clientIsLocal ? { source: local, destination: remote, locality: r.locality } : { source: remote, destination: local, locality: r.locality };
    const row = this.rowOf(r, key, clientIsLocal, ends);
    if (this.heads[row]!.source === OVERFLOW) return row; // past the bound, a new record key creates nothing
    if (this.indexed >= 2 * this.maxEdges + 1024) {
      this.index.clear();
      this.indexed = 0;
      return row;
    }
    (byRemote as Map<K8sInfo | string, PortSlot>).set(remoteKey, { key, row, next: first });
    this.indexed++;
    return row;
  }

  private newRemoteIndex(localKey: K8sInfo | string): RemoteIndex {
    const remotes: RemoteIndex = { byAnswer: new Map(), byName: new Map(), byAddr: new Map() };
    this.index.set(localKey, remotes);
    return remotes;
  }

  /** The row of the edge of these ends, made if new; past the bound, the overflow edge's. */
  private rowOf(r: TcpRecord | UdpRecord, key: number, clientIsLocal: boolean, ends: { source: EdgeEnd; destination: EdgeEnd; locality?: string }): number {
    const id = edgeId(ends.source, ends.destination, key);
    const known = this.rows.get(id);
    if (known !== undefined) return known;
    if (this.heads.length < this.maxEdges) return this.newRow(id, { proto: r.proto, observedBy: clientIsLocal ? 'client' : 'server', source: ends.source, destination: ends.destination, port: key >> 2, locality: ends.locality });
    this.overflowed++;
    const overflowId = edgeId(OVERFLOW, OVERFLOW, key & 3);
    return this.rows.get(overflowId) ?? this.newRow(overflowId, { proto: r.proto, observedBy: clientIsLocal ? 'client' : 'server', source: OVERFLOW, destination: OVERFLOW, port: 0, locality: ends.locality });
  }

  private newRow(id: string, head: EdgeHead): number {
    const row = this.heads.length;
    if (row >> CHUNK_SHIFT === this.chunks.length) this.chunks.push(new Float64Array(CHUNK_ROWS * ROW));
    this.heads.push(head);
    this.rows.set(id, row);
    return row;
  }

  /** Adds a record to its edge's row: bytes and packets in the caller -> callee direction. */
  private count(row: number, r: TcpRecord | UdpRecord, clientIsLocal: boolean): void {
    const c = this.chunks[row >> CHUNK_SHIFT]!;
    const o = (row & (CHUNK_ROWS - 1)) * ROW;
    c[o + C_BYTES_SENT]! += clientIsLocal ? r.bytesSent : r.bytesReceived;
    c[o + C_BYTES_RECEIVED]! += clientIsLocal ? r.bytesReceived : r.bytesSent;
    if (r.proto === 'tcp') {
      c[o + C_RETRANSMITS]! += r.retransmits;
      // an open connection's record adds its interval's bytes and retransmits; the connection counts once, at its end
      if (r.outcome === undefined) return;
      c[o + C_CONNECTIONS]!++;
      if (r.outcome !== 'closed') c[o + (r.outcome === 'refused' ? C_REFUSED : r.outcome === 'timeout' ? C_TIMEOUT : C_RESET)]!++;
      if (r.srttUs > 0) {
        c[o + C_RTT_SUM]! += r.srttUs;
        c[o + C_RTT_COUNT]!++;
        c[o + C_RTT_BUCKETS + bucketOf(RTT_BOUNDS_US, r.srttUs)]!++;
      }
    } else {
      c[o + C_PACKETS_SENT]! += clientIsLocal ? r.packetsSent : r.packetsReceived;
      c[o + C_PACKETS_RECEIVED]! += clientIsLocal ? r.packetsReceived : r.packetsSent;
    }
  }

  /** The edges of the interval now ending; the table starts empty again. */
  drain(): Edge[] {
    const out = this.heads.map((head, row) => {
      const o = (row & (CHUNK_ROWS - 1)) * ROW;
      return edgeOf(head, this.chunks[row >> CHUNK_SHIFT]!.subarray(o, o + ROW));
    });
    this.chunks = [];
    this.heads = [];
    this.rows = new Map();
    this.index = new Map();
    this.indexed = 0;
    return out;
  }
}

/** An edge's identity: ids cannot hold a NUL. */
function edgeId(source: EdgeEnd, destination: EdgeEnd, key: number): string {
  return `${source.id}\0${destination.id}\0${key}`;
}

function edgeOf(head: EdgeHead, c: Float64Array): Edge {
  return {
    proto: head.proto,
    observedBy: head.observedBy,
    source: head.source,
    destination: head.destination,
    port: head.port,
    locality: head.locality,
    connections: c[C_CONNECTIONS]!,
    failed: { refused: c[C_REFUSED]!, timeout: c[C_TIMEOUT]!, reset: c[C_RESET]! },
    bytesSent: c[C_BYTES_SENT]!,
    bytesReceived: c[C_BYTES_RECEIVED]!,
    packetsSent: c[C_PACKETS_SENT]!,
    packetsReceived: c[C_PACKETS_RECEIVED]!,
    retransmits: c[C_RETRANSMITS]!,
    rttUs: Histogram.of(RTT_BOUNDS_US, c.subarray(C_RTT_BUCKETS), c[C_RTT_SUM]!, c[C_RTT_COUNT]!),
  };
}
