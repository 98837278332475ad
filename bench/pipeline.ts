/**
 * Enrichment benchmark: records per second through the agent's user-space
 * path on one thread, decode -> name -> enrich -> aggregate, on synthetic ring
 * buffer batches of struct tcp_close_event laid out as the kernel writes them.
 *
 * Every source is the real one: the /proc process cache (pids of this process
 * and of `sleep` children, so the steady state is cache hits and revalidation
 * once a second), cgroup id -> path of this process's real cgroup, container
 * parsing, the Kubernetes ClusterIndex filled with a synthetic cluster, this
 * host's addresses, cluster CIDRs, and the DNS name cache.
 *
 *   node dist/bench/pipeline.js [--records 2000000] [--reps 5] [--flows 2000]
 *        [--batch 1024] [--warmup 300000] [--stages decode,...]
 *
 * Prints one JSON object. Run by bench/enrich.sh, which also pins it to a CPU.
 * The helpers it exports (the synthetic cluster, the event encoder) are shared
 * with bench/flow-memory.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { findCgroup2Root } from '../src/bpf/cgroup-root.js';
import { decodeBatch, type DecodeStats, type RecordSink } from '../src/events/batch.js';
import { EVENT_KIND, TCP_CLOSE_EVENT } from '../src/events/layout.js';
import type { TcpRecord } from '../src/events/records.js';
import { CgroupPaths } from '../src/enrich/cgroup-path.js';
import { parseContainerCgroup } from '../src/enrich/container.js';
import { DnsNameCache } from '../src/enrich/dns-cache.js';
import { Enricher } from '../src/enrich/enricher.js';
import { HostAddresses } from '../src/enrich/host-addresses.js';
import { ClusterIndex } from '../src/enrich/k8s/cluster-index.js';
import type { PodInfo } from '../src/enrich/k8s/types.js';
import { clusterMatcher } from '../src/enrich/locality.js';
import { ProcessInfoCache } from '../src/enrich/process-info.js';
import { nameRemote } from '../src/enrich/remote-names.js';
import { EdgeTable, recordEnds } from '../src/flows/edge-table.js';
import { MonotonicClock } from '../src/util/clock.js';

// ---------------------------------------------------------------- options

export function parseArgs(argv: string[], defaults: Record<string, string>): Record<string, string> {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument '${a}'`);
    const eq = a.indexOf('=');
    const key = eq > 0 ? a.slice(2, eq) : a.slice(2);
    if (!(key in defaults)) throw new Error(`unknown option --${key} (known: ${Object.keys(defaults).join(', ')})`);
    const value = eq > 0 ? a.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new Error(`--${key} needs a value`);
    out[key] = value;
  }
  return out;
}

export function intArg(args: Record<string, string>, key: string): number {
  const n = Number(args[key]!.replace(/_/g, '').replace(/k$/i, '000').replace(/m$/i, '000000'));
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${key}: expected a whole number, got '${args[key]}'`);
  return n;
}

// ---------------------------------------------------------------- synthetic cluster

export const NODE_COUNT = 20;
export const ZONES = ['zone-a', 'zone-b', 'zone-c'] as const;
export const DEPLOYMENTS = 200;
export const PODS_PER_DEPLOYMENT = 10;
export const NAMESPACES = 10;
/** the node this agent runs on */
export const THIS_NODE = 'node-00';
export const CLUSTER_CIDRS = ['10.244.0.0/16', '10.96.0.0/12'];
/** network namespace inode of the records (any constant: names are per netns) */
export const NETNS = 4026532000;

const nodeName = (n: number) => `node-${String(n).padStart(2, '0')}`;
const hex = (n: number, len: number) => (n >>> 0).toString(16).padStart(len, '0').slice(-len);
const uuid = (n: number) => `${hex(n * 2654435761, 8)}-${hex(n, 4)}-4${hex(n >> 4, 3)}-8${hex(n >> 8, 3)}-${hex(n * 40503, 12)}`;

export interface Cluster {
  index: ClusterIndex;
  /** pods by deployment, then replica */
  pods: PodInfo[][];
  /** the pods on THIS_NODE: one per even deployment */
  localPods: PodInfo[];
  clusterIps: string[];
  nodeIps: string[];
}

/**
 * 20 nodes in 3 zones, 10 namespaces, 200 Deployments (each through a
 * ReplicaSet) of 10 pods spread over the nodes, and a Service with one
 * EndpointSlice per Deployment: 2,000 pods, 200 services.
 */
export function buildCluster(): Cluster {
  const index = new ClusterIndex();
  const nodeIps: string[] = [];
  for (let n = 0; n < NODE_COUNT; n++) {
    const ip = `10.0.0.${10 + n}`;
    nodeIps.push(ip);
    index.upsertNode({ metadata: { name: nodeName(n), uid: uuid(900_000 + n), resourceVersion: '1' }, zone: ZONES[n % ZONES.length], addresses: [ip] });
  }
  const podsPerNode = new Array<number>(NODE_COUNT).fill(0);
  const pods: PodInfo[][] = [];
  const localPods: PodInfo[] = [];
  const clusterIps: string[] = [];
  const created = Date.now() - 86_400_000;
  for (let d = 0; d < DEPLOYMENTS; d++) {
    const namespace = `team-${d % NAMESPACES}`;
    const deployment = `app-${d}`;
    const rs = `${deployment}-${hex(d * 97 + 13, 10)}`;
    index.upsertController('ReplicaSet', { metadata: { name: rs, namespace, uid: uuid(800_000 + d) }, owner: { kind: 'Deployment', name: deployment } });
    const replicas: PodInfo[] = [];
    for (let k = 0; k < PODS_PER_DEPLOYMENT; k++) {
      const node = (d * PODS_PER_DEPLOYMENT + k) % NODE_COUNT;
      const slot = 2 + podsPerNode[node]!++;
      const pod: PodInfo = {
        metadata: { name: `${rs}-${hex(k * 7919 + d, 5)}`, namespace, uid: uuid(d * PODS_PER_DEPLOYMENT + k), resourceVersion: '1' },
        createdMs: created + d * 1000 + k,
        nodeName: nodeName(node),
        hostNetwork: false,
        ips: [`10.244.${node}.${slot}`],
        owner: { kind: 'ReplicaSet', name: rs },
      };
      index.upsertPod(pod);
      replicas.push(pod);
      if (pod.nodeName === THIS_NODE) localPods.push(pod);
    }
    pods.push(replicas);
    const clusterIp = `10.96.${Math.floor(d / 250)}.${(d % 250) + 1}`;
    clusterIps.push(clusterIp);
    index.upsertService({ metadata: { name: deployment, namespace, uid: uuid(700_000 + d) }, clusterIPs: [clusterIp] });
    index.upsertEndpointSlice({
      metadata: { name: `${deployment}-${hex(d * 31 + 7, 5)}`, namespace, uid: uuid(600_000 + d) },
      service: deployment,
      addresses: replicas.map((p) => p.ips[0]!),
      targets: [],
      podUids: replicas.map((p) => p.metadata.uid!),
    });
  }
  return { index, pods, localPods, clusterIps, nodeIps };
}

/** External addresses 52.0.0.0/8 (by index), and their DNS names. */
export const externalAddr = (i: number) => `52.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
export const externalName = (i: number) => `api-${i}.svc-${i % 97}.example.com`;
/** External addresses nobody looked up: 100.64.0.0/10 onwards, by index. */
export const unnamedAddr = (i: number) => `100.${64 + ((i >> 16) & 63)}.${(i >> 8) & 255}.${i & 255}`;

// ---------------------------------------------------------------- real processes and cgroups

export interface LocalProcess {
  pid: number;
  comm: string;
}

export interface Host {
  processes: LocalProcess[];
  cgroupId: number;
  cgroupPath: string;
  cgroupRoot: string;
  children: ChildProcess[];
}

/** This process and `sleepers` spawned `sleep` processes, and this process's cgroup v2 id (the inode of its directory). */
export async function realHost(sleepers = 3): Promise<Host> {
  const children: ChildProcess[] = [];
  for (let i = 0; i < sleepers; i++) {
    const c = spawn('sleep', ['3600'], { stdio: 'ignore' });
    c.unref();
    children.push(c);
  }
  // the sleepers go with this process, however it ends
  const killAll = () => {
    for (const c of children) c.kill();
  };
  process.once('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      killAll();
      process.exit(130);
    });
  await new Promise((r) => setTimeout(r, 100)); // let them exec
  const processes: LocalProcess[] = [process.pid, ...children.map((c) => c.pid!)].map((pid) => ({
    pid,
    comm: readFileSync(`/proc/${pid}/comm`, 'utf8').trim(),
  }));
  const cgroupRoot = findCgroup2Root();
  if (!cgroupRoot) throw new Error('cgroup v2 is not mounted: the benchmark needs it for real cgroup ids');
  const line = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  const cgroupPath = line?.slice(3) ?? '/';
  const cgroupId = Number(statSync(cgroupRoot + (cgroupPath === '/' ? '' : cgroupPath), { bigint: true }).ino);
  return { processes, cgroupId, cgroupPath, cgroupRoot, children };
}

export function stopHost(h: Host): void {
  for (const c of h.children) c.kill();
}

// ---------------------------------------------------------------- the enricher, as the agent builds it

export interface Pipeline {
  cluster: Cluster;
  names: DnsNameCache;
  processes: ProcessInfoCache;
  cgroups: CgroupPaths;
  hosts: HostAddresses;
  enricher: Enricher;
}

/** What src/agent/enrichment.ts builds, with the ClusterIndex in place of the watch-fed KubeMetadata (same lookups). */
export function buildPipeline(host: Host, cluster: Cluster, opts: { dnsNames: number; withKube?: boolean }): Pipeline {
  const names = new DnsNameCache(Math.max(100_000, opts.dnsNames));
  const now = Date.now();
  for (let i = 0; i < opts.dnsNames; i++) names.add(NETNS, externalAddr(i), externalName(i), 86_400, now);
  const processes = new ProcessInfoCache();
  const cgroups = new CgroupPaths(host.cgroupRoot);
  const hosts = new HostAddresses();
  const inCluster = clusterMatcher(CLUSTER_CIDRS);
  const enricher = new Enricher({
    processes,
    cgroups,
    parseContainer: parseContainerCgroup,
    kube: opts.withKube === false ? undefined : cluster.index,
    nodeName: THIS_NODE,
    isHostAddress: (a) => hosts.has(a),
    learnHostAddress: (a) => hosts.learn(a),
    inCluster,
  });
  return { cluster, names, processes, cgroups, hosts, enricher };
}

// ---------------------------------------------------------------- encoding struct tcp_close_event

const F = TCP_CLOSE_EVENT.fields;
export const FRAME = 4 + TCP_CLOSE_EVENT.size;

export interface TcpEvent {
  direction: 1 | 2;
  outcome: 1 | 2 | 3 | 4;
  pid: number;
  comm: string;
  cgroupId: number;
  startNs: bigint;
  endNs: bigint;
  laddr: string;
  lport: number;
  raddr: string;
  rport: number;
  /** DNAT: where the connection really went */
  dnatAddr?: string;
  dnatPort?: number;
  bytesSent: number;
  bytesReceived: number;
  retransmits: number;
  srttUs: number;
}

function putIpv4(b: Buffer, off: number, addr: string): void {
  b.fill(0, off, off + 16);
  const parts = addr.split('.');
  for (let i = 0; i < 4; i++) b[off + i] = Number(parts[i]);
}

/** Writes one `[u32 length][struct tcp_close_event]` frame at `off`; returns the offset after it. */
export function encodeTcpClose(b: Buffer, off: number, e: TcpEvent): number {
  b.writeUInt32LE(TCP_CLOSE_EVENT.size, off);
  const s = off + 4;
  b.fill(0, s, s + TCP_CLOSE_EVENT.size);
  b[s + F.kind.offset] = EVENT_KIND.TCP_CLOSE;
  b[s + F.family.offset] = 2; // AF_INET
  b[s + F.direction.offset] = e.direction;
  b[s + F.outcome.offset] = e.outcome;
  b.writeUInt32LE(e.pid, s + F.pid.offset);
  b.writeBigUInt64LE(e.startNs, s + F.start_ns.offset);
  b.writeBigUInt64LE(e.endNs, s + F.end_ns.offset);
  b.writeBigUInt64LE(BigInt(e.cgroupId), s + F.cgroup_id.offset);
  b.writeBigUInt64LE(BigInt(e.bytesSent), s + F.bytes_sent.offset);
  b.writeBigUInt64LE(BigInt(e.bytesReceived), s + F.bytes_received.offset);
  b.writeUInt32LE(e.retransmits, s + F.retransmits.offset);
  b.writeUInt32LE(e.srttUs, s + F.srtt_us.offset);
  b.writeUInt32LE(NETNS, s + F.netns.offset);
  b.writeUInt16LE(e.lport, s + F.lport.offset);
  b.writeUInt16LE(e.rport, s + F.rport.offset);
  putIpv4(b, s + F.laddr.offset, e.laddr);
  putIpv4(b, s + F.raddr.offset, e.raddr);
  b[s + F.owner_source.offset] = e.direction === 1 ? 1 : 3;
  b.write(e.comm.slice(0, 15), s + F.comm.offset, 'latin1');
  if (e.dnatAddr !== undefined) {
    putIpv4(b, s + F.dnat_addr.offset, e.dnatAddr);
    b.writeUInt16LE(e.dnatPort ?? 0, s + F.dnat_port.offset);
    b[s + F.dnat.offset] = 1;
  }
  return s + TCP_CLOSE_EVENT.size;
}

/** A small deterministic PRNG (mulberry32), so runs see the same records. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Common per-connection numbers: mostly clean closes, a few failures; bytes and RTT spread. */
export function connectionNumbers(rand: () => number, remoteInCluster: boolean): Pick<TcpEvent, 'outcome' | 'bytesSent' | 'bytesReceived' | 'retransmits' | 'srttUs'> {
  const r = rand();
  const outcome = r < 0.97 ? 1 : r < 0.985 ? 2 : r < 0.995 ? 3 : 4;
  return {
    outcome,
    bytesSent: outcome === 1 ? 100 + Math.floor(rand() * 20_000) : 0,
    bytesReceived: outcome === 1 ? 200 + Math.floor(rand() * 200_000) : 0,
    retransmits: rand() < 0.02 ? 1 + Math.floor(rand() * 3) : 0,
    srttUs: outcome === 3 || outcome === 4 ? 0 : Math.floor((remoteInCluster ? 80 : 5_000) + rand() * (remoteInCluster ? 900 : 60_000)),
  };
}

/**
 * The mix of the pipeline benchmark: `flows` distinct (local pod, remote, server
 * port) combinations; per record a fresh client port, and for Services a
 * backend chosen per connection as kube-proxy would.
 *
 *   40% a ClusterIP, DNATed to one of the service's pods  (remote: pod behind service)
 *   20% a pod IP directly (headless service, pod-to-pod)
 *   20% an external address a local client looked up in DNS
 *   10% an external address without a DNS name
 *   10% inbound: a pod on another node calls a local pod's server port
 */
export class RecordMix {
  private readonly rand = prng(42);
  private clientPort = 32768;
  private readonly baseNs: bigint;

  constructor(
    private readonly host: Host,
    private readonly cluster: Cluster,
    private readonly flows: number,
    private readonly dnsNames: number,
  ) {
    this.baseNs = process.hrtime.bigint();
  }

  /** Record number `i` (timestamps advance 2 µs per record: 500k/s). */
  event(i: number): TcpEvent {
    const { cluster, host, rand } = this;
    const L = cluster.localPods.length;
    // combo -> (local pod, kind, target) is one-to-one; targets are offset per local pod
    const combo = (i * 7919) % this.flows;
    const localIx = combo % L;
    const kind = Math.floor(combo / L) % 10;
    const t = Math.floor(combo / (L * 10));
    const local = cluster.localPods[localIx]!;
    const proc = host.processes[localIx % host.processes.length]!;
    const endNs = this.baseNs + BigInt(i) * 2000n;
    const port = this.clientPort;
    this.clientPort = port >= 60999 ? 32768 : port + 1;
    const base = { pid: proc.pid, comm: proc.comm, cgroupId: host.cgroupId, laddr: local.ips[0]! };
    const d = (t * 37 + localIx * 13) % DEPLOYMENTS;
    if (kind < 4) {
      const backend = cluster.pods[d]![Math.floor(rand() * PODS_PER_DEPLOYMENT)]!;
      const n = connectionNumbers(rand, true);
      return { ...base, ...n, direction: 1, lport: port, raddr: cluster.clusterIps[d]!, rport: 80, dnatAddr: backend.ips[0]!, dnatPort: 8080, startNs: endNs - 3_000_000n, endNs };
    }
    if (kind < 6) {
      const pod = cluster.pods[d]![t % PODS_PER_DEPLOYMENT]!;
      const n = connectionNumbers(rand, true);
      return { ...base, ...n, direction: 1, lport: port, raddr: pod.ips[0]!, rport: 8080 + (kind - 4), startNs: endNs - 2_000_000n, endNs };
    }
    if (kind < 8) {
      const n = connectionNumbers(rand, false);
      const name = (t * 101 + localIx * 7919 + (kind - 6) * 4099) % this.dnsNames;
      return { ...base, ...n, direction: 1, lport: port, raddr: externalAddr(name), rport: 443, startNs: endNs - 80_000_000n, endNs };
    }
    if (kind < 9) {
      const n = connectionNumbers(rand, false);
      return { ...base, ...n, direction: 1, lport: port, raddr: unnamedAddr(t * L + localIx), rport: t % 2 ? 443 : 5432, startNs: endNs - 50_000_000n, endNs };
    }
    // inbound: a pod elsewhere dials this pod's server port
    let caller = cluster.pods[d]![t % PODS_PER_DEPLOYMENT]!;
    if (caller.nodeName === THIS_NODE) caller = cluster.pods[d]![(t + 1) % PODS_PER_DEPLOYMENT]!;
    const n = connectionNumbers(rand, true);
    return { ...base, ...n, direction: 2, lport: 8080, raddr: caller.ips[0]!, rport: port, startNs: endNs - 1_000_000n, endNs };
  }
}

/** `count` batches of `perBatch` frames each, records numbered from `first`. */
export function encodeBatches(mix: { event(i: number): TcpEvent }, count: number, perBatch: number, first = 0): Buffer[] {
  const out: Buffer[] = [];
  let i = first;
  for (let b = 0; b < count; b++) {
    const buf = Buffer.alloc(perBatch * FRAME);
    let off = 0;
    for (let k = 0; k < perBatch; k++) off = encodeTcpClose(buf, off, mix.event(i++));
    out.push(buf);
  }
  return out;
}

function medianOf(sorted: number[]): number {
  const n = sorted.length;
  return n % 2 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
}

/** CPU seconds the whole host has been busy (/proc/stat: all but idle and iowait), to see what else ran. */
export function hostBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - f[3]! - f[4]!) / 100; // USER_HZ
}

export function mb(bytes: number): number {
  return Math.round((bytes / 1048576) * 10) / 10;
}

// ---------------------------------------------------------------- the benchmark

type StageName = 'decode' | 'decode+names' | 'decode+names+enrich(no k8s)' | 'decode+enrich' | 'full';
const ALL_STAGES: StageName[] = ['decode', 'decode+names', 'decode+names+enrich(no k8s)', 'decode+enrich', 'full'];
const STAGE_MEANING: Record<StageName, string> = {
  decode: 'decodeBatch to TcpRecord objects',
  'decode+names': 'decode + nameRemote (DNS name cache)',
  'decode+names+enrich(no k8s)': 'decode + nameRemote + Enricher without a KubeSource (process, cgroup, container, host addresses, CIDRs)',
  'decode+enrich': 'decode + nameRemote + Enricher with the ClusterIndex (the records trace --json writes)',
  full: 'decode + nameRemote + Enricher + EdgeTable.add, drained at the end (bpfagent flows)',
};

interface StageRun {
  records: number;
  seconds: number;
  /** CPU time of this process (all its threads: GC helpers included; pinned, they share the one core) */
  cpuSeconds: number;
  /** cores the rest of the host used meanwhile */
  otherCores: number;
}

/** Runs with more other work than this are left out of the median when clean ones exist. */
const OTHER_CPU_MAX = 0.1;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), {
    records: '2000000',
    reps: '5',
    flows: '2000',
    batch: '1024',
    'pool-batches': '64',
    warmup: '300000',
    'max-edges': '10000',
    'dns-names': '5000',
    stages: ALL_STAGES.join(','),
  });
  const records = intArg(args, 'records');
  const reps = Math.max(1, intArg(args, 'reps'));
  const flows = Math.max(1, intArg(args, 'flows'));
  const perBatch = Math.max(1, intArg(args, 'batch'));
  const poolBatches = Math.max(1, intArg(args, 'pool-batches'));
  const warmup = intArg(args, 'warmup');
  const maxEdges = intArg(args, 'max-edges');
  const dnsNames = Math.max(1, intArg(args, 'dns-names'));
  const stages = args.stages!.split(',').map((s) => s.trim()) as StageName[];
  for (const s of stages) if (!ALL_STAGES.includes(s)) throw new Error(`unknown stage '${s}' (known: ${ALL_STAGES.join(', ')})`);

  const host = await realHost();
  try {
    const cluster = buildCluster();
    const withKube = buildPipeline(host, cluster, { dnsNames });
    const noKube = buildPipeline(host, cluster, { dnsNames, withKube: false });
    const mix = new RecordMix(host, cluster, flows, dnsNames);
    const pool = encodeBatches(mix, poolBatches, perBatch);
    const clock = new MonotonicClock();
    const batchesPerRun = Math.max(1, Math.round(records / perBatch));
    const recordsPerRun = batchesPerRun * perBatch;

    let sinkCount = 0;
    let last: TcpRecord | undefined;
    const sinks: Record<StageName, (table: EdgeTable) => RecordSink> = {
      decode: () => ({
        tcp: (r) => {
          last = r;
          sinkCount++;
        },
      }),
      'decode+names': () => ({
        tcp: (r, endMs) => {
          nameRemote(r, endMs, withKube.names);
          last = r;
        },
      }),
      'decode+names+enrich(no k8s)': () => ({
        tcp: (r, endMs) => {
          nameRemote(r, endMs, noKube.names);
          noKube.enricher.enrich(r);
          last = r;
        },
      }),
      'decode+enrich': () => ({
        tcp: (r, endMs) => {
          nameRemote(r, endMs, withKube.names);
          withKube.enricher.enrich(r);
          last = r;
        },
      }),
      full: (table) => ({
        tcp: (r, endMs) => {
          nameRemote(r, endMs, withKube.names);
          withKube.enricher.enrich(r);
          table.add(r);
        },
      }),
    };

    let lastEdges = 0;
    let lastOverflow = 0;
    const runStage = (stage: StageName, batches: number): StageRun => {
      const table = new EdgeTable(undefined, maxEdges);
      const sink = sinks[stage](table);
      const stats: DecodeStats = { records: 0, dnsPackets: 0, decodeErrors: 0 };
      const busy0 = hostBusySeconds();
      const own0 = process.cpuUsage();
      const t0 = performance.now();
      for (let b = 0; b < batches; b++) decodeBatch(pool[b % pool.length]!, clock, stats, sink);
      const edges = stage === 'full' ? table.drain() : [];
      const seconds = (performance.now() - t0) / 1000;
      const own = process.cpuUsage(own0);
      const otherCores = Math.max(0, (hostBusySeconds() - busy0 - (own.user + own.system) / 1e6) / seconds);
      if (stats.decodeErrors || stats.records !== batches * perBatch) throw new Error(`${stage}: decoded ${stats.records}, ${stats.decodeErrors} errors`);
      if (stage === 'full') {
        lastEdges = edges.length;
        lastOverflow = table.overflowed;
      }
      return { records: stats.records, seconds, cpuSeconds: (own.user + own.system) / 1e6, otherCores };
    };

    // warm-up: every stage, so each is optimised before anything is timed
    const warmBatches = Math.max(1, Math.round(warmup / perBatch));
    for (const s of stages) runStage(s, warmBatches);

    // what the records look like after the full path (sanity: enrichment really happens)
    const sample = { records: 0, localK8s: 0, remoteK8s: 0, remoteName: 0, dnat: 0, exe: 0, locality: {} as Record<string, number> };
    {
      const loc = sample.locality;
      const stats: DecodeStats = { records: 0, dnsPackets: 0, decodeErrors: 0 };
      for (let b = 0; b < Math.min(pool.length, 8); b++)
        decodeBatch(pool[b]!, clock, stats, {
          tcp: (r, endMs) => {
            nameRemote(r, endMs, withKube.names);
            withKube.enricher.enrich(r);
            sample.records++;
            if (r.local.k8s?.workload) sample.localK8s++;
            if (r.remote.k8s) sample.remoteK8s++;
            if (r.remote.name) sample.remoteName++;
            if (r.remote.reached) sample.dnat++;
            if (r.local.exe) sample.exe++;
            loc[r.locality ?? 'none'] = (loc[r.locality ?? 'none'] ?? 0) + 1;
          },
        });
    }

    // timed: stages interleaved within each repetition, so drift hits them alike
    const busy0 = hostBusySeconds();
    const own0 = process.cpuUsage();
    const wall0 = performance.now();
    const runs: Record<string, StageRun[]> = {};
    for (let rep = 0; rep < reps; rep++) for (const s of stages) (runs[s] ??= []).push(runStage(s, batchesPerRun));

    const wallS = (performance.now() - wall0) / 1000;
    const own = process.cpuUsage(own0);
    const otherCpuCores = Math.round(((hostBusySeconds() - busy0 - (own.user + own.system) / 1e6) / wallS) * 100) / 100;
    const results = stages.map((s) => {
      const clean = runs[s]!.filter((r) => r.otherCores <= OTHER_CPU_MAX);
      const used = clean.length ? clean : runs[s]!;
      const rates = used.map((r) => r.records / r.seconds).sort((a, b) => a - b);
      const median = medianOf(rates);
      // per CPU second: what the stage costs the core it runs on, whatever else shares it
      const perCpu = medianOf(runs[s]!.map((r) => r.records / r.cpuSeconds).sort((a, b) => a - b));
      return {
        stage: s,
        meaning: STAGE_MEANING[s],
        recordsPerSec: Math.round(median),
        usPerRecord: Math.round((1e6 / median) * 1000) / 1000,
        recordsPerCpuSec: Math.round(perCpu),
        usCpuPerRecord: Math.round((1e6 / perCpu) * 1000) / 1000,
        minPerSec: Math.round(rates[0]!),
        maxPerSec: Math.round(rates[rates.length - 1]!),
        /** repetitions in the median: those with at most OTHER_CPU_MAX cores of other work, if any */
        repsUsed: used.length,
        otherCoresByRep: runs[s]!.map((r) => Math.round(r.otherCores * 100) / 100),
      };
    });
    const byStage = Object.fromEntries(results.map((r) => [r.stage, r]));
    const delta = (a: StageName, b: StageName) =>
      byStage[a] && byStage[b] ? Math.round((byStage[b].usCpuPerRecord - byStage[a].usCpuPerRecord) * 1000) / 1000 : undefined;

    // memory after the timed runs (before the lookup timings below, which keep records alive)
    const memBefore = process.memoryUsage();
    (globalThis as { gc?: () => void }).gc?.();
    const memAfterGc = process.memoryUsage();

    // what each lookup costs on its own, on decoded (and, for the edge table, enriched) records of the mix
    const lookups: Record<string, number> = {};
    {
      const decoded: TcpRecord[] = [];
      const enriched: TcpRecord[] = [];
      const stats: DecodeStats = { records: 0, dnsPackets: 0, decodeErrors: 0 };
      for (const b of pool) decodeBatch(b, clock, stats, { tcp: (r) => decoded.push(r) });
      for (const b of pool)
        decodeBatch(b, clock, stats, {
          tcp: (r, endMs) => {
            nameRemote(r, endMs, withKube.names);
            withKube.enricher.enrich(r);
            enriched.push(r);
          },
        });
      const inCluster = clusterMatcher(CLUSTER_CIDRS);
      const ix = cluster.index;
      const time = (name: string, list: TcpRecord[], f: (r: TcpRecord) => unknown) => {
        let best = Infinity;
        for (let rep = 0; rep < 5; rep++) {
          const t0 = performance.now();
          for (let k = 0; k < 3; k++) for (const r of list) f(r);
          best = Math.min(best, (performance.now() - t0) / (3 * list.length));
        }
        lookups[name] = Math.round(best * 1e6) / 1e3; // µs
      };
      time('clusterMatcher(remote) [inCluster]', decoded, (r) => inCluster(r.remote.addr));
      time('HostAddresses.has(remote)', decoded, (r) => withKube.hosts.has(r.remote.addr));
      time('ProcessInfoCache.get', decoded, (r) => withKube.processes.get(r.local.pid, r.local.comm));
      time('DnsNameCache.lookup', decoded, (r) => withKube.names.lookup(r.local.netns, r.remote.addr, 0));
      time('ClusterIndex.byAddress(local)', decoded, (r) => ix.byAddress(r.local.addr));
      time('ClusterIndex.byAddress(remote reached)', decoded, (r) => ix.byAddress(r.remote.reached?.addr ?? r.remote.addr));
      time('ClusterIndex.zoneOf', decoded, (r) => ix.zoneOf(THIS_NODE) ?? r);
      time('recordEnds', enriched, (r) => recordEnds(r, r.direction === 'outbound'));
      const table = new EdgeTable(undefined, maxEdges);
      time('EdgeTable.add (enriched record)', enriched, (r) => table.add(r));
    }

    void last;
    void sinkCount;
    process.stdout.write(
      JSON.stringify(
        {
          bench: 'pipeline',
          node: process.version,
          cpu: readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown',
          affinity: readFileSync('/proc/self/status', 'utf8').match(/Cpus_allowed_list:\s*(\S+)/)?.[1],
          otherCpuCores,
          config: { recordsPerRep: recordsPerRun, reps, warmupRecords: warmBatches * perBatch, flows, perBatch, poolRecords: pool.length * perBatch, maxEdges, dnsNames },
          cluster: { ...cluster.index.counts, localPods: cluster.localPods.length, thisNode: THIS_NODE },
          host: { pids: host.processes, cgroupId: host.cgroupId, cgroupPath: host.cgroupPath, cgroupRoot: host.cgroupRoot },
          results,
          /** from the CPU-time medians */
          usPerRecordAddedBy: {
            names: delta('decode', 'decode+names'),
            enrichWithoutK8s: delta('decode+names', 'decode+names+enrich(no k8s)'),
            k8s: delta('decode+names+enrich(no k8s)', 'decode+enrich'),
            aggregate: delta('decode+enrich', 'full'),
          },
          fullPath: { edges: lastEdges, overflowed: lastOverflow },
          usPerLookup: lookups,
          sample,
          caches: {
            process: withKube.processes.stats,
            processEntries: withKube.processes.size,
            cgroup: withKube.cgroups.stats,
            enricher: withKube.enricher.stats,
            hostAddresses: withKube.hosts.size,
            dnsNames: withKube.names.size,
          },
          memory: {
            rssMB: mb(memBefore.rss),
            heapUsedMB: mb(memBefore.heapUsed),
            heapTotalMB: mb(memBefore.heapTotal),
            externalMB: mb(memBefore.external),
            afterGc: (globalThis as { gc?: unknown }).gc ? { rssMB: mb(memAfterGc.rss), heapUsedMB: mb(memAfterGc.heapUsed) } : 'run with --expose-gc',
          },
        },
        null,
        2,
      ) + '\n',
    );
  } finally {
    stopHost(host);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e: unknown) => {
    process.stderr.write(`pipeline: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}
