/**
 * Whole API objects -> the few fields the agent keeps (types.ts). Objects come
 * both from typed list responses and from raw watch JSON; the fields read here
 * have the same names in both (only timestamps differ: Date vs string).
 */
import type { V1EndpointSlice, V1Job, V1Node, V1ObjectMeta, V1OwnerReference, V1Pod, V1ReplicaSet, V1Service } from '@kubernetes/client-node';
import type { ControllerInfo, EndpointSliceInfo, EndpointTarget, NodeInfo, OwnerRef, PodInfo, ServiceInfo, SlimMeta } from './types.js';
import { normalizeIp } from './ip.js';

export const ZONE_LABEL = 'topology.kubernetes.io/zone';
export const LEGACY_ZONE_LABEL = 'failure-domain.beta.kubernetes.io/zone';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

function meta(m: V1ObjectMeta | undefined): SlimMeta | undefined {
  if (!m?.name) return undefined;
  const out: SlimMeta = { name: m.name };
  if (m.namespace) out.namespace = m.namespace;
  if (m.uid) out.uid = m.uid;
  if (m.resourceVersion) out.resourceVersion = m.resourceVersion;
  return out;
}

/** The controlling owner reference, else the first. */
function controller(refs: V1OwnerReference[] | undefined): OwnerRef | undefined {
  const ref = refs?.find((r) => r.controller) ?? refs?.[0];
  return ref ? { kind: ref.kind, name: ref.name } : undefined;
}

function ips(list: Iterable<string | undefined>): string[] {
  const out = new Set<string>();
  for (const ip of list) if (ip) out.add(normalizeIp(ip));
  return [...out];
}

export function slimPod(p: V1Pod): PodInfo | undefined {
  const metadata = meta(p.metadata);
  if (!metadata) return undefined;
  const phase = p.status?.phase;
  const finished = phase === 'Succeeded' || phase === 'Failed';
  const info: PodInfo = {
    metadata,
    createdMs: p.metadata?.creationTimestamp ? new Date(p.metadata.creationTimestamp).getTime() || 0 : 0,
    hostNetwork: p.spec?.hostNetwork === true,
    ips: finished ? [] : ips([...(p.status?.podIPs ?? []).map((x) => x.ip), p.status?.podIP]),
  };
  if (p.spec?.nodeName) info.nodeName = p.spec.nodeName;
  const owner = controller(p.metadata?.ownerReferences);
  if (owner) info.owner = owner;
  return info;
}

export function slimService(s: V1Service): ServiceInfo | undefined {
  const metadata = meta(s.metadata);
  if (!metadata) return undefined;
  const all = s.spec?.clusterIPs ?? (s.spec?.clusterIP ? [s.spec.clusterIP] : []);
  return { metadata, clusterIPs: ips(all.filter((ip) => ip && ip !== 'None')) };
}

export function slimEndpointSlice(e: V1EndpointSlice): EndpointSliceInfo | undefined {
  const metadata = meta(e.metadata);
  if (!metadata) return undefined;
  const targets: EndpointTarget[] = [];
  for (const ep of e.endpoints ?? []) {
    const pod = ep.targetRef?.kind === 'Pod' ? ep.targetRef.name : undefined;
    if (!pod && !ep.nodeName && !ep.zone) continue;
    for (const addr of ips(ep.addresses ?? [])) {
      const t: EndpointTarget = { addr };
      if (pod) t.pod = pod;
      if (ep.nodeName) t.node = ep.nodeName;
      if (ep.zone) t.zone = ep.zone;
      targets.push(t);
    }
  }
  const info: EndpointSliceInfo = {
    metadata,
    addresses: ips((e.endpoints ?? []).flatMap((ep) => ep.addresses ?? [])),
    podUids: (e.endpoints ?? []).flatMap((ep) => (ep.targetRef?.kind === 'Pod' && ep.targetRef.uid ? [ep.targetRef.uid] : [])),
    targets,
  };
  const service = e.metadata?.labels?.[SERVICE_NAME_LABEL];
  if (service) info.service = service;
  return info;
}

export function slimNode(n: V1Node): NodeInfo | undefined {
  const metadata = meta(n.metadata);
  if (!metadata) return undefined;
  const labels = n.metadata?.labels ?? {};
  const info: NodeInfo = {
    metadata,
    addresses: ips((n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP').map((a) => a.address)),
  };
  const zone = labels[ZONE_LABEL] ?? labels[LEGACY_ZONE_LABEL];
  if (zone) info.zone = zone;
  return info;
}

/** ReplicaSets and Jobs: who owns them. */
export function slimController(c: V1ReplicaSet | V1Job): ControllerInfo | undefined {
  const metadata = meta(c.metadata);
  if (!metadata) return undefined;
  const owner = controller(c.metadata?.ownerReferences);
  return owner ? { metadata, owner } : { metadata };
}
