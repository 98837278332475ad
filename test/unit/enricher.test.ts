import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Enricher, type EnricherSources, type KubeSource } from '../../src/enrich/enricher.js';
import { classifyRemote, clusterMatcher, inBlockList, parseCidrs, type LocalityContext } from '../../src/enrich/locality.js';
import { HostAddresses } from '../../src/enrich/host-addresses.js';
import type { K8sInfo, TcpRecord } from '../../src/events/records.js';

function tcp(local: Partial<TcpRecord['local']>, remote: Partial<TcpRecord['remote']>): TcpRecord {
  return {
    ts: '2026-01-01T00:00:00.000Z', proto: 'tcp', family: 4, direction: 'outbound', outcome: 'closed',
    local: { addr: '10.244.1.5', port: 40000, pid: 100, comm: 'checkout', cgroupId: 55, netns: 1, ...local },
    remote: { addr: '10.244.2.9', port: 8080, ...remote },
    bytesSent: 1, bytesReceived: 2, retransmits: 0, srttUs: 10, durationMs: 1,
  };
}

const POD_A: K8sInfo = { namespace: 'payments', pod: 'checkout-7d9f-abc', workload: 'checkout', workloadKind: 'Deployment', node: 'node-1', zone: 'zone-a' };
const POD_B: K8sInfo = { namespace: 'payments', pod: 'ledger-0', workload: 'ledger', workloadKind: 'StatefulSet', service: 'ledger', node: 'node-2', zone: 'zone-b' };
const HOSTNET: K8sInfo = { namespace: 'kube-system', pod: 'node-agent-x', workload: 'node-agent', workloadKind: 'DaemonSet', node: 'node-1', zone: 'zone-a' };

function kube(): KubeSource & { calls: string[] } {
  const calls: string[] = [];
  const byIp: Record<string, K8sInfo> = {
    '10.244.1.5': POD_A,
    '10.244.2.9': POD_B,
    '10.96.0.10': { namespace: 'payments', service: 'ledger' },
    '192.168.5.3': { node: 'node-3', zone: 'zone-a' },
  };
  return {
    calls,
    byAddress: (ip) => (calls.push(`ip:${ip}`), byIp[ip]),
    byPodUid: (uid) => (calls.push(`uid:${uid}`), uid === 'uid-hostnet' ? HOSTNET : undefined),
    zoneOf: (node) => ({ 'node-1': 'zone-a', 'node-2': 'zone-b', 'node-3': 'zone-a' })[node],
  };
}

function sources(over: Partial<EnricherSources> = {}): EnricherSources {
  return {
    processes: { get: (pid) => (pid === 100 ? { exe: '/usr/bin/checkout' } : undefined) },
    cgroups: { pathOf: (id) => ({ 55: '/kubepods/burstable/podX/abc', 56: '/system.slice/sshd.service', 57: '/kubepods/hostnet' })[id] },
    parseContainer: (path) =>
      path === '/kubepods/burstable/podX/abc'
        ? { id: 'a'.repeat(64), runtime: 'containerd', podUid: 'uid-a' }
        : path === '/kubepods/hostnet'
          ? { id: 'b'.repeat(64), runtime: 'cri-o', podUid: 'uid-hostnet' }
          : undefined,
    kube: kube(),
    nodeName: 'node-1',
    isHostAddress: (a) => a.startsWith('127.'),
    inCluster: (a) => inBlockList(parseCidrs(['10.244.0.0/16', '10.96.0.0/12']), a),
    ...over,
  };
}

describe('Enricher', () => {
  test('records of one batch: both ends of a connection between two namespaces of this host are same-host, the server first', () => {
    const hosts = new HostAddresses(16, () => 0, () => []);
    const e = new Enricher(
      sources({ kube: undefined, isHostAddress: (a) => hosts.has(a), learnHostAddress: (a) => hosts.learn(a), inCluster: () => false }),
    );
    const server = tcp({ addr: '10.77.0.2', port: 8080 }, { addr: '10.77.0.1', port: 39060 });
    const client = tcp({ addr: '10.77.0.1', port: 39060 }, { addr: '10.77.0.2', port: 8080 });
    e.enrichAll([server, client]);
    assert.equal(server.locality, 'same-host');
    assert.equal(client.locality, 'same-host');
    // one at a time, the server's record could not know the client's address yet
    const lone = new HostAddresses(16, () => 0, () => []);
    const e2 = new Enricher(sources({ kube: undefined, isHostAddress: (a) => lone.has(a), learnHostAddress: (a) => lone.learn(a), inCluster: () => false }));
    const s2 = tcp({ addr: '10.77.0.2', port: 8080 }, { addr: '10.77.0.1', port: 39060 });
    e2.enrich(s2);
    assert.equal(s2.locality, 'external');
  });

  test('both ends of a pod-to-pod call: exe, container, pods, workloads, service, cross-zone', () => {
    const r = tcp({}, {});
    new Enricher(sources()).enrich(r);
    assert.deepEqual(r.local, {
      addr: '10.244.1.5', port: 40000, pid: 100, comm: 'checkout', cgroupId: 55, netns: 1,
      exe: '/usr/bin/checkout', containerId: 'a'.repeat(64), containerRuntime: 'containerd', k8s: POD_A,
    });
    assert.deepEqual(r.remote, { addr: '10.244.2.9', port: 8080, k8s: POD_B });
    assert.equal(r.locality, 'cross-zone');
  });

  test('a ClusterIP dialled and the backend reached: the Service and the pod, locality of the pod', () => {
    const r = tcp({}, { addr: '10.96.0.10', port: 80, reached: { addr: '10.244.2.9', port: 8080 } });
    new Enricher(sources()).enrich(r);
    assert.deepEqual(r.remote.k8s, { ...POD_B, service: 'ledger' });
    assert.equal(r.locality, 'cross-zone');
  });

  test('a ClusterIP whose DNAT was not seen: the Service alone, locality cluster', () => {
    const r = tcp({}, { addr: '10.96.0.10', port: 80 });
    new Enricher(sources()).enrich(r);
    assert.deepEqual(r.remote.k8s, { namespace: 'payments', service: 'ledger' });
    assert.equal(r.locality, 'cluster');
  });

  test('a host-network pod is known by its cgroup, not its address', () => {
    const k = kube();
    const r = tcp({ addr: '192.168.5.1', cgroupId: 57, pid: 0 }, { addr: '127.0.0.1' });
    new Enricher(sources({ kube: k })).enrich(r);
    assert.deepEqual(r.local.k8s, HOSTNET);
    assert.equal(r.local.exe, undefined, 'pid 0: no process lookup');
    assert.ok(k.calls.includes('uid:uid-hostnet'));
    assert.equal(r.locality, 'same-host');
  });

  test('node addresses, same zone; outside everything is external; cluster CIDRs are cluster', () => {
    const e = new Enricher(sources());
    const node3 = tcp({}, { addr: '192.168.5.3' });
    const outside = tcp({}, { addr: '93.184.216.34' });
    const inCidr = tcp({}, { addr: '10.244.9.9' });
    for (const r of [node3, outside, inCidr]) e.enrich(r);
    assert.deepEqual([node3.locality, outside.locality, inCidr.locality], ['same-zone', 'external', 'cluster']);
    assert.deepEqual(node3.remote.k8s, { node: 'node-3', zone: 'zone-a' });
    assert.equal(outside.remote.k8s, undefined);
  });

  test('without Kubernetes: process and container only; locality from host addresses and CIDRs', () => {
    const r = tcp({ cgroupId: 56 }, { addr: '127.0.0.1' });
    new Enricher(sources({ kube: undefined })).enrich(r);
    assert.deepEqual(r.local, { addr: '10.244.1.5', port: 40000, pid: 100, comm: 'checkout', cgroupId: 56, netns: 1, exe: '/usr/bin/checkout' });
    assert.equal(r.remote.k8s, undefined);
    assert.equal(r.locality, 'same-host');
  });

  test('Service and backend merged once per pair of answers and shared; a changed answer gives a new merge', () => {
    let backend: K8sInfo = Object.freeze({ ...POD_B, service: undefined });
    let service: K8sInfo = Object.freeze({ namespace: 'payments', service: 'ledger' });
    const e = new Enricher(
      sources({
        kube: {
          byAddress: (ip) => (ip === '10.96.0.10' ? service : ip === '10.244.2.9' ? backend : undefined),
          byPodUid: () => undefined,
          zoneOf: () => undefined,
        },
      }),
    );
    const dnat = () => tcp({}, { addr: '10.96.0.10', port: 80, reached: { addr: '10.244.2.9', port: 8080 } });
    const [a, b] = [dnat(), dnat()];
    e.enrich(a);
    e.enrich(b);
    assert.deepEqual(a.remote.k8s, { ...POD_B, service: 'ledger' });
    assert.equal(a.remote.k8s, b.remote.k8s, 'one shared answer per pair');
    assert.ok(Object.isFrozen(a.remote.k8s));
    // the cluster changed: the index answers with new objects, and the merge follows
    service = Object.freeze({ namespace: 'payments', service: 'ledger-v2' });
    const c = dnat();
    e.enrich(c);
    assert.deepEqual(c.remote.k8s, { ...POD_B, service: 'ledger-v2' });
    backend = Object.freeze({ namespace: 'payments', pod: 'ledger-1', workload: 'ledger', workloadKind: 'StatefulSet', node: 'node-1' });
    const d = dnat();
    e.enrich(d);
    assert.deepEqual(d.remote.k8s, { namespace: 'payments', pod: 'ledger-1', workload: 'ledger', workloadKind: 'StatefulSet', node: 'node-1', service: 'ledger-v2' });
    assert.equal(d.locality, 'same-host');
    // no backend known: the Service alone, also shared
    backend = undefined as unknown as K8sInfo;
    const [f, g] = [dnat(), dnat()];
    e.enrich(f);
    e.enrich(g);
    assert.deepEqual(f.remote.k8s, { namespace: 'payments', service: 'ledger-v2' });
    assert.equal(f.remote.k8s, g.remote.k8s);
    assert.deepEqual(a.remote.k8s, { ...POD_B, service: 'ledger' }, 'records already enriched keep their answer');
  });

  test('merged answers are bounded: past the bound they are made afresh, still right', () => {
    const services = Array.from({ length: 20_000 }, (_, i) => Object.freeze({ namespace: 'ns', service: `svc-${i}` }));
    let i = 0;
    const e = new Enricher(
      sources({ kube: { byAddress: (ip) => (ip === '10.96.0.10' ? services[i] : POD_B), byPodUid: () => undefined, zoneOf: () => undefined } }),
    );
    const dnat = () => tcp({}, { addr: '10.96.0.10', port: 80, reached: { addr: '10.244.2.9', port: 8080 } });
    const first = dnat();
    e.enrich(first);
    for (i = 1; i < services.length; i++) {
      const r = dnat();
      e.enrich(r);
      assert.equal(r.remote.k8s?.service, `svc-${i}`);
    }
    i = 0;
    const again = dnat();
    e.enrich(again);
    assert.deepEqual(again.remote.k8s, { ...POD_B, service: 'svc-0' });
    assert.notEqual(again.remote.k8s, first.remote.k8s, 'forgotten past the bound, made again');
  });

  test('per-cgroup results are cached, bounded, and an unknown cgroup is asked again later', () => {
    let asked = 0;
    const e = new Enricher(
      sources({
        cgroups: { pathOf: (id) => (asked++, id === 999 ? undefined : `/c${id}`) },
        parseContainer: () => undefined,
        maxCgroups: 2,
      }),
    );
    for (const id of [1, 1, 1, 2, 3, 1]) e.enrich(tcp({ cgroupId: id }, {}));
    assert.equal(asked, 4, '1, 2, 3, then 1 again after eviction');
    assert.equal(e.cachedCgroups, 2);
    e.enrich(tcp({ cgroupId: 999 }, {}));
    e.enrich(tcp({ cgroupId: 999 }, {}));
    assert.equal(e.stats.cgroupUnknown, 2);
  });
});

describe('classifyRemote', () => {
  const ctx: LocalityContext = { nodeName: 'n1', zone: 'a', isHostAddress: (x) => x === '10.0.0.1', inCluster: (x) => x.startsWith('10.') };
  test('each locality', () => {
    assert.equal(classifyRemote('10.1.1.1', { node: 'n1' }, ctx), 'same-host');
    assert.equal(classifyRemote('10.1.1.1', { node: 'n2', zone: 'a' }, ctx), 'same-zone');
    assert.equal(classifyRemote('10.1.1.1', { node: 'n2', zone: 'b' }, ctx), 'cross-zone');
    assert.equal(classifyRemote('10.1.1.1', { node: 'n2' }, ctx), 'cluster', 'zone unknown');
    assert.equal(classifyRemote('10.0.0.1', undefined, ctx), 'same-host');
    assert.equal(classifyRemote('10.9.9.9', undefined, ctx), 'cluster');
    assert.equal(classifyRemote('8.8.8.8', undefined, ctx), 'external');
    assert.equal(classifyRemote('8.8.8.8', { namespace: 'x', service: 's' }, ctx), 'cluster', 'a known Service is in the cluster');
  });
});

describe('parseCidrs', () => {
  test('IPv4 and IPv6, membership', () => {
    const b = parseCidrs(['10.244.0.0/16', ' fd00:10::/56 ', '']);
    assert.deepEqual(['10.244.3.4', '10.245.0.1', 'fd00:10::1', 'fd00:11::1', 'nonsense'].map((a) => inBlockList(b, a)), [true, false, true, false, false]);
  });
  test('bad entries are named', () => {
    for (const bad of ['10.0.0.0', '10.0.0.0/33', 'fd00::/129', 'x/8', '10.0.0.0/-1'])
      assert.throws(() => parseCidrs([bad]), (e: Error) => e.message.includes(`'${bad}'`));
  });
});

describe('HostAddresses', () => {
  test('loopback, own interfaces (re-read at most once a minute), learned addresses bounded', () => {
    let t = 0;
    let reads = 0;
    let ifs = ['192.168.1.10'];
    const h = new HostAddresses(2, () => t, () => (reads++, ifs));
    assert.ok(h.has('127.0.0.53') && h.has('::1'));
    assert.ok(h.has('192.168.1.10'));
    ifs = ['192.168.1.11'];
    assert.ok(!h.has('192.168.1.11'), 'cached');
    t += 61_000;
    assert.ok(h.has('192.168.1.11') && !h.has('192.168.1.10'), 're-read after a minute');
    assert.equal(reads, 2);
    h.learn('10.1.0.1');
    h.learn('10.1.0.2');
    h.learn('10.1.0.3');
    assert.deepEqual(['10.1.0.1', '10.1.0.2', '10.1.0.3'].map((a) => h.has(a)), [false, true, true]);
    assert.equal(h.size, 2);
  });
});

describe('clusterMatcher', () => {
  test('the same answers as the CIDR list, remembered within a bound; no CIDRs is always false', () => {
    const m = clusterMatcher(['10.244.0.0/16', 'fd00:10::/56'], 2);
    for (let round = 0; round < 2; round++)
      assert.deepEqual(['10.244.3.4', '10.245.0.1', 'fd00:10::1', 'fd00:11::1', '10.244.3.4'].map(m), [true, false, true, false, true]);
    const none = clusterMatcher([' ', '']);
    assert.equal(none('10.244.3.4'), false);
    assert.throws(() => clusterMatcher(['10.0.0.0/99']), /'10.0.0.0\/99'/);
  });
});
