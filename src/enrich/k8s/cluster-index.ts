/**
 * Lookups over the watched objects: address -> pod, service or node; pod UID
 * -> pod; pod -> workload, service, node, zone. Holds the slim records the
 * informers cache (no copies). Updated by upsert/remove as events arrive.
 */
import type { ControllerInfo, EndpointSliceInfo, EndpointTarget, K8sRef, NodeInfo, PodInfo, ServiceInfo } from './types.js';
import { normalizeIp } from './ip.js';

const nsName = (m: { name: string; namespace?: string }): string => `${m.namespace ?? ''}/${m.name}`;

/** Add `value` under `key` in a map of sets. */
function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(value);
}

function removeFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(value);
  if (set.size === 0) map.delete(key);
}

/** Several slices of one service may list the same address: count them. */
function countUp(map: Map<string, Map<string, number>>, key: string, service: string): void {
  let counts = map.get(key);
  if (!counts) map.set(key, (counts = new Map()));
  counts.set(service, (counts.get(service) ?? 0) + 1);
}

function countDown(map: Map<string, Map<string, number>>, key: string, service: string): void {
  const counts = map.get(key);
  const n = counts?.get(service);
  if (!counts || n === undefined) return;
  if (n > 1) counts.set(service, n - 1);
  else counts.delete(service);
  if (counts.size === 0) map.delete(key);
}

/** A pod's UID as the API has it; cgroup paths of the systemd driver spell its dashes as underscores. */
export function normalizePodUid(uid: string): string {
  return uid.trim().toLowerCase().replace(/_/g, '-');
}

export class ClusterIndex {
  /**
   * `podsFromSlices`: an endpoint address whose Pod is not watched here
   * names the pod, node and zone its slice gives (the watch scoped to this
   * node); off when every pod is watched, where the Pod objects are the truth.
   */
  constructor(private readonly opts: { podsFromSlices?: boolean } = {}) {}

  private readonly pods = new Map<string, PodInfo>();
  /** namespace/name -> uid: an update may carry a new UID for a name (deleted and recreated while unwatched) */
  private readonly podUidByName = new Map<string, string>();
  /** IP -> the live pods holding it; usually one, two while a reused IP's old pod is still being deleted */
  private readonly podsByIp = new Map<string, Set<PodInfo>>();
  private readonly services = new Map<string, ServiceInfo>();
  private readonly serviceByClusterIp = new Map<string, ServiceInfo>();
  private readonly slices = new Map<string, EndpointSliceInfo>();
  /** endpoint address -> "namespace/service" -> how many of its slices list the address */
  private readonly servicesByEndpointIp = new Map<string, Map<string, number>>();
  private readonly servicesByPodUid = new Map<string, Map<string, number>>();
  /** endpoint address -> slice (namespace/name) -> what that slice says of the pod there */
  private readonly targetsByIp = new Map<string, Map<string, EndpointTarget>>();
  private readonly nodes = new Map<string, NodeInfo>();
  private readonly nodeByIp = new Map<string, NodeInfo>();
  private readonly replicaSets = new Map<string, ControllerInfo>();
  private readonly jobs = new Map<string, ControllerInfo>();
  /**
   * Answers already given, by address ("a:") or pod UID ("u:"), null for
   * "unknown". Lookups run for every record while the cluster changes rarely,
   * so answers are remembered (frozen: shared by the records that carry them)
   * until the next change of any watched object.
   */
  private readonly answersByAddr = new Map<string, Readonly<K8sRef> | null>();
  private readonly answersByUid = new Map<string, Readonly<K8sRef> | null>();

  private forget(): void {
    this.answersByAddr.clear();
    this.answersByUid.clear();
  }

  get counts(): { pods: number; services: number; endpointSlices: number; nodes: number; replicaSets: number; jobs: number } {
    return {
      pods: this.pods.size,
      services: this.services.size,
      endpointSlices: this.slices.size,
      nodes: this.nodes.size,
      replicaSets: this.replicaSets.size,
      jobs: this.jobs.size,
    };
  }

  // --- pods

  upsertPod(p: PodInfo): void {
    this.forget();
    const uid = p.metadata.uid;
    if (!uid) return;
    const name = nsName(p.metadata);
    const previousUid = this.podUidByName.get(name);
    if (previousUid !== undefined && previousUid !== uid) this.dropPod(previousUid);
    this.dropPod(uid);
    this.pods.set(uid, p);
    this.podUidByName.set(name, uid);
    if (!p.hostNetwork) for (const ip of p.ips) addTo(this.podsByIp, ip, p);
  }

  removePod(p: PodInfo): void {
    this.forget();
    const uid = p.metadata.uid ?? this.podUidByName.get(nsName(p.metadata));
    if (uid) this.dropPod(uid);
  }

  private dropPod(uid: string): void {
    const old = this.pods.get(uid);
    if (!old) return;
    this.pods.delete(uid);
    const name = nsName(old.metadata);
    if (this.podUidByName.get(name) === uid) this.podUidByName.delete(name);
    for (const ip of old.ips) removeFrom(this.podsByIp, ip, old);
  }

  // --- services and their endpoints

  upsertService(s: ServiceInfo): void {
    this.forget();
    this.removeService(s);
    this.services.set(nsName(s.metadata), s);
    for (const ip of s.clusterIPs) this.serviceByClusterIp.set(ip, s);
  }

  removeService(s: ServiceInfo): void {
    this.forget();
    const key = nsName(s.metadata);
    const old = this.services.get(key);
    if (!old) return;
    this.services.delete(key);
    // a ClusterIP handed to a newer service stays with it
    for (const ip of old.clusterIPs) if (this.serviceByClusterIp.get(ip) === old) this.serviceByClusterIp.delete(ip);
  }

  upsertEndpointSlice(e: EndpointSliceInfo): void {
    this.forget();
    this.removeEndpointSlice(e);
    this.slices.set(nsName(e.metadata), e);
    for (const t of e.targets) {
      let bySlice = this.targetsByIp.get(t.addr);
      if (!bySlice) this.targetsByIp.set(t.addr, (bySlice = new Map()));
      bySlice.set(nsName(e.metadata), t);
    }
    const service = sliceService(e);
    if (!service) return;
    for (const ip of e.addresses) countUp(this.servicesByEndpointIp, ip, service);
    for (const uid of e.podUids) countUp(this.servicesByPodUid, uid, service);
  }

  removeEndpointSlice(e: EndpointSliceInfo): void {
    this.forget();
    const key = nsName(e.metadata);
    const old = this.slices.get(key);
    if (!old) return;
    this.slices.delete(key);
    for (const t of old.targets) {
      const bySlice = this.targetsByIp.get(t.addr);
      bySlice?.delete(key);
      if (bySlice?.size === 0) this.targetsByIp.delete(t.addr);
    }
    const service = sliceService(old);
    if (!service) return;
    for (const ip of old.addresses) countDown(this.servicesByEndpointIp, ip, service);
    for (const uid of old.podUids) countDown(this.servicesByPodUid, uid, service);
  }

  // --- nodes

  upsertNode(n: NodeInfo): void {
    this.forget();
    this.removeNode(n);
    this.nodes.set(n.metadata.name, n);
    for (const ip of n.addresses) this.nodeByIp.set(ip, n);
  }

  removeNode(n: NodeInfo): void {
    this.forget();
    const old = this.nodes.get(n.metadata.name);
    if (!old) return;
    this.nodes.delete(n.metadata.name);
    for (const ip of old.addresses) if (this.nodeByIp.get(ip) === old) this.nodeByIp.delete(ip);
  }

  // --- owners of pods' owners

  upsertController(kind: 'ReplicaSet' | 'Job', c: ControllerInfo): void {
    this.forget();
    (kind === 'ReplicaSet' ? this.replicaSets : this.jobs).set(nsName(c.metadata), c);
  }

  removeController(kind: 'ReplicaSet' | 'Job', c: ControllerInfo): void {
    this.forget();
    (kind === 'ReplicaSet' ? this.replicaSets : this.jobs).delete(nsName(c.metadata));
  }

  // --- lookups

  /** A pod IP (host-network pods excluded), a ClusterIP, a node address, or else an endpoint address of a service. */
  byAddress(ip: string): K8sRef | undefined {
    const hit = this.answersByAddr.get(ip);
    if (hit !== undefined) return hit ?? undefined;
    return remember(this.answersByAddr, ip, this.resolveAddress(ip));
  }

  byPodUid(uid: string): K8sRef | undefined {
    const hit = this.answersByUid.get(uid);
    if (hit !== undefined) return hit ?? undefined;
    const pod = this.pods.get(normalizePodUid(uid));
    return remember(this.answersByUid, uid, pod ? this.podRef(pod) : undefined);
  }

  private resolveAddress(ip: string): K8sRef | undefined {
    const addr = normalizeIp(ip);
    const pod = this.podAt(addr);
    if (pod) return this.podRef(pod);
    const svc = this.serviceByClusterIp.get(addr);
    if (svc) return { namespace: svc.metadata.namespace ?? '', service: svc.metadata.name };
    const node = this.nodeByIp.get(addr);
    if (node) return this.nodeRef(node);
    const endpointOf = first(this.servicesByEndpointIp.get(addr)?.keys());
    if (endpointOf) {
      const [namespace = '', service = ''] = endpointOf.split('/');
      return { namespace, service, ...(this.opts.podsFromSlices ? this.endpointTarget(addr) : {}) };
    }
    return undefined;
  }

  /**
   * The pod behind an endpoint address as its slice names it (when its Pod
   * object is not watched here: another node's pod, with the watch scoped to
   * this node): its name, node and zone (the slice's, else its node's); not
   * its workload, which only the Pod's owners tell.
   */
  private endpointTarget(addr: string): { pod?: string; node?: string; zone?: string } {
    const t = first(this.targetsByIp.get(addr)?.values());
    if (!t) return {};
    const out: { pod?: string; node?: string; zone?: string } = {};
    if (t.pod) out.pod = t.pod;
    if (t.node) out.node = t.node;
    const zone = t.zone ?? (t.node ? this.zoneOf(t.node) : undefined);
    if (zone) out.zone = zone;
    return out;
  }

  zoneOf(node: string): string | undefined {
    return this.nodes.get(node)?.zone;
  }

  isNodeAddress(ip: string): boolean {
    return this.nodeByIp.has(normalizeIp(ip));
  }

  /** The newest live pod holding `ip`. */
  private podAt(ip: string): PodInfo | undefined {
    let best: PodInfo | undefined;
    for (const p of this.podsByIp.get(ip) ?? []) if (!best || p.createdMs >= best.createdMs) best = p;
    return best;
  }

  private podRef(p: PodInfo): K8sRef {
    const namespace = p.metadata.namespace ?? '';
    const ref: K8sRef = { namespace, pod: p.metadata.name, ...this.workloadOf(p) };
    const service = this.serviceOf(p);
    if (service) ref.service = service;
    if (p.nodeName) {
      ref.node = p.nodeName;
      const zone = this.zoneOf(p.nodeName);
      if (zone) ref.zone = zone;
    }
    if (p.hostNetwork) ref.hostNetwork = true;
    return ref;
  }

  private nodeRef(n: NodeInfo): K8sRef {
    return n.zone ? { node: n.metadata.name, zone: n.zone } : { node: n.metadata.name };
  }

  /** Owner references walked up: ReplicaSet -> Deployment, Job -> CronJob; others are the workload themselves. */
  private workloadOf(p: PodInfo): { workload: string; workloadKind: string } {
    const owner = p.owner;
    // a static pod's mirror is "owned" by its Node: a pod of its own
    if (!owner || owner.kind === 'Node') return { workload: p.metadata.name, workloadKind: 'Pod' };
    // a ReplicaSet or Job is the workload only when nothing (Deployment, CronJob, ...) owns it
    const parents = owner.kind === 'ReplicaSet' ? this.replicaSets : owner.kind === 'Job' ? this.jobs : undefined;
    const grand = parents?.get(`${p.metadata.namespace ?? ''}/${owner.name}`)?.owner;
    const top = grand ?? owner;
    return { workload: top.name, workloadKind: top.kind };
  }

  private serviceOf(p: PodInfo): string | undefined {
    const namespace = p.metadata.namespace ?? '';
    const names = new Set<string>();
    const collect = (counts: Map<string, number> | undefined) => {
      for (const s of counts?.keys() ?? []) if (s.startsWith(`${namespace}/`)) names.add(s.slice(namespace.length + 1));
    };
    if (p.metadata.uid) collect(this.servicesByPodUid.get(p.metadata.uid));
    // a host-network pod's address is its node's, shared with every other such pod
    if (names.size === 0 && !p.hostNetwork) for (const ip of p.ips) collect(this.servicesByEndpointIp.get(ip));
    return [...names].sort()[0];
  }
}

function remember(answers: Map<string, Readonly<K8sRef> | null>, key: string, answer: K8sRef | undefined): K8sRef | undefined {
  if (answers.size >= 65_536) answers.clear();
  answers.set(key, answer ? Object.freeze(answer) : null);
  return answer;
}

function sliceService(e: EndpointSliceInfo): string | undefined {
  return e.service ? `${e.metadata.namespace ?? ''}/${e.service}` : undefined;
}

function first<T>(values: Iterable<T> | undefined): T | undefined {
  for (const v of values ?? []) return v;
  return undefined;
}
