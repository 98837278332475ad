#!/usr/bin/env bash
# Connection-churn benchmark: loopback TCP churn with no tracing, under
# `bpfagent trace --json`, and under libbpf-tools `tcplife`, alternating with a
# baseline run between any two traced runs, then a table of throughput,
# slowdown, capture, tracer CPU and start-up time.
#
#   bash bench/run.sh [--duration SECONDS] [--rounds N] [--clients N]
#                     [--servers N] [--settle SECONDS] [--port N]
#                     [--agent-dir DIR] [--retries N] [--no-kernel-pass]
#                     [--output null|file] [--clickhouse]
#
# --clickhouse adds a third tracer: `bpfagent run` with its ClickHouse sink
# writing every record to a real ClickHouse server (the tests' own, started
# for the benchmark: test/helpers/clickhouse-server.ts), counted there; the
# server's CPU while loaded is reported beside the agent's.
# --agent-dir runs the agent of another built checkout (default: this one),
# e.g. a snapshot of a commit while the work tree is being edited.
# --retries: a run during which other work used more than 0.1 core is run
# again, up to N times (default 2; 0 keeps every run).
# --output: where the tracers' output goes in the timed runs: /dev/null, as the
# issue's benchmark says (default), or a file on tmpfs, where every record is
# counted (writing it costs the more verbose tracer more).
# After the rounds, each tracer runs once more with its output to a file on
# tmpfs, every connection counted (the final pass), and with
# kernel.bpf_stats_enabled=1 to measure the time its BPF programs take per
# connection (--no-kernel-pass: no bpf_stats; with --output file, no final
# pass at all).
#
# Needs root, a built agent (npx tsc -p . and npm install), gcc, and
# /usr/sbin/tcplife (Debian package libbpf-tools). See bench/README.md.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # usage, log, snooze, cpu_ticks, ...

DURATION=8     # seconds of load per run
ROUNDS=3       # each round runs every mode once
CLIENTS=4      # client threads in churn
SERVERS=$(nproc) # server threads (one epoll loop + SO_REUSEPORT listener each)
SETTLE=1       # seconds between the end of the load and stopping the tracer
PORT=18080     # churn server port, inside the benchmark's own network namespace
REQ_BYTES=100  # each connection: the client sends this much...
REP_BYTES=200  # ...the server answers this much, then closes
TCPLIFE=${TCPLIFE:-/usr/sbin/tcplife}
AGENT_DIR=
RETRIES=2      # reruns of a run disturbed by other work on the machine
BUSY_MILLICORES=100 # "disturbed": other work used more than 0.1 core
KERNEL_PASS=1  # after the rounds, one run of each tracer with bpf_stats on
STATS_PASS=0
OUTPUT=null    # the timed runs' output: null (/dev/null) or file (tmpfs, counted)
TO_FILE=0      # this run's output goes to a file and is counted
STATS_WAS=
CLICKHOUSE=0   # also bpfagent run -> ClickHouse (--clickhouse)
CH_URL= CH_NODE_PID= CH_PID=

while (($#)); do
  case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --servers) SERVERS=$2; shift 2 ;;
    --settle) SETTLE=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --agent-dir) AGENT_DIR=$2; shift 2 ;;
    --retries) RETRIES=$2; shift 2 ;;
    --no-kernel-pass) KERNEL_PASS=0; shift ;;
    --output) OUTPUT=$2; shift 2 ;;
    --clickhouse) CLICKHOUSE=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "bench: unknown argument '$1'" >&2; usage 2 >&2 ;;
  esac
done
for v in ROUNDS CLIENTS SERVERS PORT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "bench: --${v,,} must be a positive whole number" >&2; exit 2; }
done
[[ $OUTPUT == null || $OUTPUT == file ]] || { echo "bench: --output must be null or file" >&2; exit 2; }
[[ $OUTPUT == file ]] && TO_FILE=1
[[ $RETRIES =~ ^[0-9]+$ ]] || { echo "bench: --retries must be a whole number" >&2; exit 2; }
[[ $DURATION =~ ^[0-9]+(\.[0-9]+)?$ && $SETTLE =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "bench: --duration/--settle must be seconds" >&2; exit 2; }
((PORT < 20000)) || { echo "bench: --port must be below 20000 (the ephemeral range used is 20000-65535)" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS=$ROOT/bench/results
AGENT_DIR=$(cd "${AGENT_DIR:-$ROOT}" && pwd)
cd "$ROOT"

# ------------------------------------------------------------------ checks
require_root_and_agent tcp.bpf.o
[[ -x $TCPLIFE ]] || { echo "bench: $TCPLIFE not found: apt-get install libbpf-tools" >&2; exit 1; }
command -v gcc >/dev/null || { echo "bench: gcc not found" >&2; exit 1; }
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing

mkdir -p "$RESULTS"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUNDIR=$RESULTS/$STAMP # per-run logs; the summary goes to $RESULTS/churn-$STAMP.json
mkdir -p "$RUNDIR"
RUNS=$RUNDIR/runs.jsonl
: >"$RUNS"

CHURN=$RESULTS/churn
gcc -O2 -Wall -pthread -o "$CHURN" bench/churn.c

# ------------------------------------------------------------------ setup
NS=bpfbench-$$
SHM=/dev/shm/bpfbench-$$
TRACER_PID=
cleanup() {
  stop_running "$TRACER_PID"
  rm -f "$SHM".*
  [[ -n $STATS_WAS ]] && sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"
  [[ -n $CH_NODE_PID ]] && { kill -TERM "$CH_NODE_PID" 2>/dev/null; wait "$CH_NODE_PID" 2>/dev/null || true; }
  ip netns del "$NS" 2>/dev/null || true
  exec 9>&- 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A fresh network namespace: only the load's connections live there, with
# default sysctls, and nothing of the host's is touched. Both tracers see every
# namespace; records are counted by namespace (bpfagent) and port.
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
# ephemeral ports clear of the server port, and as many as possible
ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="20000 65535"
NETNS_INO=$(stat -L -c %i "/run/netns/$NS")

open_snooze_fifo

# --clickhouse: one server for the whole run (the tests' own), its data removed at the end
if ((CLICKHOUSE)); then
  [[ -f dist/bench/clickhouse-server.js ]] || { echo "bench: dist/bench/clickhouse-server.js missing: npx tsc -p ." >&2; exit 1; }
  exec 8< <(exec node dist/bench/clickhouse-server.js)
  CH_NODE_PID=$!
  read -r -t 60 -u 8 CH_URL || { echo "bench: the ClickHouse server did not start" >&2; exit 1; }
  CH_PID=$(pgrep -P "$CH_NODE_PID" -f clickhouse | head -1)
  [[ -n $CH_PID ]] || { echo "bench: no clickhouse-server process under $CH_NODE_PID" >&2; exit 1; }
  log "bench: ClickHouse $CH_URL (pid $CH_PID)"
fi

# is signal $2 caught by the program $3 running as process $1 (SigCgt in
# /proc/PID/status)? Checking the name skips the forked shell before its exec,
# which still has this script's traps.
catches_signal() {
  local k v comm
  read -r comm <"/proc/$1/comm" || return 1
  [[ $comm == "$3" ]] || return 1
  while read -r k v; do
    if [[ $k == SigCgt: ]]; then
      (((16#$v >> ($2 - 1)) & 1)) && return 0 || return 1
    fi
  done <"/proc/$1/status"
  return 1
}

churn() {
  ip netns exec "$NS" "$CHURN" -d "$DURATION" -c "$CLIENTS" -s "$SERVERS" -p "$PORT" -q "$REQ_BYTES" -r "$REP_BYTES"
}

# Runs the load; sets LOAD (churn's JSON line) and HOST (JSON: host CPU seconds
# while it ran, and the tracer's, so the report can compute "other" CPU).
run_load() { # [tracer_pid]
  local h0 h1 t0=0 t1=0 p0
  [[ -n ${1:-} ]] && t0=$(cpu_ticks "$1")
  ((STATS_PASS)) && p0=$(node bench/prog-stats.mjs snapshot "$1")
  h0=$(host_busy_ticks)
  LOAD=$(churn)
  h1=$(host_busy_ticks)
  ((STATS_PASS)) && PROGS=$(node bench/prog-stats.mjs delta "$p0" "$(node bench/prog-stats.mjs snapshot "$1")")
  [[ -n ${1:-} ]] && t1=$(cpu_ticks "$1")
  HOST=$(printf '{"busyCpuS":%s,"tracerCpuS":%s}' "$(((h1 - h0) * 1000 / TICK))e-3" "$(((t1 - t0) * 1000 / TICK))e-3")
  # CPU of everything else, in thousandths of a core (report.mjs computes the same)
  local user=0 sys=0 secs=1
  [[ $LOAD =~ \"cpuUser\":([0-9.]+) ]] && user=${BASH_REMATCH[1]}
  [[ $LOAD =~ \"cpuSys\":([0-9.]+) ]] && sys=${BASH_REMATCH[1]}
  [[ $LOAD =~ \"seconds\":([0-9.]+) ]] && secs=${BASH_REMATCH[1]}
  local other_ms=$(((h1 - h0 - t1 + t0) * 1000 / TICK - $(ms "$user") - $(ms "$sys")))
  OTHER_MILLICORES=$((other_ms < 0 ? 0 : other_ms * 1000 / $(ms "$secs")))
}

# ------------------------------------------------------------------ modes
# Each sets RUN_JSON (one JSON object) and, through run_load, OTHER_MILLICORES.

run_baseline() { # round attempt
  run_load
  RUN_JSON=$(printf '{"mode":"baseline","round":%d,"load":%s,"host":%s}' "$1" "$LOAD" "$HOST")
  log "  baseline  $LOAD other=${OTHER_MILLICORES}m"
}

# Starts `bpfagent ARGS...` as the tracer, its stdout to OUT and its stderr
# to ERR, and waits until it is ready; sets TRACER_PID and READY_NS (from its
# start).
start_bpfagent() { # OUT ERR ARGS...
  local out=$1 err=$2 t0
  shift 2
  rm -f "$err" # a stale "ready" line must not be taken for this run's
  t0=$(now_ns)
  node "$AGENT_DIR/bin/bpfagent.js" "$@" >"$out" 2>"$err" &
  TRACER_PID=$!
  wait_agent_ready "$TRACER_PID" "$err" "$t0"
  READY_NS=$(($(now_ns) - t0))
}

# Runs the load under the tracer TRACER_PID, once it is ready, and stops it
# (SIGINT) $SETTLE s after; sets LOAD and HOST (run_load), CPU0 (the tracer's
# CPU ticks when ready: its start-up), CPU_LOAD (its ticks from then until
# the SIGINT) and RC (its exit code).
load_traced() {
  CPU0=$(cpu_ticks "$TRACER_PID")
  run_load "$TRACER_PID"
  snooze "$SETTLE"
  CPU_LOAD=$(($(cpu_ticks "$TRACER_PID") - CPU0))
  RC=0
  kill -INT "$TRACER_PID"
  wait "$TRACER_PID" || RC=$?
  TRACER_PID=
}

run_bpfagent() { # round attempt
  local r=$1 err=$RUNDIR/bpfagent-r$1-try$2.stderr out=$SHM.agent.jsonl
  # Counted runs write to a file on tmpfs, so that exactly which connections
  # were captured can be checked; others to /dev/null (see --output).
  ((TO_FILE)) || out=/dev/null
  start_bpfagent "$out" "$err" trace --json
  load_traced
  local summary ready
  summary=$(grep -m1 '"msg":"summary:' "$err" || echo null)
  ready=$(grep -m1 '"msg":"ready' "$err")
  # records of this namespace's connections to/from the churn port, by side,
  # with a check of their outcome and byte counts
  local counts=null
  if ((TO_FILE)); then
    counts=$(node bench/count-records.mjs "$out" "$NETNS_INO" "$PORT" "$REQ_BYTES" "$REP_BYTES")
    rm -f "$out"
  fi
  RUN_JSON=$(printf '{"mode":"bpfagent","round":%d,"load":%s,"host":%s,"readyMs":%.1f,"ready":%s,"cpuTicksLoad":%d,"cpuTicksStartup":%d,"clkTck":%d,"exitCode":%d,"counts":%s,"summary":%s,"progs":%s}' \
    "$r" "$LOAD" "$HOST" "$((READY_NS / 1000))e-3" "$ready" "$CPU_LOAD" "$CPU0" "$TICK" "$RC" "$counts" "$summary" "${PROGS:-null}")
  log "  bpfagent  $LOAD ready=$((READY_NS / 1000000))ms cpu=${CPU_LOAD}ticks records=$counts exit=$RC other=${OTHER_MILLICORES}m"
}

# `bpfagent run` with the ClickHouse sink: every record goes to the server,
# where this run's rows (its own clusterName) are counted after it stops.
run_clickhouse() { # round attempt
  local r=$1 err=$RUNDIR/clickhouse-r$1-try$2.stderr cfg=$RUNDIR/clickhouse-r$1-try$2.yaml
  local cluster=bench-r$1-t$2-$((RANDOM * 32768 + RANDOM)) ch0 ch1
  printf 'listen: 127.0.0.1:0\nclusterName: %s\nsinks:\n  clickhouse:\n    url: %s\n    database: bpfbench\n' "$cluster" "$CH_URL" >"$cfg"
  start_bpfagent /dev/null "$err" run --config "$cfg"
  ch0=$(cpu_ticks "$CH_PID")
  load_traced
  # the server's CPU until the agent's last batch is in (the sink flushes as it stops)
  ch1=$(cpu_ticks "$CH_PID")
  local summary ready sinks counts
  summary=$(grep -m1 '"msg":"summary:' "$err" || echo null)
  ready=$(grep -m1 '"msg":"ready' "$err")
  sinks=$(grep -m1 '"msg":"sinks shut down"' "$err" || echo null)
  # the rows of this run's connections (this namespace, the churn port), by side, as count-records.mjs counts a file
  counts=$(curl -sS --fail "$CH_URL/" --data-binary "SELECT
      count() AS lines, countIf(observed_by = 'client') AS outbound, countIf(observed_by = 'server') AS inbound,
      countIf(outcome != 'closed') AS notClosed,
      countIf(if(observed_by = 'client', (bytes_sent, bytes_received) != ($REQ_BYTES, $REP_BYTES), (bytes_sent, bytes_received) != ($REP_BYTES, $REQ_BYTES))) AS wrongBytes,
      0 AS parseErrors
    FROM bpfbench.flows WHERE cluster = '$cluster' AND proto = 'tcp' AND local_netns = $NETNS_INO AND server_port = $PORT
    FORMAT JSONEachRow" | sed 's/"\([0-9][0-9]*\)"/\1/g')
  RUN_JSON=$(printf '{"mode":"clickhouse","round":%d,"load":%s,"host":%s,"readyMs":%.1f,"ready":%s,"cpuTicksLoad":%d,"cpuTicksStartup":%d,"clickhouseCpuTicksRun":%d,"clkTck":%d,"exitCode":%d,"counts":%s,"summary":%s,"sinks":%s,"progs":%s}' \
    "$r" "$LOAD" "$HOST" "$((READY_NS / 1000))e-3" "$ready" "$CPU_LOAD" "$CPU0" $((ch1 - ch0)) "$TICK" "$RC" "$counts" "$summary" "$sinks" "${PROGS:-null}")
  log "  clickhouse $LOAD ready=$((READY_NS / 1000000))ms cpu=${CPU_LOAD}ticks clickhouse-server=$((ch1 - ch0))ticks rows=$counts exit=$RC other=${OTHER_MILLICORES}m"
}

run_tcplife() { # round attempt
  local r=$1 err=$RUNDIR/tcplife-r$1-try$2.stderr out=$SHM.tcplife.txt
  local t0 ready_ns
  ((TO_FILE)) || out=/dev/null
  t0=$(now_ns)
  "$TCPLIFE" >"$out" 2>"$err" &
  TRACER_PID=$!
  # tcplife's stdout is block-buffered into the file, so its header shows up
  # late; it installs its SIGINT handler right after attaching and opening its
  # perf buffer, just before printing the header: that is its "ready".
  wait_ready "$TRACER_PID" tcplife "$err" 20 "$t0" catches_signal "$TRACER_PID" 2 "${TCPLIFE##*/}"
  ready_ns=$(($(now_ns) - t0))
  load_traced
  # columns: PID COMM LADDR LPORT RADDR RPORT TX_KB RX_KB MS (COMM has no spaces
  # for churn). The server's side has LPORT=PORT, the client's RPORT=PORT.
  local counts=null lost
  if ((TO_FILE)); then
    counts=$(awk -v p="$PORT" 'NR > 1 { n++; if ($6 == p) o++; else if ($4 == p) i++ } END { printf "{\"lines\":%d,\"outbound\":%d,\"inbound\":%d}", n, o, i }' "$out")
    rm -f "$out"
  fi
  # "lost N events on CPU #C" on stderr
  lost=$(awk '/lost [0-9]+ events/ { for (i = 1; i < NF; i++) if ($i == "lost") s += $(i + 1) } END { print s + 0 }' "$err")
  RUN_JSON=$(printf '{"mode":"tcplife","round":%d,"load":%s,"host":%s,"readyMs":%.1f,"cpuTicksLoad":%d,"cpuTicksStartup":%d,"clkTck":%d,"exitCode":%d,"counts":%s,"lostReported":%d,"progs":%s}' \
    "$r" "$LOAD" "$HOST" "$((ready_ns / 1000))e-3" "$CPU_LOAD" "$CPU0" "$TICK" "$RC" "$counts" "$lost" "${PROGS:-null}")
  log "  tcplife   $LOAD ready=$((ready_ns / 1000000))ms cpu=${CPU_LOAD}ticks captured=$counts lost=$lost exit=$RC other=${OTHER_MILLICORES}m"
}

# ------------------------------------------------------------------ run
AGENT_REV=$(agent_rev)
log "bench: $ROUNDS rounds x $((CLICKHOUSE ? 4 : 3)) modes x ${DURATION}s, $CLIENTS clients, $SERVERS server threads, port $PORT, netns $NS; logs in ${RUNDIR#"$ROOT"/}"
log "bench: agent $AGENT_DIR ($AGENT_REV)"
log "bench: warm-up (not counted)"
ip netns exec "$NS" "$CHURN" -d 1 -c "$CLIENTS" -s "$SERVERS" -p "$PORT" >/dev/null

# A baseline run before each traced run and one after the last: every traced
# run is compared with the two baselines around it (report.mjs). This VM's
# connection rate drifts by 20-30% over minutes, far more than within the
# ~10 s between a run and its neighbours. (run_kept: lib.sh)
TRACERS=(bpfagent tcplife)
((CLICKHOUSE)) && TRACERS+=(clickhouse)
for ((r = 1; r <= ROUNDS; r++)); do
  log "bench: round $r/$ROUNDS"
  # rotate which tracer goes first, so that none always follows another
  for ((i = 0; i < ${#TRACERS[@]}; i++)); do
    run_kept baseline "$r"
    run_kept "${TRACERS[(i + r - 1) % ${#TRACERS[@]}]}" "$r"
  done
done
run_kept baseline "$ROUNDS"

# The final pass: one more run of each tracer, its output to a file where
# every connection is counted (what the timed runs capture, when they write
# to /dev/null), and with kernel.bpf_stats_enabled=1 the time its BPF
# programs take per connection. That time is charged to the load (it is in
# the slowdown, not in the tracer's CPU); the counting itself costs a little
# on every program run, so these runs are not in the table's medians.
if ((KERNEL_PASS || !TO_FILE)); then
  log "bench: final pass (output counted$( ((KERNEL_PASS)) && echo ', bpf_stats on'))"
  if ((KERNEL_PASS)); then
    STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
    sysctl -qw kernel.bpf_stats_enabled=1
    STATS_PASS=1
  fi
  TO_FILE=1
  for mode in bpfagent tcplife; do
    PROGS=
    "run_$mode" 0 1
    printf '%s\n' "$RUN_JSON" >>"$RUNDIR/kernel-pass.jsonl"
    snooze 1
  done
  STATS_PASS=0
  [[ -n $STATS_WAS ]] && sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"
fi

node bench/report.mjs "$RUNS" "$RESULTS/churn-$STAMP.json" \
  "{\"clickhouse\":$CLICKHOUSE,\"duration\":$DURATION,\"rounds\":$ROUNDS,\"clients\":$CLIENTS,\"servers\":$SERVERS,\"port\":$PORT,\"settle\":$SETTLE,\"retries\":$RETRIES,\"nproc\":$(nproc),\"kernel\":\"$(uname -r)\",\"stamp\":\"$STAMP\",\"agentDir\":\"$AGENT_DIR\",\"agentRev\":\"$AGENT_REV\",\"output\":\"$OUTPUT\"}" | tee "$RESULTS/churn-$STAMP.txt"
