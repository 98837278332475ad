// Run time of the BPF programs a process holds, from `bpftool -j prog show`
// (needs kernel.bpf_stats_enabled=1 to count):
//   node bench/prog-stats.mjs snapshot PID         -> {"name#id": [run_cnt, run_time_ns], ...}
//   node bench/prog-stats.mjs delta BEFORE AFTER   -> {"name": {"runs": n, "ns": t}, ...} (summed by name)
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Ids of the BPF programs whose file descriptors (programs, links) a process holds, from /proc/PID/fdinfo. */
function heldProgramIds(pid) {
  const ids = new Set();
  const dir = `/proc/${pid}/fdinfo`;
  for (const fd of readdirSync(dir)) {
    let info;
    try {
      info = readFileSync(`${dir}/${fd}`, 'utf8');
    } catch {
      continue; // closed meanwhile
    }
    const m = /^prog_id:\s*(\d+)/m.exec(info);
    if (m) ids.add(Number(m[1]));
  }
  return ids;
}

const [cmd, a, b] = process.argv.slice(2);
if (cmd === 'snapshot') {
  const ids = heldProgramIds(Number(a));
  const progs = JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8' }));
  const out = {};
  for (const p of progs) {
    if (!ids.has(p.id)) continue;
    out[`${p.name ?? 'prog'}#${p.id}`] = [p.run_cnt ?? 0, p.run_time_ns ?? 0];
  }
  console.log(JSON.stringify(out));
} else if (cmd === 'delta') {
  const before = JSON.parse(a);
  const after = JSON.parse(b);
  const out = {};
  for (const [key, [runs, ns]] of Object.entries(after)) {
    const [runs0, ns0] = before[key] ?? [0, 0];
    const name = key.slice(0, key.lastIndexOf('#'));
    const o = (out[name] ??= { runs: 0, ns: 0 });
    o.runs += runs - runs0;
    o.ns += ns - ns0;
  }
  console.log(JSON.stringify(out));
} else {
  console.error('usage: node bench/prog-stats.mjs snapshot PID | delta BEFORE_JSON AFTER_JSON');
  process.exit(2);
}
