#!/usr/bin/env bash
# Speed and memory of gp-collect on synthetic streams.
#
#   bench/collect.sh [N...]        (default: 100000 1000000)
#
# For each N, crates/collect/examples/synth-stream.rs writes a stream of N records with the mix of
# a real run (60 % guest_progress, 15 % cpu_sample with 6 threads, 15 % progress with full
# query-migrate JSON, QMP events, console lines) to a file; gp-collect (release build) reads it
# from that file and writes the report to another. Reports wall time, records per second and
# peak RSS (from /usr/bin/time -v), with the CPU time (user + system of both its threads;
# on a busy machine it explains a long wall time) and the input and report sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- 100000 1000000

cargo build --release -q -p gp-collect --bin gp-collect --example synth-stream
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for n in "$@"; do
    target/release/examples/synth-stream "$n" >"$work/in.ndjson"
    lines=$(wc -l <"$work/in.ndjson")
    /usr/bin/time -v target/release/gp-collect --output "$work/report.json" \
        <"$work/in.ndjson" 2>"$work/time.txt"
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
    secs=$(echo "$wall" | awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }')
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
    cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {print s}' "$work/time.txt")
    awk -v n="$lines" -v s="$secs" -v rss="$rss" -v cpu="$cpu" \
        -v in_b="$(stat -c %s "$work/in.ndjson")" -v out_b="$(stat -c %s "$work/report.json")" 'BEGIN {
        printf "%9d records: %5.2f s wall (%5.2f s CPU), %7.0f records/s, peak RSS %4.0f MiB (input %.0f MiB, report %.0f MiB)\n",
            n, s, cpu, n / s, rss / 1024, in_b / 1048576, out_b / 1048576
    }'
done
echo "host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
