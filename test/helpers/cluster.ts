/**
 * A Kubernetes cluster of network namespaces on one kernel, for the fleet
 * test (test/kernel/cluster.test.ts): until the kernel matrix's VMs can be
 * nodes, a node is a network namespace with its own address on a shared
 * "fabric" bridge, a bridge (cni0) for its pods and routes to the other
 * nodes' pod ranges (as flannel's host-gw does); a pod is a network
 * namespace on its node's bridge whose processes run in kubelet-style cgroups
 * (systemd driver, containerd) under its node's cgroup, `<root>/<node>`.
 * The host reaches the fabric through one veth of its own (the test's
 * ClickHouse and Kubernetes API listen there). Everything is named with the
 * test's tag and removed by destroy().
 *
 * Addresses (o = the test's octet): fabric 172.31.o.0/24 (host .1, node i
 * .10+i, outside hosts from .250 down), node i's pods 10.o.i.0/24 (.1 its
 * bridge), Services 10.96.o.0/24.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { CGROUP2_ROOT, sh } from './hosts.js';

export interface ClusterNode {
  name: string;
  zone: string;
  index: number;
  netns: string;
  ip: string;
  /** the node's cgroup, below the cgroup root: its agent's trace.cgroup */
  cgroup: string;
}

export interface ClusterPod {
  name: string;
  namespace: string;
  node: ClusterNode;
  netns: string;
  ip: string;
  uid: string;
  /** the container's cgroup directory (absolute): where the pod's processes run */
  cgroupDir: string;
}

export class NamespaceCluster {
  readonly tag: string;
  readonly octet: number;
  readonly fabric: string;
  /** the host's address on the fabric */
  readonly hostIp: string;
  readonly nodes: ClusterNode[] = [];
  readonly pods: ClusterPod[] = [];
  private readonly netnses: string[] = [];
  private readonly cgroupDirs: string[] = [];
  private readonly hostLink: string;
  private readonly cgroupBase: string;
  private outside = 250;
  private podCounts = new Map<string, number>();

  constructor() {
    if (!CGROUP2_ROOT) throw new Error('no cgroup v2 hierarchy mounted');
    this.tag = `hc${process.pid % 10000}`;
    this.octet = 100 + (process.pid % 50);
    this.fabric = this.ns('f');
    this.hostIp = `172.31.${this.octet}.1`;
    this.hostLink = `${this.tag}h`;
    this.cgroupBase = `/bpfagent-test-${process.pid}-cluster`;
    sh('ip', ['-n', this.fabric, 'link', 'add', 'br0', 'type', 'bridge']);
    sh('ip', ['-n', this.fabric, 'link', 'set', 'br0', 'up']);
    // the host's own leg on the fabric (no forwarding on the host: it is an end, not a router)
    sh('ip', ['link', 'add', this.hostLink, 'type', 'veth', 'peer', 'name', 'host', 'netns', this.fabric]);
    sh('ip', ['-n', this.fabric, 'link', 'set', 'host', 'master', 'br0', 'up']);
    sh('ip', ['addr', 'add', `${this.hostIp}/24`, 'dev', this.hostLink]);
    sh('ip', ['link', 'set', this.hostLink, 'up']);
    this.mkdir(this.cgroupBase);
  }

  private ns(suffix: string): string {
    const name = `${this.tag}${suffix}`;
    sh('ip', ['netns', 'add', name]);
    sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    this.netnses.push(name);
    return name;
  }

  /** Make `rel` (below the cgroup root) and every missing directory above it, each remembered for destroy(). */
  private mkdir(rel: string): string {
    let dir = CGROUP2_ROOT!;
    for (const part of rel.split('/').filter(Boolean)) {
      dir = `${dir}/${part}`;
      if (existsSync(dir)) continue;
      mkdirSync(dir);
      this.cgroupDirs.push(dir);
    }
    return dir;
  }

  /** A node: its namespace on the fabric, its pods' bridge, forwarding, routes to the nodes made so far (and theirs to it). */
  addNode(name: string, zone: string): ClusterNode {
    const index = this.nodes.length + 1;
    const netns = this.ns(`n${index}`);
    const ip = `172.31.${this.octet}.${10 + index}`;
    sh('ip', ['link', 'add', 'eth0', 'netns', netns, 'type', 'veth', 'peer', 'name', `n${index}`, 'netns', this.fabric]);
    sh('ip', ['-n', this.fabric, 'link', 'set', `n${index}`, 'master', 'br0', 'up']);
    sh('ip', ['-n', netns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', netns, 'link', 'add', 'cni0', 'type', 'bridge']);
    sh('ip', ['-n', netns, 'addr', 'add', `10.${this.octet}.${index}.1/24`, 'dev', 'cni0']);
    sh('ip', ['-n', netns, 'link', 'set', 'cni0', 'up']);
    sh('ip', ['netns', 'exec', netns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    const node: ClusterNode = { name, zone, index, netns, ip, cgroup: `${this.cgroupBase}/${name}` };
    for (const other of this.nodes) {
      sh('ip', ['-n', netns, 'route', 'add', `10.${this.octet}.${other.index}.0/24`, 'via', other.ip]);
      sh('ip', ['-n', other.netns, 'route', 'add', `10.${this.octet}.${index}.0/24`, 'via', ip]);
    }
    this.mkdir(`${node.cgroup}/kubepods.slice/kubepods-besteffort.slice`);
    this.nodes.push(node);
    return node;
  }

  /** A pod on `node`: its namespace on the node's bridge, its container's cgroup as the systemd driver and containerd lay it out. */
  addPod(node: ClusterNode, name: string, namespace: string): ClusterPod {
    const k = (this.podCounts.get(node.name) ?? 0) + 1;
    this.podCounts.set(node.name, k);
    const netns = this.ns(`p${node.index}${k}`);
    const ip = `10.${this.octet}.${node.index}.${1 + k}`;
    sh('ip', ['link', 'add', 'eth0', 'netns', netns, 'type', 'veth', 'peer', 'name', `veth${k}`, 'netns', node.netns]);
    sh('ip', ['-n', node.netns, 'link', 'set', `veth${k}`, 'master', 'cni0', 'up']);
    sh('ip', ['-n', netns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', netns, 'route', 'add', 'default', 'via', `10.${this.octet}.${node.index}.1`]);
    const uid = randomUUID();
    const ctr = (randomUUID() + randomUUID()).replace(/-/g, '');
    const podSlice = `${node.cgroup}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${uid.replace(/-/g, '_')}.slice`;
    this.mkdir(podSlice);
    const cgroupDir = this.mkdir(`${podSlice}/cri-containerd-${ctr}.scope`);
    const pod: ClusterPod = { name, namespace, node, netns, ip, uid, cgroupDir };
    this.pods.push(pod);
    return pod;
  }

  /** A host outside the cluster on the fabric (the Internet, as far as the cluster knows), routed back to every node's pods. */
  addOutsideHost(): { netns: string; ip: string } {
    const n = this.outside--;
    const netns = this.ns(`x${250 - n}`);
    const ip = `172.31.${this.octet}.${n}`;
    sh('ip', ['link', 'add', 'eth0', 'netns', netns, 'type', 'veth', 'peer', 'name', `x${250 - n}`, 'netns', this.fabric]);
    sh('ip', ['-n', this.fabric, 'link', 'set', `x${250 - n}`, 'master', 'br0', 'up']);
    sh('ip', ['-n', netns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    for (const node of this.nodes) sh('ip', ['-n', netns, 'route', 'add', `10.${this.octet}.${node.index}.0/24`, 'via', node.ip]);
    return { netns, ip };
  }

  /** kube-proxy's rule for a ClusterIP on `node`: pods' connections to vip:port (nat PREROUTING) go to backend. */
  serviceRule(node: ClusterNode, vip: string, port: number, backend: { ip: string; port: number }): void {
    sh(
      'ip',
      ['netns', 'exec', node.netns, 'nft', '-f', '-'],
      `table ip ${this.tag}kp {\n  chain prerouting {\n    type nat hook prerouting priority -100; policy accept;\n    ip daddr ${vip} tcp dport ${port} dnat to ${backend.ip}:${backend.port}\n  }\n}\n`,
    );
  }

  destroy(): void {
    for (const ns of this.netnses) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        // already gone
      }
    }
    try {
      sh('ip', ['link', 'del', this.hostLink]);
    } catch {
      // went with the fabric's end
    }
    for (const dir of [...this.cgroupDirs].reverse()) {
      try {
        for (const pid of readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) writeFileSync(`${CGROUP2_ROOT}/cgroup.procs`, pid);
      } catch {
        // exited meanwhile
      }
      try {
        rmdirSync(dir);
      } catch {
        // busy or gone: harmless
      }
    }
  }
}

