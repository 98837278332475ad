/**
 * What Kubernetes says about one end of a flow, and the few fields kept per
 * watched object (the informers cache these slim records, never whole objects).
 */

import type { K8sInfo } from '../../events/records.js';

/** Kubernetes metadata for an address or a pod: the `k8s` object of the record contract. */
export type K8sRef = K8sInfo;

/** The metadata an informer needs to key, version and diff an object. */
export interface SlimMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
}

export interface OwnerRef {
  kind: string;
  name: string;
}

export interface PodInfo {
  metadata: SlimMeta;
  /** creation time (ms): when two live pods claim one IP, the newer holds it */
  createdMs: number;
  nodeName?: string;
  hostNetwork: boolean;
  /** status.podIPs (v4 and v6); empty for a finished pod, whose IP the node may hand out again */
  ips: string[];
  /** the controller owner reference */
  owner?: OwnerRef;
}

export interface ServiceInfo {
  metadata: SlimMeta;
  /** spec.clusterIPs without 'None' (headless) */
  clusterIPs: string[];
}

export interface EndpointSliceInfo {
  metadata: SlimMeta;
  /** label kubernetes.io/service-name */
  service?: string;
  addresses: string[];
  /** targetRef uids of Pod endpoints */
  podUids: string[];
  /**
   * What the slice says of the pod behind each address that names one (a
   * Pod targetRef, nodeName, zone): all an agent watching only its own node's
   * pods knows of a remote pod behind a Service.
   */
  targets: EndpointTarget[];
}

export interface EndpointTarget {
  addr: string;
  pod?: string;
  node?: string;
  zone?: string;
}

export interface NodeInfo {
  metadata: SlimMeta;
  zone?: string;
  /** InternalIP and ExternalIP addresses */
  addresses: string[];
}

/** A ReplicaSet or a Job: only who owns it (a Deployment, a CronJob). */
export interface ControllerInfo {
  metadata: SlimMeta;
  owner?: OwnerRef;
}
