#!/usr/bin/env bash
# UDP flood benchmark: 64-byte datagrams from one network namespace to another
# over a veth pair, with no tracing and under `bpfagent trace --json`,
# alternating (a baseline run before each agent run and one after the last),
# then a table of packet rate, slowdown, whether the agent's UDP counts are
# exact, and the agent's CPU.
#
#   bash bench/udp-flood.sh [--duration SECONDS] [--rounds N] [--rates LIST]
#                           [--size BYTES] [--batch N] [--interval DUR]
#                           [--settle SECONDS] [--port N] [--retries N]
#                           [--quiet-wait SECONDS] [--agent-dir DIR] [--no-pin]
#                           [--no-kernel-pass]
#
# --rates: comma-separated datagram rates to run, one variant each; 0 is flat
# out (default "0,200000,100000"). --interval is the agent's UDP --interval
# (1s).
# --agent-dir runs the agent of another built checkout (default: this one).
# The sender runs on CPU 0 and the receiver on CPU 1 (taskset), in every mode:
# left to the scheduler, the two sometimes share a CPU and sometimes not, and
# the baseline's packet rate jumps by a third between runs. --no-pin leaves
# them to the scheduler.
# After the rounds, the agent runs once more at 100000 datagrams/s with
# kernel.bpf_stats_enabled=1: the time its BPF programs take per datagram,
# against the CPU the load spends per datagram (--no-kernel-pass skips it).
# The packet rate of this VM drifts by a third from one run to the next;
# that time does not.
# --retries: a run during which other work used more than 0.1 core is run
# again, up to N times (default 2; 0 keeps every run). Before each run the
# script waits up to --quiet-wait s (30) for the rest of the machine to use
# less than 0.1 core.
#
# Needs root, a built agent (npx tsc -p . and npm install), gcc and iproute2.
# There is no peer tool to compare with: libbpf-tools has no UDP flow tracer.
# See bench/README.md.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # usage, log, snooze, cpu_ticks, ...

DURATION=5     # seconds of flood per run
ROUNDS=3       # each round: a baseline run, then an agent run, per rate
RATES=0,200000,100000 # datagrams/s per variant; 0 = flat out
SIZE=64        # UDP payload bytes per datagram
BATCH=32       # datagrams per sendmmsg/recvmmsg call
INTERVAL=1s    # the agent's --interval (UDP flows are reported per interval)
SETTLE=1       # seconds between the end of the flood and stopping the agent
PORT=19100     # the receiver's port, in its own network namespace
AGENT_DIR=
PIN=1               # sender on CPU 0, receiver on CPU 1
KERNEL_PASS=1       # after the rounds, one agent run with bpf_stats on
STATS_PASS=0
KERNEL_PASS_RATE=100000
STATS_WAS=
RETRIES=2           # reruns of a run disturbed by other work on the machine
BUSY_MILLICORES=100 # "disturbed": other work used more than 0.1 core
IDLE=0.3            # the receiver stops this long after the last datagram
QUIET_WAIT=30       # seconds to wait for a quiet machine before each run

while (($#)); do
  case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --rates) RATES=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --interval) INTERVAL=$2; shift 2 ;;
    --settle) SETTLE=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --agent-dir) AGENT_DIR=$2; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    --no-kernel-pass) KERNEL_PASS=0; shift ;;
    --retries) RETRIES=$2; shift 2 ;;
    --quiet-wait) QUIET_WAIT=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "bench: unknown argument '$1'" >&2; usage 2 >&2 ;;
  esac
done
for v in ROUNDS BATCH PORT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "bench: --${v,,} must be a positive whole number" >&2; exit 2; }
done
[[ $SIZE =~ ^[0-9]+$ ]] && ((SIZE <= 1472)) || { echo "bench: --size must be 0 to 1472 (one unfragmented datagram)" >&2; exit 2; }
[[ $RETRIES =~ ^[0-9]+$ && $QUIET_WAIT =~ ^[0-9]+$ ]] || { echo "bench: --retries/--quiet-wait must be whole numbers" >&2; exit 2; }
[[ $RATES =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "bench: --rates must be comma-separated whole numbers (0 = flat out)" >&2; exit 2; }
[[ $DURATION =~ ^[0-9]+(\.[0-9]+)?$ && $SETTLE =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "bench: --duration/--settle must be seconds" >&2; exit 2; }
((PORT < 32768)) || { echo "bench: --port must be below 32768 (the sender's port is ephemeral)" >&2; exit 2; }
IFS=, read -r -a RATE_LIST <<<"$RATES"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS=$ROOT/bench/results
AGENT_DIR=$(cd "${AGENT_DIR:-$ROOT}" && pwd)
cd "$ROOT"

# ------------------------------------------------------------------ checks
require_root_and_agent net.bpf.o
command -v gcc >/dev/null || { echo "bench: gcc not found" >&2; exit 1; }
command -v ip >/dev/null || { echo "bench: ip not found: apt-get install iproute2" >&2; exit 1; }

mkdir -p "$RESULTS"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUNDIR=$RESULTS/udp-$STAMP # per-run logs; the summary goes to $RESULTS/udp-flood-$STAMP.json
mkdir -p "$RUNDIR"
RUNS=$RUNDIR/runs.jsonl
: >"$RUNS"

FLOOD=$RESULTS/udpflood
gcc -O2 -Wall -pthread -o "$FLOOD" bench/udpflood.c
ON_SENDER_CPU=() ON_RECEIVER_CPU=() PINNED="not pinned"
if ((PIN)) && (($(nproc) >= 2)) && command -v taskset >/dev/null; then
  ON_SENDER_CPU=(taskset -c 0) ON_RECEIVER_CPU=(taskset -c 1) PINNED="sender on CPU 0, receiver on CPU 1"
fi

# ------------------------------------------------------------------ setup
NS_A=bpfudp-a-$$ # sender
NS_B=bpfudp-b-$$ # receiver
VETH_A=bu$$a     # interface names: at most 15 characters
VETH_B=bu$$b
ADDR_A=10.231.0.1
ADDR_B=10.231.0.2
SHM=/dev/shm/bpfudp-$$
AGENT_PID=
RECV_PID=
cleanup() {
  stop_running "$AGENT_PID" "$RECV_PID"
  rm -f "$SHM".*
  [[ -n $STATS_WAS ]] && sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"
  del_veth_pair
  exec 9>&- 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Two fresh network namespaces joined by a veth pair, with private addresses
# only they use (lib.sh); sets NETNS_A and NETNS_B.
add_veth_pair

open_snooze_fifo

# Waits (at most $QUIET_WAIT s) until the rest of the machine has used less
# than 0.1 core for half a second, so that a run does not start in the middle
# of someone else's build or test. Retries (below) catch what starts later.
wait_quiet() {
  local h0 h1 deadline=$(($(now_ns) + QUIET_WAIT * 1000000000)) waited=0
  while :; do
    h0=$(host_busy_ticks)
    snooze 0.5
    h1=$(host_busy_ticks)
    # busy ticks in 0.5 s -> thousandths of a core
    (((h1 - h0) * 2000 / TICK <= BUSY_MILLICORES)) && break
    (($(now_ns) < deadline)) || { log "  (machine still busy after ${QUIET_WAIT}s: running anyway)"; break; }
    ((waited++)) || log "  (waiting for other work on the machine to calm down)"
  done
}

json_num() { # json_num JSON KEY -> the number, or 0
  [[ $1 =~ \"$2\":(-?[0-9.]+) ]] && echo "${BASH_REMATCH[1]}" || echo 0
}

# Another bpfagent already running (someone else's test or benchmark) would
# count this flood too, baseline included: count its UDP programs before each
# run (-1: bpftool missing). The report flags runs that had one.
foreign_agents() {
  command -v bpftool >/dev/null || { echo -1; return; }
  bpftool prog show 2>/dev/null | grep -c ' name skb_egress ' || true
}

# Runs one flood at rate $1: the receiver in B (stopped $IDLE s after the last
# datagram), the sender in A. Sets SEND and RECV (their JSON lines), HOST (host
# CPU seconds while the sender ran, and the agent's) and OTHER_MILLICORES (CPU
# used meanwhile by anything else, in thousandths of a core).
flood() { # rate [agent_pid]
  local rate=$1 agent=${2:-} h0 h1 t0=0 t1=0 deadline
  rm -f "$SHM.recv" "$SHM.recv.err"
  ip netns exec "$NS_B" "${ON_RECEIVER_CPU[@]}" "$FLOOD" recv --bind "$ADDR_B" --port "$PORT" --idle-timeout "$IDLE" --batch "$BATCH" \
    >"$SHM.recv" 2>"$SHM.recv.err" &
  RECV_PID=$!
  wait_ready "$RECV_PID" receiver "$SHM.recv.err" 10 "$(now_ns)" file_has "$SHM.recv.err" '"ready":true'
  [[ -n $agent ]] && t0=$(cpu_ticks "$agent")
  h0=$(host_busy_ticks)
  SEND=$(ip netns exec "$NS_A" "${ON_SENDER_CPU[@]}" "$FLOOD" send --dest "$ADDR_B" --port "$PORT" --duration "$DURATION" \
    --rate "$rate" --size "$SIZE" --batch "$BATCH")
  h1=$(host_busy_ticks)
  [[ -n $agent ]] && t1=$(cpu_ticks "$agent")
  # the receiver drains its buffer and stops on its own; if nothing arrived
  # at all it would wait forever: stop it after 10 s
  deadline=$(($(now_ns) + 10000000000))
  while kill -0 "$RECV_PID" 2>/dev/null && (($(now_ns) < deadline)); do snooze 0.01; done
  kill -TERM "$RECV_PID" 2>/dev/null || true
  wait "$RECV_PID" || true
  RECV_PID=
  RECV=$(<"$SHM.recv")
  [[ -n $RECV ]] || { log "bench: the receiver printed nothing:"; cat "$SHM.recv.err" >&2; exit 1; }
  HOST=$(printf '{"busyCpuS":%s,"agentCpuS":%s}' "$(((h1 - h0) * 1000 / TICK))e-3" "$(((t1 - t0) * 1000 / TICK))e-3")
  # everything but the sender, the receiver (its whole life: it idles before
  # and after) and the agent
  local load_ms=$(($(ms "$(json_num "$SEND" cpuUser)") + $(ms "$(json_num "$SEND" cpuSys)") +
    $(ms "$(json_num "$RECV" cpuUser)") + $(ms "$(json_num "$RECV" cpuSys)")))
  local other_ms=$(((h1 - h0 - t1 + t0) * 1000 / TICK - load_ms))
  OTHER_MILLICORES=$((other_ms < 0 ? 0 : other_ms * 1000 / $(ms "$(json_num "$SEND" seconds)")))
}

# Sums the agent's UDP records of the flood's flow, from each end: the sender's
# (namespace A, local port = the sender's, remote port = PORT) and the
# receiver's (namespace B, local port = PORT, remote port = the sender's).
read -r -d '' COUNT_JS <<'EOF' || true
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
const [file, nsA, nsB, port, senderPort] = process.argv.slice(1);
const zero = () => ({ records: 0, packetsSent: 0, packetsReceived: 0, bytesSent: 0, bytesReceived: 0, pids: [] });
const c = { lines: 0, parseErrors: 0, udpRecords: 0, otherUdpRecordsInNamespaces: 0, sender: zero(), receiver: zero() };
const add = (s, r) => {
  s.records++;
  for (const k of ["packetsSent", "packetsReceived", "bytesSent", "bytesReceived"]) s[k] += r[k] ?? 0;
  if (!s.pids.includes(r.local.pid)) s.pids.push(r.local.pid);
};
for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
  if (!line) continue;
  c.lines++;
  let r;
  try { r = JSON.parse(line); } catch { c.parseErrors++; continue; }
  if (r.proto !== "udp") continue;
  c.udpRecords++;
  const ns = String(r.local?.netns), lp = String(r.local?.port), rp = String(r.remote?.port);
  if (ns === nsA && lp === senderPort && rp === port) add(c.sender, r);
  else if (ns === nsB && lp === port && rp === senderPort) add(c.receiver, r);
  else if (ns === nsA || ns === nsB) c.otherUdpRecordsInNamespaces++;
}
console.log(JSON.stringify(c));
EOF

# ------------------------------------------------------------------ modes
# Each sets RUN_JSON (one JSON object) and, through flood, OTHER_MILLICORES.

run_baseline() { # rate round attempt
  local foreign
  foreign=$(foreign_agents)
  flood "$1"
  RUN_JSON=$(printf '{"mode":"baseline","rate":%d,"round":%d,"foreignAgents":%d,"send":%s,"recv":%s,"host":%s}' "$1" "$2" "$foreign" "$SEND" "$RECV" "$HOST")
  log "  baseline  sent $(json_num "$SEND" packets) ($(json_num "$SEND" pps)/s) received $(json_num "$RECV" packets) drops $(json_num "$RECV" drops) other=${OTHER_MILLICORES}m"
}

run_bpfagent() { # rate round attempt
  local rate=$1 r=$2 err=$RUNDIR/bpfagent-rate$1-r$2-try$3.stderr out=$SHM.agent.jsonl
  local t0 t1 w0 w1 cpu0 cpu1 rc=0 foreign
  foreign=$(foreign_agents)
  rm -f "$err" # a stale "ready" line must not be taken for this run's
  t0=$(now_ns)
  # records to tmpfs: costs the agent about what /dev/null would
  node "$AGENT_DIR/bin/bpfagent.js" trace --json --interval "$INTERVAL" >"$out" 2>"$err" &
  AGENT_PID=$!
  wait_agent_ready "$AGENT_PID" "$err" "$t0"
  t1=$(now_ns)
  # the receiver starts after the agent, so its socket's owner is known from
  # its creation; the agent's CPU counts from ready to just before SIGINT
  w0=$(now_ns)
  cpu0=$(cpu_ticks "$AGENT_PID")
  local p0 progs=null
  ((STATS_PASS)) && p0=$(node bench/prog-stats.mjs snapshot "$AGENT_PID")
  flood "$rate" "$AGENT_PID"
  ((STATS_PASS)) && progs=$(node bench/prog-stats.mjs delta "$p0" "$(node bench/prog-stats.mjs snapshot "$AGENT_PID")")
  snooze "$SETTLE"
  cpu1=$(cpu_ticks "$AGENT_PID")
  w1=$(now_ns)
  kill -INT "$AGENT_PID"
  wait "$AGENT_PID" || rc=$?
  AGENT_PID=
  local summary counts
  summary=$(grep -m1 '"msg":"summary:' "$err" || echo null)
  counts=$(node --input-type=module -e "$COUNT_JS" "$out" "$NETNS_A" "$NETNS_B" "$PORT" "$(json_num "$SEND" localPort)")
  rm -f "$out"
  RUN_JSON=$(printf '{"mode":"bpfagent","rate":%d,"round":%d,"foreignAgents":%d,"send":%s,"recv":%s,"host":%s,"readyMs":%.1f,"cpuTicks":%d,"cpuWallS":%s,"clkTck":%d,"exitCode":%d,"counts":%s,"summary":%s,"progs":%s}' \
    "$rate" "$r" "$foreign" "$SEND" "$RECV" "$HOST" "$(((t1 - t0) / 1000))e-3" $((cpu1 - cpu0)) "$(((w1 - w0) / 1000000))e-3" "$TICK" "$rc" "$counts" "$summary" "$progs")
  log "  bpfagent  sent $(json_num "$SEND" packets) ($(json_num "$SEND" pps)/s) received $(json_num "$RECV" packets) drops $(json_num "$RECV" drops) cpu=$((cpu1 - cpu0))ticks exit=$rc other=${OTHER_MILLICORES}m"
  log "            records $counts"
}

# ------------------------------------------------------------------ run
AGENT_REV=$(agent_rev)
log "bench: rates ${RATES} (0 = flat out) x $ROUNDS rounds x 2 modes x ${DURATION}s, ${SIZE}-byte datagrams, batch $BATCH, $NS_A -> $NS_B:$PORT; logs in ${RUNDIR#"$ROOT"/}"
log "bench: agent $AGENT_DIR ($AGENT_REV), --interval $INTERVAL"
log "bench: warm-up (not counted)"
ip netns exec "$NS_B" "$FLOOD" recv --bind "$ADDR_B" --port "$PORT" --idle-timeout "$IDLE" >/dev/null 2>&1 &
RECV_PID=$!
snooze 0.2
ip netns exec "$NS_A" "$FLOOD" send --dest "$ADDR_B" --port "$PORT" --duration 1 --size "$SIZE" >/dev/null
wait "$RECV_PID" || true
RECV_PID=

# Per rate, a baseline run before each agent run and one after the last: each
# agent run is compared with the two baselines around it (this VM's packet
# rate drifts by a third between minutes, far more than within one triple).
BEFORE_RUN=wait_quiet # run_kept: lib.sh
for rate in "${RATE_LIST[@]}"; do
  for ((r = 1; r <= ROUNDS; r++)); do
    log "bench: rate $( ((rate)) && echo "$rate/s" || echo "flat out"), round $r/$ROUNDS"
    run_kept baseline "$rate" "$r"
    run_kept bpfagent "$rate" "$r"
  done
  run_kept baseline "$rate" "$ROUNDS"
done

# One more agent run with kernel.bpf_stats_enabled=1: the time its BPF
# programs take per datagram. The counting itself adds to every program run,
# so this run is not in the table's medians.
KERNEL_PASS_FILE=$RUNDIR/kernel-pass.jsonl
if ((KERNEL_PASS)); then
  log "bench: kernel programs pass (bpf_stats) at $KERNEL_PASS_RATE/s"
  STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
  sysctl -qw kernel.bpf_stats_enabled=1
  STATS_PASS=1
  wait_quiet
  run_bpfagent "$KERNEL_PASS_RATE" 1 1
  printf '%s\n' "$RUN_JSON" >"$KERNEL_PASS_FILE"
  STATS_PASS=0
  sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"
  STATS_WAS=
fi

# ------------------------------------------------------------------ report
read -r -d '' REPORT_JS <<'EOF' || true
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
const [runsPath, outPath, configJson] = process.argv.slice(1);
const config = JSON.parse(configJson);
const readJsonl = (p) => readFileSync(p, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
const runs = readJsonl(runsPath);
const discardedPath = path.join(path.dirname(runsPath), "discarded.jsonl");
const discarded = existsSync(discardedPath) ? readJsonl(discardedPath) : [];
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const pct = (x) => `${(x * 100).toFixed(1)}%`;
const otherCores = (r) => Math.max(0, r.host.busyCpuS - r.host.agentCpuS - r.send.cpuUser - r.send.cpuSys - r.recv.cpuUser - r.recv.cpuSys) / r.send.seconds;
// what the agent said it dropped: every summary counter loss*, UDP flows
// evicted from the kernel table before being read, undecodable records
const reportedLoss = (r) => {
  const s = r.summary ?? {};
  let n = (s.decodeErrors ?? 0) + (s.udpEvicted ?? 0);
  for (const [k, v] of Object.entries(s)) if (/^loss[A-Z]/.test(k) && typeof v === "number") n += v;
  return n;
};
// Exact: the sender's records count what the sender sent; the receiver's,
// what it read (datagrams its socket dropped for lack of buffer never reached
// the process, and are not counted).
const exactness = (r) => {
  const c = r.counts;
  const sent = c.sender.packetsSent === r.send.packets && c.sender.bytesSent === r.send.bytes;
  const arrived = r.recv.packets;
  const received = c.receiver.packetsReceived === arrived && c.receiver.bytesReceived === r.recv.bytes;
  const noReverse = c.sender.packetsReceived === 0 && c.receiver.packetsSent === 0;
  return { sent, received, noReverse, arrived, exact: sent && received && noReverse };
};
const summary = {};
for (const rate of config.rates) {
  const s = (summary[rate] = {});
  for (const mode of ["baseline", "bpfagent"]) {
    const rs = runs.filter((r) => r.rate === rate && r.mode === mode);
    if (!rs.length) continue;
    const m = {
      runs: rs.length,
      pps: rs.map((r) => r.send.pps),
      ppsMedian: median(rs.map((r) => r.send.pps)),
      packetsSent: sum(rs.map((r) => r.send.packets)),
      packetsReceived: sum(rs.map((r) => r.recv.packets)),
      socketDrops: sum(rs.map((r) => Math.max(0, r.recv.drops))),
      sendErrors: sum(rs.map((r) => r.send.errors)),
      // sender + receiver CPU (softirq included: it runs in the sender context here)
      loadCpuUsPerPacket: rs.map((r) => ((r.send.cpuUser + r.send.cpuSys + r.recv.cpuUser + r.recv.cpuSys) / r.send.packets) * 1e6),
      otherCores: rs.map(otherCores),
    };
    m.loadCpuUsPerPacketMedian = median(m.loadCpuUsPerPacket);
    if (mode === "bpfagent") {
      const ex = rs.map(exactness);
      m.exactRuns = ex.filter((e) => e.exact).length;
      m.agentPacketsSent = sum(rs.map((r) => r.counts.sender.packetsSent));
      m.agentBytesSent = sum(rs.map((r) => r.counts.sender.bytesSent));
      m.agentPacketsReceived = sum(rs.map((r) => r.counts.receiver.packetsReceived));
      m.agentBytesReceived = sum(rs.map((r) => r.counts.receiver.bytesReceived));
      m.bytesSent = sum(rs.map((r) => r.send.bytes));
      m.bytesReceived = sum(rs.map((r) => r.recv.bytes));
      m.arrived = sum(ex.map((e) => e.arrived));
      m.records = rs.map((r) => [r.counts.sender.records, r.counts.receiver.records]);
      m.pids = rs.map((r) => [r.counts.sender.pids, r.counts.receiver.pids]);
      m.parseErrors = sum(rs.map((r) => r.counts.parseErrors));
      m.lossReported = sum(rs.map(reportedLoss));
      m.cpuCores = rs.map((r) => r.cpuTicks / r.clkTck / r.cpuWallS);
      m.cpuSecPerMillionPackets = rs.map((r) => r.cpuTicks / r.clkTck / (r.send.packets / 1e6));
      m.cpuSecPerMillionPacketsMedian = median(m.cpuSecPerMillionPackets);
      m.readyMs = rs.map((r) => r.readyMs);
      m.exitCodes = rs.map((r) => r.exitCode);
      // each run against the mean of the baselines of its rate run just before and after it
      const per = (x) => (x.send.cpuUser + x.send.cpuSys + x.recv.cpuUser + x.recv.cpuSys) / x.send.packets;
      const around = (r) => {
        const i = runs.indexOf(r);
        const same = (x) => x.rate === rate && x.mode === "baseline";
        return [runs.slice(0, i).reverse().find(same), runs.slice(i + 1).find(same)].filter(Boolean);
      };
      const mean = (xs) => sum(xs) / xs.length;
      m.slowdownPaired = rs.map((r) => 1 - r.send.pps / mean(around(r).map((b) => b.send.pps)));
      m.cpuIncreasePaired = rs.map((r) => per(r) / mean(around(r).map(per)) - 1);
    }
    s[mode] = m;
  }
  if (s.baseline && s.bpfagent) {
    s.bpfagent.slowdown = median(s.bpfagent.slowdownPaired);
    s.bpfagent.slowdownOfMedians = 1 - s.bpfagent.ppsMedian / s.baseline.ppsMedian;
    s.bpfagent.loadCpuIncrease = median(s.bpfagent.cpuIncreasePaired);
  }
}

const cols = [
  ["rate", (m, mode, rate) => (rate ? `${rate}/s` : "flat out")],
  ["mode", (m, mode) => mode],
  ["runs", (m) => String(m.runs)],
  ["packets/s (median)", (m) => m.ppsMedian.toFixed(0)],
  ["slowdown (median, paired)", (m, mode) => (mode === "baseline" ? "-" : pct(m.slowdown))],
  ["load CPU us/packet", (m, mode) => m.loadCpuUsPerPacketMedian.toFixed(2) + (mode === "baseline" ? "" : ` (${m.loadCpuIncrease >= 0 ? "+" : ""}${pct(m.loadCpuIncrease)})`)],
  ["counts exact", (m, mode) => (mode === "baseline" ? "-" : `${m.exactRuns === m.runs ? "yes" : "NO"} (${m.exactRuns}/${m.runs} runs)`)],
  ["loss(reported)", (m, mode) => (mode === "baseline" ? "-" : String(m.lossReported))],
  ["agent CPU cores", (m, mode) => (mode === "baseline" ? "-" : median(m.cpuCores).toFixed(3))],
  ["agent CPU s/1M packets", (m, mode) => (mode === "baseline" ? "-" : m.cpuSecPerMillionPacketsMedian.toFixed(3))],
];
const rows = [cols.map(([h]) => h)];
for (const rate of config.rates)
  for (const mode of ["baseline", "bpfagent"]) if (summary[rate][mode]) rows.push(cols.map(([, f]) => f(summary[rate][mode], mode, rate)));
const widths = cols.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
const out = [
  `udp flood: ${config.size}-byte datagrams, netns A -> netns B over veth, ${config.duration} s per run, ${config.rounds} rounds, ` +
    `batch ${config.batch}, ${config.nproc} CPUs (${config.pinned}), kernel ${config.kernel}, agent ${config.agentRev} --interval ${config.interval}`,
  ...rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()),
];
for (const rate of config.rates) {
  const m = summary[rate].bpfagent, b = summary[rate].baseline;
  if (!m) continue;
  const label = rate ? `${rate}/s` : "flat out";
  out.push(
    `${label}: sent: agent ${m.agentPacketsSent} packets/${m.agentBytesSent} bytes, sender ${m.packetsSent}/${m.bytesSent}; ` +
      `received: agent ${m.agentPacketsReceived}/${m.agentBytesReceived}, receiver read ${m.packetsReceived}/${m.bytesReceived}` +
      (m.socketDrops ? ` + ${m.socketDrops} dropped by its full socket buffer` : ", socket drops 0"),
  );
  const notes = [
    `slowdown of each run against the baselines around it ${m.slowdownPaired.map(pct).join(", ")} (of the medians ${pct(m.slowdownOfMedians)})`,
    `load CPU/packet of each run against them ${m.cpuIncreasePaired.map((x) => (x >= 0 ? "+" : "") + pct(x)).join(", ")}`,
    `agent CPU cores ${m.cpuCores.map((c) => c.toFixed(3)).join(", ")}`,
    `records per run (sender, receiver) ${m.records.map((x) => x.join("+")).join(", ")}`,
    `ready ms ${m.readyMs.map((x) => x.toFixed(0)).join(", ")}`,
  ];
  if (b.socketDrops) notes.push(`baseline socket drops ${b.socketDrops}`);
  if (m.sendErrors + b.sendErrors) notes.push(`send errors ${b.sendErrors} baseline, ${m.sendErrors} bpfagent`);
  if (m.parseErrors) notes.push(`${m.parseErrors} output lines that are not JSON`);
  if (m.exitCodes.some((c) => c !== 0)) notes.push(`exit codes ${m.exitCodes.join(",")}`);
  out.push(`  ${notes.join("; ")}`);
  out.push(`  other CPU while loaded (cores, by round): baseline ${b.otherCores.map((c) => c.toFixed(2)).join(", ")}; bpfagent ${m.otherCores.map((c) => c.toFixed(2)).join(", ")}`);
}
const passPath = path.join(path.dirname(runsPath), "kernel-pass.jsonl");
if (existsSync(passPath)) {
  const [k] = readJsonl(passPath);
  const progs = Object.entries(k.progs ?? {}).filter(([, v]) => v.runs > 0).sort((a, b) => b[1].ns - a[1].ns);
  const packets = k.send.packets;
  const totalNs = sum(progs.map(([, v]) => v.ns)) / packets;
  const base = summary[k.rate]?.baseline?.loadCpuUsPerPacketMedian;
  out.push(
    `bpfagent per datagram at ${k.rate}/s: BPF programs ${totalNs.toFixed(0)} ns [` +
      progs.map(([name, v]) => `${name} ${(v.ns / packets).toFixed(0)} (${(v.runs / packets).toFixed(1)} x ${(v.ns / v.runs).toFixed(0)} ns)`).join(", ") + "]" +
      (base ? `; the load's CPU per datagram without the agent (median) ${(base * 1000).toFixed(0)} ns: the programs add ${pct(totalNs / (base * 1000))}` : "") +
      " (one bpf_stats run, which adds its own ~tens of ns per program run)",
  );
}
if (discarded.length)
  out.push(`rerun because other work used > 0.1 cores: ` + discarded.map((r) => `${r.mode} ${r.rate ? r.rate + "/s" : "flat out"} round ${r.round} (${otherCores(r).toFixed(2)})`).join(", "));
const busy = runs.filter((r) => otherCores(r) > 0.1);
if (busy.length)
  out.push(`WARNING: ${busy.length} run(s) shared the CPUs with other work (> 0.1 cores): ` + busy.map((r) => `${r.mode} ${r.rate ? r.rate + "/s" : "flat out"} round ${r.round}`).join(", "));
const foreign = runs.filter((r) => r.foreignAgents > 0);
if (foreign.length)
  out.push(`WARNING: another bpfagent was running during ${foreign.length} run(s): ` + foreign.map((r) => `${r.mode} ${r.rate ? r.rate + "/s" : "flat out"} round ${r.round}`).join(", ") + "; it slowed them down too");
out.push(`raw results: ${outPath}`);
console.log(out.join("\n"));
writeFileSync(outPath, JSON.stringify({ config, summary, runs, discarded }, null, 2) + "\n");
EOF

RATES_JSON="[${RATES}]"
node --input-type=module -e "$REPORT_JS" "$RUNS" "$RESULTS/udp-flood-$STAMP.json" \
  "{\"duration\":$DURATION,\"rounds\":$ROUNDS,\"rates\":$RATES_JSON,\"size\":$SIZE,\"batch\":$BATCH,\"interval\":\"$INTERVAL\",\"settle\":$SETTLE,\"port\":$PORT,\"retries\":$RETRIES,\"nproc\":$(nproc),\"pinned\":\"$PINNED\",\"kernel\":\"$(uname -r)\",\"stamp\":\"$STAMP\",\"netnsA\":$NETNS_A,\"netnsB\":$NETNS_B,\"agentDir\":\"$AGENT_DIR\",\"agentRev\":\"$AGENT_REV\"}" |
  tee "$RESULTS/udp-flood-$STAMP.txt"
