import { parseArgs } from 'node:util';
import { ATTACH_MODES, type AttachMode } from '../bpf/tcp-tracer.js';
import { UDP_HOOK_NAMES, type UdpHook } from '../bpf/net-tracer.js';
import { parseCidrs } from '../enrich/locality.js';
import { UsageError } from '../util/errors.js';
import { parseDurationMs, parseSizeBytes } from '../util/units.js';

export interface TraceOptions {
  json: boolean;
  attach: AttachMode | 'auto';
  btf: string | null;
  maxConnections: number;
  ringbufBytes: number;
  pollMs: number;
  /** UDP flow reporting period */
  intervalMs: number;
  maxUdpFlows: number;
  /** entries of each DNAT map (connections' real destinations, forwarded SYNs) */
  maxNatEntries: number;
  /** where UDP is counted: by feature probes, or one variant */
  udpHook: UdpHook | 'auto';
  debug: boolean;
  /** Kubernetes credentials: a kubeconfig file; otherwise KUBECONFIG or in-cluster, else Kubernetes is off */
  kubeconfig: string | undefined;
  /** this node's name in Kubernetes (default: $NODE_NAME, else the host name) */
  nodeName: string | undefined;
  /** pod and service ranges: addresses in them are never "external" */
  clusterCidrs: string[];
  /** what is watched in Kubernetes: what this node needs, or the whole cluster */
  kubeWatch: 'node' | 'cluster';
}

export const TRACE_HELP = `Usage: bpfagent trace [options]

Print every finished TCP connection and failed attempt, every UDP flow (each
interval) and every DNS lookup on this host, in every network namespace.
Remote addresses carry the DNS name a local client looked up for them.
Needs root (CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN).

Options:
  --json                  one JSON object per line on stdout (see README, "Output contract")
  --attach MODE           auto | tp_btf | raw_tp | tracepoint          (default: auto)
  --btf FILE              kernel BTF for CO-RE                (default: /sys/kernel/btf/vmlinux)
  --max-connections N     connections tracked at once; beyond it they are counted as lost
                                                                         (default: 65536)
  --ringbuf-size SIZE     kernel-to-agent ring buffer, a power of two >= 4k, e.g. 8M
                                                                         (default: 8M)
  --poll-interval DUR     longest delay before a TCP or DNS record is printed (default: 100ms)
  --interval DUR          UDP flows are reported each interval in which they had traffic,
                          with that interval's counts, e.g. 500ms, 1s, 10s     (default: 10s)
  --max-udp-flows N       UDP flows tracked per interval; evictions are counted (default: 65536)
  --max-nat-entries N     DNAT destinations and forwarded SYNs held; evictions are counted
                                                                         (default: 16384)
  --udp-hook HOOK         auto | fexit | tp_btf | kprobe: where UDP is counted (default: auto)
  --kubeconfig FILE       Kubernetes credentials; default: $KUBECONFIG, else in-cluster
                          (service account), else Kubernetes metadata is off
  --node-name NAME        this node's Kubernetes name          (default: $NODE_NAME or host name)
  --kube-watch SCOPE      node: this node's pods, Services, EndpointSlices and Nodes (remote pods
                          behind no Service stay addresses); cluster: every pod, ReplicaSet and Job
                          of the cluster too                                  (default: node)
  --cluster-cidr CIDRS    pod and service ranges, comma-separated, e.g. 10.244.0.0/16,10.96.0.0/12:
                          addresses there count as "cluster", never "external"
  --debug                 print libbpf's messages on stderr
  -h, --help              show this help

Logs go to stderr; the line containing "ready" means every probe is attached.
SIGINT or SIGTERM prints what is queued, a loss summary on stderr, and exits 0.
`;

const DEFAULTS: TraceOptions = {
  json: false,
  attach: 'auto',
  btf: null,
  maxConnections: 65536,
  ringbufBytes: 8 * 1024 * 1024,
  pollMs: 100,
  intervalMs: 10_000,
  maxUdpFlows: 65536,
  maxNatEntries: 16384,
  udpHook: 'auto',
  debug: false,
  kubeconfig: undefined,
  nodeName: undefined,
  clusterCidrs: [],
  kubeWatch: 'node',
};

let command = 'trace';

function bad(option: string, value: string, expected: string): UsageError {
  return new UsageError(`${command}: invalid ${option} '${value}': expected ${expected}`);
}

/**
 * One line from node's parseArgs errors, which name the option
 * ("Unknown option '--x'") but can span several lines.
 */
function describeParseError(e: Error, argv: string[]): string {
  const first = e.message.split('\n')[0]!.replace(/\. To specify a positional argument.*$/, '').replace(/\.$/, '');
  const ambiguous = /^Option '(--[\w-]+)' argument is ambiguous/.exec(first);
  if (ambiguous) {
    // "--max-connections -5": the value looks like an option
    const option = ambiguous[1]!;
    const value = argv[argv.indexOf(option) + 1] ?? '';
    return `invalid ${option} '${value}': a value starting with '-' must be written ${option}=${value}`;
  }
  return first.charAt(0).toLowerCase() + first.slice(1);
}

/** A table size: a whole number from 16 to 16M. */
function count(option: string, s: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < 16 || n > 16_777_216) throw bad(option, s, 'a whole number from 16 to 16777216');
  return n;
}

/** Parse `bpfagent trace` (or `flows`, which takes the same options) arguments; 'help' when help was asked for. */
export function parseTraceArgs(argv: string[], commandName = 'trace'): TraceOptions | 'help' {
  command = commandName;
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        json: { type: 'boolean' },
        attach: { type: 'string' },
        btf: { type: 'string' },
        'max-connections': { type: 'string' },
        'ringbuf-size': { type: 'string' },
        'poll-interval': { type: 'string' },
        interval: { type: 'string' },
        'max-udp-flows': { type: 'string' },
        'max-nat-entries': { type: 'string' },
        'udp-hook': { type: 'string' },
        debug: { type: 'boolean' },
        kubeconfig: { type: 'string' },
        'node-name': { type: 'string' },
        'kube-watch': { type: 'string' },
        'cluster-cidr': { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    throw new UsageError(`${command}: ${describeParseError(e as Error, argv)}; see 'bpfagent ${command} --help'`);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  const opts: TraceOptions = { ...DEFAULTS, json: v.json ?? false, debug: v.debug ?? false, clusterCidrs: [] };

  if (v.attach !== undefined) {
    if (v.attach !== 'auto' && !(ATTACH_MODES as readonly string[]).includes(v.attach))
      throw bad('--attach', v.attach, `one of auto, ${ATTACH_MODES.join(', ')}`);
    opts.attach = v.attach as AttachMode | 'auto';
  }
  if (v['udp-hook'] !== undefined) {
    const h = v['udp-hook'];
    if (h !== 'auto' && !(UDP_HOOK_NAMES as readonly string[]).includes(h)) throw bad('--udp-hook', h, `one of auto, ${UDP_HOOK_NAMES.join(', ')}`);
    opts.udpHook = h as UdpHook | 'auto';
  }
  if (v.btf !== undefined) {
    if (!v.btf) throw bad('--btf', v.btf, 'a file path');
    opts.btf = v.btf;
  }
  if (v['max-connections'] !== undefined) opts.maxConnections = count('--max-connections', v['max-connections']);
  if (v['max-udp-flows'] !== undefined) opts.maxUdpFlows = count('--max-udp-flows', v['max-udp-flows']);
  if (v['max-nat-entries'] !== undefined) opts.maxNatEntries = count('--max-nat-entries', v['max-nat-entries']);
  if (v.interval !== undefined) {
    const s = v.interval;
    const n = parseDurationMs(s);
    if (n === undefined || n < 100 || n > 3_600_000) throw bad('--interval', s, 'a duration from 100ms to 1h, such as 10s');
    opts.intervalMs = Math.round(n);
  }
  if (v['ringbuf-size'] !== undefined) {
    const s = v['ringbuf-size'];
    const n = parseSizeBytes(s);
    if (n === undefined || n < 4096 || n > 1024 ** 3 || (n & (n - 1)) !== 0)
      throw bad('--ringbuf-size', s, 'a power of two from 4k to 1G, such as 8M');
    opts.ringbufBytes = n;
  }
  if (v.kubeconfig !== undefined) {
    if (!v.kubeconfig) throw bad('--kubeconfig', v.kubeconfig, 'a kubeconfig file path');
    opts.kubeconfig = v.kubeconfig;
  }
  if (v['node-name'] !== undefined) {
    if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(v['node-name'])) throw bad('--node-name', v['node-name'], 'a Kubernetes node name (lowercase letters, digits, - and .)');
    opts.nodeName = v['node-name'];
  }
  if (v['kube-watch'] !== undefined) {
    if (v['kube-watch'] !== 'node' && v['kube-watch'] !== 'cluster') throw bad('--kube-watch', v['kube-watch'], 'node or cluster');
    opts.kubeWatch = v['kube-watch'];
  }
  for (const list of v['cluster-cidr'] ?? []) {
    const cidrs = list.split(',').map((c) => c.trim()).filter(Boolean);
    try {
      parseCidrs(cidrs);
    } catch (e) {
      throw bad('--cluster-cidr', list, `CIDRs separated by commas: ${(e as Error).message}`);
    }
    opts.clusterCidrs.push(...cidrs);
  }
  if (v['poll-interval'] !== undefined) {
    const s = v['poll-interval'];
    const n = parseDurationMs(s);
    if (n === undefined || n < 1 || n > 5000) throw bad('--poll-interval', s, 'a duration from 1ms to 5s, such as 100ms');
    opts.pollMs = Math.round(n);
  }
  return opts;
}
