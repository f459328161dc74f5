#!/usr/bin/env bash
# The seed's NUMA command line: a bigger guest with 2 vCPUs, the source bound to host node 0 and
# CPUs 0,1, the destination to node 1 and CPUs 2,3.
#
#   ./tests/migration/guestperf.py --mem 4 --cpus 2 --src-mem-bind 0 --src-cpu-bind 0,1 \
#       --dst-mem-bind 1 --dst-cpu-bind 2,3 > result.json
#
# That needs a host with two NUMA nodes and CPUs 0-3. On a smaller host the exact line fails in
# gp-launch, which names the missing node or CPU; this script then says so and binds to what the
# host has (both VMs on node 0, the CPUs split between them) so it still shows the binding.
source "$(dirname "$0")/common.sh"

mem=${GP_MEM:-4}
extra=()
[[ -n ${GP_ACCEL:-} ]] && extra+=(--accel "$GP_ACCEL")

nodes=$(ls -d /sys/devices/system/node/node[0-9]* 2>/dev/null | wc -l)
cpus=$(nproc --all)
if (( nodes >= 2 && cpus >= 4 )); then
    binds=(--src-mem-bind 0 --src-cpu-bind 0,1 --dst-mem-bind 1 --dst-cpu-bind 2,3)
elif (( cpus >= 4 )); then
    echo "oneshot-numa: this host has $nodes NUMA node(s): binding both VMs' memory to node 0" >&2
    binds=(--src-mem-bind 0 --src-cpu-bind 0,1 --dst-mem-bind 0 --dst-cpu-bind 2,3)
else
    echo "oneshot-numa: this host has $nodes NUMA node(s) and $cpus CPUs: binding memory to" \
        "node 0, the source to CPU 0 and the destination to CPU 1" >&2
    binds=(--src-mem-bind 0 --src-cpu-bind 0 --dst-mem-bind 0 --dst-cpu-bind 1)
fi

guestperf --mem "$mem" --cpus 2 "${binds[@]}" "${extra[@]}" "${sc[@]}" > "$out/result-numa.json"

jq -r '"bound: src cpus \(.hardware.src_cpu_bind) mem \(.hardware.src_mem_bind), dst cpus \(.hardware.dst_cpu_bind) mem \(.hardware.dst_mem_bind); \(.summary.outcome)"' \
    "$out/result-numa.json"
