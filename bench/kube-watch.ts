/**
 * The scale of the Kubernetes watch (docs/fleet.md): what one agent costs the
 * API server and itself against a test API (test/helpers/fake-kube-api.ts)
 * holding a cluster of --pods pods on --nodes nodes, with the watch scoped to
 * its node (`kubernetes.watch: node`) and cluster-wide (`cluster`), same run,
 * each agent in a fresh process. Measured: the requests it makes to sync and
 * the bytes they return, the time to sync, its heap and RSS after a forced GC
 * above a baseline process that only loaded the library, the objects it
 * holds; then --churn pod changes (status updates, spread over every node)
 * and how many watch events reach the agent; then the same for Services'
 * EndpointSlices. Prints a table.
 *
 *   node dist/bench/kube-watch.js [--pods 10000] [--nodes 100] [--churn 1000]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FakeKubeApi, type KObject } from '../test/helpers/fake-kube-api.js';

const { values } = parseArgs({ options: { pods: { type: 'string', default: '10000' }, nodes: { type: 'string', default: '100' }, churn: { type: 'string', default: '1000' } } });
const PODS = Number(values.pods);
const NODES = Number(values.nodes);
const CHURN = Number(values.churn);
const PODS_PER_DEPLOYMENT = 5;
/** ReplicaSets per Deployment: the current one and two old ones (revisionHistoryLimit is 10 by default) */
const RS_PER_DEPLOYMENT = 3;
const ZONES = ['zone-a', 'zone-b', 'zone-c'];
const here = path.dirname(fileURLToPath(import.meta.url));

// ---- a cluster whose objects are shaped and sized like real ones (managed fields, images, conditions)

const nodeName = (i: number) => `node-${String(i).padStart(3, '0')}`;
const ip = (base: number, i: number) => `10.${base + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const managed = (manager: string) => [{ manager, operation: 'Update', apiVersion: 'v1', time: '2026-01-01T00:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': { '.': {}, 'f:app': {} } }, 'f:spec': { 'f:containers': {} } } }];

function node(i: number): KObject {
  return {
    metadata: { name: nodeName(i), labels: { 'kubernetes.io/hostname': nodeName(i), 'topology.kubernetes.io/zone': ZONES[i % ZONES.length]!, 'node.kubernetes.io/instance-type': 'm5.xlarge' }, managedFields: managed('kubelet') },
    spec: { podCIDR: `10.${100 + (i >> 8)}.${i & 255}.0/24`, providerID: `aws:///eu-west-1a/i-${i.toString(16).padStart(17, '0')}` },
    status: {
      addresses: [{ type: 'InternalIP', address: ip(192, 1000 + i) }, { type: 'Hostname', address: nodeName(i) }],
      capacity: { cpu: '4', memory: '16Gi', pods: '110' },
      allocatable: { cpu: '3920m', memory: '15Gi', pods: '110' },
      conditions: ['Ready', 'MemoryPressure', 'DiskPressure', 'PIDPressure'].map((type) => ({ type, status: type === 'Ready' ? 'True' : 'False', lastHeartbeatTime: '2026-01-01T00:00:00Z', reason: `Kubelet${type}`, message: `kubelet ${type}` })),
      images: Array.from({ length: 30 }, (_, k) => ({ names: [`registry.example.com/team-${k}/service@sha256:${'a'.repeat(64)}`, `registry.example.com/team-${k}/service:v1.${k}`], sizeBytes: 100_000_000 + k })),
      nodeInfo: { kubeletVersion: 'v1.30.2', containerRuntimeVersion: 'containerd://1.7.18', kernelVersion: '6.1.0', osImage: 'Debian GNU/Linux 12' },
    },
  };
}

function pod(d: number, r: number, i: number): KObject {
  const name = `svc-${d}`;
  return {
    metadata: {
      name: `${name}-6d4f9${d % 10}-${r}x${i}`,
      namespace: `team-${d % 40}`,
      labels: { app: name, 'pod-template-hash': `6d4f9${d % 10}` },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${name}-6d4f9${d % 10}`, uid: `rs-${d}`, controller: true, blockOwnerDeletion: true }],
      managedFields: managed('kube-controller-manager'),
    },
    spec: {
      nodeName: nodeName(i % NODES),
      serviceAccountName: 'default',
      containers: [{ name: 'main', image: `registry.example.com/${name}:v1.2.3`, ports: [{ containerPort: 8080, protocol: 'TCP' }], resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } }, env: [{ name: 'LOG_LEVEL', value: 'info' }, { name: 'PORT', value: '8080' }] }],
      tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }],
    },
    status: {
      phase: 'Running',
      podIP: ip(20, i),
      podIPs: [{ ip: ip(20, i) }],
      hostIP: ip(192, 1000 + (i % NODES)),
      conditions: ['Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({ type, status: 'True', lastTransitionTime: '2026-01-01T00:00:00Z' })),
      containerStatuses: [{ name: 'main', ready: true, restartCount: 0, image: `registry.example.com/${name}:v1.2.3`, imageID: `registry.example.com/${name}@sha256:${'b'.repeat(64)}`, containerID: `containerd://${'c'.repeat(64)}`, started: true, state: { running: { startedAt: '2026-01-01T00:00:00Z' } } }],
    },
  };
}

async function seed(api: FakeKubeApi): Promise<{ pods: KObject[] }> {
  for (let n = 0; n < NODES; n++) api.add('Node', node(n));
  const pods: KObject[] = [];
  const deployments = Math.ceil(PODS / PODS_PER_DEPLOYMENT);
  for (let d = 0; d < deployments; d++) {
    const ns = `team-${d % 40}`;
    const name = `svc-${d}`;
    for (let k = 0; k < RS_PER_DEPLOYMENT; k++) {
      api.add('ReplicaSet', { metadata: { name: `${name}-${k === 0 ? `6d4f9${d % 10}` : `old${k}`}`, namespace: ns, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name, uid: `dep-${d}`, controller: true }], managedFields: managed('kube-controller-manager') }, spec: { replicas: k === 0 ? PODS_PER_DEPLOYMENT : 0 }, status: { replicas: k === 0 ? PODS_PER_DEPLOYMENT : 0 } });
    }
    const mine: KObject[] = [];
    for (let r = 0; r < PODS_PER_DEPLOYMENT && pods.length < PODS; r++) {
      // pods of one deployment spread over nodes, as the scheduler spreads them
      const i = pods.length;
      const p = api.add('Pod', pod(d, r, (i * 37) % PODS));
      pods.push(p);
      mine.push(p);
    }
    const clusterIP = `10.96.${d >> 8}.${d & 255}`;
    api.add('Service', { metadata: { name, namespace: ns, managedFields: managed('kubectl') }, spec: { type: 'ClusterIP', clusterIP, clusterIPs: [clusterIP], selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] } });
    api.add('EndpointSlice', slice(name, ns, mine));
  }
  return { pods };
}

function slice(name: string, ns: string, pods: KObject[], generation = 0): KObject {
  return {
    metadata: { name: `${name}-abcde`, namespace: ns, labels: { 'kubernetes.io/service-name': name, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' }, annotations: { generation: String(generation) } },
    addressType: 'IPv4',
    endpoints: pods.map((p) => {
      const spec = p.spec as { nodeName: string };
      const status = p.status as { podIP: string };
      const n = Number(spec.nodeName.slice(5));
      return { addresses: [status.podIP], conditions: { ready: true, serving: true, terminating: false }, nodeName: spec.nodeName, zone: ZONES[n % ZONES.length], targetRef: { kind: 'Pod', namespace: ns, name: p.metadata.name, uid: p.metadata.uid } };
    }),
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

// ---- one agent in its own process

class Agent {
  readonly child: ChildProcess;
  private readonly lines: Array<Record<string, unknown>> = [];
  private waiters: Array<() => void> = [];

  constructor(kubeconfig: string, scope: string, node: string) {
    this.child = spawn(process.execPath, ['--expose-gc', path.join(here, 'kube-watch-agent.js'), '--kubeconfig', kubeconfig, '--scope', scope, '--node', node], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      this.lines.push(JSON.parse(l) as Record<string, unknown>);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  async next(): Promise<Record<string, unknown>> {
    while (!this.lines.length) await new Promise<void>((r) => this.waiters.push(r));
    return this.lines.shift()!;
  }

  async stats(): Promise<Record<string, unknown>> {
    this.child.stdin!.write('stats\n');
    return this.next();
  }

  async stop(): Promise<void> {
    this.child.stdin!.write('stop\n');
    await new Promise((r) => this.child.once('exit', r));
  }
}

interface Row {
  scope: string;
  lists: number;
  watches: number;
  gets: number;
  syncMB: number;
  syncMs: number;
  heapMB: number;
  rssMB: number;
  objects: string;
  podEvents: number;
  sliceEvents: number;
  bytesChurnMB: number;
}

async function measure(api: FakeKubeApi, kubeconfig: string, scope: 'node' | 'cluster', baseline: { heapMB: number; rssMB: number }, pods: KObject[]): Promise<Row> {
  const from = api.requests.length;
  const mine = () => api.requests.slice(from);
  const agent = new Agent(kubeconfig, scope, nodeName(NODES >> 1));
  const synced = await agent.next();
  // the watches start right after the sync
  await new Promise((r) => setTimeout(r, 500));
  const atSync = mine();
  const count = (f: (r: (typeof atSync)[number]) => boolean) => atSync.filter(f).length;
  const syncBytes = atSync.reduce((n, r) => n + r.bytes, 0);
  const stats = synced.stats as Record<string, number>;
  const eventsBefore = { pod: 0, slice: 0, bytes: 0 };
  for (const r of mine()) {
    eventsBefore.bytes += r.bytes;
    if (r.kind === 'Pod') eventsBefore.pod += r.events;
    if (r.kind === 'EndpointSlice') eventsBefore.slice += r.events;
  }
  // churn: status changes of pods spread over every node (restart counts), then as many slice changes (a pod turning unready)
  for (let k = 0; k < CHURN; k++) {
    const p = structuredClone(pods[(k * 7919) % pods.length]!);
    const st = p.status as { containerStatuses: Array<{ restartCount: number }> };
    st.containerStatuses[0]!.restartCount = k + 1;
    api.update('Pod', p);
  }
  const sliceNames = [...new Set(pods.map((p) => `${p.metadata.namespace}/${p.metadata.name.split('-6d4f9')[0]}`))];
  for (let k = 0; k < CHURN; k++) {
    const [ns, name] = sliceNames[(k * 7919) % sliceNames.length]!.split('/') as [string, string];
    const s = api.get('EndpointSlice', ns, `${name}-abcde`)!;
    const u = structuredClone(s);
    (u.metadata.annotations as Record<string, string>).generation = String(k + 1);
    api.update('EndpointSlice', u);
  }
  await new Promise((r) => setTimeout(r, 1500));
  const after = { pod: 0, slice: 0, bytes: 0 };
  for (const r of mine()) {
    after.bytes += r.bytes;
    if (r.kind === 'Pod') after.pod += r.events;
    if (r.kind === 'EndpointSlice') after.slice += r.events;
  }
  await agent.stats();
  await agent.stop();
  return {
    scope,
    lists: count((r) => !r.watch && !r.get),
    watches: count((r) => r.watch),
    gets: count((r) => r.get),
    syncMB: +(syncBytes / 2 ** 20).toFixed(1),
    syncMs: Number(synced.syncMs),
    heapMB: +(Number(synced.heapMB) - baseline.heapMB).toFixed(1),
    rssMB: +(Number(synced.rssMB) - baseline.rssMB).toFixed(1),
    objects: `${stats.pods} pods, ${stats.services} svc, ${stats.endpointSlices} slices, ${stats.nodes} nodes, ${stats.replicaSets} RS`,
    podEvents: after.pod - eventsBefore.pod,
    sliceEvents: after.slice - eventsBefore.slice,
    bytesChurnMB: +((after.bytes - eventsBefore.bytes) / 2 ** 20).toFixed(2),
  };
}

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n');
}

const api = await FakeKubeApi.start();
const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-kube-bench-'));
try {
  const t0 = performance.now();
  const { pods } = await seed(api);
  const kubeconfig = api.writeKubeconfig(dir);
  process.stderr.write(`kube-watch bench: ${pods.length} pods on ${NODES} nodes seeded in ${Math.round(performance.now() - t0)} ms\n`);
  const base = new Agent(kubeconfig, 'none', nodeName(0));
  const baseline = (await base.next()) as { heapMB: number; rssMB: number };
  await base.stop();
  const results: Row[] = [];
  for (const scope of ['cluster', 'node'] as const) results.push(await measure(api, kubeconfig, scope, baseline, pods));
  const header = ['watch', 'lists', 'watches', 'GETs', 'MB to sync', 'sync ms', 'heap MB', 'RSS MB', 'held', `pod events / ${CHURN} pod changes`, `slice events / ${CHURN} slice changes`, 'MB during churn'];
  const lines = [
    `Kubernetes watch of one agent: ${pods.length} pods (${PODS_PER_DEPLOYMENT} per Deployment, ${RS_PER_DEPLOYMENT} ReplicaSets each), ${NODES} nodes, one Service and EndpointSlice per Deployment; node ${process.version}, ${os.cpus().length} CPUs`,
    `heap and RSS: after a forced GC, above a process that only loaded the client library (${baseline.heapMB} MB heap, ${baseline.rssMB} MB RSS)`,
    table([header, ...results.map((r) => [r.scope, String(r.lists), String(r.watches), String(r.gets), String(r.syncMB), String(r.syncMs), String(r.heapMB), String(r.rssMB), r.objects, String(r.podEvents), String(r.sliceEvents), String(r.bytesChurnMB)])]),
  ];
  const [c, n] = results as [Row, Row];
  lines.push(
    `at ${NODES} nodes, per cluster-wide pod change the API server sends ${NODES} watch events with every agent watching the cluster, ` +
      `${(n.podEvents / CHURN).toFixed(2)} x ${NODES} = ${((n.podEvents / CHURN) * NODES).toFixed(0)} with each watching its node; EndpointSlice changes still go to every agent (as to every kube-proxy)`,
  );
  lines.push(`sync: ${(c.syncMB / Math.max(0.1, n.syncMB)).toFixed(1)}x the bytes and ${(c.heapMB / Math.max(0.1, n.heapMB)).toFixed(1)}x the heap with the cluster-wide watch`);
  console.log(lines.join('\n'));
} finally {
  await api.close();
  rmSync(dir, { recursive: true, force: true });
}
