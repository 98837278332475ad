/**
 * A real container runtime for the tests: Debian's docker.io (Docker 20.10
 * with its containerd and runc), cgroupfs driver, on a daemon of the tests'
 * own: its own data root, exec root, pid file, socket and bridge, no
 * iptables rules and no forwarding switched on, so that it shares nothing
 * with any other dockerd on the machine.
 *
 * One test process at a time uses it: start() waits for a machine-wide lock
 * (flock(1) on LOCK_FILE, held by a child process that dies with the test
 * process, so a crashed test never leaves it held), stop() lets it go. Test
 * runs of several checkouts on one machine so never share a daemon, a
 * bridge address or an image tag at the same moment. A daemon already
 * running (the same socket answering: one a crashed test left) is used as
 * it is and left running; one started here is stopped by stop().
 *
 * Its runtime `bpfagent-caps` (oci-caps-runtime.py, copied next to the
 * socket) is runc adding capabilities that Docker 20.10 cannot name
 * (CAP_BPF, CAP_PERFMON): see capabilityFlags.
 *
 * No image registry is reachable: images are made from local root file
 * systems with `docker import` (see images below), and kept in the data
 * root, outside the git tree, from one run to the next.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, copyFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { sh } from './hosts.js';
import { REPO_ROOT } from './processes.js';
import { until } from './until.js';

/** Debian's docker.io, not any other client on PATH (its API version may not be the daemon's). */
export const DOCKER_CLI = '/usr/bin/docker';
const DOCKERD = '/usr/sbin/dockerd';
/** Caches kept between runs: the daemon's images, root file systems. */
export const TEST_CACHE = '/var/cache/bpfagent-test';
/**
 * Bumped when the daemon's options change, so that a daemon started by older
 * test code (with other options) is never taken for this one: it names the
 * run directory, the data root and the bridge.
 */
const DAEMON_GENERATION = 2;
const RUN_DIR = `/run/bpfagent-test-docker.${DAEMON_GENERATION}`;
const SOCKET = `${RUN_DIR}/docker.sock`;
const DATA_ROOT = `${TEST_CACHE}/docker.${DAEMON_GENERATION}`;
/** Held by one test process at a time (see the top of this file). */
const LOCK_FILE = `${TEST_CACHE}/docker.lock`;
const LOCK_WAIT_S = 1200;
/** The daemon's bridge and its address; containers get 10.252.0.2 onwards. */
export const BRIDGE = `bpfagent-dk${DAEMON_GENERATION}`;
export const BRIDGE_ADDR = '10.252.0.1';
/** Every container a test makes carries this label, so that stop() can remove what a failed test left. */
export const TEST_LABEL = 'bpfagent-test=1';
/** The runtime that adds what Docker cannot name (oci-caps-runtime.py); its variable names the capabilities. */
export const CAPS_RUNTIME = 'bpfagent-caps';
const CAPS_RUNTIME_PATH = `${RUN_DIR}/oci-caps-runtime`;
const CAPS_RUNTIME_VAR = 'BPFAGENT_TEST_OCI_CAP_ADD';
/** Capabilities Docker 20.10's --cap-add refuses ("unknown capability"): newer than it. */
const UNNAMED_BY_DOCKER = new Set(['CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE']);

/**
 * `docker run` flags for a container with exactly `add` (Kubernetes names:
 * BPF, NET_ADMIN, ...) on top of nothing: --cap-drop ALL, --cap-add for what
 * Docker 20.10 can name, and the bpfagent-caps runtime for the rest.
 */
export function capabilityFlags(add: readonly string[]): string[] {
  const caps = add.map((c) => (c.startsWith('CAP_') ? c : `CAP_${c}`));
  const named = caps.filter((c) => !UNNAMED_BY_DOCKER.has(c));
  const unnamed = caps.filter((c) => UNNAMED_BY_DOCKER.has(c));
  return [
    '--cap-drop', 'ALL',
    ...named.flatMap((c) => ['--cap-add', c]),
    ...(unnamed.length ? ['--runtime', CAPS_RUNTIME, '--env', `${CAPS_RUNTIME_VAR}=${unnamed.join(',')}`] : []),
  ];
}

/** The machine-wide lock, held by a child flock(1) until release() or this process's end. */
async function takeLock(): Promise<() => void> {
  mkdirSync(TEST_CACHE, { recursive: true });
  const holder = spawn('flock', ['--exclusive', '--timeout', String(LOCK_WAIT_S), LOCK_FILE, 'sh', '-c', 'echo locked; exec cat'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: holder.stdout! });
  const got = await new Promise<boolean>((resolve) => {
    lines.once('line', () => resolve(true));
    holder.once('exit', () => resolve(false));
  });
  lines.close();
  if (!got) throw new Error(`the docker tests' lock ${LOCK_FILE} was not free within ${LOCK_WAIT_S} s (another test run holds it)`);
  // held while this process lives, without keeping it alive
  holder.unref();
  (holder.stdin as unknown as { unref(): void }).unref();
  (holder.stdout as unknown as { unref(): void }).unref();
  return () => holder.stdin!.end();
}

/** Why docker tests cannot run here, or undefined when they can. */
export function dockerMissing(): string | undefined {
  for (const f of [DOCKER_CLI, DOCKERD]) if (!existsSync(f)) return `${f} not found: run 'bash scripts/install.sh --test' (Debian's docker.io)`;
  return undefined;
}

/** The Debian package that installed `file`, or undefined. */
function debianPackageOf(file: string): string | undefined {
  try {
    return sh('dpkg-query', ['--search', file]).split(':')[0];
  } catch {
    return undefined;
  }
}

export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class Docker {
  private constructor(
    private readonly daemon: ChildProcess | undefined,
    private readonly madeBridge: boolean,
    private readonly release: () => void = () => {},
  ) {}

  readonly env = { ...process.env, DOCKER_HOST: `unix://${SOCKET}` };

  /** The tests' daemon, once this process holds the lock: the running one, or one started now (ready within 60 s). */
  static async start(): Promise<Docker> {
    const missing = dockerMissing();
    if (missing) throw new Error(missing);
    const release = await takeLock();
    try {
      return await Docker.startLocked(release);
    } catch (e) {
      release();
      throw e;
    }
  }

  private static async startLocked(release: () => void): Promise<Docker> {
    let madeBridge = false;
    if (!existsSync(`/sys/class/net/${BRIDGE}`)) {
      sh('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
      sh('ip', ['addr', 'add', `${BRIDGE_ADDR}/24`, 'dev', BRIDGE]);
      sh('ip', ['link', 'set', BRIDGE, 'up']);
      madeBridge = true;
    }
    mkdirSync(RUN_DIR, { recursive: true });
    copyFileSync(path.join(REPO_ROOT, 'test/helpers/oci-caps-runtime.py'), `${CAPS_RUNTIME_PATH}.tmp`);
    chmodSync(`${CAPS_RUNTIME_PATH}.tmp`, 0o755);
    renameSync(`${CAPS_RUNTIME_PATH}.tmp`, CAPS_RUNTIME_PATH);
    const probe = new Docker(undefined, false);
    if ((await probe.cli(['version', '--format', '{{.Server.Version}}'])).code === 0) return new Docker(undefined, madeBridge, release);
    mkdirSync(DATA_ROOT, { recursive: true });
    const log = openSync(`${RUN_DIR}/dockerd.log`, 'a');
    const daemon = spawn(
      DOCKERD,
      [
        `--data-root=${DATA_ROOT}`,
        `--exec-root=${RUN_DIR}/exec`,
        `--pidfile=${RUN_DIR}/dockerd.pid`,
        `--host=unix://${SOCKET}`,
        `--bridge=${BRIDGE}`,
        // nothing of the host's firewall or routing is touched
        '--iptables=false',
        '--ip-forward=false',
        '--ip-masq=false',
        '--userland-proxy=false',
        '--exec-opt=native.cgroupdriver=cgroupfs',
        `--add-runtime=${CAPS_RUNTIME}=${CAPS_RUNTIME_PATH}`,
      ],
      { stdio: ['ignore', log, log] },
    );
    const docker = new Docker(daemon, madeBridge, release);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (daemon.exitCode !== null) throw new Error(`dockerd exited (${daemon.exitCode}): see ${RUN_DIR}/dockerd.log`);
      if ((await docker.cli(['version', '--format', '{{.Server.Version}}'])).code === 0) return docker;
      if (Date.now() > deadline) {
        daemon.kill('SIGTERM');
        throw new Error(`dockerd did not answer on ${SOCKET} within 60 s: see ${RUN_DIR}/dockerd.log`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Run the docker client; never throws on a non-zero exit. */
  async cli(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<DockerResult> {
    return new Promise((resolve) => {
      const child = execFile(DOCKER_CLI, args, { env: this.env, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout, stderr });
      });
      if (opts.input !== undefined) child.stdin!.end(opts.input);
    });
  }

  /** Run the docker client; throws with its stderr on failure; its stdout, trimmed. */
  async must(args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
    const r = await this.cli(args, opts);
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}\n${r.stdout.slice(-3000)}`);
    return r.stdout.trim();
  }

  async hasImage(ref: string): Promise<boolean> {
    return (await this.cli(['image', 'inspect', ref])).code === 0;
  }

  /** `docker import` of a root file system directory as image `ref` (with `changes`, e.g. 'ENTRYPOINT [...]'). */
  async importDir(dir: string, ref: string, changes: string[] = []): Promise<void> {
    const tar = spawn('tar', ['-C', dir, '--numeric-owner', '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const args = ['import', ...changes.flatMap((c) => ['--change', c]), '-', ref];
    const imp = spawn(DOCKER_CLI, args, { env: this.env, stdio: [tar.stdout!, 'pipe', 'pipe'] });
    let err = '';
    imp.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => imp.on('exit', r));
    if (code !== 0) throw new Error(`docker import ${ref}: exit ${code}: ${err.trim()}`);
  }

  /**
   * A one-binary image: Debian's static busybox (busybox-static) as /bin/busybox with
   * its applets linked (sh, nc, head, ...). Enough for a container that makes one connection.
   */
  async busyboxImage(): Promise<string> {
    const ref = 'bpfagent-test/busybox:1';
    if (await this.hasImage(ref)) return ref;
    const busybox = '/bin/busybox';
    // busybox-static's own file (Debian's busybox package has a dynamically linked one there); dpkg is on every Debian
    if (!existsSync(busybox) || debianPackageOf(busybox) !== 'busybox-static')
      throw new Error(`${busybox} is not Debian's static busybox: run 'bash scripts/install.sh --test' (busybox-static)`);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfagent-test-busybox-'));
    try {
      for (const d of ['bin', 'tmp', 'proc', 'sys', 'dev', 'etc']) mkdirSync(path.join(dir, d));
      copyFileSync(busybox, path.join(dir, 'bin/busybox'));
      chmodSync(path.join(dir, 'bin/busybox'), 0o755);
      await this.importDir(dir, ref, ['ENV PATH=/bin', 'ENTRYPOINT ["/bin/busybox"]']);
      // applets as links, made by busybox itself inside the image
      const cid = await this.must(['create', '--label', TEST_LABEL, ref, '--install', '-s', '/bin']);
      await this.must(['start', '-a', cid]);
      await this.must(['commit', '--change', 'ENTRYPOINT []', '--change', 'CMD ["sh"]', cid, ref]);
      await this.must(['rm', cid]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return ref;
  }

  /** Remove every test container left, stop the daemon and remove the bridge if they were made here, let the lock go. */
  async stop(): Promise<void> {
    try {
      const left = (await this.cli(['ps', '-aq', '--filter', `label=${TEST_LABEL}`])).stdout.split('\n').filter(Boolean);
      if (left.length) await this.cli(['rm', '-f', ...left]);
      if (this.daemon && this.daemon.exitCode === null) {
        const exited = new Promise((r) => this.daemon!.once('exit', r));
        this.daemon.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
      }
      if (this.madeBridge && this.daemon) {
        try {
          sh('ip', ['link', 'del', BRIDGE]);
        } catch {
          // already gone
        }
      }
    } finally {
      this.release();
    }
  }
}

/** The cgroup v2 directory of a Docker container (cgroupfs driver: /docker/<id>) under the cgroup2 mount `root`. */
export function dockerCgroupDir(root: string, containerId: string): string {
  return `${root}/docker/${containerId}`;
}

/** The full id `docker run --cidfile FILE` wrote, once it has. */
export function readCidFile(file: string, timeoutMs = 30_000): Promise<string> {
  const id = (): string | undefined => {
    const text = existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
    return /^[0-9a-f]{64}$/.test(text) ? text : undefined;
  };
  return until(id, `a container id in ${file}`, timeoutMs, 20);
}
