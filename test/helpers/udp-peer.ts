/**
 * A UDP peer for kernel tests, in its own process.
 *
 *   udp-peer.js server --host H --port P --expect N [--reply-sizes a,b,...]
 *       receives N datagrams; answers the i-th with reply-sizes[i] bytes (if any)
 *   udp-peer.js client --to H:P[,H:P...] --sizes a,b,... [--connect] [--expect-replies N]
 *                      [--bind-host H] [--bind-port P] [--pause-after N]
 *       sends datagrams of the given sizes from one socket, round-robin over the
 *       destinations (sendto on an unconnected socket, or send on a connected one);
 *       from port P of address H when given (default: a port the kernel picks);
 *       with --pause-after, once N datagrams were sent and N replies came, says
 *       "paused" and waits for a line on stdin before going on
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: 'string' },
    port: { type: 'string' },
    expect: { type: 'string', default: '0' },
    'reply-sizes': { type: 'string', default: '' },
    to: { type: 'string' },
    sizes: { type: 'string', default: '' },
    connect: { type: 'boolean' },
    'expect-replies': { type: 'string', default: '0' },
    'bind-host': { type: 'string' },
    'bind-port': { type: 'string', default: '0' },
    'pause-after': { type: 'string' },
  },
});

const say = (o: object): void => void process.stdout.write(JSON.stringify({ pid: process.pid, ...o }) + '\n');
const list = (s: string): number[] => (s ? s.split(',').map(Number) : []);

function parseDest(d: string): { host: string; port: number } {
  const i = d.lastIndexOf(':');
  return { host: d.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(d.slice(i + 1)) };
}

if (positionals[0] === 'server') {
  const host = values.host!;
  const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  const replies = list(values['reply-sizes']);
  let received = 0;
  let bytes = 0;
  sock.on('message', (msg, rinfo) => {
    const n = received++;
    bytes += msg.length;
    const size = replies[n];
    const finish = () => {
      if (received === Number(values.expect)) {
        say({ event: 'done', received, bytes, localPort: sock.address().port });
        sock.close();
      }
    };
    if (size !== undefined) sock.send(Buffer.alloc(size, 0x42), rinfo.port, rinfo.address, finish);
    else finish();
  });
  sock.bind(Number(values.port ?? 0), host, () => say({ event: 'listening', port: sock.address().port }));
} else if (positionals[0] === 'client') {
  const dests = values.to!.split(',').map(parseDest);
  const sock = dgram.createSocket(net.isIPv6(dests[0]!.host) ? 'udp6' : 'udp4');
  const sizes = list(values.sizes);
  const expectReplies = Number(values['expect-replies']);
  let replies = 0;
  let replyBytes = 0;
  let sent = 0;
  const maybeDone = () => {
    if (sent === sizes.length && replies >= expectReplies) {
      say({ event: 'done', localPort: sock.address().port, replies, replyBytes });
      sock.close();
    }
  };
  const pauseAfter = values['pause-after'] === undefined ? -1 : Number(values['pause-after']);
  let resume: (() => void) | undefined;
  const maybeResume = () => {
    if (resume && replies >= pauseAfter) {
      const go = resume;
      resume = undefined;
      say({ event: 'paused', localPort: sock.address().port });
      process.stdin.once('data', () => {
        process.stdin.destroy(); // read once: the process still ends when its socket closes
        go();
      });
    }
  };
  sock.on('message', (msg) => {
    replies++;
    replyBytes += msg.length;
    maybeResume();
    maybeDone();
  });
  const sendAll = () => {
    say({ event: 'bound', localPort: sock.address().port });
    // one at a time, so that every datagram has left before the next
    const next = (i: number): void => {
      if (i === sizes.length) return maybeDone();
      const d = dests[i % dests.length]!;
      const cb = () => {
        sent++;
        if (sent !== pauseAfter) return next(i + 1);
        resume = () => next(i + 1);
        maybeResume();
      };
      const payload = Buffer.alloc(sizes[i]!, 0x41);
      if (values.connect) sock.send(payload, cb);
      else sock.send(payload, d.port, d.host, cb);
    };
    next(0);
  };
  const connect = () => sock.connect(dests[0]!.port, dests[0]!.host, sendAll);
  const bindAsked = values['bind-host'] !== undefined || values['bind-port'] !== '0';
  if (values.connect && bindAsked) sock.bind(Number(values['bind-port']), values['bind-host'], connect);
  else if (values.connect) connect();
  else sock.bind(Number(values['bind-port']), values['bind-host'], sendAll);
} else {
  process.stderr.write('usage: udp-peer.js server|client ...\n');
  process.exit(2);
}
