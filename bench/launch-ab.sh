#!/usr/bin/env bash
# Two gp-launch settings against each other on the same migration: total time, downtime and
# gp-launch's own CPU time, run after run, interleaved (A, B, A, B, ...).
#
#   bench/launch-ab.sh NAME RUNS "A: gp-launch options" "B: gp-launch options"
#
# Each run is `gp-launch --accel tcg --mem $MEM --cpus $CPUS <options> | gp-migrate --sleep
# $SLEEP_S --max-time 120` (release builds; MEM=256M, CPUS=1, SLEEP_S=2 unless set), a plain
# pre-copy. Per run it keeps QEMU's total time and downtime (the `result` record), the number
# of `qemu_trace` records, the source downtime the trace measured (src-downtime-start to
# src-downtime-end), the CPU bindings gp-launch used (the header's hardware) and gp-launch's own
# CPU time (its /proc stat, read every 0.2 s until it ends; its QEMUs' not included). Holds the VM
# lock (bench/common.sh) run by run. Writes
# bench/results/NAME.json; bench/pinning.sh and bench/trace.sh are the uses.
# shellcheck disable=SC2034 # $child is read by the exit trap (BENCH_CLEANUP)
set -euo pipefail
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
[ $# -eq 4 ] || die "usage: $0 NAME RUNS 'A options' 'B options'"
name=$1 runs=$2 a_opts=$3 b_opts=$4
mem=${MEM:-256M} cpus=${CPUS:-1} sleep_s=${SLEEP_S:-2}

bench_init "$name"
child=""
# shellcheck disable=SC2016 # evaluated at exit, when $child is the running pipeline
BENCH_CLEANUP+=('[ -n "$child" ] && kill -INT "$child" 2>/dev/null && wait "$child"')
build_release gp-launch gp-migrate

one_run() { # label options -> appends a JSON line to $BENCH_WORK/label.ndjson
  local label=$1 opts=$2 out=$BENCH_WORK/run.ndjson st=0 pid
  rm -f "$BENCH_WORK/launch.pid"
  # shellcheck disable=SC2086 # the options are words
  ( (echo "$BASHPID" >"$BENCH_WORK/launch.pid"
    exec "$BENCH_BIN/gp-launch" --accel tcg --mem "$mem" --cpus "$cpus" $opts 9>&- \
      2>"$BENCH_WORK/launch.err") |
    "$BENCH_BIN/gp-migrate" --sleep "$sleep_s" --max-time 120 9>&- >"$out" 2>"$BENCH_WORK/migrate.err") &
  child=$!
  # gp-launch's own CPU time (utime + stime of its /proc stat, not its QEMUs'), read with bash
  # builtins every 0.2 s until it ends (the last reading is at most 0.2 s before its end).
  while [ ! -s "$BENCH_WORK/launch.pid" ] && kill -0 "$child" 2>/dev/null; do sleep 0.01; done
  pid=$(cat "$BENCH_WORK/launch.pid" 2>/dev/null || echo 0)
  local stat f ticks=""
  while [ "$pid" != 0 ] && { read -r stat <"/proc/$pid/stat"; } 2>/dev/null; do
    read -r -a f <<<"${stat##*) }"
    ticks=$((f[11] + f[12]))
    sleep 0.2
  done
  echo "$ticks" >"$BENCH_WORK/launch.ticks"
  wait "$child" || st=$?
  child=""
  local cpu
  cpu=$(awk -v hz="$(getconf CLK_TCK)" '$1 != "" {print $1 / hz}' "$BENCH_WORK/launch.ticks")
  jq -s -c --argjson cpu "${cpu:-null}" --argjson st "$st" '
    (map(select(.type == "result")) | last) as $r
    | (map(select(.type == "launch")) | first) as $h
    | (map(select(.type == "qemu_trace" and .role == "src" and .event == "vmstate_downtime_checkpoint"))) as $c
    | ($c | map(select(.args == "src-downtime-start")) | first) as $s
    | ($c | map(select(.args == "src-downtime-end")) | first) as $e
    | {exit_status: $st, outcome: $r.outcome, total_time_ms: $r.total_time_ms,
       downtime_ms: $r.downtime_ms, iterations: $r.iterations,
       traces: (map(select(.type == "qemu_trace")) | length),
       trace_src_downtime_ms: (if $s and $e then (($e.qemu_time_s - $s.qemu_time_s) * 1000) else null end),
       src_cpu_bind: $h.hardware.src_cpu_bind, dst_cpu_bind: $h.hardware.dst_cpu_bind,
       launch_cpu_s: $cpu}' "$out" >>"$BENCH_WORK/$label.ndjson"
  say "  $label: $(tail -n1 "$BENCH_WORK/$label.ndjson")"
}

say "A: $a_opts"
say "B: $b_opts"
for i in $(seq "$runs"); do
  vm_lock_hold
  say "run $i/$runs"
  one_run a "$a_opts"
  one_run b "$b_opts"
  vm_lock_release
done

summary() { # label
  local f=$BENCH_WORK/$1.ndjson
  jq -s -c \
    --argjson total "$(jq '.total_time_ms // empty' "$f" | stats_json)" \
    --argjson down "$(jq '.downtime_ms // empty' "$f" | stats_json)" \
    --argjson cpu "$(jq '.launch_cpu_s // empty' "$f" | stats_json)" \
    --argjson tdown "$(jq '.trace_src_downtime_ms // empty' "$f" | stats_json)" \
    '{runs: ., completed: (map(select(.outcome == "completed")) | length),
      total_time_ms: $total, downtime_ms: $down, launch_cpu_s: $cpu,
      trace_src_downtime_ms: $tdown}' "$f"
}
cv() { # label field -> coefficient of variation, percent (sample standard deviation)
  jq -s -r --arg f "$2" 'map(.[$f] | select(. != null)) as $v | ($v | length) as $n
    | if $n < 2 then "null" else (($v | add) / $n) as $m
      | ((($v | map((. - $m) * (. - $m)) | add) / ($n - 1)) | sqrt) / $m * 100 end' \
    "$BENCH_WORK/$1.ndjson"
}
a=$(summary a) b=$(summary b)
say ""
say "$(printf '%-4s %-18s %10s %10s %10s %8s' "" figure min median max CV%)"
for l in a b; do
  s=$(summary $l)
  for f in total_time_ms downtime_ms launch_cpu_s; do
    jq -r --arg l "$l" --arg f "$f" --arg cv "$(cv $l $f)" '.[$f] | select(.n > 0) |
      "\($l)\t\($f)\t\(.min)\t\(.median)\t\(.max)\t\($cv)"' <<<"$s" |
      awk -F'\t' '{printf "%-4s %-18s %10.3f %10.3f %10.3f %8.1f\n", $1, $2, $3, $4, $5, $6}' >&2
  done
done
bench_write "$name" "$(jq -n -c --arg a "$a_opts" --arg b "$b_opts" --arg mem "$mem" \
  --argjson cpus "$cpus" --argjson sleep "$sleep_s" --argjson runs "$runs" \
  --argjson A "$a" --argjson B "$b" \
  --argjson cva "{\"total_time_ms\": $(cv a total_time_ms), \"downtime_ms\": $(cv a downtime_ms)}" \
  --argjson cvb "{\"total_time_ms\": $(cv b total_time_ms), \"downtime_ms\": $(cv b downtime_ms)}" \
  '{settings: {mem: $mem, cpus: $cpus, sleep_s: $sleep, runs: $runs, a: $a, b: $b},
    a: ($A + {cv_pct: $cva}), b: ($B + {cv_pct: $cvb})}')"
