/**
 * Kubernetes metadata for both ends of a flow: watches Pods, Services,
 * EndpointSlices, Nodes, ReplicaSets and Jobs cluster-wide and answers
 * address, pod-UID and node lookups from memory (cluster-index.ts).
 */
import { AppsV1Api, BatchV1Api, CoreV1Api, DiscoveryV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ClusterIndex } from './cluster-index.js';
import { describeKubeError } from './errors.js';
import { ResilientInformer, type InformerHandlers, type InformerStats, type ListPage } from './informer.js';
import { chooseKubeConfig } from './kubeconfig.js';
import { slimController, slimEndpointSlice, slimNode, slimPod, slimService } from './slim.js';
import type { K8sRef } from './types.js';

export interface KubeMetadataOptions {
  log: Logger;
  /** how long start() waits for every resource to list before it gives up (default 30 s) */
  syncTimeoutMs?: number;
  /** first retry delay after an error, doubling up to backoffMaxMs (defaults 1 s, 30 s) */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** list page size (`limit`; default 500) */
  pageSize?: number;
  /** each watch's timeoutSeconds (default a random 300-600); one not ended by then plus half is abandoned and resumed */
  watchTimeoutSeconds?: number;
}

export interface KubeMetadataStats {
  pods: number;
  services: number;
  endpointSlices: number;
  nodes: number;
  replicaSets: number;
  jobs: number;
  /** summed over the watched resources: see InformerStats */
  lists: number;
  relists: number;
  watchErrors: number;
  restarts: number;
  bookmarks: number;
  events: number;
}

const RESOURCES = 'pods, services, nodes, endpointslices.discovery.k8s.io, replicasets.apps and jobs.batch';

export class KubeMetadata {
  /** the API server's URL */
  readonly server: string;
  private readonly index = new ClusterIndex();
  private readonly informers: ResilientInformer<KubernetesObject>[];
  private readonly log: Logger;
  private readonly syncTimeoutMs: number;

  /**
   * From --kubeconfig, else KUBECONFIG, else the in-cluster service account
   * (KUBERNETES_SERVICE_HOST/PORT and its token file); undefined when there is
   * none of them. Throws a UsageError naming the file when a kubeconfig given
   * cannot be read or has no current cluster.
   */
  static fromEnvironment(opts: KubeMetadataOptions & { kubeconfig?: string; env?: NodeJS.ProcessEnv; fsRoot?: string }): KubeMetadata | undefined {
    const choice = chooseKubeConfig({ env: opts.env ?? process.env, ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}), ...(opts.fsRoot !== undefined ? { fsRoot: opts.fsRoot } : {}) });
    if (!choice) return undefined;
    opts.log.debug({ source: choice.source, server: choice.kc.getCurrentCluster()?.server }, 'kubernetes: credentials');
    return new KubeMetadata(choice.kc, opts);
  }

  constructor(kc: KubeConfig, opts: KubeMetadataOptions) {
    this.server = kc.getCurrentCluster()?.server ?? '(no cluster)';
    this.log = opts.log;
    this.syncTimeoutMs = opts.syncTimeoutMs ?? 30_000;
    const core = kc.makeApiClient(CoreV1Api);
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    const batch = kc.makeApiClient(BatchV1Api);
    const ix = this.index;
    const common = {
      kc,
      log: opts.log,
      pageSize: opts.pageSize ?? 500,
      backoffBaseMs: opts.backoffBaseMs ?? 1000,
      backoffMaxMs: opts.backoffMaxMs ?? 30_000,
      ...(opts.watchTimeoutSeconds ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
    };
    const informer = <T extends KubernetesObject>(
      resource: string,
      path: string,
      listPage: (p: { limit: number; _continue?: string }) => Promise<ListPage>,
      slim: (raw: never) => T | undefined,
      handlers: InformerHandlers<T>,
    ) => new ResilientInformer<T>({ ...common, resource, path, listPage, slim: slim as (raw: unknown) => T | undefined, handlers }) as unknown as ResilientInformer<KubernetesObject>;

    this.informers = [
      informer('pods', '/api/v1/pods', (p) => core.listPodForAllNamespaces(p), slimPod, { upsert: (o) => ix.upsertPod(o), remove: (o) => ix.removePod(o) }),
      informer('services', '/api/v1/services', (p) => core.listServiceForAllNamespaces(p), slimService, { upsert: (o) => ix.upsertService(o), remove: (o) => ix.removeService(o) }),
      informer('nodes', '/api/v1/nodes', (p) => core.listNode(p), slimNode, { upsert: (o) => ix.upsertNode(o), remove: (o) => ix.removeNode(o) }),
      informer('endpointslices', '/apis/discovery.k8s.io/v1/endpointslices', (p) => discovery.listEndpointSliceForAllNamespaces(p), slimEndpointSlice, {
        upsert: (o) => ix.upsertEndpointSlice(o),
        remove: (o) => ix.removeEndpointSlice(o),
      }),
      informer('replicasets', '/apis/apps/v1/replicasets', (p) => apps.listReplicaSetForAllNamespaces(p), slimController, {
        upsert: (o) => ix.upsertController('ReplicaSet', o),
        remove: (o) => ix.removeController('ReplicaSet', o),
      }),
      informer('jobs', '/apis/batch/v1/jobs', (p) => batch.listJobForAllNamespaces(p), slimController, {
        upsert: (o) => ix.upsertController('Job', o),
        remove: (o) => ix.removeController('Job', o),
      }),
    ];
  }

  /**
   * Starts every watch; resolves once each resource has been listed. Rejects
   * (and stops) with an error naming the API server and the cause when the
   * server refuses the credentials (401/403) or the lists do not all complete
   * within syncTimeoutMs; until then failures are retried with back-off.
   */
  async start(): Promise<void> {
    const started = Date.now();
    for (const inf of this.informers) inf.start();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), this.syncTimeoutMs);
    });
    try {
      await Promise.race([Promise.all(this.informers.map((i) => i.whenSynced())), timeout]);
    } catch (err) {
      await this.stop();
      throw new Error(this.startFailure(err), { cause: err });
    } finally {
      clearTimeout(timer);
    }
    this.log.info({ server: this.server, syncMs: Date.now() - started, ...this.index.counts }, 'kubernetes: metadata synced');
  }

  async stop(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  /** An address: a pod IP (host-network pods excluded: theirs is the node's), a Service ClusterIP, or a node address. */
  byAddress(ip: string): K8sRef | undefined {
    return this.index.byAddress(ip);
  }

  /** A pod by its UID (as found in a cgroup path; dashes or underscores): also host-network pods. */
  byPodUid(uid: string): K8sRef | undefined {
    return this.index.byPodUid(uid);
  }

  /** The node's zone label. */
  zoneOf(node: string): string | undefined {
    return this.index.zoneOf(node);
  }

  isNodeAddress(ip: string): boolean {
    return this.index.isNodeAddress(ip);
  }

  get stats(): KubeMetadataStats {
    const sum = (k: keyof InformerStats) => this.informers.reduce((n, i) => n + i.stats[k], 0);
    return {
      ...this.index.counts,
      lists: sum('lists'),
      relists: sum('relists'),
      watchErrors: sum('watchErrors'),
      restarts: sum('restarts'),
      bookmarks: sum('bookmarks'),
      events: sum('events'),
    };
  }

  private startFailure(err: unknown): string {
    const pending = this.informers.filter((i) => !i.hasSynced);
    const cause = pending.find((i) => i.lastError !== undefined);
    if (err instanceof Error && err.message !== 'timeout') {
      return `kubernetes: API server ${this.server} refused to list ${err.message} (the agent needs get, list and watch on ${RESOURCES})`;
    }
    const what = pending.map((i) => i.resource).join(', ');
    const why = cause ? `: ${describeKubeError(cause.lastError)}` : ': no answer';
    return `kubernetes: could not list ${what} from the API server ${this.server} within ${Math.round(this.syncTimeoutMs / 100) / 10}s${why}`;
  }
}
