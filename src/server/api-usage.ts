/**
 * What the fleet asks of the service map first (docs/api.md, docs/fleet.md):
 * - who calls a service (or any end): /api/callers?of=ID
 * - what a workload (or any end) depends on: /api/dependencies?of=ID
 * - cross-zone and egress traffic per workload pair and per external DNS
 *   name, priced per GB for each locality: /api/cost
 * All three read the window's merged edges (each connection once), so they
 * answer alike over the embedded store of `bpfagent run` and the hub's.
 */
import { LOCALITIES, bareId, edgeId, nodeOf, quantileBound, type GraphNode, type MergedEdge } from './api.js';
import type { Locality } from '../events/records.js';
import { addHistogram, emptyHistogram, type HistogramData } from '../store/flow-store.js';

/** Price per GB (10^9 bytes) by locality; a locality without a price costs nothing. */
export type PricePerGB = Partial<Record<Locality, number>>;

interface Usage {
  ports: Array<{ port: number; proto: string }>;
  connections: number;
  failed: number;
  bytesSent: number;
  bytesReceived: number;
  rttUs: { p50: number | null; p99: number | null; count: number };
  /** the /api/graph edges summed here */
  edges: string[];
}

interface Acc {
  node: GraphNode;
  ports: Map<string, { port: number; proto: string }>;
  connections: number;
  failed: number;
  bytesSent: number;
  bytesReceived: number;
  rtt: HistogramData;
  edges: string[];
  extra: Set<string>;
}

const failedOf = (e: MergedEdge): number => e.failed.refused + e.failed.timeout + e.failed.reset;
const byBytes = <T extends { bytesSent: number; bytesReceived: number; connections?: number }>(a: T, b: T): number =>
  b.bytesSent + b.bytesReceived - (a.bytesSent + a.bytesReceived) || (b.connections ?? 0) - (a.connections ?? 0);

/** Sum edges per end (`key` picks it), keeping their ports, failures, RTTs and ids. */
function sumBy(edges: readonly MergedEdge[], key: (e: MergedEdge) => GraphNode, extra: (e: MergedEdge) => string | undefined): Acc[] {
  const out = new Map<string, Acc>();
  for (const e of edges) {
    const node = key(e);
    let a = out.get(node.id);
    if (!a) out.set(node.id, (a = { node, ports: new Map(), connections: 0, failed: 0, bytesSent: 0, bytesReceived: 0, rtt: emptyHistogram(), edges: [], extra: new Set() }));
    a.ports.set(`${e.proto}/${e.port}`, { port: e.port, proto: e.proto });
    a.connections += e.connections;
    a.failed += failedOf(e);
    a.bytesSent += e.bytesSent;
    a.bytesReceived += e.bytesReceived;
    addHistogram(a.rtt, e.rttUs);
    a.edges.push(edgeId(e.proto, e.source.id, e.destination.id, e.port, e.observedBy));
    const x = extra(e);
    if (x !== undefined) a.extra.add(x);
  }
  return [...out.values()];
}

function usage(a: Acc): Usage {
  return {
    ports: [...a.ports.values()].sort((x, y) => x.port - y.port || (x.proto < y.proto ? -1 : 1)),
    connections: a.connections,
    failed: a.failed,
    bytesSent: a.bytesSent,
    bytesReceived: a.bytesReceived,
    rttUs: { p50: quantileBound(a.rtt, 0.5), p99: quantileBound(a.rtt, 0.99), count: a.rtt.count },
    edges: a.edges,
  };
}

/** `svc:<ns>/<name>` (with its cluster prefix on a hub): the Service's cluster, namespace and name. */
function serviceOf(id: string): { cluster: string; namespace: string; name: string } | undefined {
  const at = id.indexOf('svc:');
  if (at < 0 || (at > 0 && id[at - 1] !== ':')) return undefined;
  const [namespace = '', name = ''] = id.slice(at + 4).split('/');
  return name ? { cluster: at > 0 ? id.slice(0, at - 1) : '', namespace, name } : undefined;
}

/**
 * The callers of `of`: edges into it, summed per caller. A Service
 * (`svc:ns/name`) is called through its ClusterIP (a destination of that id,
 * when the backend was not seen) and at every workload behind it (a
 * destination whose service it is): `reached` lists the destinations.
 */
export function callersOf(edges: readonly MergedEdge[], of: string, limit: number) {
  const svc = serviceOf(of);
  const into = edges.filter(
    (e) =>
      e.destination.id === of ||
      (svc !== undefined && e.destination.service === svc.name && (e.destination.namespace ?? '') === svc.namespace && (e.destination.cluster ?? '') === svc.cluster),
  );
  const callers = sumBy(into, (e) => nodeOf(e.source), (e) => e.destination.id)
    .map((a) => ({ caller: a.node, reached: [...a.extra].sort(), ...usage(a) }))
    .sort(byBytes)
    .slice(0, limit);
  return { callers };
}

/** What `of` depends on: edges out of it, summed per destination, with the Service each is (when known). */
export function dependenciesOf(edges: readonly MergedEdge[], of: string, limit: number) {
  const out = edges.filter((e) => e.source.id === of);
  const dependencies = sumBy(out, (e) => nodeOf(e.destination), (e) => (e.destination.service ? `${e.destination.namespace ?? ''}/${e.destination.service}` : undefined))
    .map((a) => ({ dependency: a.node, services: [...a.extra].sort(), ...usage(a) }))
    .sort(byBytes)
    .slice(0, limit);
  return { dependencies };
}

/** Bytes an edge moved in a locality that a bill counts: both ways inside the cluster; egress (what left the cluster) for external ends. */
function billed(e: MergedEdge, locality: Locality): number {
  if (locality === 'external') {
    if (e.locality !== 'external') return 0;
    // the caller outside (seen by the server alone): what it received left the cluster; else what the caller sent did
    return e.observedBy === 'server' ? e.bytesReceived : e.bytesSent;
  }
  if (e.bytesByLocality) return e.bytesByLocality[locality] ?? 0;
  return e.locality === locality ? e.bytesSent + e.bytesReceived : 0;
}

const GB = 1e9;
// 12 significant digits: no float noise, no cost too small to show
const money = (bytes: number, price: number | undefined): number | null => (price === undefined ? null : Number(((bytes / GB) * price).toPrecision(12)));

/**
 * Cross-zone and egress traffic (and any other locality given a price) per
 * workload pair and per external destination (DNS name, else address), with
 * `cost` = billed bytes / 10^9 x the locality's price (null without one).
 */
export function costOf(edges: readonly MergedEdge[], prices: PricePerGB | null, limit: number) {
  const counted = LOCALITIES.filter((l) => l === 'cross-zone' || l === 'external' || (prices?.[l] ?? 0) > 0);
  const pairs = new Map<string, { source: GraphNode; target: GraphNode; locality: Locality; bytesSent: number; bytesReceived: number; billedBytes: number; cost: number | null }>();
  const external = new Map<string, { name: string; addrs: Set<string>; sources: Set<string>; bytesSent: number; bytesReceived: number; billedBytes: number }>();
  const totals = Object.fromEntries(counted.map((l) => [l, { billedBytes: 0, cost: null as number | null }])) as Record<string, { billedBytes: number; cost: number | null }>;
  for (const e of edges) {
    for (const l of counted) {
      const b = billed(e, l);
      if (b <= 0) continue;
      totals[l]!.billedBytes += b;
      const key = `${e.source.id}\n${e.destination.id}\n${l}`;
      let p = pairs.get(key);
      if (!p) pairs.set(key, (p = { source: nodeOf(e.source), target: nodeOf(e.destination), locality: l, bytesSent: 0, bytesReceived: 0, billedBytes: 0, cost: null }));
      // the whole edge when all of it is in this locality, else the share its bytes say
      const share = e.bytesSent + e.bytesReceived > 0 && l !== 'external' ? b / (e.bytesSent + e.bytesReceived) : 1;
      p.bytesSent += Math.round(e.bytesSent * share);
      p.bytesReceived += Math.round(e.bytesReceived * share);
      p.billedBytes += b;
      if (l === 'external') {
        const remote = e.observedBy === 'server' ? e.source : e.destination;
        const name = remote.name ?? remote.addr ?? bareId(remote);
        let x = external.get(name);
        if (!x) external.set(name, (x = { name, addrs: new Set(), sources: new Set(), bytesSent: 0, bytesReceived: 0, billedBytes: 0 }));
        for (const a of e.remoteAddrs) x.addrs.add(a);
        x.sources.add((e.observedBy === 'server' ? e.destination : e.source).id);
        x.bytesSent += e.bytesSent;
        x.bytesReceived += e.bytesReceived;
        x.billedBytes += b;
      }
    }
  }
  for (const p of pairs.values()) p.cost = money(p.billedBytes, prices?.[p.locality]);
  for (const [l, t] of Object.entries(totals)) t.cost = money(t.billedBytes, prices?.[l as Locality]);
  const byBilled = <T extends { billedBytes: number }>(a: T, b: T): number => b.billedBytes - a.billedBytes;
  return {
    unit: 'GB = 10^9 bytes; billed bytes: both directions within the cluster, egress (bytes leaving it) for external ends',
    prices: prices ?? null,
    totals,
    pairs: [...pairs.values()].sort((a, b) => byBilled(a, b) || (a.source.id < b.source.id ? -1 : 1)).slice(0, limit),
    external: [...external.values()]
      .map((x) => ({ name: x.name, addrs: [...x.addrs].sort(), sources: [...x.sources].sort(), bytesSent: x.bytesSent, bytesReceived: x.bytesReceived, billedBytes: x.billedBytes, cost: money(x.billedBytes, prices?.external) }))
      .sort((a, b) => byBilled(a, b) || (a.name < b.name ? -1 : 1))
      .slice(0, limit),
  };
}
