#!/usr/bin/env node
/** The `bpfagent` command: dispatch to a subcommand, turn errors into one line and an exit code. */
import { UsageError } from '../util/errors.js';
import { parseTraceArgs, TRACE_HELP } from './trace-options.js';

/*
 * Only what parses the command line is imported up front: tracing commands
 * begin loading their kernel programs (on worker threads, see
 * src/bpf/probe-load.ts) before the logger and the rest of the agent are
 * imported, so that the two overlap.
 */
const logger = async () => (await import('../util/log.js')).createLogger;
const beginProbeLoad = async () => (await import('../bpf/probe-load.js')).beginProbeLoad;

const HELP = `Usage: bpfagent <command> [options]

Commands:
  trace     print every TCP connection, UDP flow and DNS lookup on this host
  flows     print them aggregated into edges (who calls whom), each interval
  run       run as a service: Prometheus metrics, health endpoints, sinks (--config FILE)
  hub       one service map for a fleet, over the ClickHouse tables the agents write
  help      show this help

Run 'bpfagent <command> --help' for a command's options.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'trace': {
      const opts = parseTraceArgs(rest);
      if (opts === 'help') {
        process.stdout.write(TRACE_HELP);
        return 0;
      }
      const probes = (await beginProbeLoad())(opts);
      const { runTrace } = await import('./trace.js');
      return runTrace(opts, (await logger())(), probes);
    }
    case 'flows': {
      const opts = parseTraceArgs(rest, 'flows');
      if (opts === 'help') {
        process.stdout.write((await import('./flows.js')).FLOWS_HELP);
        return 0;
      }
      const probes = (await beginProbeLoad())(opts);
      const { runFlows } = await import('./flows.js');
      return runFlows(opts, (await logger())(), probes);
    }
    case 'run': {
      const { parseRunArgs, RUN_HELP, collectorOptions } = await import('./run-options.js');
      const args = parseRunArgs(rest);
      if (args === 'help') {
        process.stdout.write(RUN_HELP);
        return 0;
      }
      // the whole configuration is checked before anything starts
      const { loadConfig } = await import('../config/load.js');
      const loaded = loadConfig({ file: args.configFile, env: process.env, flags: args.flags });
      // so is who may read the listener: one served to anyone is refused here (exit 2)
      const { runAccessPolicy } = await import('./run-access.js');
      const access = runAccessPolicy(loaded.config);
      // loaded (not attached) while the agent's modules are imported and its HTTP side starts
      const probes = (await beginProbeLoad())(collectorOptions(loaded.config));
      const log = (await logger())(loaded.config.logLevel);
      if (loaded.file || Object.keys(loaded.overrides).length) log.info({ file: loaded.file, overrides: loaded.overrides }, 'configuration loaded');
      const { runAgent } = await import('./run.js');
      return runAgent(loaded.config, log, { probes, access });
    }
    case 'hub': {
      const { parseHubArgs, HUB_HELP } = await import('./hub-options.js');
      const args = parseHubArgs(rest);
      if (args === 'help') {
        process.stdout.write(HUB_HELP);
        return 0;
      }
      const { loadConfig } = await import('../config/load.js');
      const loaded = loadConfig({ file: args.configFile, env: process.env, flags: args.flags });
      const log = (await logger())(loaded.config.logLevel);
      if (loaded.file || Object.keys(loaded.overrides).length) log.info({ file: loaded.file, overrides: loaded.overrides }, 'configuration loaded');
      const { runHub } = await import('./hub.js');
      return runHub(loaded.config, log);
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return 0;
    default:
      throw new UsageError(`unknown command '${command}'; commands: trace, flows, run, hub, help`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`bpfagent: ${e.message}\n`);
      process.exitCode = e.exitCode;
    } else {
      process.stderr.write(`bpfagent: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    }
  },
);
