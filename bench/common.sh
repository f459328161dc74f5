# shellcheck shell=bash
# Shared helpers for the bench/ scripts: provenance, statistics, JSON results, the VM lock.
#
# Source it from a script in bench/ after `set -euo pipefail`:
#
#   . "$(dirname "$0")/common.sh"
#   bench_init boot                 # cd to the repository, note the start (time, load, CPU busy)
#   ...
#   bench_write boot "$json"        # adds provenance, writes bench/results/boot.json, prints it
#
# Needs bash, awk, jq (scripts/setup-host.sh installs jq) and, for some scripts, GNU time.

# The repository root, whichever directory the script was started from.
BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_RESULTS=${BENCH_RESULTS:-$BENCH_ROOT/bench/results}
BENCH_CACHE=${GUESTPERF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/guestperf}
BENCH_LOCK=$BENCH_CACHE/vm-tests.lock
# shellcheck disable=SC2034 # used by the scripts that source this file
BENCH_BIN=${CARGO_TARGET_DIR:-$BENCH_ROOT/target}/release

# Progress and tables for people: stderr. Stdout carries the JSON result.
say() { printf '%s\n' "$*" >&2; }
die() { say "$(basename "$0"): $*"; exit 1; }

need() { # command package
  command -v "$1" >/dev/null || die "needs $1 (apt-get install $2, or run scripts/setup-host.sh)"
}

# Percent of all CPUs busy over one second, from /proc/stat: what else the machine is doing.
host_busy_pct() {
  local a b
  a=$(awk '/^cpu / {idle = $5 + $6; t = 0; for (i = 2; i <= 9; i++) t += $i; print t, idle}' /proc/stat)
  sleep 1
  b=$(awk '/^cpu / {idle = $5 + $6; t = 0; for (i = 2; i <= 9; i++) t += $i; print t, idle}' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN {
    split(a, x, " "); split(b, y, " "); dt = y[1] - x[1]; di = y[2] - x[2]
    printf "%.0f", (dt > 0 ? (dt - di) / dt * 100 : 0) }'
}

# CPU ticks (utime + stime) and name of every process, one "PID TICKS NAME" line each.
proc_ticks() {
  cat /proc/[0-9]*/stat 2>/dev/null | awk '{
    s = $0; r = s; k = 0
    while ((p = index(r, ")")) > 0) { k += p; r = substr(r, p + 1) }
    name = substr(s, index(s, "(") + 1, k - index(s, "(") - 1); gsub(/ /, "_", name)
    split(substr(s, k + 2), f, " "); print $1, f[12] + f[13], name }'
}

# The three busiest processes over one second (name and percent of one core): which builds and
# tests were running when the benchmark started.
busiest_others() {
  local hz
  hz=$(getconf CLK_TCK)
  proc_ticks >"$BENCH_WORK/ticks0"
  sleep 1
  proc_ticks >"$BENCH_WORK/ticks1"
  awk -v hz="$hz" 'NR == FNR {t[$1] = $2; next}
    ($1 in t) && $2 > t[$1] {print ($2 - t[$1]) * 100 / hz, $3}' \
    "$BENCH_WORK/ticks0" "$BENCH_WORK/ticks1" | sort -rn | head -3 |
    awk '{printf "%s%s %d%%", (NR > 1 ? ", " : ""), $2, $1}'
}

# Called once at the start: work directory, start time, load and what else is running.
bench_init() { # name
  cd "$BENCH_ROOT" || exit 1
  need jq jq
  BENCH_WORK=$(mktemp -d "${TMPDIR:-/tmp}/gp-bench-$1.XXXXXX")
  BENCH_CLEANUP=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  BENCH_T0=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  BENCH_LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
  BENCH_BUSY0=$(host_busy_pct)
  BENCH_OTHERS0=$(busiest_others)
  say "bench/$1.sh: $(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, load $BENCH_LOAD0, CPUs ${BENCH_BUSY0}% busy before starting${BENCH_OTHERS0:+ ($BENCH_OTHERS0)}"
}

# Runs at exit: the script's own clean-up commands (BENCH_CLEANUP), then the work directory.
bench_cleanup() {
  local c
  for c in "${BENCH_CLEANUP[@]}"; do eval "$c" || true; done
  [ -n "${BENCH_WORK:-}" ] && rm -rf "$BENCH_WORK"
}

# Release builds of the given packages (quietly; cargo waits if another build holds the lock).
build_release() { # package...
  local args=() p
  for p in "$@"; do args+=(-p "$p"); done
  say "building (release): $*"
  cargo build --release -q "${args[@]}"
}

# The machine-wide VM lock that the VM tests take (gp_qemu::testing::vm_test_lock, a flock on
# ~/.cache/guestperf/vm-tests.lock): a benchmark's VMs never share the CPUs with another
# engineer's test VMs, and the other way round. Say when we have to wait.
vm_lock_hold() {
  mkdir -p "$BENCH_CACHE"
  exec 9>>"$BENCH_LOCK"
  if ! flock -n 9; then
    say "waiting for the VM lock ($BENCH_LOCK): a VM test or another benchmark is running"
    flock 9
  fi
  # What else runs once we have the lock (the state at start may have been the VM test we
  # waited for): noted the first time.
  if [ -z "${BENCH_LOCKED_LOAD:-}" ]; then
    BENCH_LOCKED_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
    BENCH_LOCKED_BUSY=$(host_busy_pct)
    BENCH_LOCKED_OTHERS=$(busiest_others)
    say "VM lock taken: load $BENCH_LOCKED_LOAD, CPUs ${BENCH_LOCKED_BUSY}% busy${BENCH_LOCKED_OTHERS:+ ($BENCH_LOCKED_OTHERS)}"
  fi
}
vm_lock_release() { exec 9>&-; }

# Statistics of the numbers on stdin (one per line) as a JSON object:
# {"n":..,"min":..,"median":..,"max":..,"mean":..}; nulls when there are none.
stats_json() {
  jq -s -c 'map(select(. != null)) | sort as $v | ($v | length) as $n
    | if $n == 0 then {n: 0, min: null, median: null, max: null, mean: null}
      else {n: $n, min: $v[0],
            median: (if $n % 2 == 1 then $v[($n - 1) / 2] else ($v[$n / 2 - 1] + $v[$n / 2]) / 2 end),
            max: $v[$n - 1], mean: (($v | add) / $n)} end'
}

# The machine and the build, and the load at start and now, as a JSON object.
provenance_json() {
  local rev qemu
  rev=$(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  git -C "$BENCH_ROOT" diff --quiet HEAD -- crates initrd bench 2>/dev/null || rev="$rev-dirty"
  qemu=$(qemu-system-x86_64 --version 2>/dev/null | head -n1 || true)
  jq -n -c \
    --arg started "$BENCH_T0" --arg finished "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --arg cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" \
    --argjson cpus "$(nproc)" \
    --argjson mem_gib "$(awk '/^MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)" \
    --arg kernel "$(uname -r)" --arg qemu "$qemu" --arg rev "$rev" \
    --arg rustc "$(rustc --version 2>/dev/null | cut -d' ' -f2)" \
    --arg load0 "$BENCH_LOAD0" --arg load1 "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --argjson busy0 "$BENCH_BUSY0" --arg others0 "$BENCH_OTHERS0" \
    --arg lload "${BENCH_LOCKED_LOAD:-}" --arg lbusy "${BENCH_LOCKED_BUSY:-}" \
    --arg lothers "${BENCH_LOCKED_OTHERS:-}" \
    '{started: $started, finished: $finished, cpu_model: $cpu, cpus: $cpus, mem_gib: $mem_gib,
      kernel: $kernel, qemu: $qemu, git_rev: $rev, rustc: $rustc,
      load_avg_at_start: ($load0 | split(" ") | map(tonumber)),
      load_avg_at_end: ($load1 | split(" ") | map(tonumber)),
      host_busy_pct_at_start: $busy0, busiest_processes_at_start: $others0}
     + (if $lload == "" then {} else {vm_lock_taken: {load_avg: ($lload | split(" ") | map(tonumber)),
          host_busy_pct: ($lbusy | tonumber), busiest_processes: $lothers}} end)'
}

# Writes {"bench": NAME, "provenance": {...}, ...RESULT} to bench/results/NAME.json and stdout.
# BENCH_RESULT_NAME, when set, replaces NAME in the file name (to keep a variant's result).
bench_write() { # name result-json-object
  local out file=${BENCH_RESULT_NAME:-$1}
  mkdir -p "$BENCH_RESULTS"
  out=$(jq -n --arg name "$1" --argjson p "$(provenance_json)" --argjson r "$2" \
    '{bench: $name, provenance: $p} + $r')
  printf '%s\n' "$out" >"$BENCH_RESULTS/$file.json"
  printf '%s\n' "$out"
  say "wrote $BENCH_RESULTS/$file.json"
}

# Seconds since the epoch with microseconds (bash 5's $EPOCHREALTIME).
now() { printf '%s\n' "$EPOCHREALTIME"; }
