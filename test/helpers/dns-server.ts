/**
 * A small authoritative DNS server for tests (UDP and TCP), answering from a
 * zone given as JSON: { "name": [{ "type": "A", "data": "10.0.0.1", "ttl": 60 }, ...] }.
 * CNAME records are followed within the zone; unknown names get NXDOMAIN.
 *
 *   dns-server.js --host H [--port 53] --zone '{...}'
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { parseArgs } from 'node:util';
import dnsPacket from 'dns-packet';

const { values } = parseArgs({ options: { host: { type: 'string' }, port: { type: 'string', default: '53' }, zone: { type: 'string' } } });
type Rec = { type: string; data: string; ttl?: number };
const zone = JSON.parse(values.zone!) as Record<string, Rec[]>;
const say = (o: object): void => void process.stdout.write(JSON.stringify({ pid: process.pid, ...o }) + '\n');

function answer(query: Buffer): Buffer {
  const q = dnsPacket.decode(query);
  const question = q.questions![0]!;
  const answers: dnsPacket.Answer[] = [];
  let name = question.name.toLowerCase();
  let known = false;
  for (let hops = 0; hops < 8; hops++) {
    const recs = zone[name];
    if (!recs) break;
    known = true;
    const cname = recs.find((r) => r.type === 'CNAME');
    if (cname && question.type !== 'CNAME') {
      answers.push({ name, type: 'CNAME', ttl: cname.ttl ?? 60, data: cname.data } as dnsPacket.Answer);
      name = cname.data;
      continue;
    }
    for (const r of recs.filter((r) => r.type === question.type))
      answers.push({ name, type: r.type, ttl: r.ttl ?? 60, data: r.data } as dnsPacket.Answer);
    break;
  }
  say({ event: 'query', name: question.name, type: question.type });
  return dnsPacket.encode({
    type: 'response',
    id: q.id,
    flags: dnsPacket.AUTHORITATIVE_ANSWER | (known ? 0 : 3), // rcode 3: NXDOMAIN
    questions: [question],
    answers,
  });
}

const port = Number(values.port);
const udp = dgram.createSocket(net.isIPv6(values.host!) ? 'udp6' : 'udp4');
udp.on('message', (msg, rinfo) => {
  try {
    udp.send(answer(msg), rinfo.port, rinfo.address);
  } catch {
    say({ event: 'malformed', bytes: msg.length });
  }
});
const tcp = net.createServer((s) => {
  let buf = Buffer.alloc(0);
  s.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
      buf = buf.subarray(2 + msg.length);
      const a = answer(msg);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(a.length);
      s.write(Buffer.concat([len, a]));
    }
  });
  s.on('error', () => {});
});
let up = 0;
const ready = () => ++up === 2 && say({ event: 'listening', port });
udp.bind(port, values.host, ready);
tcp.listen(port, values.host, ready);
