/**
 * Test hosts: network namespaces joined by a veth pair, with IPv4 and IPv6
 * addresses, made by the test itself and removed afterwards. Also cgroup v2
 * directories for test "containers".
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmdirSync, statSync, existsSync, readFileSync, writeFileSync } from 'node:fs';

export function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
}

export interface Host {
  /** namespace name, usable with `ip netns exec` */
  ns: string;
  ipv4: string;
  ipv6: string;
  /** network namespace inode, as the agent reports it */
  netnsInode: number;
}

/** Two hosts A and B on one link: 10.<n>.0.1-2/24 and fd00:<n>::1-2/64. */
export class TestNetwork {
  readonly a: Host;
  readonly b: Host;

  constructor(readonly id: number) {
    const tag = `bpfa${process.pid % 10000}x${id}`;
    const a = `${tag}a`;
    const b = `${tag}b`;
    for (const ns of [a, b]) {
      sh('ip', ['netns', 'add', ns]);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    sh('ip', ['link', 'add', `${tag}va`, 'netns', a, 'type', 'veth', 'peer', 'name', `${tag}vb`, 'netns', b]);
    const octet = 200 + (id % 50);
    this.a = this.host(a, `${tag}va`, `10.${octet}.0.1`, `fd00:${octet}::1`);
    this.b = this.host(b, `${tag}vb`, `10.${octet}.0.2`, `fd00:${octet}::2`);
  }

  private host(ns: string, dev: string, ipv4: string, ipv6: string): Host {
    sh('ip', ['-n', ns, 'addr', 'add', `${ipv4}/24`, 'dev', dev]);
    sh('ip', ['-n', ns, '-6', 'addr', 'add', `${ipv6}/64`, 'dev', dev, 'nodad']);
    sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    return { ns, ipv4, ipv6, netnsInode: statSync(`/run/netns/${ns}`).ino };
  }

  /** Give a host one more address on its link (IPv4 /24 or IPv6 /64). */
  addAddress(host: Host, addr: string): void {
    const dev = host === this.a ? `${this.a.ns.slice(0, -1)}va` : `${this.b.ns.slice(0, -1)}vb`;
    sh('ip', ['-n', host.ns, ...(addr.includes(':') ? ['-6', 'addr', 'add', `${addr}/64`, 'dev', dev, 'nodad'] : ['addr', 'add', `${addr}/24`, 'dev', dev])]);
  }

  /** Run a command inside a host's namespace and return its output. */
  exec(host: Host, cmd: string[], input?: string): string {
    return sh('ip', ['netns', 'exec', host.ns, ...cmd], input);
  }

  destroy(): void {
    for (const ns of [this.a.ns, this.b.ns]) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        // already gone
      }
    }
  }
}

export const CGROUP2_ROOT = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'].find((d) =>
  existsSync(`${d}/cgroup.procs`) && existsSync(`${d}/cgroup.controllers`),
);

/** A cgroup v2 directory; `id` is its inode, which is the kernel's cgroup id. */
export class TestCgroup {
  readonly path: string;
  readonly id: number;

  constructor(name: string) {
    if (!CGROUP2_ROOT) throw new Error('no cgroup v2 hierarchy mounted (looked at /sys/fs/cgroup/unified and /sys/fs/cgroup)');
    this.path = `${CGROUP2_ROOT}/bpfagent-test-${process.pid}-${name}`;
    mkdirSync(this.path, { recursive: true });
    this.id = Number(statSync(this.path, { bigint: true }).ino);
  }

  destroy(): void {
    // move stragglers out first, or rmdir fails with EBUSY
    const procs = readFileSync(`${this.path}/cgroup.procs`, 'utf8').split('\n').filter(Boolean);
    for (const p of procs) {
      try {
        writeFileSync(`${CGROUP2_ROOT}/cgroup.procs`, p);
      } catch {
        // exited meanwhile
      }
    }
    try {
      rmdirSync(this.path);
    } catch {
      // busy: left for the next run; harmless
    }
  }
}

/**
 * Three hosts, routed: a client A and a server B, each on its own link to a
 * router N that forwards between them (like two pods and their node). Links
 * 10.<n>.1.0/24 (A .2, N .1) and 10.<n>.2.0/24 (B .2, N .1), n = 210 + id,
 * and fd00:<n>:1::/64, fd00:<n>:2::/64 likewise; A and B route everything
 * through N. Forwarding is switched on inside N only.
 */
export class RoutedNetwork {
  readonly a: Host;
  readonly n: Host;
  readonly b: Host;
  /** N's address on B's link */
  readonly nToB: { ipv4: string; ipv6: string };

  constructor(readonly id: number) {
    const tag = `bpfa${process.pid % 10000}r${id}`;
    const [a, n, b] = [`${tag}a`, `${tag}n`, `${tag}b`];
    for (const ns of [a, n, b]) {
      sh('ip', ['netns', 'add', ns]);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    sh('ip', ['link', 'add', `${tag}an`, 'netns', a, 'type', 'veth', 'peer', 'name', `${tag}na`, 'netns', n]);
    sh('ip', ['link', 'add', `${tag}bn`, 'netns', b, 'type', 'veth', 'peer', 'name', `${tag}nb`, 'netns', n]);
    const o = 210 + (id % 40);
    const addr = (ns: string, dev: string, ipv4: string, ipv6: string): Host => {
      sh('ip', ['-n', ns, 'addr', 'add', `${ipv4}/24`, 'dev', dev]);
      sh('ip', ['-n', ns, '-6', 'addr', 'add', `${ipv6}/64`, 'dev', dev, 'nodad']);
      sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
      return { ns, ipv4, ipv6, netnsInode: statSync(`/run/netns/${ns}`).ino };
    };
    this.n = addr(n, `${tag}na`, `10.${o}.1.1`, `fd00:${o}:1::1`);
    this.nToB = addr(n, `${tag}nb`, `10.${o}.2.1`, `fd00:${o}:2::1`);
    this.a = addr(a, `${tag}an`, `10.${o}.1.2`, `fd00:${o}:1::2`);
    this.b = addr(b, `${tag}bn`, `10.${o}.2.2`, `fd00:${o}:2::2`);
    for (const [host, via] of [[this.a, this.n], [this.b, this.nToB]] as const) {
      sh('ip', ['-n', host.ns, 'route', 'add', 'default', 'via', via.ipv4]);
      sh('ip', ['-n', host.ns, '-6', 'route', 'add', 'default', 'via', via.ipv6]);
    }
    this.exec(this.n, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  }

  /** Run a command inside a host's namespace and return its output. */
  exec(host: Host, cmd: string[], input?: string): string {
    return sh('ip', ['netns', 'exec', host.ns, ...cmd], input);
  }

  destroy(): void {
    for (const ns of [this.a.ns, this.n.ns, this.b.ns]) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        // already gone
      }
    }
  }
}
