/** A long-lived TCP connection between two test hosts, driven by a test: stream-peer processes at both ends. */
import { execFileSync } from 'node:child_process';
import type { Host } from './hosts.js';
import path from 'node:path';
import { Peer, REPO_ROOT } from './processes.js';
import type { TcpRecord } from '../../src/events/records.js';

const LATER_PY = path.join(REPO_ROOT, 'test/helpers/stream-peer-later.py');

export class StreamPair {
  private sentByClient = 0;
  private sentByServer = 0;

  private constructor(
    readonly server: Peer,
    readonly client: Peer,
    /** the client's local port */
    readonly clientPort: number,
    readonly port: number,
    private readonly serverNs: string,
    private readonly clientNs: string,
  ) {}

  /**
   * Server (comm `ssrv-<tag>`) on `server`:port, client (`scli-<tag>`) on
   * `client`, connected. `acceptLater`: the server leaves the connection in
   * its accept queue until accept(). `whileConnecting` runs once the client
   * has begun to connect (its wait for the handshake is 30 s).
   */
  static async open(
    tag: string,
    server: Host,
    client: Host,
    port: number,
    family: 4 | 6 = 4,
    how: { acceptLater?: boolean; whileConnecting?: () => Promise<void> } = {},
  ): Promise<StreamPair> {
    const addr = family === 4 ? server.ipv4 : server.ipv6;
    const srv = how.acceptLater
      ? new Peer(`ssrv-${tag}`, [LATER_PY, `ssrv-${tag}`, addr, String(port)], { netns: server.ns, script: 'python3' })
      : new Peer(`ssrv-${tag}`, ['server', '--host', addr, '--port', String(port)], { netns: server.ns, script: 'stream-peer' });
    await srv.waitFor('listening', 30_000); // (python under the VM kernels' emulator can take over 10 s to start)
    const cli = new Peer(`scli-${tag}`, ['client', '--host', addr, '--port', String(port)], { netns: client.ns, script: 'stream-peer' });
    await how.whileConnecting?.();
    const { localPort } = await cli.waitFor('connected', 30_000);
    if (!how.acceptLater) await srv.waitFor('accepted');
    return new StreamPair(srv, cli, localPort as number, port, server.ns, client.ns);
  }

  /** (acceptLater) The server takes the connection from its accept queue. */
  async accept(): Promise<void> {
    this.server.command('accept');
    await this.server.waitFor('accepted');
  }

  /** The client sends `n` bytes without waiting for the server to read them (it may not have accepted yet). */
  async sendAhead(n: number): Promise<void> {
    this.client.command(`send ${n}`);
    const total = (this.sentByClient += n);
    await this.client.waitFor('sent', 15_000, (e) => e['total'] === total);
  }

  /**
   * Bytes not yet acknowledged by the peer on the socket with local port
   * `port` in `ns` (ss's Send-Q of an established socket).
   */
  private static unacked(ns: string, port: number): number {
    const out = execFileSync('ip', ['netns', 'exec', ns, 'ss', '-Htn', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
    return out.trim().split('\n').filter(Boolean).reduce((n, line) => n + Number(line.trim().split(/\s+/)[1] ?? 0), 0);
  }

  /**
   * Wait until both ends have the peer's acknowledgement of all they sent: a
   * sender's bytes count when acknowledged, and the ACK may trail the read.
   */
  async acked(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (StreamPair.unacked(this.serverNs, this.port) + StreamPair.unacked(this.clientNs, this.clientPort) > 0) {
      if (Date.now() > deadline) throw new Error(`stream pair ${this.port}: bytes still unacknowledged after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Move bytes both ways and wait until each side has read all of it and its sender has the acknowledgement. */
  async move(clientSends: number, serverSends: number): Promise<void> {
    if (clientSends) this.client.command(`send ${clientSends}`);
    if (serverSends) this.server.command(`send ${serverSends}`);
    this.sentByClient += clientSends;
    this.sentByServer += serverSends;
    const c = this.sentByClient;
    const s = this.sentByServer;
    if (clientSends) await this.server.waitFor('received', 15_000, (e) => e['total'] === c);
    if (serverSends) await this.client.waitFor('received', 15_000, (e) => e['total'] === s);
    await this.acked();
  }

  /** Orderly close from the client; both processes exit once closed. */
  async close(): Promise<void> {
    this.client.command('end');
    this.server.command('end');
    await Promise.all([this.client.waitFor('closed', 15_000), this.server.waitFor('closed', 15_000)]);
  }

  /** The client's records (outbound, its port and pid). */
  isClient = (r: TcpRecord): boolean =>
    r.direction === 'outbound' && r.local.port === this.clientPort && r.remote.port === this.port && r.local.pid === this.client.pid;

  /** The server's records (inbound, its port and pid). */
  isServer = (r: TcpRecord): boolean =>
    r.direction === 'inbound' && r.local.port === this.port && r.remote.port === this.clientPort && r.local.pid === this.server.pid;

  /** Either end's records, whatever pid they name (to check that none names another). */
  isEither = (r: TcpRecord): boolean =>
    (r.local.port === this.clientPort && r.remote.port === this.port) || (r.local.port === this.port && r.remote.port === this.clientPort);

  kill(): void {
    this.client.kill();
    this.server.kill();
  }
}

/** The sums of records' counts. */
export function totals(records: readonly TcpRecord[]): { bytesSent: number; bytesReceived: number } {
  return records.reduce((t, r) => ({ bytesSent: t.bytesSent + r.bytesSent, bytesReceived: t.bytesReceived + r.bytesReceived }), { bytesSent: 0, bytesReceived: 0 });
}
