/**
 * The Kubernetes manifests as the tests see them: rendered by kustomize
 * (`kubectl kustomize deploy/kubernetes`, as `kubectl apply -k` does), and
 * the DaemonSet's pod translated to `docker run` flags, so that the image
 * test runs the agent with exactly what the manifest grants: the manifest is
 * the single source of truth. A field of the pod this translation does not
 * know is an error, never skipped: a grant added to the manifest is either
 * translated (and so tested) or stops the test.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { capabilityFlags } from './docker.js';
import { REPO_ROOT } from './processes.js';

export const KUSTOMIZATION = path.join(REPO_ROOT, 'deploy/kubernetes');

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

/** Why the manifests cannot be rendered here, or undefined. */
export function kubectlMissing(): string | undefined {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return "kubectl not found: run 'bash scripts/install.sh --test' (Debian's kubernetes-client)";
  }
}

/** Every object `kubectl kustomize` renders from the kustomization. */
export function renderManifests(dir = KUSTOMIZATION): K8sObject[] {
  const text = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return parseAllDocuments(text).map((d) => {
    if (d.errors.length) throw new Error(`kubectl kustomize ${dir}: ${d.errors[0]!.message}`);
    return d.toJS() as K8sObject;
  });
}

export function findObject(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''} in the manifests, found ${found.length}`);
  return found[0]!;
}

/* The shapes read from the DaemonSet (what the translation knows of them). */
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
  configMap?: { name: string };
  emptyDir?: Record<string, never>;
}
export interface SecurityContext {
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  runAsUser?: number;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type: string };
}
interface Probe {
  httpGet: { path: string; port: string | number };
}
export interface Container {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  env?: EnvVar[];
  ports?: Array<{ name?: string; containerPort: number }>;
  securityContext?: SecurityContext;
  volumeMounts?: VolumeMount[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
export interface PodSpec {
  hostPID?: boolean;
  hostNetwork?: boolean;
  containers: Container[];
  volumes?: Volume[];
  [key: string]: unknown;
}

export function podSpecOf(daemonSet: K8sObject): PodSpec {
  return (daemonSet as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
}

function known(where: string, obj: object, keys: readonly string[]): void {
  const unknown = Object.keys(obj).filter((k) => !keys.includes(k));
  if (unknown.length) throw new Error(`${where}: ${unknown.join(', ')}: not translated to docker run (test/helpers/agent-pod.ts)`);
}

/** Pod fields for the scheduler and the API server, not for how the container runs. */
const POD_SCHEDULING = ['serviceAccountName', 'tolerations', 'terminationGracePeriodSeconds', 'nodeSelector', 'priorityClassName'];

/** A Kubernetes memory or CPU quantity as docker run takes it: 512Mi -> 512m (MiB), 500m -> 0.5. */
function dockerMemory(q: string): string {
  const m = /^(\d+)(Mi|Gi)$/.exec(q);
  if (!m) throw new Error(`resources: memory ${q}: expected Mi or Gi`);
  return `${Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1)}m`;
}
function dockerCpus(q: string): string {
  const m = /^(\d+)(m?)$/.exec(q);
  if (!m) throw new Error(`resources: cpu ${q}: expected cores or millicores`);
  return String(Number(m[1]) / (m[2] ? 1000 : 1));
}

export interface DockerRun {
  /** the flags, before the image */
  flags: string[];
  /** after the image: the container's args (the image's entrypoint is its command) */
  args: string[];
  container: Container;
}

/**
 * `docker run` flags for the DaemonSet's only container, as the kubelet would
 * run it on this node: `nodeName` for the downward API's spec.nodeName,
 * ConfigMaps' files written under `scratch` (from `objects`). Kubernetes'
 * service account token is not mounted: the agent runs without an API server.
 */
export function dockerRunOf(daemonSet: K8sObject, objects: K8sObject[], opts: { nodeName: string; scratch: string }): DockerRun {
  const pod = podSpecOf(daemonSet);
  known('DaemonSet pod spec', pod, ['hostPID', 'hostNetwork', 'containers', 'volumes', ...POD_SCHEDULING]);
  if (pod.containers.length !== 1) throw new Error(`DaemonSet: ${pod.containers.length} containers, expected one`);
  const c = pod.containers[0]!;
  known(`container ${c.name}`, c, ['name', 'image', 'args', 'command', 'env', 'ports', 'securityContext', 'volumeMounts', 'livenessProbe', 'readinessProbe', 'resources']);
  if (c.command) throw new Error(`container ${c.name}: command: the image's entrypoint is the agent; give args`);
  const flags: string[] = [];
  if (pod.hostPID) flags.push('--pid', 'host');
  if (pod.hostNetwork) flags.push('--network', 'host');

  const sc = c.securityContext ?? {};
  known(`container ${c.name} securityContext`, sc, ['privileged', 'allowPrivilegeEscalation', 'readOnlyRootFilesystem', 'runAsUser', 'capabilities', 'seccompProfile']);
  if (sc.privileged) flags.push('--privileged');
  if (sc.allowPrivilegeEscalation === false) flags.push('--security-opt', 'no-new-privileges');
  if (sc.readOnlyRootFilesystem) flags.push('--read-only');
  if (sc.runAsUser !== undefined) flags.push('--user', String(sc.runAsUser));
  const caps = sc.capabilities ?? {};
  known(`container ${c.name} capabilities`, caps, ['drop', 'add']);
  // only a drop of everything: Docker's default set is not containerd's, so any other drop would test another set
  if (JSON.stringify(caps.drop) !== '["ALL"]') throw new Error(`container ${c.name}: capabilities.drop must be [ALL]`);
  flags.push(...capabilityFlags(caps.add ?? []));
  const seccomp = sc.seccompProfile?.type ?? 'RuntimeDefault';
  if (seccomp === 'Unconfined') flags.push('--security-opt', 'seccomp=unconfined');
  else if (seccomp !== 'RuntimeDefault') throw new Error(`container ${c.name}: seccompProfile ${seccomp}: not translated`);
  // RuntimeDefault: the runtime's own profile (Docker's here)

  const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
  for (const m of c.volumeMounts ?? []) {
    known(`volumeMount ${m.name}`, m, ['name', 'mountPath', 'readOnly']);
    const v = volumes.get(m.name);
    if (!v) throw new Error(`volumeMount ${m.name}: no such volume`);
    known(`volume ${v.name}`, v, ['name', 'hostPath', 'configMap', 'emptyDir']);
    let source: string;
    if (v.hostPath) source = v.hostPath.path;
    else if (v.configMap) {
      const cm = findObject(objects, 'ConfigMap', v.configMap.name) as K8sObject & { data?: Record<string, string> };
      source = path.join(opts.scratch, `configmap-${v.name}`);
      mkdirSync(source, { recursive: true });
      for (const [file, text] of Object.entries(cm.data ?? {})) writeFileSync(path.join(source, file), text);
    } else if (v.emptyDir) {
      flags.push('--tmpfs', m.mountPath);
      continue;
    } else throw new Error(`volume ${v.name}: neither hostPath, configMap nor emptyDir`);
    flags.push('--volume', `${source}:${m.mountPath}${m.readOnly ? ':ro' : ''}`);
  }

  for (const e of c.env ?? []) {
    known(`env ${e.name}`, e, ['name', 'value', 'valueFrom']);
    if (e.value !== undefined) flags.push('--env', `${e.name}=${e.value}`);
    else if (e.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') flags.push('--env', `${e.name}=${opts.nodeName}`);
    else throw new Error(`env ${e.name}: only values and fieldRef spec.nodeName are translated`);
  }
  const limits = c.resources?.limits ?? {};
  known(`container ${c.name} resources.limits`, limits, ['memory', 'cpu']);
  if (limits['memory']) flags.push('--memory', dockerMemory(limits['memory']));
  if (limits['cpu']) flags.push('--cpus', dockerCpus(limits['cpu']));
  return { flags, args: c.args ?? [], container: c };
}

/** What the image test proved the agent needs and runs with: the DaemonSet must grant exactly this. */
export const PROVEN_POD_SECURITY = {
  hostPID: true,
  hostNetwork: false,
  privileged: false,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsUser: 0,
  capabilities: { drop: ['ALL'], add: ['BPF', 'PERFMON', 'NET_ADMIN'] },
  seccompProfile: 'Unconfined',
  hostPaths: [{ path: '/sys/fs/cgroup', mountPath: '/host/sys/fs/cgroup', readOnly: true }],
};

/** The DaemonSet's grants in the shape of PROVEN_POD_SECURITY. */
export function podSecurityOf(daemonSet: K8sObject): typeof PROVEN_POD_SECURITY {
  const pod = podSpecOf(daemonSet);
  const c = pod.containers[0]!;
  const sc = c.securityContext ?? {};
  const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
  return {
    hostPID: pod.hostPID ?? false,
    hostNetwork: pod.hostNetwork ?? false,
    privileged: sc.privileged ?? false,
    allowPrivilegeEscalation: sc.allowPrivilegeEscalation ?? true,
    readOnlyRootFilesystem: sc.readOnlyRootFilesystem ?? false,
    runAsUser: sc.runAsUser ?? -1,
    capabilities: { drop: sc.capabilities?.drop ?? [], add: sc.capabilities?.add ?? [] },
    seccompProfile: sc.seccompProfile?.type ?? 'RuntimeDefault',
    hostPaths: (c.volumeMounts ?? [])
      .filter((m) => volumes.get(m.name)?.hostPath)
      .map((m) => ({ path: volumes.get(m.name)!.hostPath!.path, mountPath: m.mountPath, readOnly: m.readOnly ?? false })),
  };
}
