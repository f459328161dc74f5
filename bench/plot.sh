#!/usr/bin/env bash
# How long gp-plot takes, and how much memory, against the size of the report.
#
#   bench/plot.sh [RUNS=3] [SIZES="10000 100000 1000000"]
#
# For each size, writes a synthetic report with that many guest_progress records (plus 10 Hz
# CPU samples of both VMs and 20 Hz progress snapshots; crates/plot/examples/synth.rs builds it
# with the gp-records report types), then renders it to SVG and to PNG (1280x800, default
# chart) RUNS times. Prints the report's size, the best and median wall time of each format
# (whole process: reading and parsing the JSON included) and the peak RSS (GNU time's
# "Maximum resident set size"). Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
sizes=${2:-"10000 100000 1000000"}

cargo build --release -q -p gp-plot --bin gp-plot --example synth
bin=target/release/gp-plot
synth=target/release/examples/synth
[ -x /usr/bin/time ] || { echo "bench/plot.sh needs GNU time (apt-get install time)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Wall seconds and peak KiB of one run, as "SECONDS KIB".
measure() {
    /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null
    cat "$work/time"
}

echo "gp-plot $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs"
printf '%10s %10s %8s | %-24s %9s | %-24s %9s\n' records "JSON MiB" gen_s \
    "SVG best/median s" "peak MiB" "PNG best/median s" "peak MiB"
for n in $sizes; do
    report="$work/report-$n.json"
    t0=$(date +%s.%N)
    "$synth" "$n" >"$report"
    t1=$(date +%s.%N)
    mib=$(awk -v b="$(stat -c %s "$report")" 'BEGIN { printf "%.1f", b / 1048576 }')
    gen=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    row=()
    for fmt in svg png; do
        : >"$work/times"
        peak=0
        for _ in $(seq "$runs"); do
            read -r secs kib < <(measure "$bin" -o "$work/out.$fmt" "$report")
            echo "$secs" >>"$work/times"
            [ "$kib" -gt "$peak" ] && peak=$kib
        done
        best=$(sort -n "$work/times" | head -1)
        median=$(sort -n "$work/times" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
        row+=("$best / $median" "$(awk -v k="$peak" 'BEGIN { printf "%.0f", k / 1024 }')")
    done
    printf '%10s %10s %8s | %-24s %9s | %-24s %9s\n' "$n" "$mib" "$gen" \
        "${row[0]}" "${row[1]}" "${row[2]}" "${row[3]}"
done
