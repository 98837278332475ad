// Count the bpfagent records of the benchmark's connections.
//   node bench/count-records.mjs FILE NETNS_INODE PORT REQUEST_BYTES REPLY_BYTES
// Prints one JSON object: all lines, then the TCP records in that network
// namespace to or from PORT, by direction, and how many of them disagree with
// what the load did (outcome other than "closed", or payload byte counts other
// than REQUEST_BYTES out / REPLY_BYTES back for the client, the reverse for
// the server).
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

const [file, netnsArg, portArg, reqArg, repArg] = process.argv.slice(2);
if (!file || !netnsArg || !portArg) {
  console.error('usage: node bench/count-records.mjs FILE NETNS_INODE PORT [REQUEST_BYTES REPLY_BYTES]');
  process.exit(2);
}
const netns = Number(netnsArg);
const port = Number(portArg);
const req = Number(reqArg ?? 100);
const rep = Number(repArg ?? 200);

const c = { lines: 0, parseErrors: 0, outbound: 0, inbound: 0, notClosed: 0, wrongBytes: 0, outcomes: {} };
const rl = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
for await (const line of rl) {
  if (!line) continue;
  c.lines++;
  let r;
  try {
    r = JSON.parse(line);
  } catch {
    c.parseErrors++;
    continue;
  }
  if (r.proto !== 'tcp' || r.local?.netns !== netns) continue;
  let sent, received;
  if (r.direction === 'outbound' && r.remote?.port === port) {
    c.outbound++;
    [sent, received] = [req, rep];
  } else if (r.direction === 'inbound' && r.local?.port === port) {
    c.inbound++;
    [sent, received] = [rep, req];
  } else continue;
  c.outcomes[r.outcome] = (c.outcomes[r.outcome] ?? 0) + 1;
  if (r.outcome !== 'closed') c.notClosed++;
  if (r.bytesSent !== sent || r.bytesReceived !== received) c.wrongBytes++;
}
console.log(JSON.stringify(c));
