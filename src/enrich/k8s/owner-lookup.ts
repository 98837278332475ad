/**
 * The owners of a node's pods' owners, read one by one when a pod names
 * them: with the watch scoped to this node (kube-metadata.ts), the agent does
 * not list every ReplicaSet and Job of the cluster (Deployments keep ten old
 * ReplicaSets each by default) just to tell which Deployment or CronJob owns
 * the few dozen pods it runs. A ReplicaSet or Job is read (GET) the first
 * time a pod of this node names it, then kept: owners do not change. One
 * that is gone (404) is remembered as owning nothing (the pod's workload is
 * then the ReplicaSet or Job itself); a failed read is retried with back-off.
 * Bounded: at most `maxKept` owners are kept, the oldest forgotten first.
 */
import type { AppsV1Api, BatchV1Api } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeKubeError, statusOf } from './errors.js';
import { slimController } from './slim.js';
import type { ControllerInfo, PodInfo } from './types.js';

export type OwnerKind = 'ReplicaSet' | 'Job';

export interface OwnerLookupStats {
  /** reads (GET) made */
  ownerLookups: number;
  /** reads that failed (each retried) */
  ownerLookupErrors: number;
}

export interface OwnerLookupOptions {
  apps: AppsV1Api;
  batch: BatchV1Api;
  /** where an owner read goes: the index */
  found(kind: OwnerKind, c: ControllerInfo): void;
  log: Logger;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** owners kept at most (default 4096) */
  maxKept?: number;
}

export class OwnerLookup {
  readonly stats: OwnerLookupStats = { ownerLookups: 0, ownerLookupErrors: 0 };
  /** `kind/namespace/name` read (or being read) */
  private readonly known = new Set<string>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  constructor(private readonly o: OwnerLookupOptions) {}

  /** A pod arrived or changed: read its owner if it is a ReplicaSet or Job not read yet. */
  need(p: PodInfo): void {
    const kind = p.owner?.kind;
    if (kind !== 'ReplicaSet' && kind !== 'Job') return;
    const namespace = p.metadata.namespace ?? '';
    const id = `${kind}/${namespace}/${p.owner!.name}`;
    if (this.known.has(id) || this.stopped) return;
    if (this.known.size >= (this.o.maxKept ?? 4096)) this.known.delete(this.known.values().next().value!);
    this.known.add(id);
    this.read(kind, namespace, p.owner!.name, id, 0);
  }

  /** Resolves once no read is in flight (those started meanwhile included). */
  async idle(): Promise<void> {
    while (this.inFlight.size) await Promise.all([...this.inFlight]);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private read(kind: OwnerKind, namespace: string, name: string, id: string, failures: number): void {
    this.stats.ownerLookups++;
    const request = kind === 'ReplicaSet' ? this.o.apps.readNamespacedReplicaSet({ name, namespace }) : this.o.batch.readNamespacedJob({ name, namespace });
    const p: Promise<void> = request.then(
      (obj) => {
        const c = slimController(obj);
        if (c && !this.stopped) this.o.found(kind, c);
      },
      (err: unknown) => {
        if (this.stopped) return;
        if (statusOf(err) === 404) {
          // gone: it owns nothing any more, and its pods are its own workload
          this.o.found(kind, { metadata: { name, namespace } });
          return;
        }
        this.stats.ownerLookupErrors++;
        const delay = Math.min(this.o.backoffMaxMs, this.o.backoffBaseMs * 2 ** Math.min(failures, 20));
        this.o.log.warn({ owner: id, err: describeKubeError(err), retryInMs: delay }, `kubernetes: reading ${kind} ${namespace}/${name} failed; retrying`);
        const t = setTimeout(() => {
          this.timers.delete(t);
          if (!this.stopped) this.read(kind, namespace, name, id, failures + 1);
        }, delay);
        this.timers.add(t);
      },
    );
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }
}
