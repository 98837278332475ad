/**
 * One pair of processes talking TCP on many ports, for the map's test of a
 * busy pair. Prints JSON lines on stdout.
 *
 *   port-fan.js server --host H --port P --ports N [--repeat R] [--send S]
 *   port-fan.js client --host H --port P --ports N [--repeat R] [--send-step B]
 *
 * Server: listens on ports P to P+N-1, accepts R connections (default 1) on
 * each, reads each to the peer's FIN, answers S bytes and closes; exits when
 * all are done. Client: R connections to each port in turn, one at a time,
 * sending (i+1)*B bytes to port P+i, reading each answer to its end.
 */
import net from 'node:net';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    ports: { type: 'string', default: '1' },
    repeat: { type: 'string', default: '1' },
    send: { type: 'string', default: '0' },
    'send-step': { type: 'string', default: '10' },
  },
});
const say = (o: object): void => void process.stdout.write(JSON.stringify({ pid: process.pid, ...o }) + '\n');
const host = values.host!;
const first = Number(values.port);
const n = Number(values.ports);
const repeat = Number(values.repeat);

if (positionals[0] === 'server') {
  let listening = 0;
  let done = 0;
  for (let i = 0; i < n; i++) {
    let left = repeat;
    const server = net.createServer({ allowHalfOpen: true }, (sock) => {
      sock.resume();
      sock.on('end', () => sock.end(Buffer.alloc(Number(values.send), 1)));
      sock.on('close', () => {
        if (--left === 0) server.close();
        if (++done === n * repeat) say({ event: 'done', connections: done });
      });
    });
    server.listen(first + i, host, () => {
      if (++listening === n) say({ event: 'listening', ports: n });
    });
  }
} else if (positionals[0] === 'client') {
  const step = Number(values['send-step']);
  let sent = 0;
  let received = 0;
  for (let i = 0; i < n; i++) {
    const bytes = (i + 1) * step;
    for (let k = 0; k < repeat; k++) {
      received += await new Promise<number>((resolve, reject) => {
        let got = 0;
        const sock = net.connect({ host, port: first + i, allowHalfOpen: true }, () => sock.end(Buffer.alloc(bytes, 2)));
        sock.on('data', (d: Buffer) => (got += d.length));
        sock.on('error', reject);
        sock.on('close', () => resolve(got));
      });
      sent += bytes;
    }
  }
  say({ event: 'done', connections: n * repeat, sent, received });
} else {
  process.stderr.write('usage: port-fan.js server|client --host H --port P --ports N ...\n');
  process.exit(2);
}
