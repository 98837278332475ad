/**
 * Container and Kubernetes pod from a cgroup v2 path, for the layouts the
 * runtimes really create:
 *
 * - kubelet, systemd driver: /kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/<runtime>-<id>.scope,
 *   guaranteed pods directly under kubepods.slice (kubepods-pod<uid>.slice); systemd
 *   escapes the dashes of the uid as '_'. The runtime prefix is cri-containerd-, crio- or docker- (cri-dockerd).
 * - kubelet, cgroupfs driver: /kubepods/<qos>/pod<uid>/<id> (containerd, cri-dockerd) or .../crio-<id>,
 *   guaranteed pods directly under /kubepods.
 * - Docker: /system.slice/docker-<id>.scope (systemd driver), /docker/<id> (cgroupfs),
 *   /actions_job/<id> (GitHub-hosted runners set cgroup-parent /actions_job).
 * - Podman: libpod-<id>.scope under machine.slice or a user's user@UID.service, also in
 *   machine-libpod_pod_<podid>.slice for podman pods; libpod-<id> with cgroupfs;
 *   libpod-payload-<id> with --cgroups=split.
 * - nerdctl (containerd without Kubernetes): /system.slice/nerdctl-<id>.scope.
 *
 * Nested layouts are read from the innermost container: kind and k3d nodes are
 * containers whose kubelet puts pods under /kubelet.slice/kubelet-kubepods.slice/...
 * inside the node's own cgroup, and a container's sub-cgroups (crun's /container,
 * a containerised systemd's init.scope and services) belong to that container.
 *
 * Monitors are not containers: CRI-O's and Podman's conmon run in crio-conmon-<id>
 * and libpod-conmon-<id> cgroups (in the pod's cgroup, or in system.slice, as
 * configured). parseContainerCgroup returns undefined for them, so that the
 * monitor's traffic is never reported as the container's; podUidFromCgroup still
 * names the pod of a conmon in a pod's cgroup.
 *
 * Container ids that are not 64 hex digits (e.g. names given to `ctr run`,
 * which puts containers in /<namespace>/<name>) cannot be told from other
 * cgroups and are not recognised.
 */

export type ContainerRuntime = 'docker' | 'containerd' | 'cri-o' | 'podman' | 'unknown';
export type QosClass = 'guaranteed' | 'burstable' | 'besteffort';

export interface ContainerInfo {
  /** full 64-hex container id */
  id: string;
  runtime: ContainerRuntime;
  /** dashed UUID form; for a static pod, the 32-hex config hash kubelet uses as its uid */
  podUid?: string;
  qosClass?: QosClass;
}

export interface PodCgroup {
  podUid: string;
  qosClass?: QosClass;
}

const PREFIXED = /^(cri-containerd|crio|docker|libpod|libpod-payload|nerdctl)-([0-9a-f]{64})(?:\.scope)?$/;
const BARE = /^[0-9a-f]{64}$/;
const RUNTIME_OF_PREFIX: Record<string, ContainerRuntime> = {
  'cri-containerd': 'containerd',
  crio: 'cri-o',
  docker: 'docker',
  libpod: 'podman',
  'libpod-payload': 'podman',
  nerdctl: 'containerd',
};
/** Parents of bare ids whose runtime is known; under kubepods (cgroupfs) it may be containerd or cri-dockerd. */
const RUNTIME_OF_PARENT: Record<string, ContainerRuntime> = { docker: 'docker', actions_job: 'docker' };

/** systemd driver: the pod slice's name repeats its parents', e.g. kubepods-burstable-pod<uid>.slice, kubelet-kubepods-pod<uid>.slice */
const SYSTEMD_POD = /^(?:[\w.]+-)?kubepods(?:-(burstable|besteffort))?-pod([0-9a-f_]+)\.slice$/;
/** cgroupfs driver: pod<uid> under a kubepods directory */
const CGROUPFS_POD = /^pod([0-9a-f-]+)$/;
const UID = /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})$/;

function containerAt(segments: string[], i: number): { id: string; runtime: ContainerRuntime } | undefined {
  const s = segments[i]!;
  const m = PREFIXED.exec(s);
  if (m) return { id: m[2]!, runtime: RUNTIME_OF_PREFIX[m[1]!]! };
  if (BARE.test(s)) return { id: s, runtime: RUNTIME_OF_PARENT[segments[i - 1] ?? ''] ?? 'unknown' };
  return undefined;
}

function podAt(segments: string[], i: number): PodCgroup | undefined {
  const s = segments[i]!;
  const sd = SYSTEMD_POD.exec(s);
  if (sd) {
    const podUid = sd[2]!.replace(/_/g, '-');
    if (!UID.test(podUid)) return undefined;
    return { podUid, qosClass: (sd[1] as QosClass | undefined) ?? 'guaranteed' };
  }
  const fs = CGROUPFS_POD.exec(s);
  if (!fs || !UID.test(fs[1]!)) return undefined;
  const parent = segments[i - 1];
  // a bare pod<uid> is only trusted with a kubepods ancestor
  if (!segments.slice(0, i).includes('kubepods')) return undefined;
  const qosClass: QosClass | undefined =
    parent === 'burstable' || parent === 'besteffort' ? parent : parent === 'kubepods' ? 'guaranteed' : undefined;
  return { podUid: fs[1]!, ...(qosClass ? { qosClass } : {}) };
}

function split(path: string): string[] {
  return path.split('/').filter((s) => s !== '');
}

/** The nearest pod cgroup above segment `end` (exclusive), not crossing an enclosing container. */
function podBefore(segments: string[], end: number): PodCgroup | undefined {
  for (let i = end - 1; i >= 0; i--) {
    if (containerAt(segments, i)) return undefined;
    const pod = podAt(segments, i);
    if (pod) return pod;
  }
  return undefined;
}

/** The innermost container a cgroup path belongs to; undefined for any other cgroup (the caller keeps the path). */
export function parseContainerCgroup(path: string): ContainerInfo | undefined {
  const segments = split(path);
  for (let i = segments.length - 1; i >= 0; i--) {
    const c = containerAt(segments, i);
    if (!c) continue;
    const pod = podBefore(segments, i);
    return { ...c, ...(pod ? { podUid: pod.podUid, ...(pod.qosClass ? { qosClass: pod.qosClass } : {}) } : {}) };
  }
  return undefined;
}

/** The pod a cgroup belongs to, at pod level (sandbox, conmon) or below it: the innermost pod cgroup on the path. */
export function podOfCgroup(path: string): PodCgroup | undefined {
  const segments = split(path);
  for (let i = segments.length - 1; i >= 0; i--) {
    const pod = podAt(segments, i);
    if (pod) return pod;
  }
  return undefined;
}

/** The pod UID (dashed form) of a pod's cgroup or of any cgroup inside it. */
export function podUidFromCgroup(path: string): string | undefined {
  return podOfCgroup(path)?.podUid;
}
