#!/usr/bin/env bash
# The main job: one real live-migration test of a busy guest, with its report and charts.
#
#   scripts/demo.sh [guestperf options]      e.g. scripts/demo.sh --post-copy --post-copy-iters 1
#
# Sets up the host when something is missing (QEMU, guest kernel, jq: scripts/setup-host.sh),
# builds the tools and the stress initrd when they are out of date, then runs
#
#   guestperf [options] --output results/result.json
#   gp-plot --migration-iters --split-guest-cpu --qemu-cpu --vcpu-cpu results/result.json
#
# and writes results/result.svg and results/result.png. Without options the demo runs a 2-vCPU,
# 512 MiB guest with 5 s of workload before and after a precopy migration over a unix socket
# (about 20 s under TCG on 2 cores); any option given replaces that set (`scripts/demo.sh
# --mem 1` for the original's 1 GiB, ...). Without working KVM, gp-launch falls back to TCG and
# says so. RESULTS=dir changes the output directory.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'demo: %s\n' "$*" >&2; }

kernels="${GUESTPERF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/guestperf}/kernel"
setup=no
command -v qemu-system-x86_64 >/dev/null || setup=yes
command -v jq >/dev/null || setup=yes
compgen -G "$kernels/vmlinuz-*" >/dev/null || compgen -G "/boot/vmlinuz-*" >/dev/null || setup=yes
if [[ $setup == yes ]]; then
    say "setting up the host (scripts/setup-host.sh)"
    bash scripts/setup-host.sh
fi

say "building the tools (cargo build --release)"
cargo build --quiet --release -p gp-launch -p gp-sample -p gp-migrate -p gp-collect -p gp-plot \
    -p guestperf
say "building the stress initrd (initrd/build.sh)"
bash initrd/build.sh >/dev/null

bin=${CARGO_TARGET_DIR:-target}/release
out=${RESULTS:-results}
mkdir -p "$out"

(( $# > 0 )) || set -- --cpus 2 --mem 512M --sleep 5
say "running: guestperf $* --output $out/result.json"
start=$(date +%s)
"$bin/guestperf" "$@" --output "$out/result.json"
say "the test took $(( $(date +%s) - start )) s"

for ext in svg png; do
    "$bin/gp-plot" --output "$out/result.$ext" \
        --migration-iters --split-guest-cpu --qemu-cpu --vcpu-cpu "$out/result.json"
done

jq -r '
  .summary as $s
  | "scenario      \(.scenario.name): \(if .scenario.post_copy then "post-copy" else "precopy" end), \(.hardware.cpus) vCPU, \(.hardware.mem) GiB, \(.guestperf_rs.header.accel // "?")",
    "outcome       \($s.outcome) (\($s.reason))",
    "total time    \($s.total_time_ms // "-") ms",
    "downtime      \($s.downtime_ms // "-") ms (QEMU), guest stall \($s.guest_stall.stall_ms // "-" | if type == "number" then (. * 10 | round / 10) else . end) ms",
    "slowdown      \($s.guest_throughput.slowdown_during_pct // "-" | if type == "number" then (. * 10 | round / 10) else . end) % of guest throughput during migration",
    "host CPU      \([$s.host_cpu.vms[].during_migration_s // empty] | add // "-" | if type == "number" then (. * 100 | round / 100) else . end) s of QEMU CPU during migration"
' "$out/result.json"
echo "report: $out/result.json   charts: $out/result.svg $out/result.png"
