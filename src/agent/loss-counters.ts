/**
 * What "lost" means, once: every counter of something the agent saw happen
 * but could not report, or reported incompletely. The exit summary, the
 * metric bpfagent_events_lost_total{reason, side}, /api/status's `lost` and
 * the web UI all read this set, so they always agree. Each counter is a key
 * of Collector.stats(); add a counter here (and nowhere else) to make it a
 * loss everywhere.
 */

export interface LossCounter {
  /** its key in Collector.stats() */
  key: string;
  /** the `reason` label of bpfagent_events_lost_total, snake_case */
  reason: string;
  /** what was lost, for the metric's help, the API and the summary line */
  help: string;
  /** who counts it: the kernel programs, or the agent itself */
  side: 'kernel' | 'agent';
}

export const LOSS_COUNTERS: readonly LossCounter[] = [
  { key: 'lossRingbufFull', reason: 'ringbuf_full', side: 'kernel', help: 'TCP records that did not fit in the ring buffer' },
  { key: 'lossSockMapFull', reason: 'connection_map_full', side: 'kernel', help: 'TCP connections not tracked: the connection map was full' },
  { key: 'lossListenMapFull', reason: 'listener_map_full', side: 'kernel', help: 'listening sockets not remembered: their connections get no owner' },
  { key: 'lossListenGroupFull', reason: 'listener_group_full', side: 'kernel', help: 'listening sockets beyond 8 on one address and port: their connections are named after another' },
  { key: 'listenerUnresolved', reason: 'listener_unresolved', side: 'kernel', help: 'inbound connections of a SO_REUSEPORT group whose accepting socket was not found: named after the group\'s first member until an interval\'s pass finds the process holding them' },
  { key: 'lossDnatEvicted', reason: 'dnat_evicted', side: 'kernel', help: "TCP connections whose DNAT destination was evicted before they closed: remote.reached missing" },
  { key: 'fwdSynsEvicted', reason: 'forwarded_syn_evicted', side: 'kernel', help: 'forwarded SYNs evicted before their connection took them (most are other hosts\' connections on a router)' },
  { key: 'readerDropped', reason: 'reader_out_of_memory', side: 'agent', help: 'records read from the ring buffer and dropped for lack of memory' },
  { key: 'decodeErrors', reason: 'decode_error', side: 'agent', help: 'records that could not be decoded' },
  { key: 'deltaClamped', reason: 'tcp_count_clamped', side: 'kernel', help: 'TCP connections whose counts at close were below what their open records had carried (read mid-update): their records add up to a little more' },
  { key: 'tcpOpenReadErrors', reason: 'open_connections_unread', side: 'agent', help: 'intervals whose open-connection records could not be read (their bytes come in later records)' },
  { key: 'udpEvicted', reason: 'udp_flow_evicted', side: 'kernel', help: 'UDP flows evicted from the flow table before they were read' },
  { key: 'udpDirectionsForgotten', reason: 'udp_direction_forgotten', side: 'agent', help: 'UDP flows whose direction was forgotten to stay within --max-udp-flows: seen again, decided by that interval\'s first datagram' },
  { key: 'lossDnsRingbufFull', reason: 'dns_ringbuf_full', side: 'kernel', help: 'DNS packets that did not fit in the ring buffer' },
  { key: 'dnsTruncated', reason: 'dns_truncated', side: 'kernel', help: 'DNS packets longer than the 1536 bytes captured' },
  { key: 'dnsMalformed', reason: 'dns_malformed', side: 'agent', help: 'DNS packets that could not be parsed' },
  { key: 'lossCgroupRingbufFull', reason: 'cgroup_ringbuf_full', side: 'kernel', help: 'reports of cgroups made that did not fit in the ring buffer: a container gone before its records are read names no container' },
  { key: 'cgroupPathsTruncated', reason: 'cgroup_path_truncated', side: 'kernel', help: 'reports of cgroups made whose path was longer than the 511 bytes captured: named from /proc or a walk of the tree instead, if still there' },
  { key: 'dnsPendingDropped', reason: 'dns_query_unanswered_dropped', side: 'agent', help: 'DNS queries dropped while awaiting their answer (too many pending)' },
  { key: 'pipelineErrors', reason: 'pipeline_exception', side: 'agent', help: 'exceptions caught in the per-batch path: what the stage did for that batch (one record, for decoding) is missing; by stage in bpfagent_pipeline_errors_total' },
];

/** Each loss counter with its value (those the stats do not have are 0). */
export function lossValues(stats: Readonly<Record<string, number>>): Array<LossCounter & { value: number }> {
  return LOSS_COUNTERS.map((c) => ({ ...c, value: stats[c.key] ?? 0 }));
}

/** Everything lost, summed. */
export function lostTotal(stats: Readonly<Record<string, number>>): number {
  return LOSS_COUNTERS.reduce((n, c) => n + (stats[c.key] ?? 0), 0);
}

/** /api/status's `lost`: the total and each reason's count. */
export function lossStatus(stats: Readonly<Record<string, number>>): { total: number; reasons: Record<string, number> } {
  return { total: lostTotal(stats), reasons: Object.fromEntries(lossValues(stats).map((c) => [c.reason, c.value])) };
}

/** For the summary line: "N (reason a, reason b 3, ...)", every reason named. */
export function describeLosses(stats: Readonly<Record<string, number>>): string {
  return `${lostTotal(stats)} (${lossValues(stats).map((c) => `${c.reason.replace(/_/g, ' ')} ${c.value}`).join(', ')})`;
}
