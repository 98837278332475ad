/**
 * The six watched resources, cluster-wide, each feeding the index: Pods,
 * Services, Nodes, EndpointSlices, and ReplicaSets and Jobs (for the
 * Deployment or CronJob that owns a pod's owner).
 */
import { AppsV1Api, BatchV1Api, CoreV1Api, DiscoveryV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { ClusterIndex } from './cluster-index.js';
import { ResilientInformer, type InformerHandlers, type InformerOptions, type ListPage } from './informer.js';
import { slimController, slimEndpointSlice, slimNode, slimPod, slimService } from './slim.js';

export type InformerSettings = Pick<InformerOptions<unknown>, 'log' | 'pageSize' | 'backoffBaseMs' | 'backoffMaxMs' | 'watchTimeoutSeconds'>;

/** Informers not yet started. */
export function watchCluster(kc: KubeConfig, ix: ClusterIndex, settings: InformerSettings): ResilientInformer<KubernetesObject>[] {
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const batch = kc.makeApiClient(BatchV1Api);
  const informer = <T extends KubernetesObject>(
    resource: string,
    path: string,
    listPage: (p: { limit: number; _continue?: string }) => Promise<ListPage>,
    slim: (raw: never) => T | undefined,
    handlers: InformerHandlers<T>,
  ) =>
    new ResilientInformer<T>({ ...settings, kc, resource, path, listPage, slim: slim as (raw: unknown) => T | undefined, handlers }) as unknown as ResilientInformer<KubernetesObject>;

  return [
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
