import pino, { type Logger } from 'pino';

/** Structured logs on stderr, written synchronously so nothing is lost at exit. */
export function createLogger(level = process.env.BPFAGENT_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}
