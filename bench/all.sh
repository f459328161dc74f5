#!/usr/bin/env bash
# Runs every benchmark, one after the other, and leaves each one's JSON (and its printed table)
# in bench/results/. docs/performance.md quotes these files.
#
#   bench/all.sh [NAME...]     NAME: stress stress-rate collect plot sample tools-cost boot
#                              migration
#                              (default: all, in that order; 25-40 min on 2 busy cores)
#
# stress, boot, tools-cost and migration write their own JSON. collect.sh, plot.sh and
# sample.sh print tables only; for them this script saves the table as NAME.txt and turns it
# into NAME.json with the same provenance block as the others. Every script's output, tables
# and progress, also goes to bench/results/NAME.txt. A failing benchmark is reported and the
# rest still run; the exit status is 1 if any failed.
set -euo pipefail
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
[ $# -gt 0 ] || set -- stress stress-rate collect plot sample tools-cost boot migration

# Table of bench/collect.sh -> JSON.
#   "   100000 records:  0.52 s wall ( 0.90 s CPU),  192000 records/s, peak RSS   80 MiB (input 25 MiB, report 20 MiB)"
collect_json() {
  awk '/ records: / {
    gsub(/[(),]/, " "); n = $1
    for (i = 1; i <= NF; i++) {
      if ($i == "wall") wall = $(i - 2); if ($i == "CPU") cpu = $(i - 2)
      if ($i == "records/s") rate = $(i - 1); if ($i == "RSS") rss = $(i + 1)
      if ($i == "input") inp = $(i + 1); if ($i == "report") rep = $(i + 1)
    }
    printf "{\"records\":%d,\"wall_s\":%s,\"cpu_s\":%s,\"records_per_s\":%s,\"peak_rss_mib\":%s,\"input_mib\":%s,\"report_mib\":%s}\n",
      n, wall, cpu, rate, rss, inp, rep }' "$1" |
    jq -s -c '{sizes: ., target: {records: 1000000, wall_s: 5},
      target_met: (map(select(.records == 1000000)) | if length == 0 then null else .[0].wall_s < 5 end)}'
}

# Table of bench/plot.sh -> JSON.
#   "     10000        1.4     0.05 | 0.01 / 0.01               6 | 0.02 / 0.03               9"
plot_json() {
  awk -F'|' 'NF == 3 && $1 ~ /^ *[0-9]/ {
    split($1, a, " "); split($2, s, " "); split($3, p, " ")
    printf "{\"records\":%d,\"json_mib\":%s,\"synth_s\":%s,\"svg\":{\"best_s\":%s,\"median_s\":%s,\"peak_rss_mib\":%s},\"png\":{\"best_s\":%s,\"median_s\":%s,\"peak_rss_mib\":%s}}\n",
      a[1], a[2], a[3], s[1], s[3], s[4], p[1], p[3], p[4] }' "$1" |
    jq -s -c '{sizes: ., target: {records: 100000, wall_s: 1},
      target_met: (map(select(.records == 100000)) | if length == 0 then null
        else (.[0].svg.median_s < 1 and .[0].png.median_s < 1) end)}'
}

# Output of bench/sample.sh -> JSON.
sample_json() {
  jq -R -s -c '
    (capture("gp-sample, (?<vms>[0-9]+) VMs x (?<vcpus>[0-9]+) (?<mode>[a-z]+) vCPU threads.*interval (?<interval>[0-9a-z]+), (?<seconds>[0-9]+) s") // {}) as $h
    | (capture("CPU \\(schedstat\\): (?<pct>[0-9.]+)% of one core \\((?<ms>[0-9.]+) ms\\)") // {}) as $c
    | {vms: ($h.vms | tonumber?), vcpu_threads: ($h.vcpus | tonumber?), vcpus: $h.mode,
       interval: $h.interval, seconds: ($h.seconds | tonumber?),
       pct_of_core: ($c.pct | tonumber?), cpu_ms: ($c.ms | tonumber?)}' "$1"
}

failed=()
for name in "$@"; do
  case $name in
    stress | stress-rate | collect | plot | sample | tools-cost | boot | migration) ;;
    *) die "unknown benchmark '$name' (stress stress-rate collect plot sample tools-cost boot migration)" ;;
  esac
  say ""
  say "=== bench/$name.sh ($(date -u +%H:%M:%SZ)) ==="
  txt=$BENCH_RESULTS/$name.txt
  mkdir -p "$BENCH_RESULTS"
  case $name in
    collect | plot | sample)
      # Provenance for the scripts that have none of their own.
      bench_init "$name"
      status=0
      bench/"$name".sh 2>&1 | tee "$txt" >&2 || status=$?
      if [ "$status" = 0 ]; then
        case $name in
          collect) r=$(collect_json "$txt") ;;
          plot) r=$(plot_json "$txt") ;;
          sample) r=$(sample_json "$txt") ;;
        esac
        bench_write "$name" "$(jq -c --rawfile t "$txt" '. + {printed: ($t | split("\n"))}' <<<"$r")" >/dev/null
      fi
      bench_cleanup
      trap - EXIT
      ;;
    *)
      status=0
      bench/"$name".sh 2>&1 >/dev/null | tee "$txt" >&2 || status=$?
      ;;
  esac
  [ "$status" = 0 ] || { say "bench/$name.sh failed (status $status)"; failed+=("$name"); }
done
say ""
if [ ${#failed[@]} -gt 0 ]; then
  say "failed: ${failed[*]}"
  exit 1
fi
say "all done: bench/results/"
