/**
 * A TCP proxy in front of a test dependency (a sink's server, the
 * Kubernetes API) that the test turns into each way a dependency fails:
 *
 *   pass        forwards both ways
 *   stopped     nothing listens: connections are refused (ECONNREFUSED); open ones are dropped
 *   refuse      accepts, then resets each connection at once (RST)
 *   hang        accepts and reads, never answers; open connections freeze too
 *   http-error  answers every HTTP request with `status` itself and closes
 *
 * `open` counts the connections it holds (a client that leaks one per retry shows here).
 */
import net from 'node:net';

export type FaultMode = 'pass' | 'stopped' | 'refuse' | 'hang' | 'http-error';

interface Pair {
  client: net.Socket;
  upstream: net.Socket | undefined;
}

export class FaultProxy {
  mode: FaultMode = 'pass';
  /** the status `http-error` answers with */
  status = 500;
  port = 0;
  /** connections accepted, by the mode they met */
  readonly accepted: Record<FaultMode, number> = { pass: 0, stopped: 0, refuse: 0, hang: 0, 'http-error': 0 };
  private server: net.Server | undefined;
  private readonly pairs = new Set<Pair>();

  constructor(
    private readonly target: { host: string; port: number },
  ) {}

  /** Listen on `port` (the one it had before, or any free one). */
  async start(port = this.port): Promise<number> {
    const server = net.createServer((c) => this.accept(c));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
    return this.port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get open(): number {
    return this.pairs.size;
  }

  /** Switch modes; what it means for connections already open: see the file's comment. */
  async set(mode: FaultMode, status?: number): Promise<void> {
    if (status !== undefined) this.status = status;
    const was = this.mode;
    this.mode = mode;
    if (mode === was) return;
    if (mode === 'hang') {
      for (const p of this.pairs) this.freeze(p);
    } else if (mode !== 'pass' || was === 'hang') {
      for (const p of this.pairs) this.drop(p);
    }
    if (mode === 'stopped' && this.server) {
      const s = this.server;
      this.server = undefined;
      await new Promise<void>((r) => s.close(() => r()));
    } else if (mode !== 'stopped' && !this.server) {
      await this.start(this.port);
    }
  }

  async close(): Promise<void> {
    for (const p of this.pairs) this.drop(p);
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }

  private accept(client: net.Socket): void {
    this.accepted[this.mode]++;
    client.on('error', () => undefined);
    const pair: Pair = { client, upstream: undefined };
    this.pairs.add(pair);
    client.on('close', () => this.drop(pair));
    switch (this.mode) {
      case 'refuse':
        client.resetAndDestroy();
        return;
      case 'hang':
        client.resume(); // read and forget
        return;
      case 'http-error': {
        let head = '';
        client.on('data', (d: Buffer) => {
          head += d.toString('latin1');
          if (!head.includes('\r\n\r\n')) return;
          const body = JSON.stringify({ error: `fault proxy: ${this.status}` });
          client.end(`HTTP/1.1 ${this.status} Fault\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
          head = '';
        });
        return;
      }
      default: {
        const up = net.connect(this.target.port, this.target.host);
        pair.upstream = up;
        up.on('error', () => client.destroy());
        up.on('close', () => client.destroy());
        client.pipe(up);
        up.pipe(client);
      }
    }
  }

  /** Stop forwarding either way; keep both sockets open. */
  private freeze(p: Pair): void {
    if (!p.upstream) return;
    p.client.unpipe(p.upstream);
    p.upstream.unpipe(p.client);
    p.client.removeAllListeners('data');
    p.client.resume();
    p.upstream.pause();
  }

  private drop(p: Pair): void {
    if (!this.pairs.delete(p)) return;
    p.client.destroy();
    p.upstream?.destroy();
  }
}
