// Cost of reporting open TCP connections: N loopback connections (2N sockets)
// held open by holder processes in a network namespace of their own; the
// agent's start-up pass (seeding: the listeners, then the connections), then
// its per-interval pass (the sock_files iterator) with the connections idle
// and with every socket having moved a byte since the last pass (one record
// per socket), side by side with `ss -tin` (iproute2, sock_diag) listing the
// same sockets with their counters. Run as root after `npm ci`:
//   node bench/open-conns.mjs [--rounds 5] [N ...]        (default 10000 100000)
// Prints a Markdown table; wall and CPU milliseconds, medians of the rounds.
import { spawn, execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadProbes } from '../dist/src/bpf/probe-load.js';
import { MonotonicClock } from '../dist/src/util/clock.js';
import { decodeOpenRecords } from '../dist/src/events/tcp-record.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
let rounds = 5;
const sizes = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--rounds') rounds = Number(args[++i]);
  else if (Number(args[i]) > 0) sizes.push(Number(args[i]));
  else throw new Error(`open-conns: unknown argument ${args[i]}; usage: node bench/open-conns.mjs [--rounds R] [N ...]`);
}
if (!sizes.length) sizes.push(10_000, 100_000);
const NS = `bpfa-bench-conns-${process.pid}`;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Wall and CPU (this process, all threads: the iterator reads on a libuv worker) milliseconds of `f`. */
async function measure(f) {
  const c = process.cpuUsage();
  const t = process.hrtime.bigint();
  const r = await f();
  const cpu = process.cpuUsage(c);
  return { wall: Number(process.hrtime.bigint() - t) / 1e6, cpu: (cpu.user + cpu.system) / 1000, r };
}

/** Wall and CPU ms of one `ss -tinH` run, its output to /dev/null (CPU: bash's time of ss alone). */
function ssTimed() {
  const t = process.hrtime.bigint();
  const rep = execFileSync('ip', ['netns', 'exec', NS, 'bash', '-c', "TIMEFORMAT='%3U %3S'; { time ss -tinH >/dev/null; } 2>&1"], { encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - t) / 1e6;
  const [u, s] = rep.trim().split(/\s+/).map(Number);
  return { wall, cpu: (u + s) * 1000 };
}

/** One holder process of `n` connections. */
function holder(n) {
  const child = spawn('ip', ['netns', 'exec', NS, 'python3', path.join(here, 'open-conns-holder.py'), String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const waiters = [];
  lines.on('line', (l) => waiters.shift()?.(JSON.parse(l)));
  const exited = new Promise((r) => child.on('exit', r));
  const next = () => Promise.race([new Promise((r) => waiters.push(r)), exited.then((code) => { throw new Error(`open-conns: a holder exited (${code})`); })]);
  return { child, next, exited, say: (s) => child.stdin.write(`${s}\n`) };
}

/** Connections per holder: each holds both ends, within the open-file hard limit. */
const perHolder = Math.floor((Number(execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' })) - 100) / 2);

execFileSync('ip', ['netns', 'add', NS]);
const rows = [];
try {
  execFileSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65000']);
  for (const n of sizes) {
    const holders = [];
    for (let left = n; left > 0; left -= perHolder) holders.push(holder(Math.min(left, perHolder)));
    await Promise.all(holders.map((h) => h.next()));
    const listed = execFileSync('ip', ['netns', 'exec', NS, 'ss', '-tnH', 'state', 'established'], { encoding: 'utf8', maxBuffer: 1 << 30 }).split('\n').filter(Boolean).length;
    const touch = async () => {
      for (const h of holders) h.say('touch');
      await Promise.all(holders.map((h) => h.next()));
    };
    const probes = await loadProbes({ attach: 'auto', btf: null, maxConnections: 4 * n + 65536, ringbufBytes: 8 << 20, maxUdpFlows: 1024, maxNatEntries: 16384, debug: false });
    probes.net?.close();
    probes.tcp.attach(() => {}, 100);
    const seed = await measure(() => probes.tcp.seed());
    const seeded = probes.tcp.counters().seededConnections;
    const clock = new MonotonicClock();
    const m = { idleWall: [], idleCpu: [], busyWall: [], busyCpu: [], decode: [], ssWall: [], ssCpu: [] };
    let records = 0, bytes = 0, mine = 0;
    await probes.tcp.readOpen(); // whatever moved since the seeding
    for (let i = 0; i < rounds; i++) {
      const idle = await measure(() => probes.tcp.readOpen());
      m.idleWall.push(idle.wall);
      m.idleCpu.push(idle.cpu);
      await touch();
      const busy = await measure(() => probes.tcp.readOpen());
      m.busyWall.push(busy.wall);
      m.busyCpu.push(busy.cpu);
      bytes = busy.r.length;
      const d = await measure(() => {
        records = 0;
        mine = 0;
        decodeOpenRecords(busy.r, clock, (r) => {
          records++;
          if (r.local.addr === '127.0.0.1' && r.bytesSent + r.bytesReceived === 1) mine++;
        });
      });
      m.decode.push(d.cpu);
      const s = ssTimed();
      m.ssWall.push(s.wall);
      m.ssCpu.push(s.cpu);
    }
    probes.tcp.detach();
    await probes.tcp.drain();
    probes.tcp.close();
    for (const h of holders) h.say('quit');
    await Promise.all(holders.map((h) => h.exited));
    const med = Object.fromEntries(Object.entries(m).map(([k, v]) => [k, median(v)]));
    rows.push({ n, holders: holders.length, sockets: listed, seeded, seed, records, mine, bytes, ...med });
  }
} finally {
  execFileSync('ip', ['netns', 'del', NS]);
}
const f = (x) => x.toFixed(1);
console.log(`open connections: ${rounds} rounds, ${os.cpus().length} CPUs, kernel ${os.release()}, ${os.loadavg()[0].toFixed(2)} load (1 min) at the end`);
console.log('| connections | holders | sockets (ss) | seeded | start-up pass ms (wall / CPU) | interval pass, idle, ms (wall / CPU) | interval pass, every socket moved, ms (wall / CPU) | records (of these sockets) | output MB | decode CPU ms | `ss -tin` ms (wall / CPU) |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows)
  console.log(
    `| ${r.n} | ${r.holders} | ${r.sockets} | ${r.seeded} | ${f(r.seed.wall)} / ${f(r.seed.cpu)} | ${f(r.idleWall)} / ${f(r.idleCpu)} | ${f(r.busyWall)} / ${f(r.busyCpu)} | ${r.records} (${r.mine}) | ${(r.bytes / 1e6).toFixed(1)} | ${f(r.decode)} | ${f(r.ssWall)} / ${f(r.ssCpu)} |`,
  );
console.log('(the passes walk every open file of every process on the host, not only these; seeded counts every connection found on the host)');
