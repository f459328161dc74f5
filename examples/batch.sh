#!/usr/bin/env bash
# The seed's batch command line, on one host: every predefined comparison with a 4 GiB, 2-vCPU
# guest, reports under one directory named after the set-up.
#
#   ./tests/migration/guestperf-batch.py --dst-host somehost --mem 4 --cpus 2 \
#       --src-mem-bind 0 --src-cpu-bind 0,1 --dst-mem-bind 1 --dst-cpu-bind 2,3 \
#       --output tcp-somehost-4gb-2cpu
#
# The whole batch takes hours (about 50 scenarios of 30 s or more each). GP_FILTER selects
# scenarios (a glob on COMPARISON/SCENARIO, e.g. 'post-copy-iters/*'); GP_REPEAT repeats each;
# rerunning resumes where it stopped. Add the seed's --*-bind options on a NUMA host.
source "$(dirname "$0")/common.sh"

mem=${GP_MEM:-4}
extra=()
[[ -n ${GP_ACCEL:-} ]] && extra+=(--accel "$GP_ACCEL")
[[ -n ${GP_FILTER:-} ]] && extra+=(--filter "$GP_FILTER")
[[ -n ${GP_REPEAT:-} ]] && extra+=(--repeat "$GP_REPEAT")

# Named after the set-up, as in the seed: 4 -> unix-localhost-4gb-2cpu, 256M -> ...-256m-2cpu.
size=$mem
[[ $mem =~ ^[0-9.]+$ ]] && size="${mem}gb"
dir="$out/unix-localhost-${size,,}-2cpu"

gp-batch --mem "$mem" --cpus 2 "${extra[@]}" "${sc[@]}" --output "$dir"

cat "$dir/summary.md"
