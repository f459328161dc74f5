#!/usr/bin/env bash
# The tools' own cost during a real run, and gp-sample's cost per sample.
#
#   bench/tools-cost.sh [RUNS=3] [-- GUESTPERF-OPTIONS...]
#
# Part 1: runs the one-shot `guestperf` (release build, default settings: 1 vCPU, 1 GiB, 15 s of
# workload before and after a precopy migration, samples every 100 ms, --accel auto) RUNS times
# and measures the CPU time and peak memory of every process in the run:
#   gp-sample, gp-migrate, gp-collect  exactly, from GNU time wrapped around each (the stages are
#                                      taken from a directory of wrappers: GUESTPERF_STAGE_DIR)
#   guestperf, gp-launch, the QEMUs    by reading /proc/PID/stat and VmHWM every 0.2 s until
#                                      they exit (gp-launch's GNU time figure would include
#                                      the QEMUs it reaps); CPU after the last read is missed
# and divides each CPU time by the run's wall time: percent of one core. The target is the tools
# together (every gp-* process and guestperf) under 2 % of one core. QEMU's own CPU is shown
# for scale. Holds the VM lock (bench/common.sh) during each run.
#
# Part 2: gp-sample's CPU cost per sample, from bench/sample.sh (schedstat of gp-sample's
# threads) sampling one stand-in QEMU process with 1, 8 and 64 idle vCPU threads (each plus 4
# other threads, as QEMU has), and with 8 busy ones, at the default 100 ms interval.
# SAMPLE_SECONDS (default 15) sets the length of each of those; 0 skips part 2.
#
# Writes bench/results/tools-cost.json (BENCH_RESULT_NAME=NAME: NAME.json instead, to keep a run
# with other options beside the default one).
# shellcheck disable=SC2034 # $child is read by the exit trap (BENCH_CLEANUP)
set -euo pipefail
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
runs=3
if [ $# -gt 0 ] && [ "$1" != -- ]; then runs=$1; shift; fi
[ "${1:-}" = -- ] && shift
gp_args=("$@")
sample_secs=${SAMPLE_SECONDS:-15}

bench_init tools-cost
need /usr/bin/time time
build_release guestperf gp-launch gp-sample gp-migrate gp-collect
cargo build --release -q -p gp-sample --example fake-qemu
hz=$(getconf CLK_TCK)

# Stage directory: gp-launch as it is, the other three under GNU time.
stages=$BENCH_WORK/stages
mkdir -p "$stages"
ln -s "$BENCH_BIN/gp-launch" "$stages/gp-launch"
for s in gp-sample gp-migrate gp-collect; do
  printf '#!/bin/sh\nexec /usr/bin/time -f "%%e %%U %%S %%M" -o "%s/%s.time" "%s" "$@"\n' \
    "$BENCH_WORK" "$s" "$BENCH_BIN/$s" >"$stages/$s"
  chmod +x "$stages/$s"
done

# --- polling a process tree -------------------------------------------------------------------
declare -A p_name p_ticks p_hwm
# Reads every process under $1 (and $1): name, utime + stime ticks, VmHWM KiB.
poll_tree() {
  # Bash builtins only: the poller should not add forks to the run it measures.
  local pid=$1 line rest f key value _ c k kids
  { IFS= read -r line <"/proc/$pid/stat"; } 2>/dev/null || return 0
  rest=${line##*) }
  read -r -a f <<<"$rest"
  line=${line#*(}
  p_name[$pid]=${line%) *}
  p_ticks[$pid]=$((f[11] + f[12]))
  while read -r key value _; do
    [ "$key" = VmHWM: ] && { p_hwm[$pid]=$value; break; }
  done 2>/dev/null <"/proc/$pid/status" || true
  for c in /proc/"$pid"/task/*/children; do
    kids=()
    { read -r -a kids <"$c"; } 2>/dev/null || true # no trailing newline: read fails, kids set
    for k in "${kids[@]}"; do poll_tree "$k"; done
  done
}

# One guestperf run: leaves one JSON object in $BENCH_WORK/runs.ndjson.
one_run() { # run-number
  local t0 t1 gp status=0 pid name
  rm -f "$BENCH_WORK"/*.time "$BENCH_WORK/report.json"
  p_name=() p_ticks=() p_hwm=()
  t0=$(now)
  GUESTPERF_STAGE_DIR=$stages "$BENCH_BIN/guestperf" "${gp_args[@]}" --output "$BENCH_WORK/report.json" \
    2>"$BENCH_WORK/stderr" 9>&- &
  gp=$! child=$!
  while kill -0 "$gp" 2>/dev/null; do
    poll_tree "$gp"
    sleep 0.2
  done
  wait "$gp" || status=$?
  child=""
  t1=$(now)
  [ "$status" = 0 ] || say "  run $1: guestperf exited with status $status: $(tail -n1 "$BENCH_WORK/stderr")"
  local wall
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
  # Per process name: CPU seconds and peak RSS (MiB), polled or from GNU time.
  : >"$BENCH_WORK/procs"
  for pid in "${!p_name[@]}"; do
    name=${p_name[$pid]}
    case $name in time) continue ;; qemu-system-*) name=qemu ;; esac
    printf '%s %s %s polled\n' "$name" "$(awk -v t="${p_ticks[$pid]}" -v hz="$hz" 'BEGIN {print t / hz}')" \
      "${p_hwm[$pid]:-0}" >>"$BENCH_WORK/procs"
  done
  for s in gp-sample gp-migrate gp-collect; do
    [ -s "$BENCH_WORK/$s.time" ] || continue
    # GNU time: "elapsed user system maxrss_kib" (last line; a signal adds a line before it).
    read -r _ u sy kib < <(tail -n1 "$BENCH_WORK/$s.time")
    grep -v "^$s " "$BENCH_WORK/procs" >"$BENCH_WORK/procs.tmp" || true
    mv "$BENCH_WORK/procs.tmp" "$BENCH_WORK/procs"
    printf '%s %s %s gnu-time\n' "$s" "$(awk -v u="$u" -v s="$sy" 'BEGIN {print u + s}')" "$kib" >>"$BENCH_WORK/procs"
  done
  jq -R -s -c --argjson run "$1" --argjson wall "$wall" --argjson status "$status" \
    --argjson migration "$(jq -c '{outcome: (.summary.outcome // .result.outcome),
      total_time_ms: .summary.total_time_ms, downtime_ms: .summary.downtime_ms,
      records: .guestperf_rs.input.lines}' \
      "$BENCH_WORK/report.json" 2>/dev/null || echo null)" '
    split("\n") | map(select(length > 0) | split(" ")
      | {name: .[0], cpu_s: (.[1] | tonumber), peak_rss_mib: ((.[2] | tonumber) / 1024), by: .[3]})
    | group_by(.name) | map({key: .[0].name, value: {
        processes: length, cpu_s: (map(.cpu_s) | add), pct_of_core: ((map(.cpu_s) | add) / $wall * 100),
        peak_rss_mib: (map(.peak_rss_mib) | max), measured_by: .[0].by}}) | from_entries
    | {run: $run, wall_s: $wall, exit_status: $status, migration: $migration, processes: .}
    | .tools_cpu_s = ([.processes | to_entries[] | select(.key | test("^(gp-|guestperf)")) | .value.cpu_s] | add)
    | .tools_pct_of_core = (.tools_cpu_s / $wall * 100)
    | .records_per_s = (if $migration.records then $migration.records / $wall else null end)
    | .tools_us_per_record = (if $migration.records then .tools_cpu_s / $migration.records * 1e6 else null end)' "$BENCH_WORK/procs" >>"$BENCH_WORK/runs.ndjson"
  jq -r '"  run \(.run): \(.wall_s) s, migration \(.migration.outcome) in \(.migration.total_time_ms) ms, \(.migration.records) records, tools \(.tools_cpu_s * 1000 | round) ms CPU = \(.tools_pct_of_core * 1000 | round / 1000) % of one core"' \
    <(tail -n1 "$BENCH_WORK/runs.ndjson") >&2
}

child=""
# shellcheck disable=SC2016 # evaluated at exit, when $child is the running child
BENCH_CLEANUP+=('[ -n "$child" ] && kill -INT "$child" 2>/dev/null && wait "$child"')
say "part 1: guestperf ${gp_args[*]:-(defaults)}, $runs runs"
for r in $(seq "$runs"); do
  vm_lock_hold
  one_run "$r"
  vm_lock_release
done

# Per process: median over the runs of CPU seconds, % of one core, peak RSS.
per_proc=$(jq -s -c '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[(length - 1) / 2]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  . as $runs | [.[].processes | keys[]] | unique | map(. as $n | {key: $n, value: {
      cpu_s_median: ([$runs[].processes[$n].cpu_s // empty] | median),
      pct_of_core_median: ([$runs[].processes[$n].pct_of_core // empty] | median),
      pct_of_core_max: ([$runs[].processes[$n].pct_of_core // empty] | max),
      peak_rss_mib_max: ([$runs[].processes[$n].peak_rss_mib // empty] | max),
      measured_by: $runs[0].processes[$n].measured_by}}) | from_entries' "$BENCH_WORK/runs.ndjson")
tools_pct=$(jq '.tools_pct_of_core' "$BENCH_WORK/runs.ndjson" | stats_json)
wall=$(jq '.wall_s' "$BENCH_WORK/runs.ndjson" | stats_json)

say ""
say "$(printf '%-12s %12s %14s %14s %12s  %s' process 'CPU s (med)' '% core (med)' '% core (max)' 'peak MiB' 'measured by')"
jq -r 'to_entries[] | [.key, .value.cpu_s_median, .value.pct_of_core_median, .value.pct_of_core_max,
  .value.peak_rss_mib_max, .value.measured_by] | @tsv' <<<"$per_proc" |
  awk -F'\t' '{printf "%-12s %12.3f %14.3f %14.3f %12.1f  %s\n", $1, $2, $3, $4, $5, $6}' >&2
jq -r '"tools together: \(.median * 1000 | round / 1000) % of one core (median; min \(.min * 1000 | round / 1000), max \(.max * 1000 | round / 1000)); target < 2 %"' <<<"$tools_pct" >&2

# --- part 2: gp-sample per sample --------------------------------------------------------------
: >"$BENCH_WORK/per-sample.ndjson"
[ "$sample_secs" -gt 0 ] || say "part 2 skipped (SAMPLE_SECONDS=0)"
[ "$sample_secs" -gt 0 ] && say "" && say "part 2: gp-sample cost per sample, one stand-in QEMU, 100 ms interval, $sample_secs s each"
for spec in "1 idle" "8 idle" "64 idle" "8 busy"; do
  [ "$sample_secs" -gt 0 ] || break
  read -r n mode <<<"$spec"
  out=$(bench/sample.sh "$sample_secs" 1 "$n" 100ms "$mode" 2>&1)
  # "  CPU (schedstat): 0.123% of one core (18.5 ms)"
  ms=$(sed -nE 's/.*CPU \(schedstat\): .*\(([0-9.]+) ms\).*/\1/p' <<<"$out")
  [ -n "$ms" ] || die "bench/sample.sh printed no schedstat figure:\n$out"
  samples=$((sample_secs * 10))
  jq -n -c --argjson v "$n" --arg m "$mode" --argjson ms "$ms" --argjson k "$samples" --argjson s "$sample_secs" \
    '{vcpu_threads: $v, threads: ($v + 4), vcpus: $m, seconds: $s, samples: $k, cpu_ms: $ms,
      us_per_sample: ($ms * 1000 / $k), pct_of_core: ($ms / ($s * 1000) * 100)}' >>"$BENCH_WORK/per-sample.ndjson"
  jq -r '"  \(.vcpu_threads) \(.vcpus) vCPU threads (\(.threads) threads): \(.us_per_sample * 10 | round / 10) µs per sample, \(.pct_of_core * 1000 | round / 1000) % of one core"' \
    <(tail -n1 "$BENCH_WORK/per-sample.ndjson") >&2
done

bench_write tools-cost "$(jq -n -c --argjson runs "$(jq -s -c . "$BENCH_WORK/runs.ndjson")" \
  --argjson per_proc "$per_proc" --argjson tools "$tools_pct" --argjson wall "$wall" \
  --argjson per_sample "$(jq -s -c . "$BENCH_WORK/per-sample.ndjson")" \
  --arg args "${gp_args[*]:-}" \
  '{settings: {guestperf_args: $args, poll_interval_s: 0.2, sample_interval_ms: 100},
    run: {wall_s: $wall, tools_pct_of_core: $tools, target_pct_of_core: 2,
          target_met: ($tools.median < 2), per_process: $per_proc, runs: $runs},
    gp_sample_per_sample: $per_sample}')"
