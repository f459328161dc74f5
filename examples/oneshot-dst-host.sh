#!/usr/bin/env bash
# The seed's remote command line: the destination VM on another host.
#
#   ./tests/migration/guestperf.py --dst-host somehostname > result.json
#
# Set GP_DST_HOST=[user@]host: a host reachable with `ssh -o BatchMode=yes` that has QEMU, the
# guest kernel and the stress initrd at the same paths (see docs/gp-launch.md). guestperf then
# migrates over TCP (a unix socket cannot reach another host). Without GP_DST_HOST this script
# prints the pipeline it would run, and exits.
source "$(dirname "$0")/common.sh"

if [[ -z ${GP_DST_HOST:-} ]]; then
    echo "oneshot-dst-host: set GP_DST_HOST=[user@]host to run this; it would run:" >&2
    guestperf --dry-run "${hw[@]}" --dst-host somehostname "${sc[@]}"
    exit 0
fi

guestperf "${hw[@]}" --dst-host "$GP_DST_HOST" "${sc[@]}" > "$out/result-remote.json"

jq -r '"destination \(.dst_host) over \(.transport): \(.summary.outcome), total \(.summary.total_time_ms) ms"' \
    "$out/result-remote.json"
