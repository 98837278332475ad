/**
 * The records bpfagent emits: the output contract of `trace --json`
 * (README, "Output contract"). One type per `proto`.
 */

export interface Endpoint {
  addr: string;
  port: number;
}

export interface RemoteEndpoint extends Endpoint {
  /** DNS name a local client looked up for this address, when one was seen */
  name?: string;
  /** where the connection really went, when a DNAT rule (e.g. kube-proxy for a ClusterIP) rewrote addr:port */
  reached?: Endpoint;
}

export interface LocalEndpoint extends Endpoint {
  pid: number;
  comm: string;
  cgroupId: number;
  /** network namespace inode */
  netns: number;
}

export interface TcpRecord {
  ts: string;
  proto: 'tcp';
  family: 4 | 6;
  direction: 'outbound' | 'inbound';
  outcome: 'closed' | 'reset' | 'refused' | 'timeout';
  local: LocalEndpoint;
  remote: RemoteEndpoint;
  bytesSent: number;
  bytesReceived: number;
  retransmits: number;
  srttUs: number;
  durationMs: number;
}

/** One UDP flow's traffic during one interval (sum a flow's records for its totals). */
export interface UdpRecord {
  ts: string;
  proto: 'udp';
  family: 4 | 6;
  local: LocalEndpoint;
  remote: RemoteEndpoint;
  packetsSent: number;
  packetsReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** length of the interval the counts cover */
  intervalMs: number;
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
