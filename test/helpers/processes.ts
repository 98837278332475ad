/**
 * Spawning test processes with a chosen command name (comm): a symlink to the
 * node binary named after the role, since the kernel takes comm from the
 * executed file's name.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, symlinkSync, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { scaled } from './time-scale.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const PEER_JS = path.join(REPO_ROOT, 'dist/test/helpers/peer.js');
export const AGENT_JS = path.join(REPO_ROOT, 'bin/bpfagent.js');

/** A compiled test helper program by name: 'udp-peer', 'dns-server', 'resolve-connect'. */
export const helperScript = (name: string): string => path.join(REPO_ROOT, `dist/test/helpers/${name}.js`);

/**
 * Process names of this run's own: `<prefix><role>-<tag>`, the tag this test
 * process's. An agent sees every process on the machine, and on a shared one
 * other runs of the same test (other checkouts) run peers at the same time;
 * a test that looks its traffic up by process name must not find theirs.
 */
export function runNames<R extends string>(prefix: string, roles: readonly R[]): Record<R, string> {
  return Object.fromEntries(roles.map((r) => [r, `${prefix}${r}-${RUN_TAG}`])) as Record<R, string>;
}

/** The tag of runNames: this test process's pid in base 36 (at most 3 characters). */
export const RUN_TAG = (process.pid % 46656).toString(36);

const binDir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-bin-'));

/** Path to the node binary under another name (<= 15 chars to survive comm truncation). */
export function nodeAs(comm: string): string {
  if (comm.length > 15) throw new Error(`comm ${comm} longer than 15 characters`);
  const p = path.join(binDir, comm);
  if (!existsSync(p)) symlinkSync(process.execPath, p);
  return p;
}

export interface PeerEvent {
  event: string;
  pid: number;
  [k: string]: unknown;
}

/** A running peer.js; `events` fills with its JSON lines. */
export class Peer {
  readonly child: ChildProcess;
  readonly events: PeerEvent[] = [];
  readonly exited: Promise<number | null>;
  private waiters: Array<() => void> = [];

  /**
   * `cgroup`: a cgroup v2 directory the process runs in from its first
   * instruction. A shell joins it, then execs (same pid) into `ip netns exec`,
   * because inside the namespace /sys is remounted and the cgroup tree is gone.
   */
  constructor(comm: string, args: string[], where: { netns?: string; cgroup?: string; script?: string } = {}) {
    // script 'python3' runs python with `args` (comm then is python3's own unless it renames itself)
    let cmd =
      where.script === 'python3'
        ? ['python3', ...args]
        : [nodeAs(comm), where.script ? helperScript(where.script) : PEER_JS, ...args];
    if (where.netns) cmd = ['ip', 'netns', 'exec', where.netns, ...cmd];
    if (where.cgroup) cmd = ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', where.cgroup, ...cmd];
    this.child = spawn(cmd[0]!, cmd.slice(1));
    this.child.stderr!.on('data', (d: Buffer) => process.stderr.write(`[${comm}] ${d}`));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.events.push(JSON.parse(line) as PeerEvent);
      for (const w of this.waiters.splice(0)) w();
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Wait for an event of that name (or one matching `pred`). */
  async waitFor(name: string, timeoutMs = 10_000, pred: (e: PeerEvent) => boolean = () => true): Promise<PeerEvent> {
    timeoutMs = scaled(timeoutMs);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find((e) => e.event === name && pred(e));
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`peer ${this.pid}: no '${name}' event within ${timeoutMs} ms; saw ${JSON.stringify(this.events)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** A line on the process's stdin (stream-peer's commands). */
  command(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}
