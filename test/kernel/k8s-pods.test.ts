/**
 * Test "pods": network namespaces with pod addresses, processes in cgroup v2
 * directories laid out as kubelet lays them out (systemd and cgroupfs
 * drivers, containerd and CRI-O ids), and a Kubernetes API (list and watch
 * over HTTP) serving the pods, services, endpoint slices and nodes of those
 * addresses. Both ends of every connection must resolve to the right
 * namespace, pod, workload, service, node and zone, with the right locality.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TraceAgent } from '../helpers/agent.js';
import { FakeKubeApi, type KObject } from '../helpers/fake-kube-api.js';
import { CGROUP2_ROOT, TestNetwork } from '../helpers/hosts.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { Peer } from '../helpers/processes.js';
import type { TcpRecord } from '../../src/events/records.js';
import type { EdgeLine } from '../../src/cli/flows.js';

const hex64 = (): string => (randomUUID() + randomUUID()).replace(/-/g, '');

/** A pod's cgroup, nested under a per-run test root as kind nests kubelet's: returns the container cgroup's path. */
class PodCgroups {
  private readonly made: string[] = [];
  readonly root = `${CGROUP2_ROOT}/bpfagent-test-${process.pid}-k8s`;

  make(rel: string): string {
    const parts = rel.split('/').filter(Boolean);
    let p = this.root;
    if (!this.made.includes(p)) {
      mkdirSync(p, { recursive: true });
      this.made.push(p);
    }
    for (const s of parts) {
      p = `${p}/${s}`;
      if (!this.made.includes(p)) {
        mkdirSync(p, { recursive: true });
        this.made.push(p);
      }
    }
    return p;
  }

  /** Remove one made directory (and forget it); its processes must be gone. */
  remove(p: string): void {
    rmdirSync(p);
    this.made.splice(this.made.indexOf(p), 1);
  }

  destroy(): void {
    for (const p of [...this.made].reverse()) {
      for (const pid of readFileSync(`${p}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) {
        try {
          writeFileSync(`${CGROUP2_ROOT}/cgroup.procs`, pid);
        } catch {
          // exited meanwhile
        }
      }
      try {
        rmdirSync(p);
      } catch {
        // busy: harmless, left for the next run
      }
    }
  }
}

const NS = 'payments';

function node(name: string, zone: string, ip: string): KObject {
  return {
    metadata: { name, labels: { 'kubernetes.io/hostname': name, 'topology.kubernetes.io/zone': zone } },
    status: { addresses: [{ type: 'InternalIP', address: ip }, { type: 'Hostname', address: name }] },
  };
}

function pod(o: { name: string; uid: string; ip: string; node: string; owner?: { kind: string; name: string }; namespace?: string; hostNetwork?: boolean }): KObject {
  return {
    metadata: {
      name: o.name,
      namespace: o.namespace ?? NS,
      uid: o.uid,
      ...(o.owner ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: o.owner.kind, name: o.owner.name, uid: randomUUID(), controller: true }] } : {}),
    },
    spec: { nodeName: o.node, hostNetwork: o.hostNetwork ?? false, containers: [{ name: 'main', image: 'example/main:1' }] },
    status: { phase: 'Running', podIP: o.ip, podIPs: [{ ip: o.ip }] },
  };
}

function replicaSet(name: string, deployment: string): KObject {
  return {
    metadata: { name, namespace: NS, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment, uid: randomUUID(), controller: true }] },
    spec: { replicas: 1 },
  };
}

describe('Kubernetes pods, workloads, services, zones', { skip: KERNEL_SKIP }, () => {
  let api: FakeKubeApi;
  let net: TestNetwork;
  let agent: TraceAgent;
  let flows: TraceAgent;
  const cgroups = new PodCgroups();
  const port = 28000 + (process.pid % 100) * 10;
  const clusterIp = '10.96.0.50';
  const nodeIp = '192.168.77.1';
  // pod UIDs, container ids, cgroups
  const checkoutUid = randomUUID();
  const ledgerUid = randomUUID();
  const agentUid = randomUUID();
  const checkoutCtr = hex64();
  const ledgerCtr = hex64();
  const agentCtr = hex64();
  const jobUid = randomUUID();
  let checkoutCg = '';
  let ledgerCg = '';
  let agentCg = '';
  const ip = (n: number): string => `10.${200 + 5}.0.${n}`;

  before(async () => {
    net = new TestNetwork(5);
    assert.equal(net.a.ipv4, ip(1));
    for (const n of [3, 4, 9, 17]) net.addAddress(net.b, ip(n));
    // kube-proxy's rule for the ledger Service, in the client's namespace
    net.exec(net.a, ['ip', 'route', 'add', '10.96.0.0/16', 'dev', `${net.a.ns.slice(0, -1)}va`]);
    net.exec(net.a, ['nft', '-f', '-'], `table ip bpfagent_test_k8s {
  chain output {
    type nat hook output priority -100; policy accept;
    ip daddr ${clusterIp} tcp dport 80 dnat to ${ip(2)}:${port}
  }
}`);
    // systemd driver, burstable, containerd; cgroupfs driver, besteffort, CRI-O; systemd, guaranteed (host network)
    checkoutCg = cgroups.make(`kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${checkoutUid.replace(/-/g, '_')}.slice/cri-containerd-${checkoutCtr}.scope`);
    ledgerCg = cgroups.make(`kubepods/besteffort/pod${ledgerUid}/crio-${ledgerCtr}`);
    agentCg = cgroups.make(`kubepods.slice/kubepods-pod${agentUid.replace(/-/g, '_')}.slice/cri-containerd-${agentCtr}.scope`);

    api = await FakeKubeApi.start();
    api.add('Node', node('node-1', 'zone-a', nodeIp));
    api.add('Node', node('node-2', 'zone-b', '192.168.77.2'));
    api.add('Node', node('node-3', 'zone-a', '192.168.77.3'));
    api.add('ReplicaSet', replicaSet('checkout-6d4f9', 'checkout'));
    api.add('ReplicaSet', replicaSet('audit-7f8c', 'audit'));
    api.add('Pod', pod({ name: 'checkout-6d4f9-x2k4q', uid: checkoutUid, ip: ip(1), node: 'node-1', owner: { kind: 'ReplicaSet', name: 'checkout-6d4f9' } }));
    api.add('Pod', pod({ name: 'ledger-0', uid: ledgerUid, ip: ip(2), node: 'node-1', owner: { kind: 'StatefulSet', name: 'ledger' } }));
    api.add('Pod', pod({ name: 'audit-7f8c-p9z2m', uid: randomUUID(), ip: ip(3), node: 'node-2', owner: { kind: 'ReplicaSet', name: 'audit-7f8c' } }));
    api.add('Pod', pod({ name: 'cache-0', uid: randomUUID(), ip: ip(4), node: 'node-3', owner: { kind: 'StatefulSet', name: 'cache' } }));
    api.add('Pod', pod({ name: 'node-agent-q7x5r', uid: agentUid, ip: nodeIp, node: 'node-1', namespace: 'kube-system', hostNetwork: true, owner: { kind: 'DaemonSet', name: 'node-agent' } }));
    // a Job's pod, whose cgroups are made only by its test (after the agent started)
    api.add('Job', { metadata: { name: 'db-migrate-29301', namespace: NS }, spec: {} });
    api.add('Pod', pod({ name: 'db-migrate-29301-k7q2x', uid: jobUid, ip: ip(11), node: 'node-1', owner: { kind: 'Job', name: 'db-migrate-29301' } }));
    api.add('Service', { metadata: { name: 'ledger', namespace: NS }, spec: { type: 'ClusterIP', clusterIP: clusterIp, clusterIPs: [clusterIp], ports: [{ port: 80, targetPort: port, protocol: 'TCP' }] } });
    api.add('EndpointSlice', {
      metadata: { name: 'ledger-abcde', namespace: NS, labels: { 'kubernetes.io/service-name': 'ledger' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: [ip(2)], conditions: { ready: true }, nodeName: 'node-1', targetRef: { kind: 'Pod', name: 'ledger-0', namespace: NS, uid: ledgerUid } }],
      ports: [{ port, protocol: 'TCP' }],
    });
    const kubeconfig = api.writeKubeconfig(mkdtempSync(path.join(os.tmpdir(), 'bpfagent-kube-')));
    // the whole cluster watched: remote pods on other nodes resolve to their workloads (test/unit/k8s-metadata.test.ts: the node scope)
    const args = ['--kubeconfig', kubeconfig, '--node-name', 'node-1', '--kube-watch', 'cluster', '--cluster-cidr', '10.205.0.16/28,10.96.0.0/16'];
    agent = new TraceAgent(args);
    flows = new TraceAgent([...args, '--interval', '1s'], 'flows');
    await Promise.all([agent.ready, flows.ready]);
    assert.match(agent.stderr, /Kubernetes metadata synced/);
  });

  after(async () => {
    const exit = await agent?.stop();
    const flowsExit = await flows?.stop();
    await api?.close();
    net?.destroy();
    cgroups.destroy();
    assert.equal(exit?.code, 0, exit?.stderr);
    assert.equal(flowsExit?.code, 0, flowsExit?.stderr);
  });

  /** One connection from checkout (pod A, its container cgroup) to host:p; returns the client's record. */
  async function call(host: string, p: number, serverComm?: string, serverCg?: string): Promise<{ client: TcpRecord; server?: TcpRecord }> {
    let server: Peer | undefined;
    if (serverComm) {
      server = new Peer(serverComm, ['server', '--host', ip(2) === host || host === clusterIp ? ip(2) : host, '--port', String(p), '--send', '321'], { netns: net.b.ns, cgroup: serverCg });
      await server.waitFor('listening');
    }
    const client = new Peer('checkout', ['client', '--host', host, '--port', String(host === clusterIp ? 80 : p), '--send', '1234'], { netns: net.a.ns, cgroup: checkoutCg });
    await client.waitFor(serverComm ? 'done' : 'error');
    const [c] = await agent.waitFor((r) => r.direction === 'outbound' && r.local.pid === client.pid);
    const s = server ? (await agent.waitFor((r) => r.direction === 'inbound' && r.local.pid === server!.pid))[0] : undefined;
    return { client: c!, server: s };
  }

  const checkoutRef = { namespace: NS, pod: 'checkout-6d4f9-x2k4q', workload: 'checkout', workloadKind: 'Deployment', node: 'node-1', zone: 'zone-a' };
  const ledgerRef = { namespace: NS, pod: 'ledger-0', workload: 'ledger', workloadKind: 'StatefulSet', service: 'ledger', node: 'node-1', zone: 'zone-a' };

  test('a ClusterIP behind DNAT: the Service dialled and the pod reached; both ends their pod, container and workload', async () => {
    const { client, server } = await call(clusterIp, port, 'ledger', ledgerCg);
    assert.equal(client.local.cgroupId, statSync(checkoutCg).ino);
    assert.deepEqual(
      { containerId: client.local.containerId, containerRuntime: client.local.containerRuntime, k8s: client.local.k8s },
      { containerId: checkoutCtr, containerRuntime: 'containerd', k8s: checkoutRef },
    );
    assert.deepEqual(client.remote, { addr: clusterIp, port: 80, reached: { addr: ip(2), port }, k8s: ledgerRef });
    assert.equal(client.locality, 'same-host');
    assert.deepEqual([client.bytesSent, client.bytesReceived], [1234, 321]);

    assert.deepEqual(
      { containerId: server!.local.containerId, containerRuntime: server!.local.containerRuntime, k8s: server!.local.k8s },
      { containerId: ledgerCtr, containerRuntime: 'cri-o', k8s: ledgerRef },
    );
    assert.deepEqual(server!.remote.k8s, checkoutRef);
    assert.equal(server!.locality, 'same-host');
  });

  test('a pod in another zone is cross-zone; in this zone on another node, same-zone', async () => {
    const cross = (await call(ip(3), port + 1, 'audit')).client;
    assert.deepEqual(cross.remote.k8s, { namespace: NS, pod: 'audit-7f8c-p9z2m', workload: 'audit', workloadKind: 'Deployment', node: 'node-2', zone: 'zone-b' });
    assert.equal(cross.locality, 'cross-zone');
    const same = (await call(ip(4), port + 2, 'cache')).client;
    assert.deepEqual(same.remote.k8s, { namespace: NS, pod: 'cache-0', workload: 'cache', workloadKind: 'StatefulSet', node: 'node-3', zone: 'zone-a' });
    assert.equal(same.locality, 'same-zone');
  });

  test('outside every pod, service and node: external; inside a cluster CIDR: cluster', async () => {
    const ext = (await call(ip(9), port + 3)).client;
    assert.deepEqual([ext.outcome, ext.remote.k8s, ext.locality], ['refused', undefined, 'external']);
    const inCidr = (await call(ip(17), port + 4)).client;
    assert.deepEqual([inCidr.outcome, inCidr.remote.k8s, inCidr.locality], ['refused', undefined, 'cluster']);
  });

  test('a host-network pod resolves through its cgroup, not its address', async () => {
    const p = port + 5;
    const server = new Peer('hostsrv', ['server', '--host', '127.0.0.1', '--port', String(p), '--send', '5']);
    await server.waitFor('listening');
    const client = new Peer('node-agent', ['client', '--host', '127.0.0.1', '--port', String(p), '--send', '6'], { cgroup: agentCg });
    await client.waitFor('done');
    const [c] = await agent.waitFor((r) => r.direction === 'outbound' && r.local.pid === client.pid);
    const [s] = await agent.waitFor((r) => r.direction === 'inbound' && r.local.pid === server.pid);
    assert.deepEqual(c!.local.k8s, { namespace: 'kube-system', pod: 'node-agent-q7x5r', workload: 'node-agent', workloadKind: 'DaemonSet', node: 'node-1', zone: 'zone-a', hostNetwork: true });
    assert.equal(c!.local.containerId, agentCtr);
    assert.equal(c!.locality, 'same-host');
    assert.equal(s!.local.k8s, undefined, 'a host process outside any pod');
  });

  test('a pod deleted and recreated with the same IP resolves to the new pod', async () => {
    api.delete('Pod', NS, 'audit-7f8c-p9z2m');
    api.add('Pod', pod({ name: 'audit-7f8c-w4n8t', uid: randomUUID(), ip: ip(3), node: 'node-3', owner: { kind: 'ReplicaSet', name: 'audit-7f8c' } }));
    // the watch delivers within a moment; retry a few connections until it has
    let last: TcpRecord | undefined;
    for (let i = 0; i < 10; i++) {
      last = (await call(ip(3), port + 6 + (i % 3), 'audit')).client;
      if (last.remote.k8s?.pod === 'audit-7f8c-w4n8t') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.deepEqual(last!.remote.k8s, { namespace: NS, pod: 'audit-7f8c-w4n8t', workload: 'audit', workloadKind: 'Deployment', node: 'node-3', zone: 'zone-a' });
    assert.equal(last!.locality, 'same-zone');
  });

  test('a Job pod gone before its record is read: its container and pod from the cgroup made for it', async () => {
    const jobCtr = hex64();
    const p = port + 9;
    const server = new Peer('ledger', ['server', '--host', ip(2), '--port', String(p), '--send', '77'], { netns: net.b.ns });
    await server.waitFor('listening');
    // nothing of the agent runs from before the pod's cgroups are made until after they are removed
    agent.child.kill('SIGSTOP');
    let jobCg = '';
    let cgroupId = 0;
    try {
      const podCg = cgroups.make(`kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${jobUid.replace(/-/g, '_')}.slice`);
      jobCg = cgroups.make(`kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${jobUid.replace(/-/g, '_')}.slice/cri-containerd-${jobCtr}.scope`);
      cgroupId = statSync(jobCg).ino;
      const client = new Peer('migrate', ['client', '--host', ip(2), '--port', String(p), '--send', '4321'], { netns: net.a.ns, cgroup: jobCg });
      await client.waitFor('done');
      await client.exited;
      cgroups.remove(jobCg);
      cgroups.remove(podCg);
    } finally {
      agent.child.kill('SIGCONT');
    }
    const [c] = await agent.waitFor((r) => r.direction === 'outbound' && r.local.cgroupId === cgroupId);
    assert.deepEqual(
      { containerId: c!.local.containerId, containerRuntime: c!.local.containerRuntime, k8s: c!.local.k8s, bytes: [c!.bytesSent, c!.bytesReceived] },
      {
        containerId: jobCtr,
        containerRuntime: 'containerd',
        k8s: { namespace: NS, pod: 'db-migrate-29301-k7q2x', workload: 'db-migrate-29301', workloadKind: 'Job', node: 'node-1', zone: 'zone-a' },
        bytes: [4321, 77],
      },
    );
  });

  test('bpfagent flows: edges keyed by workload, not pod or port; the Service, the locality, exact totals', async () => {
    const lines = (): EdgeLine[] => flows.records as unknown as EdgeLine[];
    const total = (pred: (e: EdgeLine) => boolean): { connections: number; bytesSent: number; bytesReceived: number; lines: EdgeLine[] } => {
      const ls = lines().filter(pred);
      return { connections: ls.reduce((a, e) => a + e.connections, 0), bytesSent: ls.reduce((a, e) => a + e.bytesSent, 0), bytesReceived: ls.reduce((a, e) => a + e.bytesReceived, 0), lines: ls };
    };
    const toLedger = (side: string) => (e: EdgeLine) => e.observedBy === side && e.source.id === 'payments/checkout' && e.destination.id === 'payments/ledger';
    const client = await flows.until(() => {
      const t = total(toLedger('client'));
      return t.connections >= 1 && total(toLedger('server')).connections >= 1 ? t : undefined;
    }, 'checkout -> ledger edges', 15_000);
    assert.deepEqual([client.connections, client.bytesSent, client.bytesReceived], [1, 1234, 321]);
    const e = client.lines[0]!;
    assert.deepEqual(
      [e.proto, e.port, e.locality, e.source.workloadKind, e.destination.workloadKind, e.destination.service],
      ['tcp', port, 'same-host', 'Deployment', 'StatefulSet', 'ledger'],
      'the port reached behind the ClusterIP keys the edge',
    );
    const server = total(toLedger('server'));
    assert.deepEqual([server.connections, server.bytesSent, server.bytesReceived, server.lines[0]!.port], [1, 1234, 321, port]);
    // the audit pods (one deleted, one new, same workload) are one destination
    const toAudit = (x: EdgeLine): boolean => x.observedBy === 'client' && x.source.id === 'payments/checkout' && x.destination.id === 'payments/audit';
    const audit = await flows.until(() => {
      const t = total(toAudit);
      return t.connections >= 2 ? t : undefined;
    }, 'checkout -> audit edges of both audit pods', 15_000);
    assert.ok(audit.lines.every((x) => x.bytesSent === 1234 * x.connections && x.bytesReceived === 321 * x.connections));
    // no edge is keyed by a pod name or a client port
    for (const x of lines()) {
      assert.ok(!x.source.id.includes('checkout-6d4f9'), x.source.id);
      assert.ok(!x.destination.id.includes('audit-7f8c'), x.destination.id);
    }
  });
});
