#!/usr/bin/env bash
# Migration itself on this machine: total time and downtime of the standard scenarios, with
# the spread over repeats, so a user knows what "normal" looks like here.
#
#   bench/migration.sh [REPEATS=5] [MEM=256M] [CPUS=1]
#
# Runs gp-batch (release build) under TCG over a unix socket (loopback), with a small guest,
# 2 s of workload before and after each migration and a 120 s cap, on these scenarios:
#   transport/transport-unix                 plain precopy (the defaults)
#   pause-iters/pause-iters-5                precopy, pause the guest after 5 passes
#   post-copy-iters/post-copy-iters-1        post-copy after 1 pass
#   auto-converge-iters/auto-converge-step-10  auto-converge, 10 % throttle steps
#   compr-xbzrle/compr-xbzrle-cache-10       XBZRLE, cache of 10 % of guest RAM
#   compr-multifd/compr-multifd-channels-4   multifd, 4 channels
# (SCENARIOS="glob ..." picks others; see gp-batch --list.) It runs the batch REPEATS times with
# --repeat 1, 2, ..., REPEATS into the same directory: each round adds one run of every scenario
# (gp-batch resumes), so the runs are interleaved and the VM lock (bench/common.sh) is taken
# round by round rather than for the whole benchmark. Medians and min-max come from gp-batch's
# summary.json. The batch directory is temporary unless MIGRATION_DIR names one to keep.
# Writes bench/results/migration.json and bench/results/migration-summary.md.
set -euo pipefail
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
repeats=${1:-5} mem=${2:-256M} cpus=${3:-1}
sleep_s=${SLEEP_S:-2} max_time=${MAX_TIME:-120}
read -r -a scenarios <<<"${SCENARIOS:-transport/transport-unix pause-iters/pause-iters-5 post-copy-iters/post-copy-iters-1 auto-converge-iters/auto-converge-step-10 compr-xbzrle/compr-xbzrle-cache-10 compr-multifd/compr-multifd-channels-4}"

bench_init migration
build_release guestperf gp-launch gp-sample gp-migrate gp-collect gp-plot
dir=${MIGRATION_DIR:-$BENCH_WORK/batch}
filters=()
for s in "${scenarios[@]}"; do filters+=(--filter "$s"); done
batch=("$BENCH_BIN/gp-batch" --output "$dir" --accel tcg --mem "$mem" --cpus "$cpus"
  --sleep "$sleep_s" --max-time "$max_time" "${filters[@]}")
say "gp-batch ${batch[*]:1} --repeat 1..$repeats"

child=""
# shellcheck disable=SC2016 # evaluated at exit, when $child is the running child
BENCH_CLEANUP+=('[ -n "$child" ] && kill -INT "$child" 2>/dev/null && wait "$child"')
failed=0
t0=$(now)
for r in $(seq "$repeats"); do
  vm_lock_hold
  say "round $r/$repeats"
  "${batch[@]}" --repeat "$r" 9>&- &
  child=$!
  wait "$child" || { st=$?; say "gp-batch exited with status $st (round $r)"; failed=$((failed + 1)); }
  child=""
  vm_lock_release
done
t1=$(now)
[ -f "$dir/summary.json" ] || die "gp-batch wrote no summary.json in $dir"
# The summary without its links to the charts, which stay in the (temporary) batch directory.
sed -E 's/ Chart: \[[^]]*\]\([^)]*\)\.//' "$dir/summary.md" >"$BENCH_RESULTS/migration-summary.md" || true

# Per scenario: the summary's statistics (ms and s as gp-batch gives them) and every run's figures.
scen=$(jq -c '[.comparisons[].scenarios[] | select(.skipped == null)
  | {name, settings, result, runs: (.runs | length), failed_runs: (.failed_runs | length),
     total_time_ms: .stats.total_time_ms, downtime_ms: .stats.downtime_ms,
     guest_stall_ms: .stats.guest_stall_ms, guest_slowdown_during_pct: .stats.guest_slowdown_during_pct,
     host_cpu_during_migration_s: .stats.host_cpu_during_migration_s,
     per_run: [.runs[] | {run, outcome, total_time_ms, downtime_ms, guest_stall_ms, iterations,
                          transferred_bytes}]}]' "$dir/summary.json")
skipped=$(jq -c '[.comparisons[].scenarios[] | select(.skipped != null)
  | {name, skipped}]' "$dir/summary.json")

say ""
say "$(printf '%-24s %-22s %-24s %-22s %-22s' scenario result 'total s  med (min-max)' 'downtime ms  med (min-max)' 'guest stall ms  med (min-max)')"
jq -r '.[] | [.name, .result,
  (if .total_time_ms then "\(.total_time_ms.median / 1000 * 100 | round / 100) (\(.total_time_ms.min / 1000 * 100 | round / 100)-\(.total_time_ms.max / 1000 * 100 | round / 100))" else "-" end),
  (if .downtime_ms then "\(.downtime_ms.median | round) (\(.downtime_ms.min | round)-\(.downtime_ms.max | round))" else "-" end),
  (if .guest_stall_ms then "\(.guest_stall_ms.median | round) (\(.guest_stall_ms.min | round)-\(.guest_stall_ms.max | round))" else "-" end)] | @tsv' <<<"$scen" |
  awk -F'\t' '{printf "%-24s %-22s %-24s %-22s %-22s\n", $1, $2, $3, $4, $5}' >&2
jq -r '.[] | "skipped \(.name): \(.skipped)"' <<<"$skipped" >&2

bench_write migration "$(jq -n -c --argjson scen "$scen" --argjson skipped "$skipped" \
  --arg mem "$mem" --argjson cpus "$cpus" --argjson sleep "$sleep_s" --argjson max_time "$max_time" \
  --argjson repeats "$repeats" --argjson failed "$failed" \
  --argjson wall "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')" \
  --arg qemu "$(jq -r '.qemu_version // empty' "$dir/summary.json")" \
  --arg accel "$(jq -r '.probe_accel // empty' "$dir/summary.json")" \
  '{settings: {accel: "tcg", transport: "unix (loopback)", mem: $mem, cpus: $cpus, sleep_s: $sleep,
      max_time_s: $max_time, repeats: $repeats, gp_batch_qemu: $qemu, gp_batch_probe_accel: $accel},
    wall_s: $wall, batch_rounds_failed: $failed, scenarios: $scen, skipped: $skipped}')"
