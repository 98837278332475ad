/**
 * `bpfagent run` flags: `--config FILE` and one flag per common key, which
 * overrides the file and the environment. Values are checked with the
 * configuration (src/config), so a flag's error reads like a key's.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_LISTEN, type AgentConfig } from '../config/schema.js';
import type { FlagValue } from '../config/load.js';
import type { CollectorOptions } from '../agent/collector.js';
import { UsageError } from '../util/errors.js';

/** What the probes and the collector take from the configuration. */
export function collectorOptions(cfg: AgentConfig): CollectorOptions {
  return {
    attach: cfg.trace.attach,
    btf: cfg.trace.btf,
    maxConnections: cfg.trace.maxConnections,
    ringbufBytes: cfg.trace.ringbufSize,
    pollMs: cfg.trace.pollInterval,
    intervalMs: cfg.interval,
    maxUdpFlows: cfg.trace.maxUdpFlows,
    maxNatEntries: cfg.trace.maxNatEntries,
    udpHook: cfg.trace.udpHook,
    debug: cfg.trace.debug,
  };
}

/** flag -> the key path it sets */
export const RUN_FLAGS: Record<string, { path: string[]; boolean?: boolean; multiple?: boolean }> = {
  listen: { path: ['listen'] },
  'node-name': { path: ['nodeName'] },
  interval: { path: ['interval'] },
  'log-level': { path: ['logLevel'] },
  'shutdown-timeout': { path: ['shutdownTimeout'] },
  attach: { path: ['trace', 'attach'] },
  btf: { path: ['trace', 'btf'] },
  'max-connections': { path: ['trace', 'maxConnections'] },
  'ringbuf-size': { path: ['trace', 'ringbufSize'] },
  'poll-interval': { path: ['trace', 'pollInterval'] },
  'max-udp-flows': { path: ['trace', 'maxUdpFlows'] },
  'max-nat-entries': { path: ['trace', 'maxNatEntries'] },
  'udp-hook': { path: ['trace', 'udpHook'] },
  debug: { path: ['trace', 'debug'], boolean: true },
  cgroup: { path: ['trace', 'cgroup'] },
  kubeconfig: { path: ['kubernetes', 'kubeconfig'] },
  'cluster-cidr': { path: ['kubernetes', 'clusterCidrs'], multiple: true },
  'kube-watch': { path: ['kubernetes', 'watch'] },
  'max-edges': { path: ['flows', 'maxEdges'] },
  'max-series': { path: ['metrics', 'maxSeriesPerMetric'] },
  'metrics-listen': { path: ['metrics', 'listen'] },
};

export const RUN_HELP = `Usage: bpfagent run [--config FILE] [options]

Run the agent as a service: trace every TCP connection, UDP flow and DNS
lookup on this host, aggregate them into edges each interval, serve
Prometheus metrics, health and readiness over HTTP, and ship every record to
the configured sinks. Needs root (CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN).

Configuration comes from the YAML file, then BPFAGENT_* environment variables
(e.g. BPFAGENT_TRACE_MAX_CONNECTIONS for trace.maxConnections), then these
flags, each overriding the one before; every key has a default, so no file is
needed. Sinks are set up under 'sinks:' in the file (or BPFAGENT_SINKS_*
variables). See docs/run.md for every key.

Options:
  --config FILE           YAML configuration file                 (default: $BPFAGENT_CONFIG, else none)
  --listen HOST:PORT      HTTP address for /metrics, /healthz, /readyz  (default: ${DEFAULT_LISTEN})
  --node-name NAME        this node's name, in records and Kubernetes (default: $NODE_NAME or host name)
  --interval DUR          flow table and metrics period; UDP flows are read each interval (default: 10s)
  --log-level LEVEL       fatal | error | warn | info | debug | trace | silent  (default: info)
  --shutdown-timeout DUR  longest wait for the sinks to flush on SIGTERM/SIGINT  (default: 10s)
  --attach MODE           auto | tp_btf | raw_tp | tracepoint                  (default: auto)
  --btf FILE              kernel BTF for CO-RE                (default: /sys/kernel/btf/vmlinux)
  --max-connections N     connections tracked at once in the kernel            (default: 65536)
  --ringbuf-size SIZE     kernel-to-agent ring buffer, a power of two >= 4k    (default: 8M)
  --poll-interval DUR     longest a TCP or DNS record waits in the kernel      (default: 100ms)
  --max-udp-flows N       UDP flows tracked per interval; evictions are counted (default: 65536)
  --max-nat-entries N     DNAT destinations and forwarded SYNs held; evictions are counted (default: 16384)
  --udp-hook HOOK         auto | fexit | tp_btf | kprobe: where UDP is counted (default: auto)
  --debug                 print libbpf's messages on stderr
  --cgroup PATH           only the processes of this cgroup v2 subtree (default: every process)
  --kubeconfig FILE       Kubernetes credentials; default: $KUBECONFIG, else in-cluster, else off
  --cluster-cidr CIDRS    pod and service ranges, comma-separated or repeated
  --kube-watch SCOPE      node (this node's pods, Services, EndpointSlices, Nodes) or cluster (default: node)
  --max-edges N           edges held per interval; more go to one overflow edge (default: 10000)
  --max-series N          label sets per metric; more go to an "(overflow)" series (default: 2000)
  --metrics-listen HOST:PORT  /metrics, /healthz, /readyz on their own listener, without the API
                          and UI (default: none, /metrics on --listen)
  -h, --help              show this help

HTTP: GET /healthz (200 while the process runs), GET /readyz (200 once the
probes are attached and every sink is initialised, else 503), GET /metrics;
the service map's JSON API: GET /api/graph, /api/edges/ID/connections,
/api/external, /api/localities, /api/status (docs/api.md), over the
last hours kept under 'store:' (retention, dataDir for SQLite, bounds).
Beyond loopback the API needs a bearer token: 'server.tokenFile' (see
docs/run.md, Access). Logs are JSON lines on stderr; the line containing
"ready" means all is up.
SIGTERM or SIGINT: detach, drain, flush every sink (within --shutdown-timeout),
log a summary, exit 0. A bad configuration, flag or variable: one line naming
the key, the value and the form expected, exit 2, nothing started.
`;

export interface RunArgs {
  configFile: string | undefined;
  flags: FlagValue[];
}

export type FlagTable = Record<string, { path: string[]; boolean?: boolean; multiple?: boolean }>;

/** `bpfagent run` arguments; 'help' when help was asked for. Unknown flags are UsageErrors (exit 2). */
export function parseRunArgs(argv: string[]): RunArgs | 'help' {
  return parseConfigArgs('run', RUN_FLAGS, argv);
}

/** A command's `--config FILE` and its flags (each setting a configuration key); 'help' when asked for. */
export function parseConfigArgs(command: string, table: FlagTable, argv: string[]): RunArgs | 'help' {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {
    config: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  };
  for (const [flag, d] of Object.entries(table)) options[flag] = { type: d.boolean ? 'boolean' : 'string', ...(d.multiple ? { multiple: true } : {}) };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, strict: true, allowPositionals: false, options });
  } catch (e) {
    const first = (e as Error).message.split('\n')[0]!.replace(/\. To specify a positional argument.*$/, '').replace(/\.$/, '');
    const ambiguous = /^Option '(--[\w-]+)' argument is ambiguous/.exec(first);
    const text = ambiguous
      ? `invalid ${ambiguous[1]} '${argv[argv.indexOf(ambiguous[1]!) + 1] ?? ''}': a value starting with '-' must be written ${ambiguous[1]}=VALUE`
      : first.charAt(0).toLowerCase() + first.slice(1);
    throw new UsageError(`${command}: ${text}; see 'bpfagent ${command} --help'`);
  }
  const v = parsed.values as Record<string, string | boolean | string[] | undefined>;
  if (v.help) return 'help';
  const flags: FlagValue[] = [];
  for (const [flag, d] of Object.entries(table)) {
    const value = v[flag];
    if (value === undefined) continue;
    // --cluster-cidr a,b --cluster-cidr c: one list
    const joined = Array.isArray(value) ? value.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean) : value;
    flags.push({ flag: `--${flag}`, path: d.path, value: joined });
  }
  const configFile = v.config as string | undefined;
  if (configFile === '') throw new UsageError(`${command}: invalid --config '': expected a YAML file path`);
  return { configFile, flags };
}
