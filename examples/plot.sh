#!/usr/bin/env bash
# The seed's two chart command lines, as static SVG instead of plotly HTML:
#
#   ./tests/migration/guestperf-plot.py --output result.html \
#       --migration-iters --split-guest-cpu result.json
#   ./tests/migration/guestperf-plot.py --output result.html \
#       --migration-iters --split-guest-cpu --qemu-cpu --vcpu-cpu result.json
#
# Usage: plot.sh [REPORT...]   (without a report, runs guestperf first to make one)
source "$(dirname "$0")/common.sh"

if (( $# == 0 )); then
    set -- "$out/result.json"
    [[ -f $1 ]] || guestperf "${hw[@]}" "${sc[@]}" > "$1"
fi

gp-plot --output "$out/result.svg" --migration-iters --split-guest-cpu "$@"
gp-plot --output "$out/result-cpu.svg" --migration-iters --split-guest-cpu --qemu-cpu --vcpu-cpu "$@"
echo "charts: $out/result.svg $out/result-cpu.svg"
