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

/**
 * The ends of an edge, as specific as what is known: a Kubernetes workload,
 * else (remote) a Service dialled, a DNS name, a node, an address; else
 * (local) the process by command name. Ends are shared: read, never change them.
 */
export const recordEnds: EdgeEnds = (r, clientIsLocal) => {
  const lk = r.local.k8s;
  const local = (lk?.workload !== undefined ? ENDS.k8s(lk, r.local.addr) : null) ?? ENDS.process(r.local.comm);
  const rk = r.remote.k8s;
  const name = r.remote.name;
  const addr = r.remote.reached?.addr ?? r.remote.addr;
  let remote: EdgeEnd | null = null;
  // a workload or Service first; a node's address only after a DNS name
  if (rk && (rk.workload !== undefined || rk.service !== undefined)) remote = ENDS.k8s(rk, addr);
  if (!remote && name !== undefined) remote = ENDS.name(name, addr);
  if (!remote && rk?.node !== undefined) remote = ENDS.k8s(rk, addr);
  remote ??= ENDS.addr(addr);
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

export class EdgeTable {
  /** source id -> destination id -> port, protocol and side -> edge: no key string built per record */
  private edges = new Map<string, Map<string, Map<number, Edge>>>();
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

  private slot(source: EdgeEnd, destination: EdgeEnd): Map<number, Edge> {
    let bySource = this.edges.get(source.id);
    if (!bySource) this.edges.set(source.id, (bySource = new Map()));
    let slot = bySource.get(destination.id);
    if (!slot) bySource.set(destination.id, (slot = new Map()));
    return slot;
  }

  add(r: AgentRecord): void {
    if (r.proto === 'dns') return;
    const clientIsLocal = r.proto === 'tcp' ? r.direction === 'outbound' : udpClientIsLocal(r);
    const port = clientIsLocal ? (r.proto === 'tcp' && r.remote.reached ? r.remote.reached.port : r.remote.port) : r.local.port;
    const { source, destination, locality } = this.ends(r, clientIsLocal);
    const observedBy = clientIsLocal ? 'client' : 'server';
    const sub = (r.proto === 'udp' ? 2 : 0) + (clientIsLocal ? 0 : 1);
    // looked up without creating anything: past the bound, new pairs must cost nothing
    let edge = this.edges.get(source.id)?.get(destination.id)?.get(port * 4 + sub);
    if (!edge) {
      let slot: Map<number, Edge>;
      let s = source;
      let d = destination;
      let p = port;
      if (this.count >= this.maxEdges) {
        s = OVERFLOW;
        d = OVERFLOW;
        p = 0;
        this.overflowed++;
        slot = this.slot(OVERFLOW, OVERFLOW);
        edge = slot.get(sub);
      } else {
        slot = this.slot(source, destination);
      }
      if (!edge) {
        edge = {
          proto: r.proto,
          observedBy,
          source: s,
          destination: d,
          port: p,
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
        slot.set(p * 4 + sub, edge);
        this.count++;
      }
    }
    // bytes and packets in the caller -> callee direction
    const sent = clientIsLocal ? r.bytesSent : r.bytesReceived;
    const received = clientIsLocal ? r.bytesReceived : r.bytesSent;
    edge.bytesSent += sent;
    edge.bytesReceived += received;
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

  /** The edges of the interval now ending; the table starts empty again. */
  drain(): Edge[] {
    const out: Edge[] = [];
    for (const bySource of this.edges.values()) for (const slot of bySource.values()) for (const e of slot.values()) out.push(e);
    this.edges = new Map();
    this.count = 0;
    return out;
  }
}
