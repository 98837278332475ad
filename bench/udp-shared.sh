#!/usr/bin/env bash
# Shared-socket UDP benchmark: what counting UDP costs a server whose threads
# share one unconnected socket (resolvers, QUIC servers), per UDP hook. The
# tp_btf hook learns the peers of unconnected sockets in cgroup/sendmsg4 and
# cgroup/recvmsg4 programs, and for those the kernel takes the socket lock on
# every sendto() and recvfrom() (BPF_CGROUP_RUN_PROG_UDP4_*MSG_LOCK), which
# UDP itself does not: the threads queue up on it. The fexit and kprobe hooks
# read the peer from the call (no cgroup program, no lock).
#
#   bash bench/udp-shared.sh [--duration SECONDS] [--rounds N] [--threads N]
#                            [--rate N] [--size BYTES] [--hooks LIST]
#                            [--port N] [--agent-dir DIR]
#
# A `udpflood serve` server (bench/udpflood.c: --threads threads, each
# recvfrom() then sendto() back, on one socket) in network namespace B answers
# a `udpflood send` sender (one connected socket, --rate datagrams/s,
# default 0 = flat out) in namespace A over a veth pair, for --duration s
# (5), once per mode and round: baseline (no tracing), then `bpfagent trace
# --json --udp-hook H` for each hook of --hooks (default: every one this
# kernel has). Modes rotate each round. The table: datagrams answered per
# second, the server's CPU per datagram (its threads' user+system time; the
# lock shows there as well as in the rate), both against the baselines run
# just before and after, whether the agent's counts of the server's flow are
# exact (datagrams read = answered + failed answers; answered = sent), and
# the agent's CPU.
#
# Needs root, a built agent, gcc and iproute2. BENCH_READY_TIMEOUT (s, 20):
# how long the agent may take to be ready (a TCG guest needs ~60).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # usage, log, snooze, cpu_ticks, ...

DURATION=5
ROUNDS=3
THREADS=2
RATE=0
SIZE=64
HOOKS=
PORT=19200
AGENT_DIR=
while (($#)); do
  case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --hooks) HOOKS=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --agent-dir) AGENT_DIR=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "bench: unknown argument '$1'" >&2; usage 2 >&2 ;;
  esac
done
for v in ROUNDS THREADS PORT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "bench: --${v,,} must be a positive whole number" >&2; exit 2; }
done
[[ $RATE =~ ^[0-9]+$ && $SIZE =~ ^[0-9]+$ ]] || { echo "bench: --rate/--size must be whole numbers" >&2; exit 2; }
[[ $DURATION =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "bench: --duration must be seconds" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS=$ROOT/bench/results
AGENT_DIR=$(cd "${AGENT_DIR:-$ROOT}" && pwd)
cd "$ROOT"
require_root_and_agent net.bpf.o
mkdir -p "$RESULTS"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUNDIR=$RESULTS/udp-shared-$STAMP
mkdir -p "$RUNDIR"
RUNS=$RUNDIR/runs.jsonl
: >"$RUNS"
FLOOD=$RESULTS/udpflood
gcc -O2 -Wall -pthread -o "$FLOOD" bench/udpflood.c

# the hooks this kernel has, by the agent's own feature probes
if [[ -z $HOOKS ]]; then
  HOOKS=$(cd "$AGENT_DIR" && node --input-type=module -e '
    const { loadNative } = await import("./dist/src/bpf/native.js");
    const { ensureTracefs } = await import("./dist/src/bpf/features.js");
    const { chooseUdpHook, UDP_HOOK_NAMES } = await import("./dist/src/bpf/net-tracer.js");
    const n = loadNative(), t = ensureTracefs(n);
    console.log(UDP_HOOK_NAMES.filter((h) => { try { chooseUdpHook(n, t, h); return true; } catch { return false; } }).join(","));')
fi
IFS=, read -r -a HOOK_LIST <<<"$HOOKS"
((${#HOOK_LIST[@]})) || { echo "bench: no UDP hook on this kernel" >&2; exit 1; }

NS_A=bpfush-a-$$ NS_B=bpfush-b-$$ VETH_A=bs$$a VETH_B=bs$$b
ADDR_A=10.232.0.1 ADDR_B=10.232.0.2
SHM=/dev/shm/bpfush-$$
AGENT_PID= SERVER_PID=
cleanup() {
  stop_running "$AGENT_PID" "$SERVER_PID"
  rm -f "$SHM".*
  del_veth_pair
  exec 9>&- 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
add_veth_pair # lib.sh
open_snooze_fifo

# one load: the server in B (started after the agent, so its socket is seen made), the sender in A; sets SEND, SERVE
load() {
  rm -f "$SHM.serve" "$SHM.serve.err"
  ip netns exec "$NS_B" "$FLOOD" serve --bind "$ADDR_B" --port "$PORT" --threads "$THREADS" --idle-timeout 0.3 --rcvbuf 4194304 \
    >"$SHM.serve" 2>"$SHM.serve.err" &
  SERVER_PID=$!
  wait_ready "$SERVER_PID" server "$SHM.serve.err" 10 "$(now_ns)" file_has "$SHM.serve.err" '"ready":true'
  SEND=$(ip netns exec "$NS_A" "$FLOOD" send --dest "$ADDR_B" --port "$PORT" --duration "$DURATION" --rate "$RATE" --size "$SIZE" --batch 8)
  wait "$SERVER_PID" || true
  SERVER_PID=
  SERVE=$(<"$SHM.serve")
}

# the agent's records of the server's flows: namespace B, local port PORT
read -r -d '' COUNT_JS <<'EOF' || true
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
const [file, ns, port] = process.argv.slice(1);
const c = { records: 0, packetsSent: 0, packetsReceived: 0, bytesSent: 0, bytesReceived: 0 };
for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
  let r;
  try { r = JSON.parse(line); } catch { continue; }
  if (r.proto !== "udp" || String(r.local?.netns) !== ns || String(r.local?.port) !== port) continue;
  c.records++;
  for (const k of ["packetsSent", "packetsReceived", "bytesSent", "bytesReceived"]) c[k] += r[k];
}
console.log(JSON.stringify(c));
EOF

run_mode() { # mode round
  local mode=$1 r=$2 err=$RUNDIR/$1-r$2.stderr out=$SHM.agent.jsonl t0 c0=0 c1=0 counts=null
  if [[ $mode != baseline ]]; then
    t0=$(now_ns)
    node "$AGENT_DIR/bin/bpfagent.js" trace --json --interval 1s --udp-hook "$mode" >"$out" 2>"$err" &
    AGENT_PID=$!
    wait_agent_ready "$AGENT_PID" "$err" "$t0"
    c0=$(cpu_ticks "$AGENT_PID")
  fi
  load
  if [[ $mode != baseline ]]; then
    snooze 1.5 # the last interval's flows
    c1=$(cpu_ticks "$AGENT_PID")
    kill -INT "$AGENT_PID"
    wait "$AGENT_PID" || true
    AGENT_PID=
    counts=$(node --input-type=module -e "$COUNT_JS" "$out" "$NETNS_B" "$PORT")
    rm -f "$out"
  fi
  printf '{"mode":"%s","round":%d,"send":%s,"serve":%s,"agentCpuS":%s,"counts":%s}\n' \
    "$mode" "$r" "$SEND" "$SERVE" "$(((c1 - c0) * 1000 / TICK))e-3" "$counts" >>"$RUNS"
  log "  $mode: $SERVE"
}

MODES=(baseline "${HOOK_LIST[@]}")
log "bench: $THREADS server threads on one socket, sender $([[ $RATE == 0 ]] && echo "flat out" || echo "$RATE/s"), ${SIZE}-byte datagrams, ${DURATION}s x $ROUNDS rounds; modes ${MODES[*]}; kernel $(uname -r)"
for ((r = 1; r <= ROUNDS; r++)); do
  # baseline between any two traced runs, hooks rotating
  for ((i = 0; i < ${#HOOK_LIST[@]}; i++)); do
    h=${HOOK_LIST[$(((i + r) % ${#HOOK_LIST[@]}))]}
    run_mode baseline "$r"
    run_mode "$h" "$r"
  done
done
run_mode baseline "$((ROUNDS + 1))"

read -r -d '' REPORT_JS <<'EOF' || true
import { readFileSync, writeFileSync } from "node:fs";
import { median, sum } from "./bench/stats.mjs";
const [runsPath, outPath, cfg] = process.argv.slice(1);
const config = JSON.parse(cfg);
const runs = readFileSync(runsPath, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
const pct = (x) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%`;
const cpuUs = (r) => ((r.serve.cpuUser + r.serve.cpuSys) / r.serve.served) * 1e6;
const around = (r) => {
  const i = runs.indexOf(r), b = (x) => x.mode === "baseline";
  return [runs.slice(0, i).reverse().find(b), runs.slice(i + 1).find(b)].filter(Boolean);
};
const mean = (xs) => sum(xs) / xs.length;
const exact = (r) => r.counts.packetsReceived === r.serve.served + r.serve.sendErrors && r.counts.packetsSent === r.serve.served &&
  r.counts.bytesSent === r.serve.bytes;
const rows = [["mode", "runs", "answered/s (median)", "vs baseline", "server CPU us/datagram", "vs baseline", "counts exact", "agent CPU s"]];
const summary = {};
for (const mode of config.modes) {
  const rs = runs.filter((r) => r.mode === mode);
  const m = (summary[mode] = { runs: rs.length, pps: median(rs.map((r) => r.serve.pps)), cpuUs: median(rs.map(cpuUs)) });
  if (mode !== "baseline") {
    m.rateChange = median(rs.map((r) => r.serve.pps / mean(around(r).map((b) => b.serve.pps)) - 1));
    m.cpuChange = median(rs.map((r) => cpuUs(r) / mean(around(r).map(cpuUs)) - 1));
    m.exactRuns = rs.filter(exact).length;
    m.agentCpuS = median(rs.map((r) => r.agentCpuS));
  }
  rows.push([mode, String(m.runs), m.pps.toFixed(0), mode === "baseline" ? "-" : pct(m.rateChange), m.cpuUs.toFixed(2),
    mode === "baseline" ? "-" : pct(m.cpuChange), mode === "baseline" ? "-" : `${m.exactRuns === m.runs ? "yes" : "NO"} (${m.exactRuns}/${m.runs})`,
    mode === "baseline" ? "-" : m.agentCpuS.toFixed(2)]);
}
const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
console.log([`udp shared socket: ${config.threads} server threads answering on one socket, sender ${config.rate ? config.rate + "/s" : "flat out"}, ` +
  `${config.size}-byte datagrams, ${config.duration} s x ${config.rounds} rounds, ${config.nproc} CPUs, kernel ${config.kernel}, agent ${config.agentRev}`,
  ...rows.map((r) => r.map((c, i) => c.padEnd(w[i])).join("  ").trimEnd()), `raw results: ${outPath}`].join("\n"));
writeFileSync(outPath, JSON.stringify({ config, summary, runs }, null, 2) + "\n");
EOF
modes_json=$(printf '"%s",' "${MODES[@]}")
node --input-type=module -e "$REPORT_JS" "$RUNS" "$RESULTS/udp-shared-$STAMP.json" \
  "{\"modes\":[${modes_json%,}],\"threads\":$THREADS,\"rate\":$RATE,\"size\":$SIZE,\"duration\":$DURATION,\"rounds\":$ROUNDS,\"nproc\":$(nproc),\"kernel\":\"$(uname -r)\",\"agentRev\":\"$(agent_rev)\"}" |
  tee "$RESULTS/udp-shared-$STAMP.txt"
