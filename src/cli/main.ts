#!/usr/bin/env node
/** The `bpfagent` command: dispatch to a subcommand, turn errors into one line and an exit code. */
import { createLogger } from '../util/log.js';
import { UsageError } from '../util/errors.js';
import { parseTraceArgs, TRACE_HELP } from './trace-options.js';

const HELP = `Usage: bpfagent <command> [options]

Commands:
  trace     print every TCP connection, UDP flow and DNS lookup on this host
  flows     print them aggregated into edges (who calls whom), each interval
  run       run as a service: Prometheus metrics, health endpoints, sinks (--config FILE)
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
      const { runTrace } = await import('./trace.js');
      return runTrace(opts, createLogger());
    }
    case 'flows': {
      const opts = parseTraceArgs(rest, 'flows');
      const { runFlows, FLOWS_HELP } = await import('./flows.js');
      if (opts === 'help') {
        process.stdout.write(FLOWS_HELP);
        return 0;
      }
      return runFlows(opts, createLogger());
    }
    case 'run': {
      const { parseRunArgs, RUN_HELP } = await import('./run-options.js');
      const args = parseRunArgs(rest);
      if (args === 'help') {
        process.stdout.write(RUN_HELP);
        return 0;
      }
      // the whole configuration is checked before anything starts
      const { loadConfig } = await import('../config/load.js');
      const loaded = loadConfig({ file: args.configFile, env: process.env, flags: args.flags });
      const log = createLogger(loaded.config.logLevel);
      if (loaded.file || Object.keys(loaded.overrides).length) log.info({ file: loaded.file, overrides: loaded.overrides }, 'configuration loaded');
      const { runAgent } = await import('./run.js');
      return runAgent(loaded.config, log);
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return 0;
    default:
      throw new UsageError(`unknown command '${command}'; commands: trace, flows, run, help`);
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
