/**
 * A TCP peer for kernel tests, run as its own process (so it has its own pid,
 * command name and cgroup). Prints JSON lines on stdout describing what it did,
 * which the test compares with the agent's records.
 *
 *   peer.js server --host H --port P [--send N] [--reset-after N] [--count K]
 *   peer.js client --host H --port P [--send N] [--abort-after MS] [--linger0] [--delay-send MS] [--send-on-stdin]
 *
 * Server: accepts K connections (default 1); for each reads until the peer's
 * FIN, then sends N bytes and closes (or, with --reset-after, resets once it
 * has received that many bytes). Client: connects, sends N bytes, half-closes,
 * reads until FIN, closes; with --send-on-stdin it sends once a line comes on
 * its stdin (the test's go-ahead), not before.
 */
import net from 'node:net';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: 'string' },
    port: { type: 'string', default: '0' },
    send: { type: 'string', default: '0' },
    'reset-after': { type: 'string' },
    count: { type: 'string', default: '1' },
    'abort-after': { type: 'string' },
    linger0: { type: 'boolean' },
    'delay-send': { type: 'string', default: '0' },
    'send-on-stdin': { type: 'boolean' },
  },
});

const say = (o: object): void => void process.stdout.write(JSON.stringify({ pid: process.pid, ...o }) + '\n');

// Deterministic, non-repeating-ish payload; the content does not matter, the length does.
function payload(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

const host = values.host ?? '127.0.0.1';
const port = Number(values.port);
const sendBytes = Number(values.send);

if (positionals[0] === 'server') {
  let remaining = Number(values.count);
  const resetAfter = values['reset-after'] === undefined ? undefined : Number(values['reset-after']);
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    let received = 0;
    const info = { localPort: sock.localPort, remotePort: sock.remotePort, remoteAddress: sock.remoteAddress };
    say({ event: 'accepted', ...info });
    sock.on('data', (d: Buffer) => {
      received += d.length;
      if (resetAfter !== undefined && received >= resetAfter && !sock.destroyed) {
        say({ event: 'reset', ...info, received });
        sock.resetAndDestroy();
      }
    });
    sock.on('end', () => sock.end(payload(sendBytes)));
    sock.on('error', (e) => say({ event: 'error', ...info, code: (e as NodeJS.ErrnoException).code }));
    sock.on('close', () => {
      say({ event: 'done', ...info, received });
      if (--remaining === 0) server.close();
    });
  });
  server.listen(port, host, () => say({ event: 'listening', port: (server.address() as net.AddressInfo).port }));
} else if (positionals[0] === 'client') {
  let received = 0;
  const started = Date.now();
  const sock = net.connect({ host, port, allowHalfOpen: true });
  const abortAfter = values['abort-after'];
  const abortTimer =
    abortAfter === undefined
      ? undefined
      : setTimeout(() => {
          say({ event: 'aborted', localPort: sock.localPort });
          sock.destroy();
        }, Number(abortAfter));
  sock.on('connect', () => {
    clearTimeout(abortTimer);
    say({ event: 'connected', localPort: sock.localPort });
    if (values.linger0) {
      // close with RST once the payload is written: SO_LINGER 0
      sock.write(payload(sendBytes), () => sock.resetAndDestroy());
      return;
    }
    if (values['send-on-stdin']) {
      process.stdin.once('data', () => {
        process.stdin.destroy(); // nothing more to read: the process ends with its socket
        sock.end(payload(sendBytes));
      });
      return;
    }
    setTimeout(() => sock.end(payload(sendBytes)), Number(values['delay-send']));
  });
  sock.on('data', (d: Buffer) => (received += d.length));
  sock.on('error', (e) =>
    say({ event: 'error', code: (e as NodeJS.ErrnoException).code, localPort: sock.localPort, ms: Date.now() - started }),
  );
  sock.on('close', () => say({ event: 'done', localPort: sock.localPort, received }));
} else {
  process.stderr.write('usage: peer.js server|client --host H --port P ...\n');
  process.exit(2);
}
