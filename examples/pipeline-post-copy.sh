#!/usr/bin/env bash
# The same test as oneshot-post-copy.sh, written as the pipeline guestperf runs: the scenario
# options belong to gp-migrate.
source "$(dirname "$0")/common.sh"

gp-launch "${hw[@]}" \
    | gp-sample \
    | gp-migrate --post-copy --post-copy-iters 5 "${sc[@]}" \
    | gp-collect > "$out/result-post-copy.json"

jq -r '"post-copy: \(.summary.outcome), total \(.summary.total_time_ms) ms, actions: \([.guestperf_rs.actions[].action] | join(", "))"' \
    "$out/result-post-copy.json"
