#!/usr/bin/env bash
# CPU cost of gp-sample: how much of one core it uses while sampling QEMU-like processes.
#
#   bench/sample.sh [SECONDS=20] [VMS=2] [VCPUS=8] [INTERVAL=100ms] [busy|idle]
#
# Starts VMS fake QEMU processes (crates/sample/examples/fake-qemu.rs: VCPUS vCPU threads, busy
# or idle, plus 4 other threads each, at nice 19), feeds gp-sample one `vm` record per process,
# and after a 2 s warm-up measures gp-sample's own CPU time over SECONDS: precisely from
# schedstat summed over its threads, and from utime+stime (clock ticks) as a cross-check.
# Output goes through a pipe to `cat >/dev/null`, as in a real pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20} vms=${2:-2} vcpus=${3:-8} interval=${4:-100ms} mode=${5:-busy}

cargo build --release -q -p gp-sample --bin gp-sample --example fake-qemu
bin=target/release/gp-sample
fake=target/release/examples/fake-qemu

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkfifo "$work/in"
for i in $(seq "$vms"); do
    nice -n 19 "$fake" "$vcpus" "$mode" >"$work/fake$i" &
    pids+=($!)
done
for i in $(seq "$vms"); do
    until [ -s "$work/fake$i" ]; do sleep 0.05; done
done

"$bin" --interval "$interval" <"$work/in" | cat >/dev/null &
pids+=($!)
exec 3>"$work/in"
gp=$(pgrep -n -x gp-sample -P $$ || true)
[ -n "$gp" ] || gp=$(pgrep -n -x gp-sample)
role=src
for i in $(seq "$vms"); do
    read -r pid tids <"$work/fake$i"
    printf '{"type":"vm","time_s":%s,"role":"%s","pid":%s,"qmp_socket":"/x","vcpu_tids":[%s],"spawned_s":0,"argv":[]}\n' \
        "$(date +%s.%N)" "$role" "$pid" "$(echo "$tids" | tr ' ' ',')" >&3
    role=dst
done

run_ns() { cat /proc/"$gp"/task/*/schedstat | awk '{s += $1} END {print s}'; }
ticks() { awk '{print $14 + $15}' /proc/"$gp"/stat; }
sleep 2
n0=$(run_ns) t0=$(ticks) w0=$(date +%s%N)
sleep "$secs"
n1=$(run_ns) t1=$(ticks) w1=$(date +%s%N)
exec 3>&-
hz=$(getconf CLK_TCK)

awk -v n=$((n1 - n0)) -v t=$((t1 - t0)) -v w=$((w1 - w0)) -v hz="$hz" \
    -v vms="$vms" -v vcpus="$vcpus" -v iv="$interval" -v mode="$mode" -v s="$secs" 'BEGIN {
    printf "gp-sample, %d VMs x %d %s vCPU threads (+4 others), interval %s, %d s:\n", vms, vcpus, mode, iv, s
    printf "  CPU (schedstat): %.3f%% of one core (%.1f ms)\n", n / w * 100, n / 1e6
    printf "  CPU (utime+stime): %.3f%% of one core (%d ticks of %d Hz)\n", t / hz * 1e9 / w * 100, t, hz
}'
echo "  host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
