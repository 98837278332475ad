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

/** A workload's identity: "namespace/workload". */
function workloadEnd(k: K8sInfo): EdgeEnd | undefined {
  if (k.workload === undefined) return undefined;
  const id = `${k.namespace ?? ''}/${k.workload}`;
  const e: EdgeEnd = { id, namespace: k.namespace, workload: k.workload, workloadKind: k.workloadKind };
  if (k.service !== undefined) e.service = k.service;
  return e;
}

/**
 * The ends of an edge, as specific as what is known: a Kubernetes workload,
 * else (remote) a Service dialled, a DNS name, a node, an address; else
 * (local) the process by command name.
 */
export const recordEnds: EdgeEnds = (r, clientIsLocal) => {
  const lk = r.local.k8s;
  const local: EdgeEnd = (lk && workloadEnd(lk)) ?? { id: `process:${r.local.comm}`, process: r.local.comm };
  if (lk?.workload !== undefined) local.process = r.local.comm;
  const rk = r.remote.k8s;
  const name = r.remote.name;
  const addr = r.remote.reached?.addr ?? r.remote.addr;
  let remote: EdgeEnd | undefined = rk && workloadEnd(rk);
  if (!remote && rk?.service !== undefined) remote = { id: `svc:${rk.namespace ?? ''}/${rk.service}`, namespace: rk.namespace, service: rk.service };
  if (!remote && name !== undefined) remote = { id: `dns:${name}`, name, addr };
  if (!remote && rk?.node !== undefined) remote = { id: `node:${rk.node}`, node: rk.node, addr };
  remote ??= { id: addr, addr };
  return { ...(clientIsLocal ? { source: local, destination: remote } : { source: remote, destination: local }), locality: r.locality };
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
  private edges = new Map<string, Edge>();
  /** records folded into the overflow edge since start */
  overflowed = 0;

  constructor(
    private readonly ends: EdgeEnds = recordEnds,
    readonly maxEdges = 10_000,
  ) {}

  get size(): number {
    return this.edges.size;
  }

  add(r: AgentRecord): void {
    if (r.proto === 'dns') return;
    const clientIsLocal = r.proto === 'tcp' ? r.direction === 'outbound' : udpClientIsLocal(r);
    const port = clientIsLocal ? (r.proto === 'tcp' && r.remote.reached ? r.remote.reached.port : r.remote.port) : r.local.port;
    const { source, destination, locality } = this.ends(r, clientIsLocal);
    const observedBy = clientIsLocal ? 'client' : 'server';
    let key = `${r.proto}|${observedBy}|${source.id}|${destination.id}|${port}`;
    let edge = this.edges.get(key);
    if (!edge) {
      let s = source;
      let d = destination;
      let p = port;
      if (this.edges.size >= this.maxEdges) {
        key = `${r.proto}|${observedBy}|(overflow)`;
        s = OVERFLOW;
        d = OVERFLOW;
        p = 0;
        this.overflowed++;
        edge = this.edges.get(key);
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
        this.edges.set(key, edge);
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
    const out = [...this.edges.values()];
    this.edges = new Map();
    return out;
  }
}
