/** Runs `bpfagent run` for a test, with a configuration written to a temporary file, and a real Prometheus to scrape it. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AGENT_JS } from './processes.js';
import { scaled } from './time-scale.js';
import { AgentProcess, type AgentExit } from './agent.js';
import { freePort } from './listen.js';

/** Write `yaml` to a temporary file; returns its path. */
export function configFile(yaml: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-run-'));
  const f = path.join(dir, 'bpfagent.yaml');
  writeFileSync(f, yaml);
  return f;
}

/** freePort lives in listen.ts; the run tests import it from here. */
export { freePort };

/** Whether something accepts connections on 127.0.0.1:port. */
export function listening(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** `bpfagent run ...args` to its end (for configurations expected to fail): exit code, stdout, stderr. */
export function runOnce(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [AGENT_JS, 'run', ...args], { encoding: 'utf8', timeout: scaled(30_000), env: { ...process.env, ...env } });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `bpfagent run --config <temp file with yaml> ...args`; `ready` resolves with the ready line. */
export class RunAgent extends AgentProcess {
  readonly config: string;

  constructor(yaml: string, args: string[] = [], env: Record<string, string> = {}) {
    const config = configFile(yaml);
    super(
      spawn(process.execPath, [AGENT_JS, 'run', '--config', config, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }),
      'bpfagent run',
    );
    this.config = config;
    this.child.stdout!.on('data', (d: Buffer) => process.stderr.write(`[bpfagent run stdout] ${d}`));
  }

  /** http://host:port of the agent's listener, from the ready line. */
  async baseUrl(): Promise<string> {
    const r = await this.ready;
    return `http://${String(r.listen)}`;
  }

  async get(pathname: string): Promise<{ status: number; body: string }> {
    const res = await fetch((await this.baseUrl()) + pathname);
    return { status: res.status, body: await res.text() };
  }

  /** GET a JSON answer: its status and parsed body. */
  async getJson<T>(pathname: string): Promise<{ status: number; body: T }> {
    const r = await this.get(pathname);
    return { status: r.status, body: JSON.parse(r.body) as T };
  }

  /** Signal (SIGTERM by default), then the exit code, stderr and the parsed summary line. */
  override async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<AgentExit> {
    const exit = await super.stop(signal);
    rmSync(path.dirname(this.config), { recursive: true, force: true });
    return exit;
  }
}

export const PROMETHEUS_BIN = '/usr/bin/prometheus';

/** Debian's Prometheus server with its own storage and port, scraping `targets` every second. */
export class Prometheus {
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    private readonly dir: string,
    private readonly output: { text: string },
  ) {}

  static async start(targets: string[], timeoutMs = 20_000): Promise<Prometheus> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-prometheus-'));
    const config = path.join(dir, 'prometheus.yml');
    writeFileSync(
      config,
      [
        'global:',
        '  scrape_interval: 1s',
        '  scrape_timeout: 1s',
        'scrape_configs:',
        '  - job_name: bpfagent',
        '    static_configs:',
        `      - targets: [${targets.map((t) => JSON.stringify(t)).join(', ')}]`,
        '',
      ].join('\n'),
    );
    const port = await freePort();
    const child = spawn(
      PROMETHEUS_BIN,
      [`--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const output = { text: '' };
    child.stdout!.on('data', (d: Buffer) => (output.text += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output.text += d.toString()));
    const p = new Prometheus(child, `http://127.0.0.1:${port}`, dir, output);
    timeoutMs = scaled(timeoutMs);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}):\n${output.text}`);
      try {
        if ((await fetch(`${p.url}/-/ready`)).status === 200) return p;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await p.stop();
        throw new Error(`prometheus not ready within ${timeoutMs} ms:\n${output.text}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** An instant PromQL query: the result vector's samples, as labels and a number. */
  async query(promql: string): Promise<Array<{ metric: Record<string, string>; value: number }>> {
    const res = await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
    if (body.status !== 'success') throw new Error(`prometheus query ${promql}: ${body.error ?? res.status}`);
    return (body.data?.result ?? []).map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  }

  /** Query until `done` holds of the result (or time runs out, failing with the last result). */
  async until(promql: string, done: (r: Array<{ metric: Record<string, string>; value: number }>) => boolean, timeoutMs = 20_000) {
    timeoutMs = scaled(timeoutMs);
    const deadline = Date.now() + timeoutMs;
    let last: Array<{ metric: Record<string, string>; value: number }> = [];
    for (;;) {
      last = await this.query(promql);
      if (done(last)) return last;
      if (Date.now() > deadline) throw new Error(`timed out on ${promql}; last result ${JSON.stringify(last)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
