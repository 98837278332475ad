/**
 * Puts names on both ends of a record: the local process's executable, its
 * container (from its cgroup path), what Kubernetes knows of each end (pod,
 * workload, Service, node, zone) and where the remote end is (locality).
 *
 * Each source is optional and looked up through a small interface, so the
 * enricher is tested with fakes and runs without Kubernetes. Lookups are map
 * hits in the steady state: per-cgroup results are cached here, per-pid ones
 * by the process cache, Kubernetes answers by the watch cache.
 */
import type { AgentRecord, K8sInfo, LocalEndpoint, RemoteEndpoint } from '../events/records.js';
import type { ContainerInfo } from './container.js';
import { classifyRemote, type LocalityContext } from './locality.js';

export interface ProcessSource {
  get(pid: number, comm?: string): { exe: string } | undefined;
}

export interface CgroupSource {
  pathOf(cgroupId: number, pidHint?: number): string | undefined;
  /** a cgroup made (cgroup_mkdir); `path` undefined when the kernel could not report it whole */
  learn?(cgroupId: number, path: string | undefined): void;
  /** walk the whole tree now */
  seed?(): void;
}

/** Answers are shared and never changed once given: a change of the cluster gives new answer objects. */
export interface KubeSource {
  byAddress(ip: string): K8sInfo | undefined;
  byPodUid(uid: string): K8sInfo | undefined;
  zoneOf(node: string): string | undefined;
}

export interface EnricherSources {
  processes?: ProcessSource;
  cgroups?: CgroupSource;
  parseContainer?: (cgroupPath: string) => ContainerInfo | undefined;
  kube?: KubeSource;
  /** this node's name (Kubernetes), for same-host and zone decisions */
  nodeName?: string;
  isHostAddress: (addr: string) => boolean;
  learnHostAddress?: (addr: string) => void;
  inCluster: (addr: string) => boolean;
  /** bound of the per-cgroup container cache */
  maxCgroups?: number;
}

/** Merged (Service, backend) answers remembered at most. */
const MAX_MERGED = 16_384;
/** stands for "no backend known" in the merged answers' map */
const NO_BACKEND: K8sInfo = Object.freeze({});

function mergeServiceAndBackend(dialled: K8sInfo, backend: K8sInfo | undefined): K8sInfo {
  return { ...backend, namespace: backend?.namespace ?? dialled.namespace, service: dialled.service };
}

/** A cgroup's container, or null when its path is known and is no container. */
type CgroupEntry = ContainerInfo | null;

export class Enricher {
  private readonly containers = new Map<number, CgroupEntry>();
  readonly stats = { recordsEnriched: 0, k8sLocal: 0, k8sRemote: 0, containerHits: 0, cgroupUnknown: 0 };

  constructor(private readonly src: EnricherSources) {
    const { nodeName, kube, isHostAddress, inCluster } = src;
    this.locality = {
      nodeName,
      get zone() {
        return nodeName !== undefined ? kube?.zoneOf(nodeName) : undefined;
      },
      isHostAddress,
      inCluster,
    };
  }

  /**
   * Records that arrived together: every local address is learned first, so
   * that a connection between two network namespaces of this host is
   * same-host from both ends, whichever end's record came first.
   */
  enrichAll(records: readonly AgentRecord[]): void {
    const learn = this.src.learnHostAddress;
    if (learn) for (const r of records) learn(r.local.addr);
    for (const r of records) this.enrich(r);
  }

  enrich(r: AgentRecord): void {
    this.stats.recordsEnriched++;
    this.enrichLocal(r.local);
    if (r.proto === 'dns') return;
    const reachedAddr = this.enrichRemote(r.remote);
    r.locality = classifyRemote(reachedAddr, r.remote.k8s, this.locality);
  }

  /** Built once; this node's zone is read when asked (node labels can change). */
  private readonly locality: LocalityContext;

  private enrichLocal(l: LocalEndpoint): void {
    this.src.learnHostAddress?.(l.addr);
    if (l.pid) {
      const p = this.src.processes?.get(l.pid, l.comm);
      if (p?.exe) l.exe = p.exe;
    }
    const c = this.container(l.cgroupId, l.pid);
    if (c) {
      l.containerId = c.id;
      if (c.runtime !== 'unknown') l.containerRuntime = c.runtime;
    }
    const kube = this.src.kube;
    if (!kube) return;
    // a pod is known by its cgroup (host-network pods included), else by its address
    const k = (c?.podUid !== undefined ? kube.byPodUid(c.podUid) : undefined) ?? kube.byAddress(l.addr);
    if (k) {
      l.k8s = k;
      this.stats.k8sLocal++;
    }
  }

  /** Resolves the remote end; returns the address really reached (the backend behind DNAT, if seen). */
  private enrichRemote(r: RemoteEndpoint): string {
    const reached = r.reached?.addr ?? r.addr;
    const kube = this.src.kube;
    if (!kube) return reached;
    const backend = kube.byAddress(reached);
    // the Service a client dialled (a ClusterIP), kept beside the pod it reached
    const dialled = r.reached ? kube.byAddress(r.addr) : undefined;
    const k = dialled?.service !== undefined && dialled.pod === undefined ? this.serviceWithBackend(dialled, backend) : backend;
    if (k) {
      r.k8s = k;
      this.stats.k8sRemote++;
    }
    return reached;
  }

  /**
   * The Service dialled merged with the pod reached behind it. Kubernetes
   * answers are shared and never changed (a change of the cluster gives new
   * answer objects), so the merge is made once per pair of answers and shared
   * by every record of that pair: per record, two identity lookups instead of
   * a new object (and, downstream, a new edge end to find). Bounded.
   */
  private serviceWithBackend(dialled: K8sInfo, backend: K8sInfo | undefined): K8sInfo {
    const key = backend ?? NO_BACKEND;
    const hit = this.merged.get(dialled)?.get(key);
    if (hit) return hit;
    if (this.mergedCount >= MAX_MERGED) {
      this.merged.clear();
      this.mergedCount = 0;
    }
    let byBackend = this.merged.get(dialled);
    if (!byBackend) this.merged.set(dialled, (byBackend = new Map()));
    const k = Object.freeze(mergeServiceAndBackend(dialled, backend));
    byBackend.set(key, k);
    this.mergedCount++;
    return k;
  }

  private readonly merged = new Map<K8sInfo, Map<K8sInfo, Readonly<K8sInfo>>>();
  private mergedCount = 0;

  private container(cgroupId: number, pid: number): ContainerInfo | undefined {
    if (!this.src.cgroups || !this.src.parseContainer || !cgroupId) return undefined;
    const hit = this.containers.get(cgroupId);
    if (hit !== undefined) {
      this.stats.containerHits++;
      return hit ?? undefined;
    }
    const path = this.src.cgroups.pathOf(cgroupId, pid || undefined);
    if (path === undefined) {
      // not cached: the cgroup may appear in a later rescan
      this.stats.cgroupUnknown++;
      return undefined;
    }
    const info = this.src.parseContainer(path) ?? null;
    const max = this.src.maxCgroups ?? 16384;
    if (this.containers.size >= max) this.containers.delete(this.containers.keys().next().value!);
    this.containers.set(cgroupId, info);
    return info ?? undefined;
  }

  /** A cgroup just made: its path, before any record of its processes (see CgroupSource.learn). */
  learnCgroup(cgroupId: number, path: string | undefined): void {
    this.src.cgroups?.learn?.(cgroupId, path);
  }

  /** Learn every cgroup there is now. */
  seedCgroups(): void {
    this.src.cgroups?.seed?.();
  }

  get cachedCgroups(): number {
    return this.containers.size;
  }
}
