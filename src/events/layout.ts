/**
 * Byte layout of the structs in bpf/events.h, as the TypeScript side reads
 * them. test/unit/event-layout.test.ts compares every entry here with the BTF
 * of the compiled object, so a change to the C struct that is not mirrored
 * here fails the tests instead of silently corrupting records.
 */

export interface FieldLayout {
  offset: number;
  size: number;
}

/** One struct of bpf/events.h: its size and the fields the decoders read. */
export interface StructLayout {
  name: string;
  size: number;
  fields: Readonly<Record<string, FieldLayout>>;
}

export const EVENT_KIND = { TCP_CLOSE: 1, DNS: 2, TCP_OPEN: 3, CGROUP_MKDIR: 4 } as const;

export const TCP_CLOSE_EVENT = {
  name: 'tcp_close_event',
  size: 144,
  fields: {
    kind: { offset: 0, size: 1 },
    family: { offset: 1, size: 1 },
    direction: { offset: 2, size: 1 },
    outcome: { offset: 3, size: 1 },
    pid: { offset: 4, size: 4 },
    start_ns: { offset: 8, size: 8 },
    end_ns: { offset: 16, size: 8 },
    cgroup_id: { offset: 24, size: 8 },
    bytes_sent: { offset: 32, size: 8 },
    bytes_received: { offset: 40, size: 8 },
    retransmits: { offset: 48, size: 4 },
    srtt_us: { offset: 52, size: 4 },
    netns: { offset: 56, size: 4 },
    lport: { offset: 60, size: 2 },
    rport: { offset: 62, size: 2 },
    laddr: { offset: 64, size: 16 },
    raddr: { offset: 80, size: 16 },
    owner_source: { offset: 96, size: 1 },
    sk_err: { offset: 97, size: 1 },
    flags: { offset: 98, size: 1 },
    pad: { offset: 99, size: 5 },
    comm: { offset: 104, size: 16 },
    dnat_addr: { offset: 120, size: 16 },
    dnat_port: { offset: 136, size: 2 },
    dnat: { offset: 138, size: 1 },
    pad2: { offset: 139, size: 5 },
  },
} as const satisfies StructLayout;

/** enum bpfagent_counter, by slot. LOSS_* are records the agent failed to report. */
export const COUNTER_NAMES = [
  'lossRingbufFull',
  'lossSockMapFull',
  'lossListenMapFull',
  'untrackedClose',
  'eventsSubmitted',
  'lossListenGroupFull',
  'listenerUnresolved',
  'lossDnatEvicted',
  'fwdSynInserts',
  'fwdSynRemoved',
  'deltaClamped',
  'seededConnections',
  'openReports',
] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];

/** enum values of bpf/events.h, also checked against BTF. */
export const DIRECTION = { 1: 'outbound', 2: 'inbound' } as const;
export const OUTCOME = { 1: 'closed', 2: 'reset', 3: 'refused', 4: 'timeout' } as const;
export const OWNER_SOURCE = { 0: 'none', 1: 'connect', 2: 'close', 3: 'listener', 4: 'file' } as const;
/** enum bpfagent_tcp_flags */
export const TCP_FLAGS = { SEEDED: 1 } as const;

/** struct udp_flow_key: key of the in-kernel UDP flow tables. */
export const UDP_FLOW_KEY = {
  name: 'udp_flow_key',
  size: 48,
  fields: {
    netns: { offset: 0, size: 4 },
    pid: { offset: 4, size: 4 },
    lport: { offset: 8, size: 2 },
    rport: { offset: 10, size: 2 },
    family: { offset: 12, size: 1 },
    port_bound: { offset: 13, size: 1 },
    pad: { offset: 14, size: 2 },
    laddr: { offset: 16, size: 16 },
    raddr: { offset: 32, size: 16 },
  },
} as const satisfies StructLayout;

/** struct udp_flow_value: counters of one UDP flow. */
export const UDP_FLOW_VALUE = {
  name: 'udp_flow_value',
  size: 80,
  fields: {
    packets_sent: { offset: 0, size: 8 },
    bytes_sent: { offset: 8, size: 8 },
    packets_received: { offset: 16, size: 8 },
    bytes_received: { offset: 24, size: 8 },
    cgroup_id: { offset: 32, size: 8 },
    comm: { offset: 40, size: 16 },
    first_sent_ns: { offset: 56, size: 8 },
    first_received_ns: { offset: 64, size: 8 },
    seen_from_start: { offset: 72, size: 1 },
    pad: { offset: 73, size: 7 },
  },
} as const satisfies StructLayout;

/** struct udp_flow_cached: a flow counted in a CPU's cache. */
export const UDP_FLOW_CACHED = {
  name: 'udp_flow_cached',
  size: 136,
  fields: {
    key: { offset: 0, size: 48 },
    value: { offset: 48, size: 80 },
    used: { offset: 128, size: 4 },
    misses: { offset: 132, size: 4 },
  },
} as const satisfies StructLayout;

/** struct udp_flow_cache: one CPU's copy of the element of a per-CPU array udp_cache_N. */
export const UDP_FLOW_CACHE = {
  name: 'udp_flow_cache',
  size: 280,
  fields: {
    egress: { offset: 0, size: 136 },
    ingress: { offset: 136, size: 136 },
    busy: { offset: 272, size: 4 },
    table: { offset: 276, size: 4 },
  },
} as const satisfies StructLayout;

/** struct dns_event: a DNS message a local client sent or received. */
export const DNS_EVENT = {
  name: 'dns_event',
  size: 1624,
  fields: {
    kind: { offset: 0, size: 1 },
    family: { offset: 1, size: 1 },
    protocol: { offset: 2, size: 1 },
    direction: { offset: 3, size: 1 },
    pid: { offset: 4, size: 4 },
    ts_ns: { offset: 8, size: 8 },
    cgroup_id: { offset: 16, size: 8 },
    netns: { offset: 24, size: 4 },
    lport: { offset: 28, size: 2 },
    rport: { offset: 30, size: 2 },
    laddr: { offset: 32, size: 16 },
    raddr: { offset: 48, size: 16 },
    payload_len: { offset: 64, size: 2 },
    captured_len: { offset: 66, size: 2 },
    pad: { offset: 68, size: 4 },
    comm: { offset: 72, size: 16 },
    data: { offset: 88, size: 1536 },
  },
} as const satisfies StructLayout;

/** struct cgroup_mkdir_event: a cgroup v2 directory made, its id and path. */
export const CGROUP_MKDIR_EVENT = {
  name: 'cgroup_mkdir_event',
  size: 528,
  fields: {
    kind: { offset: 0, size: 1 },
    truncated: { offset: 1, size: 1 },
    path_len: { offset: 2, size: 2 },
    level: { offset: 4, size: 4 },
    cgroup_id: { offset: 8, size: 8 },
    path: { offset: 16, size: 512 },
  },
} as const satisfies StructLayout;

/** Every struct the decoders read, for the BTF layout test. */
export const STRUCT_LAYOUTS = [TCP_CLOSE_EVENT, UDP_FLOW_KEY, UDP_FLOW_VALUE, UDP_FLOW_CACHED, UDP_FLOW_CACHE, DNS_EVENT, CGROUP_MKDIR_EVENT] as const;

/** enum bpfagent_net_counter, by slot. */
export const NET_COUNTER_NAMES = [
  'lossDnsRingbufFull',
  'udpInserts0',
  'udpInserts1',
  'dnsEventsSubmitted',
  'dnsTruncated',
] as const;
export type NetCounterName = (typeof NET_COUNTER_NAMES)[number];

/** enum bpfagent_cgroup_counter, by slot. */
export const CGROUP_COUNTER_NAMES = ['lossCgroupRingbufFull', 'cgroupEventsSubmitted', 'cgroupPathsTruncated'] as const;
export type CgroupCounterName = (typeof CGROUP_COUNTER_NAMES)[number];

export const PACKET_DIRECTION = { EGRESS: 1, INGRESS: 2 } as const;
