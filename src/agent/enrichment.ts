/**
 * Builds the enricher every command shares from the options: /proc process
 * metadata, cgroup paths and containers, Kubernetes (when credentials are
 * found), this host's addresses and the cluster CIDRs.
 */
import os from 'node:os';
import type { Logger } from 'pino';
import { findCgroup2Root } from '../bpf/cgroup-root.js';
import { CgroupPaths } from '../enrich/cgroup-path.js';
import { parseContainerCgroup } from '../enrich/container.js';
import { Enricher } from '../enrich/enricher.js';
import { HostAddresses } from '../enrich/host-addresses.js';
import { KubeMetadata } from '../enrich/k8s/index.js';
import { clusterMatcher } from '../enrich/locality.js';
import { ProcessInfoCache } from '../enrich/process-info.js';
import { makeRedactor } from '../enrich/redact.js';
import { UsageError } from '../util/errors.js';
import { existsSync } from 'node:fs';
import { CgroupScope, scopePath } from '../enrich/cgroup-scope.js';

export interface EnrichmentOptions {
  kubeconfig: string | undefined;
  nodeName: string | undefined;
  clusterCidrs: string[];
  /** what is watched in Kubernetes: what this node needs (default), or the whole cluster */
  kubeWatch?: 'node' | 'cluster';
  /** trace.cgroup: only the processes of this cgroup v2 subtree */
  cgroupScope?: string | null;
  /** patterns redacting command lines (default: DEFAULT_REDACT_PATTERNS) */
  redactCmdline?: readonly string[] | undefined;
}

export interface Enrichment {
  readonly enricher: Enricher;
  readonly kube: KubeMetadata | undefined;
  /** trace.cgroup's filter, when set */
  readonly scope: CgroupScope | undefined;
  /**
   * Settles once the Kubernetes lists are in, or start-up has waited
   * KUBE_SYNC_WAIT_MS for them, or they failed (they keep retrying): tracing
   * does not wait for it, the ready line does. Rejects only with a UsageError
   * (an unreadable kubeconfig, refused credentials): start-up stops.
   */
  readonly synced: Promise<void>;
  /** cache sizes and lookup counts, for the summary and metrics */
  stats(): Record<string, number>;
  stop(): Promise<void>;
}

/** How long the ready line waits for the first Kubernetes lists before going on without them (they keep syncing). */
const KUBE_SYNC_WAIT_MS = 15_000;

export async function startEnrichment(opts: EnrichmentOptions, log: Logger): Promise<Enrichment> {
  const processes = new ProcessInfoCache({ redact: makeRedactor(opts.redactCmdline) });
  const cgroupRoot = findCgroup2Root();
  const cgroups = cgroupRoot ? new CgroupPaths(cgroupRoot) : undefined;
  let scope: CgroupScope | undefined;
  if (opts.cgroupScope) {
    if (!cgroupRoot || !cgroups) throw new UsageError(`trace.cgroup: ${opts.cgroupScope}: no cgroup v2 hierarchy is mounted on this host; leave trace.cgroup unset`);
    const rel = scopePath(opts.cgroupScope, cgroupRoot);
    if (!existsSync(cgroupRoot + rel)) throw new UsageError(`trace.cgroup: ${opts.cgroupScope}: no such cgroup (${cgroupRoot}${rel}); give a cgroup v2 directory, below ${cgroupRoot} or relative to it`);
    scope = new CgroupScope(rel, cgroups);
    log.info({ cgroup: rel }, `tracing only the processes of cgroup ${rel}`);
  }
  const hosts = new HostAddresses();
  const inCluster = clusterMatcher(opts.clusterCidrs);
  const kubeNode = opts.nodeName ?? process.env.NODE_NAME ?? os.hostname();
  const watch = opts.kubeWatch === 'cluster' ? ({ scope: 'cluster' } as const) : ({ scope: 'node', nodeName: kubeNode } as const);
  const kube = KubeMetadata.fromEnvironment({ kubeconfig: opts.kubeconfig, log, watch });
  const nodeName = kube ? kubeNode : (opts.nodeName ?? process.env.NODE_NAME);
  // records enriched before the lists were in (their Kubernetes fields may be missing)
  let beforeSync: number | undefined;
  let synced: Promise<void> = Promise.resolve();
  if (kube) {
    await kube.load(); // a kubeconfig that cannot be parsed stops start-up before anything is traced
    const started = Date.now();
    synced = withTimeout(kube.start(), KUBE_SYNC_WAIT_MS).then(
      () => {
        beforeSync = enricher.stats.recordsEnriched;
        log.info({ nodeName, syncMs: Date.now() - started, recordsBeforeSync: beforeSync, ...kube.stats }, 'Kubernetes metadata synced');
      },
      async (e: unknown) => {
        // a kubeconfig that cannot be read, credentials refused: a configuration error, start-up stops
        if (e instanceof UsageError) {
          await kube.stop();
          throw e;
        }
        log.warn(`Kubernetes metadata not synced yet (${(e as Error).message}): records lack it until it is`);
      },
    );
    synced.catch(() => undefined); // handled by whoever awaits it
  } else {
    log.info('Kubernetes metadata off: no --kubeconfig, no KUBECONFIG, not in a cluster');
  }
  const enricher = new Enricher({
    processes,
    cgroups,
    parseContainer: parseContainerCgroup,
    kube,
    nodeName,
    isHostAddress: (a) => hosts.has(a),
    learnHostAddress: (a) => hosts.learn(a),
    inCluster,
  });
  return {
    enricher,
    kube,
    scope,
    synced,
    stats: () => ({
      // (synced later, by the retrying watches: counted up to the first look after it)
      ...(kube ? { recordsBeforeKubeSync: beforeSync ?? (kube.synced ? (beforeSync = enricher.stats.recordsEnriched) : enricher.stats.recordsEnriched) } : {}),
      ...enricher.stats,
      processCacheSize: processes.size,
      containerCacheSize: enricher.cachedCgroups,
      cgroupPathCacheSize: cgroups?.size ?? 0,
      cgroupPathsLearned: cgroups?.stats.learned ?? 0,
      hostAddresses: hosts.size,
    }),
    stop: async () => {
      await kube?.stop();
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
    t.unref();
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
