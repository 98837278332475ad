/**
 * The watched resources, each feeding the index.
 *
 * Scope `cluster` (every agent holds the whole cluster): Pods, Services,
 * Nodes, EndpointSlices, and ReplicaSets and Jobs (for the Deployment or
 * CronJob that owns a pod's owner), all cluster-wide.
 *
 * Scope `node` (what one node needs): its own Pods only
 * (`fieldSelector=spec.nodeName=<node>`), the local end of everything it
 * traces and the remote end of whatever stays on the node; Services
 * (ClusterIP -> Service) and EndpointSlices (backend address -> Service, pod
 * name, node, zone: the remote end behind a Service, what kube-proxy already
 * watches on every node) and Nodes (node addresses and zones) cluster-wide;
 * the ReplicaSets and Jobs that own its pods read one by one (owner-lookup.ts)
 * instead of watched. A remote pod behind no Service stays an address here:
 * the hub names it from the other node's records (docs/fleet.md).
 */
import { AppsV1Api, BatchV1Api, CoreV1Api, DiscoveryV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { ClusterIndex } from './cluster-index.js';
import { ResilientInformer, type InformerHandlers, type InformerOptions, type ListPage } from './informer.js';
import { OwnerLookup } from './owner-lookup.js';
import { slimController, slimEndpointSlice, slimNode, slimPod, slimService } from './slim.js';

export type InformerSettings = Pick<InformerOptions<unknown>, 'log' | 'pageSize' | 'backoffBaseMs' | 'backoffMaxMs' | 'watchTimeoutSeconds'>;

/** Which objects an agent watches: the whole cluster's, or what its node needs. */
export type WatchScope = { scope: 'cluster' } | { scope: 'node'; nodeName: string };

export interface ClusterWatch {
  /** not yet started */
  informers: ResilientInformer<KubernetesObject>[];
  /** scope `node`: the reads of its pods' owners */
  owners: OwnerLookup | undefined;
}

type Lister = (p: { limit: number; _continue?: string; fieldSelector?: string }) => Promise<ListPage>;

export function watchCluster(kc: KubeConfig, ix: ClusterIndex, settings: InformerSettings, scope: WatchScope = { scope: 'cluster' }): ClusterWatch {
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const batch = kc.makeApiClient(BatchV1Api);
  const informer = <T extends KubernetesObject>(
    resource: string,
    path: string,
    listPage: Lister,
    slim: (raw: never) => T | undefined,
    handlers: InformerHandlers<T>,
    fieldSelector?: string,
  ) =>
    new ResilientInformer<T>({
      ...settings,
      kc,
      resource,
      path,
      listPage,
      slim: slim as (raw: unknown) => T | undefined,
      handlers,
      ...(fieldSelector ? { fieldSelector } : {}),
    }) as unknown as ResilientInformer<KubernetesObject>;

  const owners =
    scope.scope === 'node'
      ? new OwnerLookup({ apps, batch, found: (kind, c) => ix.upsertController(kind, c), log: settings.log, backoffBaseMs: settings.backoffBaseMs, backoffMaxMs: settings.backoffMaxMs })
      : undefined;
  const pods = informer(
    'pods',
    '/api/v1/pods',
    (p) => core.listPodForAllNamespaces(p),
    slimPod,
    {
      upsert: (o) => {
        ix.upsertPod(o);
        owners?.need(o);
      },
      remove: (o) => ix.removePod(o),
    },
    scope.scope === 'node' ? `spec.nodeName=${scope.nodeName}` : undefined,
  );
  const shared = [
    pods,
    informer('services', '/api/v1/services', (p) => core.listServiceForAllNamespaces(p), slimService, { upsert: (o) => ix.upsertService(o), remove: (o) => ix.removeService(o) }),
    informer('nodes', '/api/v1/nodes', (p) => core.listNode(p), slimNode, { upsert: (o) => ix.upsertNode(o), remove: (o) => ix.removeNode(o) }),
    informer('endpointslices', '/apis/discovery.k8s.io/v1/endpointslices', (p) => discovery.listEndpointSliceForAllNamespaces(p), slimEndpointSlice, {
      upsert: (o) => ix.upsertEndpointSlice(o),
      remove: (o) => ix.removeEndpointSlice(o),
    }),
  ];
  if (owners) return { informers: shared, owners };
  return {
    informers: [
      ...shared,
      informer('replicasets', '/apis/apps/v1/replicasets', (p) => apps.listReplicaSetForAllNamespaces(p), slimController, {
        upsert: (o) => ix.upsertController('ReplicaSet', o),
        remove: (o) => ix.removeController('ReplicaSet', o),
      }),
      informer('jobs', '/apis/batch/v1/jobs', (p) => batch.listJobForAllNamespaces(p), slimController, {
        upsert: (o) => ix.upsertController('Job', o),
        remove: (o) => ix.removeController('Job', o),
      }),
    ],
    owners: undefined,
  };
}
