/**
 * The records bpfagent emits: the output contract of `trace --json`
 * (README, "Output contract"). One type per `proto`.
 */

export interface Endpoint {
  addr: string;
  port: number;
}

/** What Kubernetes knows of one end: the pod (and its workload, service, node, zone), a Service, or a node. */
export interface K8sInfo {
  namespace?: string;
  pod?: string;
  /** the pod's top owner: Deployment, StatefulSet, DaemonSet, CronJob, Job, ... or the pod itself */
  workload?: string;
  workloadKind?: string;
  service?: string;
  node?: string;
  zone?: string;
  /** the pod shares its node's network namespace (known by its cgroup, not its address) */
  hostNetwork?: boolean;
}

/**
 * Where the remote end is, seen from this host: on this host, in this zone, in
 * another zone, inside the cluster but of unknown zone, or outside every known
 * pod, service, node and cluster CIDR.
 */
export const LOCALITIES = ['same-host', 'same-zone', 'cross-zone', 'cluster', 'external'] as const;
export type Locality = (typeof LOCALITIES)[number];

export interface RemoteEndpoint extends Endpoint {
  /** DNS name a local client looked up for this address, when one was seen */
  name?: string;
  /** where the connection really went, when a DNAT rule (e.g. kube-proxy for a ClusterIP) rewrote addr:port */
  reached?: Endpoint;
  /** the Service dialled and/or the pod (or node) reached */
  k8s?: K8sInfo;
}

export interface LocalEndpoint extends Endpoint {
  pid: number;
  comm: string;
  cgroupId: number;
  /** network namespace inode */
  netns: number;
  /** the process's executable, when it was still running to be asked */
  exe?: string;
  /** container id (64 hex digits) from the cgroup path */
  containerId?: string;
  /** container runtime: docker, containerd, cri-o, podman */
  containerRuntime?: string;
  k8s?: K8sInfo;
}

/**
 * A TCP connection's record: the finished connection's or failed attempt's
 * (with its `outcome`, the last record), or one interval of a connection
 * still open (`state: 'open'`, no outcome). Counts are those since the
 * connection's previous record, so its records add up to its totals.
 */
export interface TcpRecord {
  ts: string;
  proto: 'tcp';
  family: 4 | 6;
  direction: 'outbound' | 'inbound';
  /** how it ended; absent while it is open */
  outcome?: 'closed' | 'reset' | 'refused' | 'timeout';
  /** 'open' on the records of a connection still open */
  state?: 'open';
  local: LocalEndpoint;
  remote: RemoteEndpoint;
  bytesSent: number;
  bytesReceived: number;
  retransmits: number;
  srttUs: number;
  durationMs: number;
  /** the connection was open before the agent started: bytes until then not counted, durationMs from the start */
  openedBeforeStart?: true;
  locality?: Locality;
}

/** One UDP flow's traffic during one interval (sum a flow's records for its totals). */
export interface UdpRecord {
  ts: string;
  proto: 'udp';
  family: 4 | 6;
  /** outbound: the local end is the client (see src/events/udp-direction.ts) */
  direction: 'outbound' | 'inbound';
  /** which rule decided `direction`: the flow's first datagram (its sender is the client), or, where that was not seen, the ports */
  directionFrom: 'first-datagram' | 'ports';
  local: LocalEndpoint;
  remote: RemoteEndpoint;
  packetsSent: number;
  packetsReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** length of the interval the counts cover */
  intervalMs: number;
  locality?: Locality;
}

export interface DnsAnswer {
  name: string;
  type: string;
  ttl: number;
  data: string;
}

/** One DNS lookup made by a local client: its query and the answer (if any). */
export interface DnsRecord {
  ts: string;
  proto: 'dns';
  /** the name asked */
  query: string;
  qtype: string;
  /** NOERROR, NXDOMAIN, SERVFAIL, ..., or TIMEOUT when no answer came */
  rcode: string;
  answers: DnsAnswer[];
  /** query to answer; null when unanswered */
  latencyMs: number | null;
  transport: 'udp' | 'tcp';
  local: LocalEndpoint;
  remote: Endpoint;
}

export type AgentRecord = TcpRecord | UdpRecord | DnsRecord;
