/**
 * One long-lived TCP connection for kernel tests, driven line by line on
 * stdin, so a test decides what moves in which interval. Run as its own
 * process (its own pid and command name, see Peer).
 *
 *   stream-peer.js server --host H --port P     accept one connection (and go on listening)
 *   stream-peer.js client --host H --port P     connect
 *
 * Commands (stdin): `send N` writes N bytes; `end` half-closes (the peer ends
 * too once it has read everything); `reset` closes with RST. Events (stdout,
 * JSON lines): listening, accepted / connected {localPort, remotePort},
 * received {total} after every read, sent {total}, closed {received}.
 */
import net from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' } },
});

const say = (o: object): void => void process.stdout.write(JSON.stringify({ pid: process.pid, ...o }) + '\n');

function drive(sock: net.Socket): void {
  let received = 0;
  let sent = 0;
  sock.on('data', (d: Buffer) => {
    received += d.length;
    say({ event: 'received', total: received });
  });
  sock.on('error', (e) => say({ event: 'error', code: (e as NodeJS.ErrnoException).code }));
  sock.on('close', () => {
    say({ event: 'closed', received, sent });
    process.exit(0);
  });
  createInterface({ input: process.stdin }).on('line', (line) => {
    const [cmd, arg] = line.trim().split(/\s+/);
    if (cmd === 'send') {
      const n = Number(arg);
      sock.write(Buffer.alloc(n, 0x61), () => {
        sent += n;
        say({ event: 'sent', total: sent });
      });
    } else if (cmd === 'end') {
      sock.end();
    } else if (cmd === 'reset') {
      sock.resetAndDestroy();
    }
  });
}

const host = values.host!;
const port = Number(values.port);
if (positionals[0] === 'server') {
  // one connection, but the socket goes on listening, as a server's does (an agent started later tells accepted sockets by it)
  let taken = false;
  const server = net.createServer((sock) => {
    if (taken) return void sock.destroy();
    taken = true;
    say({ event: 'accepted', localPort: sock.localPort, remotePort: sock.remotePort });
    drive(sock);
  });
  server.listen(port, host, () => say({ event: 'listening', port: (server.address() as net.AddressInfo).port }));
} else if (positionals[0] === 'client') {
  const sock = net.connect({ host, port }, () => {
    say({ event: 'connected', localPort: sock.localPort, remotePort: sock.remotePort });
  });
  drive(sock);
} else {
  process.stderr.write('usage: stream-peer.js server|client --host H --port P\n');
  process.exit(2);
}
