/**
 * Resolves a name with a DNS query of its own (UDP or TCP, dns-packet), then,
 * unless told not to, connects over TCP to the first address and exchanges a
 * few bytes, as any client does.
 *
 *   resolve-connect.js --dns SERVER --name N [--type A|AAAA] [--tcp-dns]
 *                      [--port P] [--no-connect] [--wait-ms MS]
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { parseArgs } from 'node:util';
import dnsPacket from 'dns-packet';

const { values } = parseArgs({
  options: {
    dns: { type: 'string' },
    name: { type: 'string' },
    type: { type: 'string', default: 'A' },
    'tcp-dns': { type: 'boolean' },
    port: { type: 'string' },
    'no-connect': { type: 'boolean' },
    'wait-ms': { type: 'string', default: '0' },
  },
});
const say = (o: object): void => void process.stdout.write(JSON.stringify({ pid: process.pid, ...o }) + '\n');
const server = values.dns!;
const query = dnsPacket.encode({
  type: 'query',
  id: Math.floor(Math.random() * 65535),
  flags: dnsPacket.RECURSION_DESIRED,
  questions: [{ type: values.type as 'A', name: values.name! }],
});

function viaUdp(): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = dgram.createSocket(net.isIPv6(server) ? 'udp6' : 'udp4');
    s.on('message', (m) => {
      s.close();
      resolve(m);
    });
    s.send(query, 53, server);
  });
}

function viaTcp(): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = net.connect(53, server, () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      s.write(Buffer.concat([len, query]));
    });
    let buf = Buffer.alloc(0);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        s.end();
        resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      }
    });
  });
}

const response = dnsPacket.decode(await (values['tcp-dns'] ? viaTcp() : viaUdp()));
const addrs = (response.answers ?? []).filter((a) => a.type === 'A' || a.type === 'AAAA').map((a) => (a as { data: string }).data);
say({ event: 'resolved', rcode: (response as { rcode?: string }).rcode, addrs });
await new Promise((r) => setTimeout(r, Number(values['wait-ms'])));
if (!values['no-connect'] && addrs[0]) {
  const sock = net.connect({ host: addrs[0], port: Number(values.port) }, () => {
    say({ event: 'connected', localPort: sock.localPort, addr: addrs[0] });
    sock.end(Buffer.alloc(100, 0x43));
  });
  sock.on('data', () => {});
  sock.on('close', () => say({ event: 'done' }));
} else {
  say({ event: 'done' });
}
