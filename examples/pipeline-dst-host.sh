#!/usr/bin/env bash
# The same test as oneshot-dst-host.sh, as the pipeline guestperf runs: gp-launch starts the
# destination QEMU over ssh and gp-sample samples it there. Needs GP_DST_HOST=[user@]host;
# without it, prints the pipeline and exits.
source "$(dirname "$0")/common.sh"

if [[ -z ${GP_DST_HOST:-} ]]; then
    echo "pipeline-dst-host: set GP_DST_HOST=[user@]host to run:" >&2
    echo "gp-launch ${hw[*]} --dst-host somehostname --transport tcp | gp-sample | gp-migrate ${sc[*]} | gp-collect > $out/result-remote.json"
    exit 0
fi

gp-launch "${hw[@]}" --dst-host "$GP_DST_HOST" --transport tcp \
    | gp-sample \
    | gp-migrate "${sc[@]}" \
    | gp-collect > "$out/result-remote.json"

jq -r '"destination \(.dst_host) over \(.transport): \(.summary.outcome), total \(.summary.total_time_ms) ms"' \
    "$out/result-remote.json"
