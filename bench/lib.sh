# Helpers shared by bench/run.sh, bench/udp-flood.sh and bench/udp-shared.sh;
# sourced, not run.
# shellcheck shell=bash

# --help: the script's header comment, up to its `set -euo` line
usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

# a line to stderr
log() { printf '%s\n' "$*" >&2; }

# exits unless root and the agent in $AGENT_DIR is built with BPF object $1
require_root_and_agent() { # BPF_OBJECT
  [[ $(id -u) == 0 ]] || { echo "bench: run as root (BPF tracing and network namespaces)" >&2; exit 1; }
  [[ -f $AGENT_DIR/dist/src/cli/main.js ]] || { echo "bench: agent not built in $AGENT_DIR: run 'npx tsc -p .' first" >&2; exit 1; }
  [[ -f $AGENT_DIR/build-bpf/$1 ]] || { echo "bench: BPF object missing in $AGENT_DIR: run 'npm install' (or scripts/build-bpf.sh)" >&2; exit 1; }
}

# A builtin sleep with ms resolution (no fork while polling): read from a FIFO
# nobody writes to, opened on fd 9 by open_snooze_fifo (uses $SHM).
open_snooze_fifo() {
  mkfifo "$SHM.sleep"
  exec 9<>"$SHM.sleep"
  rm -f "$SHM.sleep"
}
snooze() { read -r -t "$1" -u 9 _ || true; }

# wall clock in nanoseconds, without forking
now_ns() { local t=$EPOCHREALTIME; echo $((${t/./} * 1000)); }

# utime+stime of a process, in clock ticks
TICK=$(getconf CLK_TCK)
cpu_ticks() {
  local -a f
  read -r -a f <"/proc/$1/stat"
  # fields 14 and 15 (1-based); comm of node/tcplife has no spaces
  echo $((f[13] + f[14]))
}

# Busy CPU of the whole host in clock ticks from /proc/stat (everything but
# idle, iowait and steal).
host_busy_ticks() {
  local cpu user nice system idle iowait irq softirq rest
  read -r cpu user nice system idle iowait irq softirq rest </proc/stat
  echo $((user + nice + system + irq + softirq))
}

file_has() { # file_has FILE SUBSTRING, without forking
  local line
  [[ -f $1 ]] || return 1
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line == *"$2"* ]] && return 0
  done <"$1"
  return 1
}

# waits until the command CMD... succeeds (tried every ms): process PID
# (named WHAT in messages, logging to file LOG) is ready; exits the script,
# showing LOG, if PID exits first or SECONDS pass after T0 (now_ns)
wait_ready() { # PID WHAT LOG SECONDS T0 CMD...
  local pid=$1 what=$2 err=$3 secs=$4 deadline=$(($5 + $4 * 1000000000))
  shift 5
  until "$@"; do
    kill -0 "$pid" 2>/dev/null || { log "bench: $what exited before ready:"; cat "$err" >&2; exit 1; }
    (($(now_ns) < deadline)) || { log "bench: $what not ready after $secs s"; cat "$err" >&2; exit 1; }
    snooze 0.001
  done
}

# waits (up to $BENCH_READY_TIMEOUT s, default 20, after T0) for the agent
# PID to log "ready" to its stderr file ERR; exits the script if it dies or
# takes longer (a guest emulated by qemu's TCG needs a minute)
wait_agent_ready() { # PID ERR T0
  wait_ready "$1" bpfagent "$2" "${BENCH_READY_TIMEOUT:-20}" "$3" file_has "$2" '"msg":"ready'
}

# SIGINT to each PID that still runs, then waits for it (for cleanup traps)
stop_running() { # PID...
  local p
  for p; do
    [[ -n $p ]] && kill -0 "$p" 2>/dev/null || continue
    kill -INT "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
}

# Two fresh network namespaces $NS_A and $NS_B joined by a veth pair ($VETH_A
# in A with $ADDR_A/30, $VETH_B in B with $ADDR_B/30; interface names at most
# 15 characters), loopback up in both: nothing of the host's network is
# touched. Sets NETNS_A and NETNS_B, their inodes (the agent sees every
# namespace; its records are told apart by namespace inode and port).
add_veth_pair() {
  local ns
  ip netns add "$NS_A"
  ip netns add "$NS_B"
  ip link add "$VETH_A" netns "$NS_A" type veth peer name "$VETH_B" netns "$NS_B"
  ip -n "$NS_A" addr add "$ADDR_A/30" dev "$VETH_A"
  ip -n "$NS_B" addr add "$ADDR_B/30" dev "$VETH_B"
  for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
  ip -n "$NS_A" link set "$VETH_A" up
  ip -n "$NS_B" link set "$VETH_B" up
  NETNS_A=$(stat -L -c %i "/run/netns/$NS_A")
  NETNS_B=$(stat -L -c %i "/run/netns/$NS_B")
}

# deletes add_veth_pair's namespaces; deleting a namespace deletes the veth
# end in it, and with it its peer
del_veth_pair() {
  ip netns del "$NS_A" 2>/dev/null || true
  ip netns del "$NS_B" 2>/dev/null || true
}

ms() { # seconds with up to 3 decimals -> whole milliseconds
  local i=${1%%.*} f=000
  [[ $1 == *.* ]] && f=${1#*.}000
  echo $((10#$i * 1000 + 10#${f:0:3}))
}

# the agent checkout's revision, for the report
agent_rev() { git -C "$AGENT_DIR" describe --always --dirty 2>/dev/null || echo unknown; }

# one line when a run is rerun because other work used the CPUs ($mode, $r,
# $OTHER_MILLICORES of the caller)
log_rerun() {
  log "  ($mode round $r: other work used $((OTHER_MILLICORES / 1000)).$(printf %03d $((OTHER_MILLICORES % 1000))) cores; running it again)"
}

# Runs "run_MODE ARGS... ATTEMPT" (the last of ARGS is the round; run_MODE
# sets RUN_JSON and OTHER_MILLICORES) until other work on the machine used at
# most $BUSY_MILLICORES, at most $RETRIES times more; appends the kept run to
# $RUNS, the others to discarded.jsonl in $RUNDIR. $BEFORE_RUN, if set, is
# called before each attempt.
run_kept() { # MODE ARGS...
  local mode=$1 r=${!#} attempt
  shift
  for ((attempt = 0; ; attempt++)); do
    ${BEFORE_RUN:-:}
    "run_$mode" "$@" "$((attempt + 1))"
    snooze 1
    ((OTHER_MILLICORES > BUSY_MILLICORES && attempt < RETRIES)) || break
    # its rate says little about the tracer: run it again
    log_rerun
    printf '%s\n' "$RUN_JSON" >>"$RUNDIR/discarded.jsonl"
  done
  printf '%s\n' "$RUN_JSON" >>"$RUNS"
}
