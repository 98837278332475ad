/** Runs `bpfagent trace --json` for a test and collects its records. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { AGENT_JS } from './processes.js';
import { scaled } from './time-scale.js';
import { until } from './until.js';
import type { AgentRecord, DnsRecord, TcpRecord, UdpRecord } from '../../src/events/records.js';

export interface AgentExit {
  code: number | null;
  stderr: string;
  summary: Record<string, unknown> | undefined;
}

/**
 * A spawned bpfagent: collects its stderr; `ready` resolves with the first JSON
 * log line containing "ready" and rejects if the agent exits first.
 */
export class AgentProcess {
  stderr = '';
  readonly ready: Promise<Record<string, unknown>>;
  protected readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess, what: string) {
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code, signal) => {
        if (signal) this.stderr += `\n[agent killed by ${signal}]\n`;
        resolve(code);
      }),
    );
    this.ready = new Promise((resolve, reject) => {
      this.child.stderr!.on('data', (d: Buffer) => {
        const before = this.stderr.length;
        this.stderr += d.toString();
        for (const line of this.stderr.slice(before > 0 ? this.stderr.lastIndexOf('\n', before) + 1 : 0).split('\n')) {
          if (line.includes('ready')) {
            try {
              resolve(JSON.parse(line) as Record<string, unknown>);
            } catch {
              // partial line; the next chunk completes it
            }
          }
        }
      });
      void this.exited.then((code) => reject(new Error(`${what} exited (${code}) before ready:\n${this.stderr}`)));
    });
  }

  /** A signal, then the exit code, stderr and the parsed summary line. */
  async stop(signal: NodeJS.Signals = 'SIGINT'): Promise<AgentExit> {
    if (this.child.exitCode === null) this.child.kill(signal);
    const code = await this.exited;
    const summaryLine = this.stderr.split('\n').find((l) => l.includes('"summary:'));
    return { code, stderr: this.stderr, summary: summaryLine ? (JSON.parse(summaryLine) as Record<string, unknown>) : undefined };
  }
}

export class TraceAgent extends AgentProcess {
  /** every record, of every kind, in arrival order */
  readonly records: AgentRecord[] = [];
  /** ms timestamp at which each record arrived, parallel to `records` */
  readonly arrivals: number[] = [];
  private waiters: Array<() => void> = [];

  /** `command`: 'trace' (records) or 'flows' (edge lines, read them from `records` as EdgeLine); `env`: the agent's environment */
  constructor(args: string[] = [], command: 'trace' | 'flows' = 'trace', env: NodeJS.ProcessEnv = process.env) {
    super(spawn(process.execPath, [AGENT_JS, command, '--json', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env }), 'agent');
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.records.push(JSON.parse(line) as AgentRecord);
      this.arrivals.push(Date.now());
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** TCP records matching `pred`, waiting until at least `n` exist. */
  waitFor(pred: (r: TcpRecord) => boolean, n = 1, timeoutMs = 10_000): Promise<TcpRecord[]> {
    return this.waitForKind('tcp', pred, n, timeoutMs);
  }

  waitForDns(pred: (r: DnsRecord) => boolean, n = 1, timeoutMs = 10_000): Promise<DnsRecord[]> {
    return this.waitForKind('dns', pred, n, timeoutMs);
  }

  udp(pred: (r: UdpRecord) => boolean): UdpRecord[] {
    return this.records.filter((r): r is UdpRecord => r.proto === 'udp' && pred(r));
  }

  /** Wait until `check` holds of the records (e.g. UDP sums reach their totals); then return them. */
  until<T>(check: () => T | undefined, what: string, timeoutMs = 10_000): Promise<T> {
    return until(check, what, scaled(timeoutMs), 50);
  }

  private async waitForKind<T extends AgentRecord>(
    proto: T['proto'],
    pred: (r: T) => boolean,
    n: number,
    timeoutMs: number,
  ): Promise<T[]> {
    timeoutMs = scaled(timeoutMs);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.records.filter((r): r is T => r.proto === proto && pred(r as T));
      if (found.length >= n) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${n} matching records within ${timeoutMs} ms, got ${found.length}:\n${JSON.stringify(found, null, 1)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

}
