#!/usr/bin/env bash
# Host CPU of each QEMU, live, with jq: gp-sample's cpu_sample records carry cumulative CPU time,
# so utilization is the difference of two samples over the difference of their times. jq reads
# the whole stream (gp-migrate ends the run by quitting both VMs) and prints one line per sample.
source "$(dirname "$0")/common.sh"

gp-launch "${hw[@]}" \
    | gp-sample --interval 1s \
    | gp-migrate "${sc[@]}" \
    | jq -rn --unbuffered '
        foreach (inputs | select(.type == "cpu_sample")) as $s ({last: {}};
            .prev = .last[$s.role] | .last[$s.role] = $s;
            select(.prev != null)
            | ($s.process.user_ms + $s.process.system_ms
               - .prev.process.user_ms - .prev.process.system_ms)
              / ($s.time_s - .prev.time_s) / 10
            | "\($s.role) QEMU \($s.pid): \((. * 10 | round) / 10)% of one CPU")' \
    | tee "$out/samples.txt"
