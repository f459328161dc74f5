#!/usr/bin/env bash
# How long gp-compare takes: the statistics alone, and the whole tool on report directories.
#
#   bench/compare.sh [SCENARIOS=100] [RUNS=30] [REPEATS=5]
#
# 1. gp_compare::compare on in-memory arms of SCENARIOS x RUNS runs x 2 arms, every figure
#    (crates/compare/examples/bench.rs; B 10 % slower at CV 9 %): best and median wall time of
#    REPEATS, and the CPU time of the whole example (GNU time). Target: under 1 s for 100 x 30.
# 2. The gp-compare binary on two gp-batch-like directories of synthetic reports of that size
#    (crates/compare/examples/fixtures.rs): wall, CPU and peak RSS, reading the reports included.
# Release build. Writes bench/results/compare.json.
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_init compare
scenarios=${1:-100}
runs=${2:-30}
repeats=${3:-5}
need /usr/bin/time time

say "building (release): gp-compare and its examples"
cargo build --release -q -p gp-compare --bin gp-compare --example bench --example fixtures

/usr/bin/time -f '%e %U %S %M' -o "$BENCH_WORK/time-lib" \
  "$BENCH_BIN/examples/bench" "$scenarios" "$runs" "$repeats" >"$BENCH_WORK/lib.json"
read -r lib_wall lib_user lib_sys lib_kib <"$BENCH_WORK/time-lib"
say "compare() on ${scenarios} x ${runs} x 2: $(jq -c '{best_s, median_s}' "$BENCH_WORK/lib.json") ($repeats repeats: ${lib_user} s user CPU in all)"

"$BENCH_BIN/examples/fixtures" "$BENCH_WORK/a" "$BENCH_WORK/b" "$scenarios" "$runs" 1.1 0.09 2>/dev/null
bytes=$(du -sb "$BENCH_WORK/a" "$BENCH_WORK/b" | awk '{s += $1} END {print s}')
/usr/bin/time -f '%e %U %S %M' -o "$BENCH_WORK/time-bin" \
  "$BENCH_BIN/gp-compare" "$BENCH_WORK/a" "$BENCH_WORK/b" -o "$BENCH_WORK/out" 2>/dev/null
read -r bin_wall bin_user bin_sys bin_kib <"$BENCH_WORK/time-bin"
say "gp-compare on $((2 * scenarios * runs)) report files ($((bytes / 1048576)) MiB): ${bin_wall} s wall, ${bin_user} s user, $((bin_kib / 1024)) MiB peak"

bench_write compare "$(jq -n -c --slurpfile lib "$BENCH_WORK/lib.json" \
  --argjson lw "$lib_wall" --argjson lu "$lib_user" --argjson ls "$lib_sys" \
  --argjson bw "$bin_wall" --argjson bu "$bin_user" --argjson bs "$bin_sys" --argjson bk "$bin_kib" \
  --argjson bytes "$bytes" \
  '{statistics: ($lib[0] + {process_wall_s: $lw, process_user_s: $lu, process_sys_s: $ls}),
    binary: {report_files: ($lib[0].scenarios * $lib[0].runs_per_arm * 2), report_bytes: $bytes,
             wall_s: $bw, user_s: $bu, sys_s: $bs, peak_rss_kib: $bk}}')"
