/**
 * `bpfagent trace`: attach the TCP probes and print one record per finished
 * connection. stdout carries records only; logs go to stderr.
 */
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import type { Logger } from 'pino';
import { ensureTracefs, probeKernelFeatures, requireBaseFeatures } from '../bpf/features.js';
import { loadNative, PROJECT_ROOT, type BpfNative } from '../bpf/native.js';
import { TcpTracer } from '../bpf/tcp-tracer.js';
import { decodeBatch, type DecodeStats, type TcpRecord } from '../events/tcp-record.js';
import { formatJsonLines } from '../output/jsonl.js';
import { formatTableRows, tableHeader } from '../output/table.js';
import { effectiveCapabilities, missingTracingCapabilities } from '../util/capabilities.js';
import { MonotonicClock } from '../util/clock.js';
import { EnvironmentError } from '../util/errors.js';
import type { TraceOptions } from './trace-options.js';

export const DEFAULT_BTF = '/sys/kernel/btf/vmlinux';
export const TCP_OBJECT = path.join(PROJECT_ROOT, 'build-bpf/tcp.bpf.o');

/** Fail early, in one line, when privileges are short. */
export function checkPrivileges(): void {
  const missing = missingTracingCapabilities(effectiveCapabilities());
  if (missing.length)
    throw new EnvironmentError(
      `missing capabilities ${missing.join(', ')}: run as root, or grant them (setcap cap_bpf,cap_perfmon+ep on the node binary)`,
    );
}

export async function runTrace(opts: TraceOptions, log: Logger): Promise<number> {
  checkPrivileges();
  const native: BpfNative = loadNative();
  native.setDebug(opts.debug);
  const tracefs = ensureTracefs(native);
  const features = probeKernelFeatures(native, opts.btf ?? DEFAULT_BTF, tracefs);
  requireBaseFeatures(features);
  if (!features.acceptTracepoints.available)
    log.warn(`${features.acceptTracepoints.reason}: accepted connections are attributed to the listening process`);

  const clock = new MonotonicClock();
  const stats: DecodeStats = { records: 0, decodeErrors: 0 };
  const out = process.stdout;
  let outputBroken = false;
  const format = opts.json ? formatJsonLines : formatTableRows;

  const pending: TcpRecord[] = [];
  const onBatch = (batch: Buffer): void => {
    decodeBatch(batch, clock, stats, (r) => pending.push(r));
    if (!pending.length || outputBroken) return;
    out.write(format(pending));
    pending.length = 0;
  };

  const tracer = TcpTracer.start(native, features, {
    objectPath: TCP_OBJECT,
    btfPath: opts.btf,
    mode: opts.attach,
    maxConnections: opts.maxConnections,
    ringbufBytes: opts.ringbufBytes,
    pollMs: opts.pollMs,
    onBatch,
    onFallback: (mode, reason) => log.info({ mode, reason }, `attach mode ${mode} passed over`),
  });
  if (!opts.json) out.write(tableHeader());
  log.info(
    { attach: tracer.mode, programs: tracer.programs, startupMs: Math.round(performance.now()) },
    `ready: TCP probes attached (${tracer.mode})`,
  );

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (why: string): Promise<void> => {
      if (stopping) return;
      stopping = true;
      log.info(`stopping (${why})`);
      const counters = await tracer.stop();
      tracer.close();
      const lost = counters.lossRingbufFull + counters.lossSockMapFull + stats.decodeErrors;
      log.info(
        { records: stats.records, decodeErrors: stats.decodeErrors, ...counters },
        `summary: ${stats.records} records; lost ${lost} (ring buffer full ${counters.lossRingbufFull}, ` +
          `connection map full ${counters.lossSockMapFull}, undecodable ${stats.decodeErrors}); ` +
          `${counters.untrackedClose} connections opened before start not reported`,
      );
      resolve(0);
    };
    process.once('SIGINT', () => void stop('SIGINT'));
    process.once('SIGTERM', () => void stop('SIGTERM'));
    out.on('error', (e: NodeJS.ErrnoException) => {
      // the reader went away (EPIPE): stop quietly instead of crashing
      outputBroken = true;
      void stop(`stdout ${e.code ?? e.message}`);
    });
  });
}
