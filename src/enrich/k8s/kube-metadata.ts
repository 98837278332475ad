/**
 * Kubernetes metadata for both ends of a flow: watches Pods, Services,
 * EndpointSlices, Nodes, ReplicaSets and Jobs, cluster-wide or as one node
 * needs them (`watch`, see cluster-watch.ts), and answers address, pod-UID
 * and node lookups from memory (cluster-index.ts).
 *
 * The client library is imported by load() or start(), not here: it costs most of a
 * second, which an agent without Kubernetes should not pay.
 */
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ClusterIndex } from './cluster-index.js';
import { describeCredentials, findCredentials, type KubeCredentials } from './credentials.js';
import { describeKubeError, statusOf } from './errors.js';
import type { WatchScope } from './cluster-watch.js';
import type { InformerStats, ResilientInformer } from './informer.js';
import type { OwnerLookup, OwnerLookupStats } from './owner-lookup.js';
import type { K8sRef } from './types.js';

export interface KubeMetadataOptions {
  log: Logger;
  /** how long start() waits for every resource to list before it rejects (default 30 s; the watches go on) */
  syncTimeoutMs?: number;
  /** first retry delay after an error, doubling up to backoffMaxMs (defaults 1 s, 30 s) */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** list page size (`limit`; default 500) */
  pageSize?: number;
  /** each watch's timeoutSeconds (default a random 300-600); one not ended by then plus half is abandoned and resumed */
  watchTimeoutSeconds?: number;
  /** what is watched: the whole cluster (default), or what one node needs */
  watch?: WatchScope;
}

/** Objects held per resource, and the informers' counts (InformerStats) summed over the watched resources. */
export interface KubeMetadataStats extends InformerStats, OwnerLookupStats {
  /** what is watched: `cluster` or `node` */
  scope: 'cluster' | 'node';
  pods: number;
  services: number;
  endpointSlices: number;
  nodes: number;
  replicaSets: number;
  jobs: number;
}

const RBAC = {
  cluster: 'get, list and watch on pods, services, nodes, endpointslices.discovery.k8s.io, replicasets.apps and jobs.batch',
  node: 'list and watch on pods, services, nodes and endpointslices.discovery.k8s.io, and get on replicasets.apps and jobs.batch',
};

export class KubeMetadata {
  private readonly index: ClusterIndex;
  private informers: ResilientInformer<KubernetesObject>[] = [];
  private owners: OwnerLookup | undefined;
  private serverUrl: string | undefined;
  private stopped = false;
  private starting: Promise<void> | undefined;
  private loading: Promise<KubeConfig> | undefined;
  private readonly log: Logger;
  private readonly syncTimeoutMs: number;

  /**
   * From --kubeconfig, else KUBECONFIG, else the in-cluster service account
   * (KUBERNETES_SERVICE_HOST/PORT and its token file); undefined when there is
   * none of them. Throws a UsageError naming the file when a kubeconfig given
   * cannot be read (one that cannot be parsed is reported by start(), the
   * same way).
   */
  static fromEnvironment(opts: KubeMetadataOptions & { kubeconfig?: string | undefined; env?: NodeJS.ProcessEnv; fsRoot?: string }): KubeMetadata | undefined {
    const credentials = findCredentials({ kubeconfig: opts.kubeconfig, env: opts.env ?? process.env, fsRoot: opts.fsRoot });
    if (!credentials) return undefined;
    opts.log.debug({ credentials: describeCredentials(credentials) }, 'kubernetes: credentials');
    return new KubeMetadata(credentials, opts);
  }

  /** From credentials found (fromEnvironment), or a KubeConfig already loaded. */
  constructor(
    private readonly source: KubeCredentials | KubeConfig,
    private readonly opts: KubeMetadataOptions,
  ) {
    this.log = opts.log;
    this.index = new ClusterIndex({ podsFromSlices: opts.watch?.scope === 'node' });
    this.syncTimeoutMs = opts.syncTimeoutMs ?? 30_000;
    if (isKubeConfig(source)) this.serverUrl = source.getCurrentCluster()?.server;
    else if (source.kind === 'in-cluster') this.serverUrl = source.server;
  }

  /** The API server's URL; for a kubeconfig, known once start() has read it. */
  get server(): string | undefined {
    return this.serverUrl;
  }

  /**
   * Starts every watch; resolves once each resource has been listed. Rejects
   * with an error naming the API server and the cause when the server refuses
   * the credentials (401/403) or the lists do not all complete within
   * syncTimeoutMs; the watches keep retrying with back-off (until stop()), so
   * the metadata can still arrive later. A kubeconfig that cannot be parsed
   * rejects with a UsageError naming the file.
   */
  start(): Promise<void> {
    this.starting ??= this.run();
    return this.starting;
  }

  /**
   * Reads the kubeconfig (or the in-cluster credentials), without a request:
   * rejects with a UsageError naming the file when it cannot be parsed.
   * Local and quick, so start-up awaits it before the probes attach (a
   * configuration error then costs nothing traced); start() does it too.
   */
  load(): Promise<KubeConfig> {
    this.loading ??= import('./load-kubeconfig.js').then(({ loadKubeConfig }) => {
      const kc = isKubeConfig(this.source) ? this.source : loadKubeConfig(this.source);
      this.serverUrl = kc.getCurrentCluster()?.server;
      return kc;
    });
    return this.loading;
  }

  private async run(): Promise<void> {
    const started = Date.now();
    const [kc, { watchCluster }] = await Promise.all([this.load(), import('./cluster-watch.js')]);
    if (this.stopped) return;
    const o = this.opts;
    const watched = watchCluster(
      kc,
      this.index,
      {
        log: o.log,
        pageSize: o.pageSize ?? 500,
        backoffBaseMs: o.backoffBaseMs ?? 1000,
        backoffMaxMs: o.backoffMaxMs ?? 30_000,
        ...(o.watchTimeoutSeconds ? { watchTimeoutSeconds: o.watchTimeoutSeconds } : {}),
      },
      o.watch,
    );
    this.informers = watched.informers;
    this.owners = watched.owners;
    for (const inf of this.informers) inf.start();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), this.syncTimeoutMs);
    });
    try {
      // synced: everything listed, and the owners of the pods listed read
      await Promise.race([Promise.all(this.informers.map((i) => i.whenSynced())).then(() => this.owners?.idle()), timeout]);
    } catch (err) {
      throw new Error(this.startFailure(err), { cause: err });
    } finally {
      clearTimeout(timer);
    }
    this.log.info({ server: this.server, syncMs: Date.now() - started, ...this.index.counts }, 'kubernetes: metadata synced');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.owners?.stop();
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

  /** every watched resource has been listed at least once */
  get synced(): boolean {
    return this.informers.every((i) => i.hasSynced);
  }

  get stats(): KubeMetadataStats {
    const sum = (k: keyof InformerStats) => this.informers.reduce((n, i) => n + i.stats[k], 0);
    return {
      scope: this.opts.watch?.scope ?? 'cluster',
      ...this.index.counts,
      ownerLookups: this.owners?.stats.ownerLookups ?? 0,
      ownerLookupErrors: this.owners?.stats.ownerLookupErrors ?? 0,
      lists: sum('lists'),
      relists: sum('relists'),
      watchErrors: sum('watchErrors'),
      restarts: sum('restarts'),
      bookmarks: sum('bookmarks'),
      events: sum('events'),
    };
  }

  private startFailure(err: unknown): string {
    const server = `the API server ${this.server}`;
    if (err instanceof Error && err.message !== 'timeout') {
      const refused = this.informers.find((i) => [401, 403].includes(statusOf(i.lastError) ?? 0));
      return `kubernetes: ${server} refused to list ${err.message}${statusOf(refused?.lastError) === 403 ? ` (the agent needs ${RBAC[this.opts.watch?.scope ?? 'cluster']})` : ''}`;
    }
    const pending = this.informers.filter((i) => !i.hasSynced);
    const cause = pending.find((i) => i.lastError !== undefined);
    const why = cause ? `: ${describeKubeError(cause.lastError)}` : ': no answer';
    return `kubernetes: could not list ${pending.map((i) => i.resource).join(', ')} from ${server} within ${this.syncTimeoutMs / 1000}s${why}; still trying`;
  }
}

function isKubeConfig(x: KubeCredentials | KubeConfig): x is KubeConfig {
  return typeof (x as KubeConfig).getCurrentCluster === 'function';
}
