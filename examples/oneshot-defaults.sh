#!/usr/bin/env bash
# The seed's first command line: a complete test with all the default parameters.
#
#   ./tests/migration/guestperf.py > result.json
#
# 1 vCPU, 1 GiB guest, 15 s of workload before and after, unix-socket migration, precopy with a
# 500 ms downtime limit. Without working KVM, gp-launch falls back to TCG (and says so).
source "$(dirname "$0")/common.sh"

guestperf "${hw[@]}" "${sc[@]}" > "$out/result.json"

jq -r '"\(.scenario.name): \(.summary.outcome), total \(.summary.total_time_ms) ms, downtime \(.summary.downtime_ms) ms"' \
    "$out/result.json"
