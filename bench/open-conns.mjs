// Cost of reporting open TCP connections: N loopback connections (2N sockets)
// held open by one process in a network namespace of their own; the agent's
// start-up pass (seeding), then its per-interval pass (sock_files iterator)
// with the connections idle and with every one having moved a byte (one
// record per socket), side by side with `ss -tin` (iproute2) listing the same
// connections with their counters. Run as root after `npm ci`:
//   node bench/open-conns.mjs [N ...]        (default 10000 100000)
import { spawn, execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadProbes } from '../dist/src/bpf/probe-load.js';
import { MonotonicClock } from '../dist/src/util/clock.js';
import { decodeOpenRecords } from '../dist/src/events/tcp-record.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const NS = `bpfa-bench-open-${process.pid}`;
const ROUNDS = 5;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = async (f) => { const t = process.hrtime.bigint(); const r = await f(); return [Number(process.hrtime.bigint() - t) / 1e6, r]; };

function holder(n) {
  const child = spawn('ip', ['netns', 'exec', NS, 'python3', path.join(here, 'open-conns-holder.py'), String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const waiters = [];
  lines.on('line', (l) => waiters.shift()?.(JSON.parse(l)));
  const next = () => new Promise((r) => waiters.push(r));
  return { child, next, say: (s) => child.stdin.write(`${s}\n`) };
}

execFileSync('ip', ['netns', 'add', NS]);
const rows = [];
try {
  execFileSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65000']);
  for (const n of sizes.length ? sizes : [10_000, 100_000]) {
    const h = holder(n);
    await h.next(); // ready
    const probes = await loadProbes({ attach: 'auto', btf: null, maxConnections: 4 * n + 65536, ringbufBytes: 8 << 20, maxUdpFlows: 1024, maxNatEntries: 16384, debug: false });
    probes.net?.close();
    probes.tcp.attach(() => {}, 100);
    const [seedMs] = await ms(() => probes.tcp.seed());
    const seeded = probes.tcp.counters().seededConnections;
    const clock = new MonotonicClock();
    const idle = [], busy = [], decode = [], ss = [];
    let records = 0, bytes = 0;
    await probes.tcp.readOpen(); // the seeded sockets' first pass
    for (let i = 0; i < ROUNDS; i++) {
      idle.push((await ms(() => probes.tcp.readOpen()))[0]);
      h.say('touch');
      await h.next();
      await new Promise((r) => setTimeout(r, 200)); // the bytes acked
      const [t, out] = await ms(() => probes.tcp.readOpen());
      busy.push(t);
      bytes = out.length;
      const [d] = await ms(() => { records = 0; decodeOpenRecords(out, clock, () => records++); });
      decode.push(d);
      ss.push((await ms(() => execFileSync('ip', ['netns', 'exec', NS, 'ss', '-tinH'], { maxBuffer: 1 << 30 })))[0]);
    }
    probes.tcp.detach();
    await probes.tcp.drain();
    probes.tcp.close();
    h.say('quit');
    await new Promise((r) => h.child.on('exit', r));
    rows.push({ n, sockets: 2 * n, seeded, seedMs, idle: median(idle), busy: median(busy), records, bytes, decode: median(decode), ss: median(ss) });
  }
} finally {
  execFileSync('ip', ['netns', 'del', NS]);
}
const f = (x) => x.toFixed(1);
console.log(`| connections | sockets | seeded at start | start-up pass ms | interval pass, idle, ms | interval pass, every socket moved, ms | records | output bytes | decode ms | ss -tin ms |`);
console.log(`|---|---|---|---|---|---|---|---|---|---|`);
for (const r of rows) console.log(`| ${r.n} | ${r.sockets} | ${r.seeded} | ${f(r.seedMs)} | ${f(r.idle)} | ${f(r.busy)} | ${r.records} | ${r.bytes} | ${f(r.decode)} | ${f(r.ss)} |`);
console.log(`(medians of ${ROUNDS} rounds; the passes run on a worker thread, in the kernel; every process's open files on the host are walked, not only these)`);
