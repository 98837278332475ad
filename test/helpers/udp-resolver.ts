/**
 * A resolver as Chromium's is, for kernel tests: each lookup from a new UDP
 * socket that binds a random source port of its own choosing (below the
 * ephemeral range, where no port rule tells it from a server), one query to
 * the DNS server, its answer read, the socket closed.
 *
 *   udp-resolver.js --dns H --name N --count C
 *       says {"event":"done","lookups":[{"port","sent","received"}, ...]}: each
 *       lookup's source port and the bytes of its query and of its answer
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { parseArgs } from 'node:util';
import dnsPacket from 'dns-packet';

const { values } = parseArgs({ options: { dns: { type: 'string' }, name: { type: 'string' }, count: { type: 'string', default: '5' } } });
const say = (o: object): void => void process.stdout.write(JSON.stringify({ pid: process.pid, ...o }) + '\n');
const server = values.dns!;

/** Bind a socket to a random port in 1024-32767, trying again where the port is taken. */
async function bindRandom(used: Set<number>): Promise<dgram.Socket> {
  for (;;) {
    const port = 1024 + Math.floor(Math.random() * (32768 - 1024));
    if (used.has(port)) continue;
    const sock = dgram.createSocket(net.isIPv6(server) ? 'udp6' : 'udp4');
    const bound = await new Promise<boolean>((resolve) => {
      sock.once('error', () => resolve(false));
      sock.bind(port, () => resolve(true));
    });
    if (bound) {
      used.add(port);
      return sock;
    }
    sock.close();
  }
}

async function lookup(sock: dgram.Socket, id: number): Promise<{ port: number; sent: number; received: number }> {
  const query = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: values.name! }] });
  const answer = new Promise<Buffer>((resolve) => sock.once('message', (m) => resolve(m)));
  await new Promise<void>((resolve, reject) => sock.send(query, 53, server, (e) => (e ? reject(e) : resolve())));
  const got = await answer;
  return { port: sock.address().port, sent: query.length, received: got.length };
}

const used = new Set<number>();
const lookups = [];
for (let i = 0; i < Number(values.count); i++) {
  const sock = await bindRandom(used);
  lookups.push(await lookup(sock, 1000 + i));
  sock.close();
}
say({ event: 'done', lookups });
