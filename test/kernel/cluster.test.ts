/**
 * A cluster of real nodes and the hub's one map of it (issue 17).
 *
 * The nodes are NOT virtual machines here: each is a network namespace of
 * this host's kernel (test/helpers/cluster.ts; the kernel matrix's VMs are
 * not available to this test yet). Three nodes in two zones, each running
 * `bpfagent run` in its own network namespace with its own node name, zone
 * and cgroup subtree (trace.cgroup: the kernel's programs see every node, so
 * each agent reports only its node's processes), its Kubernetes watch scoped
 * to its node against the test API server (which holds every node, pod,
 * Service and EndpointSlice), its records shipped to one real ClickHouse on
 * the host. Pods are network namespaces on their node's bridge, their
 * processes in kubelet-style cgroups. Real traffic: a pod on node-1 calls a
 * pod on node-2 (the other zone) through a Service's ClusterIP (DNAT on
 * node-1, as kube-proxy), a pod on its own node, a pod on node-3 (same zone)
 * by its address, and an external name it resolves through a DNS server
 * outside the cluster. `bpfagent hub` then shows each edge once, with the
 * exact connections and bytes, the callee the client's agent could not name
 * filled in by the server's, localities from both ends' zones, the egress
 * edge by its name.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess } from '../helpers/agent.js';
import { CLICKHOUSE_SKIP, ClickHouseServer } from '../helpers/clickhouse-server.js';
import { NamespaceCluster, type ClusterNode, type ClusterPod } from '../helpers/cluster.js';
import { FakeKubeApi, type KObject } from '../helpers/fake-kube-api.js';
import { KERNEL_SKIP } from '../helpers/kernel-gate.js';
import { AGENT_JS, Peer } from '../helpers/processes.js';
import { untilOk } from '../helpers/until.js';
import type { Graph, GraphEdge } from '../../src/server/api.js';

const CLUSTER = 'ctest';
const NS = 'payments';

function nodeObject(n: ClusterNode): KObject {
  return { metadata: { name: n.name, labels: { 'kubernetes.io/hostname': n.name, 'topology.kubernetes.io/zone': n.zone } }, status: { addresses: [{ type: 'InternalIP', address: n.ip }] } };
}

function podObject(p: ClusterPod, owner: { kind: string; name: string }): KObject {
  return {
    metadata: { name: p.name, namespace: p.namespace, uid: p.uid, ownerReferences: [{ apiVersion: 'apps/v1', kind: owner.kind, name: owner.name, uid: `owner-${owner.name}`, controller: true }] },
    spec: { nodeName: p.node.name, containers: [{ name: 'main', image: 'example/main:1' }] },
    status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }] },
  };
}

describe('a cluster of nodes, one map: bpfagent run on each node, bpfagent hub over ClickHouse', { skip: KERNEL_SKIP || CLICKHOUSE_SKIP }, () => {
  let cluster: NamespaceCluster;
  let clickhouse: ClickHouseServer;
  let api: FakeKubeApi;
  let dir: string;
  const agents: AgentProcess[] = [];
  let hub: AgentProcess;
  let hubUrl = '';
  let pods: Record<'checkout' | 'cache' | 'ledger' | 'search', ClusterPod>;
  let outside: { netns: string; ip: string };
  let resolver: { netns: string; ip: string };
  let vip = '';
  const servers: Peer[] = [];

  before(async () => {
    cluster = new NamespaceCluster();
    const [n1, n2, n3] = [cluster.addNode('node-1', 'zone-a'), cluster.addNode('node-2', 'zone-b'), cluster.addNode('node-3', 'zone-a')] as [ClusterNode, ClusterNode, ClusterNode];
    pods = {
      checkout: cluster.addPod(n1, 'checkout-7d4f9-x2k4q', NS),
      cache: cluster.addPod(n1, 'cache-0', NS),
      ledger: cluster.addPod(n2, 'ledger-0', NS),
      search: cluster.addPod(n3, 'search-0', NS),
    };
    outside = cluster.addOutsideHost();
    resolver = cluster.addOutsideHost();
    vip = `10.96.${cluster.octet}.10`;
    cluster.serviceRule(n1, vip, 80, { ip: pods.ledger.ip, port: 8080 });

    clickhouse = await ClickHouseServer.start({ listenHosts: [cluster.hostIp] });
    api = await FakeKubeApi.start(cluster.hostIp);
    for (const n of cluster.nodes) api.add('Node', nodeObject(n));
    api.add('ReplicaSet', { metadata: { name: 'checkout-7d4f9', namespace: NS, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'checkout', uid: 'd1', controller: true }] }, spec: {} });
    api.add('Pod', podObject(pods.checkout, { kind: 'ReplicaSet', name: 'checkout-7d4f9' }));
    api.add('Pod', podObject(pods.cache, { kind: 'StatefulSet', name: 'cache' }));
    api.add('Pod', podObject(pods.ledger, { kind: 'StatefulSet', name: 'ledger' }));
    api.add('Pod', podObject(pods.search, { kind: 'StatefulSet', name: 'search' }));
    api.add('Service', { metadata: { name: 'ledger', namespace: NS }, spec: { type: 'ClusterIP', clusterIP: vip, clusterIPs: [vip], ports: [{ port: 80, targetPort: 8080, protocol: 'TCP' }] } });
    api.add('EndpointSlice', {
      metadata: { name: 'ledger-x1', namespace: NS, labels: { 'kubernetes.io/service-name': 'ledger' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: [pods.ledger.ip], conditions: { ready: true }, nodeName: 'node-2', zone: 'zone-b', targetRef: { kind: 'Pod', namespace: NS, name: pods.ledger.name, uid: pods.ledger.uid } }],
      ports: [{ port: 8080, protocol: 'TCP' }],
    });

    dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-cluster-'));
    const kubeconfig = api.writeKubeconfig(dir);
    for (const n of cluster.nodes) {
      const config = path.join(dir, `${n.name}.yaml`);
      writeFileSync(
        config,
        [
          `clusterName: ${CLUSTER}`,
          `nodeName: ${n.name}`,
          'listen: 127.0.0.1:0',
          'interval: 1s',
          'shutdownTimeout: 5s',
          'trace:',
          `  cgroup: ${n.cgroup}`,
          'kubernetes:',
          `  kubeconfig: ${kubeconfig}`,
          `  clusterCidrs: [10.${cluster.octet}.0.0/16, 10.96.${cluster.octet}.0/24]`,
          'sinks:',
          '  clickhouse:',
          `    url: http://${cluster.hostIp}:${clickhouse.port}`,
          `    database: ${CLUSTER}`,
          '    batching: { flushIntervalMs: 200, retryBaseMs: 100, retryMaxMs: 500 }',
          '',
        ].join('\n'),
      );
      // each node's agent in its node's network namespace (nsenter keeps the host's /sys: BTF and the cgroup tree)
      agents.push(new AgentProcess(spawn('nsenter', [`--net=/run/netns/${n.netns}`, '--', process.execPath, AGENT_JS, 'run', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] }), `bpfagent run (${n.name})`));
    }
    await Promise.all(agents.map((a) => a.ready));
    for (const a of agents) assert.match(a.stderr, /Kubernetes metadata synced/);
    hub = new AgentProcess(
      spawn(process.execPath, [AGENT_JS, 'hub', '--listen', '127.0.0.1:0', '--clickhouse-url', clickhouse.url, '--clickhouse-database', CLUSTER], { stdio: ['ignore', 'ignore', 'pipe'] }),
      'bpfagent hub',
    );
    hubUrl = `http://${String((await hub.ready).listen)}`;
  });

  after(async () => {
    for (const s of servers) s.kill();
    const exits = await Promise.all(agents.map((a) => a.stop('SIGTERM')));
    const hubExit = await hub?.stop('SIGTERM');
    await api?.close();
    await clickhouse?.kill();
    cluster?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
    for (const e of exits) assert.equal(e.code, 0, e.stderr);
    assert.equal(hubExit?.code, 0, hubExit?.stderr);
  });

  const run = (pod: ClusterPod, comm: string, args: string[], script?: string): Peer => new Peer(comm, args, { netns: pod.netns, cgroup: pod.cgroupDir, ...(script ? { script } : {}) });

  async function serve(pod: ClusterPod, comm: string, port: number, answer: number, count: number): Promise<void> {
    const s = run(pod, comm, ['server', '--host', pod.ip, '--port', String(port), '--send', String(answer), '--count', String(count)]);
    servers.push(s);
    await s.waitFor('listening');
  }

  async function calls(host: string, port: number, sizes: number[]): Promise<void> {
    for (const n of sizes) await run(pods.checkout, 'checkout', ['client', '--host', host, '--port', String(port), '--send', String(n)]).waitFor('done', 15_000);
  }

  test('real traffic across nodes, zones, a Service, a pod of the same node and an external name: one map, each edge once, exact', async () => {
    await serve(pods.ledger, 'ledger', 8080, 100, 3);
    await serve(pods.cache, 'cache', 6379, 5, 2);
    await serve(pods.search, 'search', 9200, 20, 2);
    const ext = new Peer('extsrv', ['server', '--host', outside.ip, '--port', '443', '--send', '4000', '--count', '1'], { netns: outside.netns });
    servers.push(ext);
    await ext.waitFor('listening');
    const dns = new Peer('extdns', ['--host', resolver.ip, '--zone', JSON.stringify({ 'api.example.test': [{ type: 'A', data: outside.ip, ttl: 300 }] })], { netns: resolver.netns, script: 'dns-server' });
    servers.push(dns);
    await dns.waitFor('listening');

    await calls(vip, 80, [1000, 2000, 3000]); // through the Service: DNAT on node-1, the pod on node-2
    await calls(pods.cache.ip, 6379, [40, 60]); // a pod of the same node
    await calls(pods.search.ip, 9200, [150, 250]); // a pod of node-3 (same zone), by its address: unknown to node-1's agent
    await run(pods.checkout, 'checkout', ['--dns', resolver.ip, '--name', 'api.example.test', '--port', '443'], 'resolve-connect').waitFor('done', 15_000);

    const c = (id: string) => `${CLUSTER}:${id}`;
    const expected = [
      [c(`${NS}/checkout`), c(`${NS}/ledger`), 8080, 'tcp', 'both', 3, 6000, 300, 'cross-zone', { both: 3, client: 0, server: 0 }],
      [c(`${NS}/checkout`), c('dns:api.example.test'), 443, 'tcp', 'client', 1, 100, 4000, 'external', { both: 0, client: 1, server: 0 }],
      [c(`${NS}/checkout`), c(`${NS}/search`), 9200, 'tcp', 'both', 2, 400, 40, 'same-zone', { both: 2, client: 0, server: 0 }],
      [c(`${NS}/checkout`), c(`${NS}/cache`), 6379, 'tcp', 'both', 2, 100, 10, 'same-host', { both: 2, client: 0, server: 0 }],
    ];
    const brief = (e: GraphEdge) => [e.source, e.target, e.port, e.proto, e.observedBy, e.connections, e.bytesSent, e.bytesReceived, e.locality, e.views];
    const graph = await untilOk('the four TCP edges in the hub', async () => {
      const res = await fetch(`${hubUrl}/api/graph?window=15m&proto=tcp`);
      const g = (await res.json()) as Graph;
      return JSON.stringify(g.edges.map(brief)) === JSON.stringify(expected) ? g : undefined;
    }, 30_000).catch(async (e: unknown) => {
      const g = (await (await fetch(`${hubUrl}/api/graph?window=15m`)).json()) as Graph;
      throw new Error(`${String(e)}\nhub graph: ${JSON.stringify(g.edges.map(brief))}\nagents:\n${agents.map((a) => a.stderr.slice(-3000)).join('\n---\n')}`);
    });
    assert.deepEqual(graph.edges.map(brief), expected);
    assert.deepEqual(graph.nodes.find((n) => n.id === c(`${NS}/ledger`)), { id: c(`${NS}/ledger`), label: 'ledger', kind: 'workload', namespace: NS, cluster: CLUSTER });
    assert.deepEqual(graph.nodes.find((n) => n.id === c('dns:api.example.test')), { id: c('dns:api.example.test'), label: 'api.example.test', kind: 'dns', cluster: CLUSTER });

    // the whole map: those four and the DNS lookup's UDP flow to the resolver outside, nothing else, nothing twice
    // (UDP flows are read once per interval: it may come a second later)
    const all = await untilOk('the UDP flow of the DNS lookup', async () => {
      const g = (await (await fetch(`${hubUrl}/api/graph?window=15m`)).json()) as Graph;
      return g.edges.some((e) => e.proto === 'udp') ? g : undefined;
    }, 30_000);
    const udp = all.edges.filter((e) => e.proto === 'udp');
    assert.deepEqual(udp.map((e) => [e.source, e.target, e.port, e.observedBy, e.packetsSent, e.packetsReceived, e.locality]), [[c(`${NS}/checkout`), c(resolver.ip), 53, 'client', 1, 1, 'external']]);
    assert.equal(all.edges.length, 5, JSON.stringify(all.edges.map(brief)));

    // each agent shipped its own node's processes, each connection's two sides once: the final rows by node, side and process
    // (a connection open at an interval's end has an open-connection row too, state 'open', on a loaded machine)
    const rows = await clickhouse.rows<{ node: string; observed_by: string; local_comm: string; n: string }>(
      `SELECT node, observed_by, local_comm, countIf(state != 'open') AS n FROM ${CLUSTER}.flows WHERE proto = 'tcp' GROUP BY node, observed_by, local_comm ORDER BY node, observed_by, local_comm`,
    );
    assert.deepEqual(rows.map((r) => [r.node, r.observed_by, r.local_comm, Number(r.n)]), [
      ['node-1', 'client', 'checkout', 8],
      ['node-1', 'server', 'cache', 2],
      ['node-2', 'server', 'ledger', 3],
      ['node-3', 'server', 'search', 2],
    ]);
    assert.deepEqual(await clickhouse.rows(`SELECT DISTINCT cluster FROM ${CLUSTER}.flows`), [{ cluster: CLUSTER }]);
    // node-1's agent saw the Service's backend (the DNAT was on its node) but not its workload (its watch is its node's): the hub's is from node-2
    const [dialled] = await clickhouse.rows<{ dst_id: string; remote_reached_addr: string; remote_node: string; remote_workload: string }>(
      `SELECT dst_id, remote_reached_addr, remote_node, remote_workload FROM ${CLUSTER}.flows WHERE node = 'node-1' AND remote_addr = '${vip}' LIMIT 1`,
    );
    assert.deepEqual(dialled, { dst_id: `svc:${NS}/ledger`, remote_reached_addr: pods.ledger.ip, remote_node: 'node-2', remote_workload: '' });

    // the rest of the hub's API over the same map
    const callers = (await (await fetch(`${hubUrl}/api/callers?of=${encodeURIComponent(c(`svc:${NS}/ledger`))}`)).json()) as { callers: Array<{ caller: { id: string }; connections: number; bytesSent: number }> };
    assert.deepEqual(callers.callers.map((x) => [x.caller.id, x.connections, x.bytesSent]), [[c(`${NS}/checkout`), 3, 6000]]);
    const cost = (await (await fetch(`${hubUrl}/api/cost?window=15m&cluster=${CLUSTER}`)).json()) as { totals: Record<string, { billedBytes: number }>; external: Array<{ name: string; billedBytes: number }> };
    assert.equal(cost.totals['cross-zone']!.billedBytes, 6300);
    assert.deepEqual(cost.external.map((x) => [x.name, x.billedBytes]), [['api.example.test', 100], [resolver.ip, udp[0]!.bytesSent]].sort((a, b) => Number(b[1]) - Number(a[1])));
    const conns = (await (await fetch(`${hubUrl}/api/edges/${graph.edges[0]!.id}/connections`)).json()) as { connections: Array<{ node: string; bytesSent: number; remote: { reached?: { addr: string } } }> };
    assert.deepEqual(conns.connections.map((r) => [r.node, r.bytesSent, r.remote.reached?.addr]).sort(), [['node-1', 1000, pods.ledger.ip], ['node-1', 2000, pods.ledger.ip], ['node-1', 3000, pods.ledger.ip]]);
  });
});
