/**
 * A real ClickHouse server for tests: Debian's `clickhouse-server` (18.16 on
 * Debian 12; `scripts/install.sh --test` installs it), or a newer
 * `clickhouse` binary named by BPFAGENT_CLICKHOUSE. It runs from a
 * temporary directory (config, data, logs) with only its HTTP interface, on
 * a free loopback port; stop() and restart() keep the data, for outage tests.
 * It starts in about a quarter of a second.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './listen.js';

/** The server binary and the arguments before `--config-file`. */
function findServer(): { bin: string; pre: string[] } | undefined {
  const env = process.env.BPFAGENT_CLICKHOUSE;
  if (env) return { bin: env, pre: path.basename(env) === 'clickhouse' ? ['server'] : [] };
  for (const bin of ['/usr/sbin/clickhouse-server', '/usr/bin/clickhouse-server']) if (existsSync(bin)) return { bin, pre: [] };
  if (existsSync('/usr/bin/clickhouse')) return { bin: '/usr/bin/clickhouse', pre: ['server'] };
  return undefined;
}

export const CLICKHOUSE_SERVER = findServer();

/**
 * Tests that need a ClickHouse server skip without one, except under
 * CI=true, where they run and fail: CI must never pass by skipping them.
 */
export const CLICKHOUSE_SKIP: string | false =
  CLICKHOUSE_SERVER || process.env.CI === 'true' ? false : 'no clickhouse-server (bash scripts/install.sh --test installs it)';

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

export class ClickHouseServer {
  private child: ChildProcess | undefined;
  private queryLog = false;
  private exited: Promise<void> = Promise.resolve();
  private stderr = '';

  private constructor(
    readonly dir: string,
    readonly port: number,
    /** addresses it listens on besides 127.0.0.1 (one of this host's, e.g. a test network's) */
    readonly extraHosts: readonly string[] = [],
  ) {}

  /** The HTTP interface, e.g. http://127.0.0.1:41234 */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** `listenHosts`: addresses of this host to listen on besides 127.0.0.1 (network namespaces reach it there) */
  /** `queryLog`: keep system.query_log (each query's memory, for benchmarks) */
  static async start(opts: { listenHosts?: string[]; queryLog?: boolean } = {}): Promise<ClickHouseServer> {
    if (!CLICKHOUSE_SERVER) throw new Error('no ClickHouse server binary: install clickhouse-server (bash scripts/install.sh --test)');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-clickhouse-'));
    const s = new ClickHouseServer(dir, await freePort(), opts.listenHosts ?? []);
    s.queryLog = opts.queryLog ?? false;
    s.writeConfig();
    await s.launch();
    return s;
  }

  private writeConfig(): void {
    const d = this.dir;
    for (const sub of ['data', 'tmp', 'user_files', 'format_schemas', 'log']) mkdirSync(path.join(d, sub), { recursive: true });
    // <yandex> is the root 18.16 knows; current releases still accept it.
    // Only the HTTP port: no native TCP, interserver or MySQL ports to clash.
    writeFileSync(
      path.join(d, 'config.xml'),
      `<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>${d}/log/server.log</log><errorlog>${d}/log/error.log</errorlog><size>10M</size><count>1</count><console>0</console></logger>
  <http_port>${this.port}</http_port>
  ${['127.0.0.1', ...this.extraHosts].map((h) => `<listen_host>${h}</listen_host>`).join('')}
  <path>${d}/data/</path>
  <tmp_path>${d}/tmp/</tmp_path>
  <user_files_path>${d}/user_files/</user_files_path>
  <format_schema_path>${d}/format_schemas/</format_schema_path>
  <users_config>${d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <mlock_executable>false</mlock_executable>${this.queryLog ? '\n  <query_log><database>system</database><table>query_log</table><flush_interval_milliseconds>1000</flush_interval_milliseconds></query_log>' : ''}
</yandex>
`,
    );
    writeFileSync(
      path.join(d, 'users.xml'),
      `<?xml version="1.0"?>
<yandex>
  <profiles><default></default><readonly><readonly>1</readonly></readonly></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip>${this.extraHosts.map((h) => `<ip>${h.replace(/\.\d+$/, '.0')}/24</ip>`).join('')}</networks><profile>default</profile><quota>default</quota></default>
    <agent><password>s3cret</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></agent>
    <reader><password></password><networks><ip>127.0.0.1</ip></networks><profile>readonly</profile><quota>default</quota></reader>
  </users>
  <quotas><default></default></quotas>
</yandex>
`,
    );
  }

  private async launch(): Promise<void> {
    const { bin, pre } = CLICKHOUSE_SERVER!;
    this.stderr = '';
    const child = spawn(bin, [...pre, `--config-file=${path.join(this.dir, 'config.xml')}`], { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (b: Buffer) => {
      this.stderr = (this.stderr + b.toString()).slice(-4000);
    });
    this.child = child;
    running.add(child);
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        running.delete(child);
        if (this.child === child) this.child = undefined;
        resolve();
      }),
    );
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (!this.child) throw new Error(`clickhouse-server exited at start: ${this.stderr.trim()}`);
      try {
        if ((await this.query('SELECT 1')).trim() === '1') return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`clickhouse-server did not answer on ${this.url} within 30 s: ${this.stderr.trim()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Run SQL over HTTP; the answer's text (TabSeparated unless the SQL says FORMAT). */
  async query(sql: string): Promise<string> {
    const res = await fetch(`${this.url}/`, { method: 'POST', body: sql, headers: { connection: 'close' }, signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    if (!res.ok) throw new Error(`ClickHouse ${res.status}: ${text.trim()}`);
    return text;
  }

  /** Rows of a SELECT, as objects (JSONEachRow). */
  async rows<T = Record<string, unknown>>(sql: string): Promise<T[]> {
    const text = await this.query(`${sql} FORMAT JSONEachRow`);
    return text
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as T);
  }

  /**
   * Stop the server (SIGTERM, SIGKILL after `graceMs`); its data stays.
   * 18.16 waits for open keep-alive connections before it exits, so a busy
   * client keeps it up for the whole grace; an insert it acknowledged is on
   * disk either way.
   */
  async stop(graceMs = 3_000): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }

  /** Start it again on the same port and data. */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /** Kill the server and remove its directory. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child) {
      child.kill('SIGKILL');
      await this.exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
