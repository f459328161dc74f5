#!/usr/bin/env bash
# The same test as oneshot-numa.sh, written as the pipeline guestperf runs: guest size and host
# binding are gp-launch options. Falls back to the bindings this host has, as oneshot-numa.sh.
source "$(dirname "$0")/common.sh"

mem=${GP_MEM:-4}
extra=()
[[ -n ${GP_ACCEL:-} ]] && extra+=(--accel "$GP_ACCEL")

nodes=$(ls -d /sys/devices/system/node/node[0-9]* 2>/dev/null | wc -l)
cpus=$(nproc --all)
if (( nodes >= 2 && cpus >= 4 )); then
    binds=(--src-mem-bind 0 --src-cpu-bind 0,1 --dst-mem-bind 1 --dst-cpu-bind 2,3)
elif (( cpus >= 4 )); then
    echo "pipeline-numa: this host has $nodes NUMA node(s): binding both VMs' memory to node 0" >&2
    binds=(--src-mem-bind 0 --src-cpu-bind 0,1 --dst-mem-bind 0 --dst-cpu-bind 2,3)
else
    echo "pipeline-numa: this host has $nodes NUMA node(s) and $cpus CPUs: binding memory to" \
        "node 0, the source to CPU 0 and the destination to CPU 1" >&2
    binds=(--src-mem-bind 0 --src-cpu-bind 0 --dst-mem-bind 0 --dst-cpu-bind 1)
fi

gp-launch --mem "$mem" --cpus 2 "${binds[@]}" "${extra[@]}" \
    | gp-sample \
    | gp-migrate "${sc[@]}" \
    | gp-collect > "$out/result-numa.json"

jq -r '"bound: src cpus \(.hardware.src_cpu_bind) mem \(.hardware.src_mem_bind), dst cpus \(.hardware.dst_cpu_bind) mem \(.hardware.dst_mem_bind); \(.summary.outcome)"' \
    "$out/result-numa.json"
