#!/usr/bin/env bash
# The same test as oneshot-defaults.sh, written as the pipeline guestperf runs.
source "$(dirname "$0")/common.sh"

gp-launch "${hw[@]}" \
    | gp-sample \
    | gp-migrate "${sc[@]}" \
    | gp-collect > "$out/result.json"

jq -r '"\(.scenario.name): \(.summary.outcome), total \(.summary.total_time_ms) ms, downtime \(.summary.downtime_ms) ms"' \
    "$out/result.json"
