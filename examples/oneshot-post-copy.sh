#!/usr/bin/env bash
# The seed's post-copy command line: switch to post-copy after 5 passes over RAM.
#
#   ./tests/migration/guestperf.py --post-copy --post-copy-iters 5 > result.json
source "$(dirname "$0")/common.sh"

guestperf "${hw[@]}" --post-copy --post-copy-iters 5 "${sc[@]}" > "$out/result-post-copy.json"

jq -r '"post-copy: \(.summary.outcome), total \(.summary.total_time_ms) ms, actions: \([.guestperf_rs.actions[].action] | join(", "))"' \
    "$out/result-post-copy.json"
