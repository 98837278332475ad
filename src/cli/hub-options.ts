/** `bpfagent hub` flags: `--config FILE` and one flag per common key (over the file and the environment). */
import { DEFAULT_LISTEN } from '../config/schema.js';
import { parseConfigArgs, type FlagTable, type RunArgs } from './run-options.js';

export const HUB_FLAGS: FlagTable = {
  listen: { path: ['listen'] },
  'metrics-listen': { path: ['metrics', 'listen'] },
  'log-level': { path: ['logLevel'] },
  'shutdown-timeout': { path: ['shutdownTimeout'] },
  'clickhouse-url': { path: ['hub', 'clickhouse', 'url'] },
  'clickhouse-database': { path: ['hub', 'clickhouse', 'database'] },
  'max-window': { path: ['hub', 'maxWindow'] },
};

export const HUB_HELP = `Usage: bpfagent hub [--config FILE] [options]

One service map for a whole fleet: read the ClickHouse tables every agent
('bpfagent run' with the ClickHouse sink) writes, and serve the same HTTP API
and web UI as an agent, for every cluster at once or one (?cluster=NAME).
A connection between two traced nodes is counted once, from the client's
side, with the server's side filling in what the client could not see.
Needs no privileges. Configuration: the 'hub:' section of the file (see
docs/run.md, docs/fleet.md), BPFAGENT_HUB_* variables, then these flags.
Access as for 'bpfagent run' ('server:'): beyond loopback the API needs a
bearer token, 'server.tokenFile' (docs/run.md, Access), or
'server.allowUnauthenticated: true'.

Options:
  --config FILE              YAML configuration file       (default: $BPFAGENT_CONFIG, else none)
  --listen HOST:PORT         HTTP address of the API and web UI  (default: ${DEFAULT_LISTEN})
  --metrics-listen HOST:PORT /metrics, /healthz, /readyz on their own listener (default: on --listen)
  --clickhouse-url URL       the agents' ClickHouse             (default: http://127.0.0.1:8123)
  --clickhouse-database DB   their database                     (default: bpfagent)
  --max-window DUR           the longest window asked for       (default: 24h)
  --log-level LEVEL          fatal | error | warn | info | debug | trace | silent (default: info)
  --shutdown-timeout DUR     longest wait for requests on SIGTERM/SIGINT (default: 10s)
  -h, --help                 show this help

HTTP: GET /api/graph, /api/edges/ID/connections, /api/external,
/api/localities, /api/callers?of=ID, /api/dependencies?of=ID, /api/cost,
/api/status (docs/api.md), each with ?cluster=NAME; / the web UI; /healthz;
/readyz (200 while ClickHouse answers); /metrics. ClickHouse down: 503 with
the reason. SIGTERM or SIGINT: stop listening, exit 0.
`;

export function parseHubArgs(argv: string[]): RunArgs | 'help' {
  return parseConfigArgs('hub', HUB_FLAGS, argv);
}
