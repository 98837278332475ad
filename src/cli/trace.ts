/**
 * `bpfagent trace`: one record per finished TCP connection, per UDP flow and
 * interval, and per DNS lookup. stdout carries records only; logs go to stderr.
 */
import type { Logger } from 'pino';
import { Collector, runUntilSignalled } from '../agent/collector.js';
import { checkPrivileges, type LoadedProbes } from '../bpf/probe-load.js';
import { startEnrichment } from '../agent/enrichment.js';
import { RecordWriter } from '../output/writer.js';
import type { TraceOptions } from './trace-options.js';

/** `probes`: their loading, begun by the caller before it imported this (see beginProbeLoad). */
export async function runTrace(opts: TraceOptions, log: Logger, probes?: Promise<LoadedProbes>): Promise<number> {
  checkPrivileges();
  const enrichment = await startEnrichment(opts, log);
  const writer = new RecordWriter(process.stdout, opts.json);
  const collector = new Collector(
    opts,
    log,
    (records) => {
      for (const r of records) writer.add(r);
      writer.flush();
    },
    enrichment.enricher,
  );
  // the reader went away (EPIPE): stop quietly instead of crashing
  const stdoutGone = new Promise<string>((resolve) =>
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      writer.markBroken();
      resolve(`stdout ${e.code ?? e.message}`);
    }),
  );
  const run = runUntilSignalled(collector, log, () => writer.flush(), stdoutGone, enrichment, probes, enrichment.synced);
  writer.header();
  return run;
}
