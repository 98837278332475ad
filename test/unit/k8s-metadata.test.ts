import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { execFileSync } from 'node:child_process';
import pino from 'pino';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeMetadata, type KubeMetadataOptions } from '../../src/enrich/k8s/index.js';
import { UsageError } from '../../src/util/errors.js';
import { FakeKubeApi, type KObject } from '../helpers/fake-kube-api.js';

const log = pino({ level: 'silent' });
const FAST: KubeMetadataOptions = { log, syncTimeoutMs: 3000, backoffBaseMs: 20, backoffMaxMs: 100, pageSize: 3 };

// --- fixture cluster: 2 nodes in 2 zones, a Deployment, a StatefulSet, a CronJob, a host-network DaemonSet, a bare pod

function node(name: string, labels: Record<string, string>, internal: string, external?: string): KObject {
  const addresses = [{ type: 'InternalIP', address: internal }, { type: 'Hostname', address: name }];
  if (external) addresses.push({ type: 'ExternalIP', address: external });
  return { metadata: { name, labels }, status: { addresses } };
}

interface PodSpec {
  ns?: string;
  owner?: [kind: string, name: string];
  node?: string;
  ips?: string[];
  hostNetwork?: boolean;
  phase?: string;
  uid?: string;
  created?: string;
}

function pod(name: string, o: PodSpec): KObject {
  const ips = o.ips ?? [];
  return {
    metadata: {
      name,
      namespace: o.ns ?? 'shop',
      ...(o.uid ? { uid: o.uid } : {}),
      ...(o.created ? { creationTimestamp: o.created } : {}),
      ...(o.owner ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: o.owner[0], name: o.owner[1], uid: `uid-${o.owner[1]}`, controller: true }] } : {}),
    },
    spec: { nodeName: o.node ?? 'node-a', ...(o.hostNetwork ? { hostNetwork: true } : {}), containers: [{ name: 'c', image: 'x' }] },
    status: { phase: o.phase ?? 'Running', ...(ips[0] ? { podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) } : {}) },
  };
}

function owned(name: string, ns: string, owner?: [string, string]): KObject {
  return { metadata: { name, namespace: ns, ...(owner ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: owner[0], name: owner[1], uid: `uid-${owner[1]}`, controller: true }] } : {}) }, spec: {} };
}

function service(name: string, ns: string, clusterIPs: string[]): KObject {
  return { metadata: { name, namespace: ns }, spec: { clusterIP: clusterIPs[0], clusterIPs, ports: [{ port: 80 }] } };
}

function slice(name: string, ns: string, svc: string, endpoints: Array<{ ip: string; podUid?: string; pod?: string; node?: string; zone?: string }>): KObject {
  return {
    metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: true },
      ...(e.podUid ? { targetRef: { kind: 'Pod', namespace: ns, name: e.pod ?? 'p', uid: e.podUid } } : {}),
      ...(e.node ? { nodeName: e.node } : {}),
      ...(e.zone ? { zone: e.zone } : {}),
    })),
    ports: [{ port: 8080 }],
  };
}

/** Fills `api` with the fixture cluster; returns the UIDs the server gave the pods. */
function seed(api: FakeKubeApi): Record<string, string> {
  api.add('Node', node('node-a', { 'topology.kubernetes.io/zone': 'zone-a' }, '192.168.1.10', '203.0.113.10'));
  api.add('Node', node('node-b', { 'failure-domain.beta.kubernetes.io/zone': 'zone-b' }, '192.168.1.11'));
  api.add('ReplicaSet', owned('web-7d9f', 'shop', ['Deployment', 'web']));
  api.add('Job', owned('report-2890', 'shop', ['CronJob', 'report']));
  const uids: Record<string, string> = {};
  const add = (o: KObject) => (uids[o.metadata.name] = api.add('Pod', o).metadata.uid!);
  add(pod('web-7d9f-abc', { owner: ['ReplicaSet', 'web-7d9f'], ips: ['10.244.1.5', 'fd00::5'] }));
  add(pod('web-7d9f-def', { owner: ['ReplicaSet', 'web-7d9f'], node: 'node-b', ips: ['10.244.2.6'] }));
  add(pod('db-0', { owner: ['StatefulSet', 'db'], ips: ['10.244.1.7'] }));
  add(pod('report-2890-xk2p', { owner: ['Job', 'report-2890'], node: 'node-b', ips: ['10.244.2.8'] }));
  add(pod('node-exporter-q8z', { ns: 'monitoring', owner: ['DaemonSet', 'node-exporter'], hostNetwork: true, ips: ['192.168.1.10'] }));
  add(pod('debug', { ns: 'default', ips: ['10.244.1.99'] }));
  api.add('Service', service('web', 'shop', ['10.96.0.10', 'fd00:96::10']));
  api.add('Service', service('db', 'shop', ['10.96.0.11']));
  api.add('Service', service('node-exporter', 'monitoring', ['None']));
  api.add('EndpointSlice', slice('web-x1', 'shop', 'web', [{ ip: '10.244.1.5', podUid: uids['web-7d9f-abc']! }, { ip: '10.244.2.6', podUid: uids['web-7d9f-def']! }]));
  api.add('EndpointSlice', slice('db-x1', 'shop', 'db', [{ ip: '10.244.1.7', podUid: uids['db-0']! }]));
  api.add('EndpointSlice', slice('node-exporter-x1', 'monitoring', 'node-exporter', [{ ip: '192.168.1.10', podUid: uids['node-exporter-q8z']! }]));
  return uids;
}

async function until(what: string, pred: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function kubeConfigFor(api: FakeKubeApi): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser({ name: 'fake', server: api.url, skipTLSVerify: true }, { name: 'fake' });
  return kc;
}

describe('KubeMetadata against a Kubernetes API speaking list and watch', () => {
  let api: FakeKubeApi;
  let km: KubeMetadata | undefined;
  let uids: Record<string, string>;

  const connect = async (opts: Partial<KubeMetadataOptions> = {}) => {
    km = new KubeMetadata(kubeConfigFor(api), { ...FAST, ...opts });
    await km.start();
    // start() resolves once everything is listed; the watches follow at once (four when scoped to a node)
    const watches = opts.watch?.scope === 'node' ? 4 : 6;
    await until(`${watches} watches`, () => api.openWatches === watches);
    return km;
  };
  const podWatches = () => api.requests.filter((r) => r.kind === 'Pod' && r.watch);
  const podLists = () => api.requests.filter((r) => r.kind === 'Pod' && !r.watch);

  before(async () => {
    api = await FakeKubeApi.start();
  });
  afterEach(async () => {
    await km?.stop();
    km = undefined;
    await api.close();
    api = await FakeKubeApi.start();
  });
  after(async () => {
    await api.close();
  });

  test('lists in pages, then resolves pods, workloads, services, nodes and zones', async () => {
    uids = seed(api);
    const k = await connect();

    assert.deepEqual(k.byAddress('10.244.1.5'), { namespace: 'shop', pod: 'web-7d9f-abc', workload: 'web', workloadKind: 'Deployment', service: 'web', node: 'node-a', zone: 'zone-a' });
    assert.deepEqual(k.byAddress('fd00::5')?.pod, 'web-7d9f-abc', 'every pod IP, v6 too');
    assert.deepEqual(k.byAddress('::ffff:10.244.2.6'), { namespace: 'shop', pod: 'web-7d9f-def', workload: 'web', workloadKind: 'Deployment', service: 'web', node: 'node-b', zone: 'zone-b' });
    assert.deepEqual(k.byAddress('10.244.1.7'), { namespace: 'shop', pod: 'db-0', workload: 'db', workloadKind: 'StatefulSet', service: 'db', node: 'node-a', zone: 'zone-a' });
    assert.deepEqual(k.byAddress('10.244.2.8'), { namespace: 'shop', pod: 'report-2890-xk2p', workload: 'report', workloadKind: 'CronJob', node: 'node-b', zone: 'zone-b' });
    assert.deepEqual(k.byAddress('10.244.1.99'), { namespace: 'default', pod: 'debug', workload: 'debug', workloadKind: 'Pod', node: 'node-a', zone: 'zone-a' });
    // ClusterIPs, both families
    assert.deepEqual(k.byAddress('10.96.0.10'), { namespace: 'shop', service: 'web' });
    assert.deepEqual(k.byAddress('fd00:96::10'), { namespace: 'shop', service: 'web' });
    assert.deepEqual(k.byAddress('10.96.0.11'), { namespace: 'shop', service: 'db' });
    // node addresses: the host-network pod's IP is its node's
    assert.deepEqual(k.byAddress('192.168.1.10'), { node: 'node-a', zone: 'zone-a' });
    assert.deepEqual(k.byAddress('203.0.113.10'), { node: 'node-a', zone: 'zone-a' });
    assert.deepEqual(k.byAddress('192.168.1.11'), { node: 'node-b', zone: 'zone-b' }, 'legacy zone label');
    assert.equal(k.isNodeAddress('192.168.1.11'), true);
    assert.equal(k.isNodeAddress('10.244.1.5'), false);
    assert.equal(k.byAddress('10.1.2.3'), undefined);
    // host-network pods resolve by UID (cgroup paths: dashes, or underscores with the systemd driver)
    const hostPod = { namespace: 'monitoring', pod: 'node-exporter-q8z', workload: 'node-exporter', workloadKind: 'DaemonSet', service: 'node-exporter', node: 'node-a', zone: 'zone-a', hostNetwork: true };
    assert.deepEqual(k.byPodUid(uids['node-exporter-q8z']!), hostPod);
    assert.deepEqual(k.byPodUid(uids['node-exporter-q8z']!.replace(/-/g, '_')), hostPod);
    assert.equal(k.byPodUid(uids['db-0']!)?.pod, 'db-0');
    assert.equal(k.zoneOf('node-b'), 'zone-b');
    assert.equal(k.zoneOf('node-z'), undefined);

    const s = k.stats;
    assert.deepEqual([s.pods, s.services, s.endpointSlices, s.nodes, s.replicaSets, s.jobs], [6, 3, 3, 2, 1, 1]);
    assert.deepEqual([s.lists, s.relists, s.watchErrors], [6, 0, 0]);
    // 6 pods in pages of 3: a second request with the continue token
    assert.deepEqual(podLists().map((r) => [r.limit, r.continue !== undefined]), [[3, false], [3, true]]);
    const [w] = podWatches();
    assert.equal(w?.resourceVersion, api.resourceVersion, 'the watch starts at the list\'s resourceVersion');
    assert.equal(w?.allowWatchBookmarks, true, 'watches ask for bookmarks');
  });

  test("scoped to a node: its own pods (a field selector on list and watch), owners read one by one; remote pods only through their slices", async () => {
    uids = seed(api);
    // the web slice as the API server writes it: pod names, nodes, zones
    api.update('EndpointSlice', slice('web-x1', 'shop', 'web', [
      { ip: '10.244.1.5', podUid: uids['web-7d9f-abc']!, pod: 'web-7d9f-abc', node: 'node-a', zone: 'zone-a' },
      { ip: '10.244.2.6', podUid: uids['web-7d9f-def']!, pod: 'web-7d9f-def', node: 'node-b' },
    ]));
    const k = await connect({ watch: { scope: 'node', nodeName: 'node-a' } });
    // this node's pods, whole: workloads through their owners (the ReplicaSet read by name)
    assert.deepEqual(k.byAddress('10.244.1.5'), { namespace: 'shop', pod: 'web-7d9f-abc', workload: 'web', workloadKind: 'Deployment', service: 'web', node: 'node-a', zone: 'zone-a' });
    assert.deepEqual(k.byAddress('10.244.1.7'), { namespace: 'shop', pod: 'db-0', workload: 'db', workloadKind: 'StatefulSet', service: 'db', node: 'node-a', zone: 'zone-a' });
    assert.equal(k.byPodUid(uids['node-exporter-q8z']!)?.hostNetwork, true);
    // another node's pod behind a Service: what its slice says (pod, node, and the zone of its node), no workload
    assert.deepEqual(k.byAddress('10.244.2.6'), { namespace: 'shop', service: 'web', pod: 'web-7d9f-def', node: 'node-b', zone: 'zone-b' });
    // another node's pod behind none: unknown here (the hub names it from that node's records)
    assert.equal(k.byAddress('10.244.2.8'), undefined);
    assert.equal(k.byPodUid(uids['report-2890-xk2p']!), undefined);
    // Services, Nodes and slices as before
    assert.deepEqual(k.byAddress('10.96.0.10'), { namespace: 'shop', service: 'web' });
    assert.deepEqual(k.byAddress('192.168.1.11'), { node: 'node-b', zone: 'zone-b' });

    const s = k.stats;
    assert.deepEqual([s.scope, s.pods, s.services, s.endpointSlices, s.nodes, s.replicaSets, s.jobs], ['node', 4, 3, 3, 2, 1, 0]);
    assert.deepEqual([s.ownerLookups, s.ownerLookupErrors], [1, 0]);
    const pods = api.requests.filter((r) => r.kind === 'Pod');
    assert.ok(pods.length >= 2 && pods.every((r) => r.fieldSelector === 'spec.nodeName=node-a'), JSON.stringify(pods));
    assert.deepEqual(api.requests.filter((r) => r.kind === 'ReplicaSet' || r.kind === 'Job').map((r) => [r.path, r.get, r.watch]), [['/apis/apps/v1/namespaces/shop/replicasets/web-7d9f', true, false]]);

    // live: a pod of another node sends this agent nothing; a new one here with an unknown owner gets it read
    const podEvents = () => api.requests.filter((r) => r.kind === 'Pod' && r.watch).reduce((n, r) => n + r.events, 0);
    const before = podEvents();
    api.add('Pod', pod('web-7d9f-far', { owner: ['ReplicaSet', 'web-7d9f'], node: 'node-b', ips: ['10.244.2.30'] }));
    api.add('ReplicaSet', owned('api-55c', 'shop', ['Deployment', 'api']));
    api.add('Pod', pod('api-55c-aaa', { owner: ['ReplicaSet', 'api-55c'], ips: ['10.244.1.21'] }));
    await until('api-55c-aaa and its Deployment', () => k.byAddress('10.244.1.21')?.workload === 'api');
    assert.deepEqual(k.byAddress('10.244.1.21'), { namespace: 'shop', pod: 'api-55c-aaa', workload: 'api', workloadKind: 'Deployment', node: 'node-a', zone: 'zone-a' });
    assert.equal(podEvents() - before, 1, "only this node's pod reached the watch");
    // a pod scheduled here later (nodeName set when bound) arrives then, as ADDED; an owner that is gone: the ReplicaSet is the workload
    api.add('Pod', pod('late-7f-x', { owner: ['ReplicaSet', 'late-7f'], node: '', ips: [] }));
    api.update('Pod', pod('late-7f-x', { owner: ['ReplicaSet', 'late-7f'], node: 'node-a', ips: ['10.244.1.50'] }));
    await until('late-7f-x bound here', () => k.byAddress('10.244.1.50')?.workloadKind === 'ReplicaSet');
    assert.deepEqual(k.byAddress('10.244.1.50'), { namespace: 'shop', pod: 'late-7f-x', workload: 'late-7f', workloadKind: 'ReplicaSet', node: 'node-a', zone: 'zone-a' });
    // and one leaving this node's scope (deleted) goes
    api.delete('Pod', 'shop', 'api-55c-aaa');
    await until('api-55c-aaa gone', () => k.byAddress('10.244.1.21') === undefined);
    assert.deepEqual([k.stats.ownerLookups, k.stats.relists], [3, 0]);
  });

  test('a continue token that expires mid-list: the list starts over', async () => {
    seed(api);
    api.expireAfterNextPage = true;
    const k = await connect();
    assert.equal(k.stats.pods, 6);
    assert.deepEqual(podLists().map((r) => [r.continue !== undefined, r.outcome]), [[false, 'list'], [true, 'gone'], [false, 'list'], [true, 'list']]);
    assert.deepEqual([k.stats.relists, k.stats.watchErrors], [0, 0]);
  });

  test('live updates arrive over the watch, without a relist', async () => {
    seed(api);
    const k = await connect();
    const lists = podLists().length;
    api.add('Pod', pod('web-7d9f-ghi', { owner: ['ReplicaSet', 'web-7d9f'], node: 'node-b', ips: ['10.244.2.20'] }));
    api.add('ReplicaSet', owned('api-55c', 'shop', ['Deployment', 'api']));
    api.add('Pod', pod('api-55c-aaa', { owner: ['ReplicaSet', 'api-55c'], ips: ['10.244.1.21'] }));
    api.add('Service', service('api', 'shop', ['10.96.0.21']));
    api.add('EndpointSlice', slice('api-x1', 'shop', 'api', [{ ip: '10.244.1.21' }]));
    await until('the new pods and service', () => k.byAddress('10.244.1.21')?.service === 'api' && k.byAddress('10.244.2.20') !== undefined && k.byAddress('10.96.0.21') !== undefined);
    assert.deepEqual(k.byAddress('10.244.1.21'), { namespace: 'shop', pod: 'api-55c-aaa', workload: 'api', workloadKind: 'Deployment', service: 'api', node: 'node-a', zone: 'zone-a' });
    assert.equal(k.byAddress('10.244.2.20')?.pod, 'web-7d9f-ghi');
    // a pod that finished releases its IP; one deleted is gone
    api.update('Pod', pod('report-2890-xk2p', { owner: ['Job', 'report-2890'], node: 'node-b', ips: ['10.244.2.8'], phase: 'Succeeded' }));
    api.delete('Pod', 'default', 'debug');
    api.delete('Service', 'shop', 'db');
    await until('the finished pod, deleted pod and service', () => !k.byAddress('10.244.2.8') && !k.byAddress('10.244.1.99') && !k.byAddress('10.96.0.11'));
    assert.equal(podLists().length, lists, 'no relist');
    assert.equal(k.stats.relists, 0);
  });

  test('an IP reused by a new pod resolves to the new pod, whichever is deleted when', async () => {
    seed(api);
    const k = await connect();
    // deleted, then recreated with the same IP (a StatefulSet's pod, same name, new UID)
    api.delete('Pod', 'shop', 'db-0');
    await until('db-0 gone', () => k.byAddress('10.244.1.7')?.pod === undefined);
    assert.deepEqual(k.byAddress('10.244.1.7'), { namespace: 'shop', service: 'db' }, 'an endpoint address no pod holds: its service');
    const db0 = api.add('Pod', pod('db-0', { owner: ['StatefulSet', 'db'], ips: ['10.244.1.7'] }));
    await until('the new db-0', () => k.byPodUid(db0.metadata.uid!) !== undefined);
    assert.equal(k.byAddress('10.244.1.7')?.pod, 'db-0');

    // the new pod gets the IP while the old one is still there (terminating on a lost node), then the old goes
    const old = pod('worker-old', { owner: ['StatefulSet', 'worker'], ips: ['10.244.1.40'], created: '2026-01-01T00:00:00Z' });
    api.add('Pod', old);
    await until('worker-old', () => k.byAddress('10.244.1.40')?.pod === 'worker-old');
    api.add('Pod', pod('worker-new', { owner: ['StatefulSet', 'worker'], ips: ['10.244.1.40'], created: '2026-01-01T00:05:00Z' }));
    await until('worker-new holds the IP', () => k.byAddress('10.244.1.40')?.pod === 'worker-new');
    api.update('Pod', old); // the old pod changing again does not take the IP back
    api.delete('Pod', 'shop', 'worker-old');
    await until('worker-old gone', () => k.stats.pods === 7);
    assert.equal(k.byAddress('10.244.1.40')?.pod, 'worker-new', 'deleting the old pod keeps the new one');
  });

  test('a dropped watch resumes from the last resourceVersion and misses nothing', async () => {
    seed(api);
    const k = await connect();
    const changed = api.update('Pod', pod('debug', { ns: 'default', ips: ['10.244.1.99'], node: 'node-b' }));
    await until('debug moved', () => k.byAddress('10.244.1.99')?.node === 'node-b');
    const watchesBefore = podWatches().length;
    const listsBefore = api.requests.filter((r) => !r.watch).length;

    api.dropWatches();
    // while no watch is open: these reach the client only through the resumed watch
    api.add('Pod', pod('late', { ns: 'default', ips: ['10.244.1.77'] }));
    api.delete('Pod', 'shop', 'web-7d9f-def');
    await until('the changes made while disconnected', () => k.byAddress('10.244.1.77')?.pod === 'late' && k.byAddress('10.244.2.6')?.pod === undefined);

    const resumed = podWatches()[watchesBefore];
    assert.equal(resumed?.resourceVersion, changed.metadata.resourceVersion, 'resumed from the last pod event');
    assert.equal(api.requests.filter((r) => !r.watch).length, listsBefore, 'no relist');
    assert.equal(k.stats.relists, 0);
  });

  for (const goneMode of ['event', 'http'] as const) {
    test(`410 Gone (${goneMode === 'event' ? 'ERROR event with an Expired Status' : 'HTTP 410'}) relists, and the state converges`, async () => {
      uids = seed(api);
      api.goneMode = goneMode;
      const k = await connect();
      api.dropWatches();
      // changes, then compaction, before the client is back: only a relist can see them
      api.delete('Pod', 'shop', 'web-7d9f-abc');
      api.delete('Pod', 'shop', 'db-0');
      const db0 = api.add('Pod', pod('db-0', { owner: ['StatefulSet', 'db'], ips: ['10.244.1.8'] }));
      api.add('Pod', pod('fresh', { ns: 'default', ips: ['10.244.1.5'] }));
      api.delete('Service', 'shop', 'web');
      api.delete('Node', undefined, 'node-b');
      api.expireHistory();

      await until('converged', () => k.byAddress('10.244.1.5')?.pod === 'fresh' && k.byAddress('10.244.1.8')?.pod === 'db-0' && !k.byAddress('10.96.0.10') && !k.isNodeAddress('192.168.1.11'));
      assert.equal(k.byAddress('10.244.1.7')?.pod, undefined, 'the old db-0 address is gone');
      assert.equal(k.byPodUid(uids['db-0']!), undefined, 'the old db-0 UID is gone');
      assert.equal(k.byPodUid(db0.metadata.uid!)?.pod, 'db-0');
      assert.equal(k.byPodUid(uids['web-7d9f-abc']!), undefined);
      assert.deepEqual([k.stats.pods, k.stats.services, k.stats.nodes], [6, 2, 1]);
      assert.ok(api.requests.some((r) => r.kind === 'Pod' && r.watch && r.outcome === 'gone'), 'the server said 410');
      const gone = api.requests.findIndex((r) => r.kind === 'Pod' && r.outcome === 'gone');
      assert.ok(api.requests.slice(gone).some((r) => r.kind === 'Pod' && !r.watch && r.outcome === 'list'), 'then the client listed again');
      assert.ok(k.stats.relists >= 4, `relists: ${k.stats.relists}`);
    });
  }

  test('bookmarks move the resume point and change nothing', async () => {
    seed(api);
    const k = await connect();
    const before = JSON.stringify(k.byAddress('10.244.1.5'));
    // changes elsewhere move the global resourceVersion past the pods' last event
    api.add('Service', service('other', 'shop', ['10.96.0.99']));
    await until('the service', () => k.byAddress('10.96.0.99') !== undefined);
    const bookmarkRv = api.resourceVersion;
    assert.equal(api.sendBookmarks(), 6, 'every watch asked for bookmarks');
    await until('bookmarks received', () => k.stats.bookmarks === 6);
    assert.equal(JSON.stringify(k.byAddress('10.244.1.5')), before);
    const n = podWatches().length;
    api.dropWatches();
    await until('the pod watch resumed', () => podWatches().length > n);
    assert.equal(podWatches()[n]!.resourceVersion, bookmarkRv);
    api.add('Pod', pod('after-bookmark', { ns: 'default', ips: ['10.244.1.88'] }));
    await until('a pod after the bookmark', () => k.byAddress('10.244.1.88') !== undefined);
  });

  test('watches end after timeoutSeconds and resume; one the server leaves hanging is abandoned', async () => {
    seed(api);
    const k = await connect({ watchTimeoutSeconds: 1 });
    await until('the pod watch', () => podWatches().length === 1);
    assert.equal(podWatches()[0]!.timeoutSeconds, 1);
    const rv = podWatches()[0]!.resourceVersion;
    await until('the server ended it and the client resumed', () => podWatches().length === 2, 2500);
    assert.equal(podWatches()[1]!.resourceVersion, rv);
    assert.equal(k.stats.watchErrors, 0, 'a clean end is no error');

    api.ignoreWatchTimeouts = true;
    const added = api.add('Pod', pod('p1', { ns: 'default', ips: ['10.244.1.31'] }));
    await until('p1', () => k.byAddress('10.244.1.31') !== undefined);
    await until('the watchdog gave up on the silent watch and resumed', () => podWatches().length === 4, 3500);
    assert.equal(podWatches()[3]!.resourceVersion, added.metadata.resourceVersion);
    assert.ok(k.stats.watchErrors > 0);
    assert.equal(k.stats.relists, 0);
  });

  test('credentials failing just before a watch (a token file being rotated) are a watch error, not a crash', async () => {
    seed(api);
    // Watch asks the KubeConfig for its fetch options outside its own try/catch
    class FlakyKubeConfig extends KubeConfig {
      failures = 2;
      override async applyToFetchOptions(opts: Parameters<KubeConfig['applyToFetchOptions']>[0]) {
        if (this.failures-- > 0) throw new Error('EACCES: permission denied, open token');
        return super.applyToFetchOptions(opts);
      }
    }
    const kc = new FlakyKubeConfig();
    kc.loadFromClusterAndUser({ name: 'fake', server: api.url, skipTLSVerify: true }, { name: 'fake' });
    const k = (km = new KubeMetadata(kc, FAST));
    await k.start();
    await until('six watches', () => api.openWatches === 6);
    assert.equal(k.stats.watchErrors, 2);
    api.add('Pod', pod('p2', { ns: 'default', ips: ['10.244.1.32'] }));
    await until('p2', () => k.byAddress('10.244.1.32') !== undefined);
  });

  test('failed lists are retried with back-off', async () => {
    seed(api);
    api.failNextLists = 4;
    const k = await connect();
    assert.equal(k.byAddress('10.244.1.5')?.pod, 'web-7d9f-abc');
    assert.ok(k.stats.watchErrors >= 4 && k.stats.restarts >= 4, JSON.stringify(k.stats));
  });

  test('credentials refused (403) fail start() at once, naming the server', async () => {
    seed(api);
    api.failNextLists = 100;
    api.failStatus = 403;
    const t0 = Date.now();
    await assert.rejects(connect({ syncTimeoutMs: 5000 }), (err: Error) => {
      assert.match(err.message, new RegExp(`^kubernetes: the API server ${api.url} refused to list \\w+: HTTP 403 Forbidden: .* \\(the agent needs get, list and watch on pods, `));
      return true;
    });
    assert.ok(Date.now() - t0 < 2000, 'no waiting for the timeout');
  });

  test('an API server that is down: start() rejects after syncTimeoutMs, naming the server and the cause', async () => {
    const port = await closedPort();
    const kc = new KubeConfig();
    kc.loadFromClusterAndUser({ name: 'down', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }, { name: 'u' });
    const k = (km = new KubeMetadata(kc, { ...FAST, syncTimeoutMs: 300 }));
    const t0 = Date.now();
    await assert.rejects(k.start(), (err: Error) => {
      assert.match(err.message, new RegExp(`^kubernetes: could not list pods, services, nodes, endpointslices, replicasets, jobs from the API server http://127.0.0.1:${port} within 0.3s: .*ECONNREFUSED.*; still trying$`));
      return true;
    });
    assert.ok(Date.now() - t0 < 2000);
    const restarts = k.stats.restarts;
    assert.ok(restarts > 0, 'it retried meanwhile');
    await until('more retries after start() gave up waiting', () => k.stats.restarts > restarts);
  });
});

describe('KubeMetadata.fromEnvironment', () => {
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'bpfagent-k8s-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('no credentials: undefined (the source is off)', () => {
    assert.equal(KubeMetadata.fromEnvironment({ log, env: {}, fsRoot: tmp() }), undefined);
    // KUBERNETES_SERVICE_HOST without a service-account token is not enough
    assert.equal(KubeMetadata.fromEnvironment({ log, env: { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' }, fsRoot: tmp() }), undefined);
  });

  test('in-cluster: the service account and KUBERNETES_SERVICE_HOST/PORT', () => {
    const root = tmp();
    const sa = join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, 'token'), 'tok');
    writeFileSync(join(sa, 'ca.crt'), '');
    writeFileSync(join(sa, 'namespace'), 'kube-system');
    const km = KubeMetadata.fromEnvironment({ log, env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' }, fsRoot: root });
    assert.equal(km?.server, 'https://[fd00::1]:6443');
  });

  test('without credentials the client library is never loaded (it takes most of a second)', () => {
    const index = new URL('../../src/enrich/k8s/index.js', import.meta.url).href;
    const script = `
      import { createRequire } from 'node:module';
      const { KubeMetadata } = await import(${JSON.stringify(index)});
      KubeMetadata.fromEnvironment({ log: { debug() {} }, env: {} });
      const cached = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('node_modules'));
      process.stdout.write(JSON.stringify(cached));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.deepEqual(JSON.parse(out), []);
  });

  test('--kubeconfig wins over KUBECONFIG, which wins over in-cluster', async () => {
    const api = await FakeKubeApi.start();
    try {
      const file = api.writeKubeconfig(tmp());
      const env = { KUBECONFIG: `/nonexistent/a${':'}${file}`, KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' };
      assert.ok(KubeMetadata.fromEnvironment({ log, kubeconfig: file, env }), 'the flag, though KUBECONFIG names a missing file');
      assert.throws(() => KubeMetadata.fromEnvironment({ log, env }), /kubeconfig '\/nonexistent\/a' \(KUBECONFIG\)/);
      const km = KubeMetadata.fromEnvironment({ ...FAST, env: { KUBECONFIG: file } })!;
      assert.equal(km.server, undefined, 'known once start() has read the file');
      api.add('Node', node('n1', {}, '192.168.9.9'));
      await km.start();
      assert.equal(km.server, api.url);
      assert.equal(km.byAddress('192.168.9.9')?.node, 'n1');
      await km.stop();
    } finally {
      await api.close();
    }
  });

  test('a bad kubeconfig: a UsageError naming the file (a missing one at once, an unparsable one from start())', async () => {
    assert.throws(
      () => KubeMetadata.fromEnvironment({ log, kubeconfig: '/nonexistent/kubeconfig', env: {} }),
      (err: Error) => err instanceof UsageError && /^kubernetes: cannot load kubeconfig '\/nonexistent\/kubeconfig' \(--kubeconfig\): ENOENT/.test(err.message),
    );
    const dir = tmp();
    const garbage = join(dir, 'garbage');
    writeFileSync(garbage, 'clusters: [\n');
    await assert.rejects(KubeMetadata.fromEnvironment({ log, kubeconfig: garbage, env: {} })!.start(), (err: Error) => err instanceof UsageError && err.message.startsWith(`kubernetes: cannot load kubeconfig '${garbage}' (--kubeconfig): `));
    const empty = join(dir, 'empty');
    writeFileSync(empty, 'apiVersion: v1\nkind: Config\n');
    await assert.rejects(KubeMetadata.fromEnvironment({ log, env: { KUBECONFIG: empty } })!.start(), /^UsageError: kubernetes: kubeconfig '.*empty' \(KUBECONFIG\) has no current context with a cluster/);
  });
});

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
