import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ClusterIndex, normalizePodUid } from '../../src/enrich/k8s/cluster-index.js';
import { slimEndpointSlice, slimNode, slimPod, slimService } from '../../src/enrich/k8s/slim.js';
import type { EndpointSliceInfo, PodInfo, ServiceInfo } from '../../src/enrich/k8s/types.js';

function pod(name: string, uid: string, ips: string[], extra: Partial<PodInfo> = {}): PodInfo {
  return { metadata: { name, namespace: 'ns', uid }, createdMs: 0, hostNetwork: false, ips, nodeName: 'n1', ...extra };
}

function slice(name: string, service: string, addresses: string[], podUids: string[] = [], targets: EndpointSliceInfo['targets'] = []): EndpointSliceInfo {
  return { metadata: { name, namespace: 'ns' }, service, addresses, podUids, targets };
}

function svc(name: string, clusterIPs: string[]): ServiceInfo {
  return { metadata: { name, namespace: 'ns' }, clusterIPs };
}

describe('ClusterIndex', () => {
  test('an address listed by two slices of one service stays until both drop it', () => {
    const ix = new ClusterIndex();
    ix.upsertEndpointSlice(slice('a-1', 'a', ['10.0.0.1']));
    ix.upsertEndpointSlice(slice('a-2', 'a', ['10.0.0.1']));
    ix.removeEndpointSlice(slice('a-1', 'a', []));
    assert.deepEqual(ix.byAddress('10.0.0.1'), { namespace: 'ns', service: 'a' });
    ix.upsertEndpointSlice(slice('a-2', 'a', ['10.0.0.2'])); // the update drops the address
    assert.equal(ix.byAddress('10.0.0.1'), undefined);
    assert.deepEqual(ix.byAddress('10.0.0.2'), { namespace: 'ns', service: 'a' });
  });

  test('a pod behind several services names the first by name; a pod in no slice has none', () => {
    const ix = new ClusterIndex();
    ix.upsertPod(pod('p', 'u1', ['10.0.0.1']));
    ix.upsertEndpointSlice(slice('zeta-1', 'zeta', ['10.0.0.1']));
    ix.upsertEndpointSlice(slice('alpha-1', 'alpha', [], ['u1']));
    assert.equal(ix.byAddress('10.0.0.1')?.service, 'alpha');
    ix.removeEndpointSlice(slice('alpha-1', 'alpha', []));
    assert.equal(ix.byAddress('10.0.0.1')?.service, 'zeta');
    ix.removeEndpointSlice(slice('zeta-1', 'zeta', []));
    assert.equal(ix.byAddress('10.0.0.1')?.service, undefined);
  });

  test("a remote pod known only from its slice (another node's, pods watched on this node only): its name, node and zone, no workload", () => {
    const ix = new ClusterIndex({ podsFromSlices: true });
    ix.upsertNode({ metadata: { name: 'n3' }, zone: 'z3', addresses: ['192.168.0.3'] });
    ix.upsertEndpointSlice(slice('api-1', 'api', ['10.0.1.1', '10.0.1.2', '10.0.1.3'], [], [
      { addr: '10.0.1.1', pod: 'api-0', node: 'n2', zone: 'z2' },
      { addr: '10.0.1.2', pod: 'api-1', node: 'n3' },
    ]));
    assert.deepEqual(ix.byAddress('10.0.1.1'), { namespace: 'ns', service: 'api', pod: 'api-0', node: 'n2', zone: 'z2' });
    assert.deepEqual(ix.byAddress('10.0.1.2'), { namespace: 'ns', service: 'api', pod: 'api-1', node: 'n3', zone: 'z3' }, "the zone of the endpoint's node");
    assert.deepEqual(ix.byAddress('10.0.1.3'), { namespace: 'ns', service: 'api' });
    // the Pod itself, once watched, says more (its workload)
    ix.upsertPod(pod('api-0', 'u-api-0', ['10.0.1.1'], { nodeName: 'n2', owner: { kind: 'StatefulSet', name: 'api' } }));
    assert.deepEqual(ix.byAddress('10.0.1.1'), { namespace: 'ns', pod: 'api-0', workload: 'api', workloadKind: 'StatefulSet', service: 'api', node: 'n2' });
    ix.removeEndpointSlice(slice('api-1', 'api', []));
    assert.equal(ix.byAddress('10.0.1.2'), undefined);
    // every pod watched: the slice's word for a pod is not taken
    const all = new ClusterIndex();
    all.upsertEndpointSlice(slice('api-1', 'api', ['10.0.1.1'], [], [{ addr: '10.0.1.1', pod: 'api-0', node: 'n2', zone: 'z2' }]));
    assert.deepEqual(all.byAddress('10.0.1.1'), { namespace: 'ns', service: 'api' });
  });

  test('a ClusterIP handed to a new service is not unmapped by deleting the old one', () => {
    const ix = new ClusterIndex();
    ix.upsertService(svc('old', ['10.96.0.5']));
    ix.upsertService(svc('new', ['10.96.0.5']));
    ix.removeService(svc('old', []));
    assert.deepEqual(ix.byAddress('10.96.0.5'), { namespace: 'ns', service: 'new' });
  });

  test('the newest pod holds a shared IP; the older one going keeps it mapped', () => {
    const ix = new ClusterIndex();
    ix.upsertPod(pod('new', 'u2', ['10.0.0.9'], { createdMs: 2000 }));
    ix.upsertPod(pod('old', 'u1', ['10.0.0.9'], { createdMs: 1000 })); // seen later (a relist's order), created earlier
    assert.equal(ix.byAddress('10.0.0.9')?.pod, 'new');
    ix.removePod(pod('old', 'u1', []));
    assert.equal(ix.byAddress('10.0.0.9')?.pod, 'new');
    ix.removePod(pod('new', 'u2', []));
    assert.equal(ix.byAddress('10.0.0.9'), undefined);
  });

  test('a name reappearing with a new UID replaces the old pod', () => {
    const ix = new ClusterIndex();
    ix.upsertPod(pod('db-0', 'u1', ['10.0.0.1']));
    ix.upsertPod(pod('db-0', 'u2', ['10.0.0.2']));
    assert.equal(ix.byPodUid('u1'), undefined);
    assert.equal(ix.byAddress('10.0.0.1'), undefined);
    assert.equal(ix.byAddress('10.0.0.2')?.pod, 'db-0');
    assert.equal(ix.counts.pods, 1);
  });

  test('workloads: owners walked up when known, the owner itself otherwise; static pods are their own', () => {
    const ix = new ClusterIndex();
    ix.upsertPod(pod('rs-pod', 'u1', ['10.0.0.1'], { owner: { kind: 'ReplicaSet', name: 'web-abc' } }));
    assert.deepEqual([ix.byPodUid('u1')?.workload, ix.byPodUid('u1')?.workloadKind], ['web-abc', 'ReplicaSet'], 'ReplicaSet not seen (yet)');
    ix.upsertController('ReplicaSet', { metadata: { name: 'web-abc', namespace: 'ns' }, owner: { kind: 'Deployment', name: 'web' } });
    assert.deepEqual([ix.byPodUid('u1')?.workload, ix.byPodUid('u1')?.workloadKind], ['web', 'Deployment']);
    ix.upsertPod(pod('job-pod', 'u2', [], { owner: { kind: 'Job', name: 'once' } }));
    ix.upsertController('Job', { metadata: { name: 'once', namespace: 'ns' } });
    assert.deepEqual([ix.byPodUid('u2')?.workload, ix.byPodUid('u2')?.workloadKind], ['once', 'Job'], 'a Job no CronJob owns');
    ix.upsertPod(pod('kube-apiserver-n1', 'u3', [], { owner: { kind: 'Node', name: 'n1' } }));
    assert.deepEqual([ix.byPodUid('u3')?.workload, ix.byPodUid('u3')?.workloadKind], ['kube-apiserver-n1', 'Pod']);
  });

  test('host-network pods are found by UID only; cgroup spellings of UIDs are accepted', () => {
    const ix = new ClusterIndex();
    ix.upsertNode({ metadata: { name: 'n1' }, zone: 'z1', addresses: ['192.168.0.1'] });
    ix.upsertPod(pod('agent', '0f1e2d3c-aaaa-bbbb-cccc-1234567890ab', ['192.168.0.1'], { hostNetwork: true }));
    assert.deepEqual(ix.byAddress('192.168.0.1'), { node: 'n1', zone: 'z1' });
    assert.equal(ix.byPodUid('0F1E2D3C_AAAA_BBBB_CCCC_1234567890AB')?.pod, 'agent');
    assert.equal(normalizePodUid('0f1e2d3c_aaaa_bbbb_cccc_1234567890ab'), '0f1e2d3c-aaaa-bbbb-cccc-1234567890ab');
    assert.equal(ix.byPodUid('0f1e2d3c-aaaa-bbbb-cccc-1234567890ab')?.zone, 'z1');
  });
});

describe('slim records', () => {
  test('a pod keeps its IPs (both families), node, owner; a finished one keeps no IP', () => {
    const raw = {
      metadata: { name: 'p', namespace: 'ns', uid: 'u', resourceVersion: '7', creationTimestamp: new Date('2026-01-01T00:00:00Z'), labels: { big: 'x'.repeat(1000) },
        ownerReferences: [{ apiVersion: 'v1', kind: 'Other', name: 'o', uid: 'o' }, { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'rs', uid: 'r', controller: true }] },
      spec: { nodeName: 'n1', containers: [] },
      status: { phase: 'Running', podIP: '10.0.0.1', podIPs: [{ ip: '10.0.0.1' }, { ip: 'FD00::1' }] },
    };
    assert.deepEqual(slimPod(raw), {
      metadata: { name: 'p', namespace: 'ns', uid: 'u', resourceVersion: '7' },
      createdMs: Date.parse('2026-01-01T00:00:00Z'), hostNetwork: false, ips: ['10.0.0.1', 'fd00::1'], nodeName: 'n1', owner: { kind: 'ReplicaSet', name: 'rs' },
    });
    assert.deepEqual(slimPod({ ...raw, status: { ...raw.status, phase: 'Succeeded' } })?.ips, []);
    assert.equal(slimPod({ metadata: {} }), undefined);
  });

  test('services drop "None"; slices keep addresses and pod UIDs; nodes keep Internal/External IPs and the zone', () => {
    assert.deepEqual(slimService({ metadata: { name: 'h', namespace: 'ns' }, spec: { clusterIP: 'None', clusterIPs: ['None'] } })?.clusterIPs, []);
    assert.deepEqual(slimService({ metadata: { name: 's', namespace: 'ns' }, spec: { clusterIP: '10.96.0.1' } })?.clusterIPs, ['10.96.0.1']);
    assert.deepEqual(
      slimEndpointSlice({ metadata: { name: 's-1', namespace: 'ns', labels: { 'kubernetes.io/service-name': 's' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.1'], targetRef: { kind: 'Pod', uid: 'u1' } }, { addresses: ['10.0.0.2'] }] }),
      { metadata: { name: 's-1', namespace: 'ns' }, service: 's', addresses: ['10.0.0.1', '10.0.0.2'], podUids: ['u1'], targets: [] },
    );
    // what a slice says of the pod behind each address: its name (a Pod targetRef), node and zone
    assert.deepEqual(
      slimEndpointSlice({
        metadata: { name: 's-2', namespace: 'ns', labels: { 'kubernetes.io/service-name': 's' } },
        addressType: 'IPv4',
        endpoints: [
          { addresses: ['10.0.1.1'], nodeName: 'n2', zone: 'z2', targetRef: { kind: 'Pod', name: 'api-0', uid: 'u2' } },
          { addresses: ['10.0.1.2'], nodeName: 'n3' },
          { addresses: ['10.0.1.3'] },
        ],
      })?.targets,
      [{ addr: '10.0.1.1', pod: 'api-0', node: 'n2', zone: 'z2' }, { addr: '10.0.1.2', node: 'n3' }],
    );
    assert.deepEqual(
      slimNode({ metadata: { name: 'n', labels: { 'topology.kubernetes.io/zone': 'z' } }, status: { addresses: [{ type: 'Hostname', address: 'n' }, { type: 'InternalIP', address: '192.168.0.1' }, { type: 'InternalIP', address: 'fd00::1' }, { type: 'ExternalIP', address: '203.0.113.1' }] } }),
      { metadata: { name: 'n' }, zone: 'z', addresses: ['192.168.0.1', 'fd00::1', '203.0.113.1'] },
    );
  });
});
