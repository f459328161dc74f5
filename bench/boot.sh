#!/usr/bin/env bash
# Boot to workload: how long from starting QEMU to the first workload record.
#
#   bench/boot.sh [BOOTS=10] [MEM=256M] [CPUS=1]
#
# Boots BOOTS times with the real gp-launch (release build), under TCG, and reads its records
# until the source's `guest_start`. Per boot it notes:
#   boot_ms       gp-launch's own figure: from spawning the source QEMU to the workload's first
#                 line on the serial console (docs/records.md, guest_start)
#   launch_s      from starting gp-launch to reading that record here (adds gp-launch's start-up:
#                 host checks, the accelerator choice, spawning QEMU)
#   stop_s        from SIGINT to gp-launch exiting, both VMs stopped and reaped
# gp-launch boots the destination VM (-incoming defer) at the same time, as in every real run,
# so two QEMUs share the CPUs during each boot (the default: the kernel's vmlinux through its
# PVH entry, qboot firmware). Then BOOTS more with --no-qboot (PVH, SeaBIOS; `tcg_seabios` in
# the JSON) and BOOTS with --no-pvh --no-qboot (the bzImage decompressing itself after SeaBIOS,
# gp-launch's boot before both; `tcg_bzimage`). Then it tries KVM once (--accel kvm): the time
# it takes to fail or, where KVM works, BOOTS more boots; and three boots with --accel auto
# (the default: probes KVM, falls back to TCG), whose extra launch time is the probe's cost.
# Holds the VM lock (see bench/common.sh) throughout. Writes bench/results/boot.json.
# shellcheck disable=SC2034 # $child is read by the exit trap (BENCH_CLEANUP)
set -euo pipefail
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
boots=${1:-10} mem=${2:-256M} cpus=${3:-1}

bench_init boot
child="" # the running gp-launch, stopped by the exit trap
# shellcheck disable=SC2016 # evaluated at exit, when $child is the running child
BENCH_CLEANUP+=('[ -n "$child" ] && kill -INT "$child" 2>/dev/null && wait "$child"')
build_release gp-launch
launch=$BENCH_BIN/gp-launch
[ -n "$(ls "$BENCH_CACHE"/kernel/vmlinuz-* 2>/dev/null)" ] || [ -n "$(ls /boot/vmlinuz-* 2>/dev/null)" ] ||
  die "no guest kernel: run scripts/setup-host.sh"
[ -f "$BENCH_CACHE/initrd-stress.img" ] || die "no stress initrd: run initrd/build.sh"

# One boot. Leaves "boot_ms launch_s stop_s exit_status" or "fail SECONDS MESSAGE" in $result.
# (Not run in a $(...) subshell, so that the exit trap can stop a gp-launch left running.)
boot_once() { # accel [more gp-launch options]
  local t0 t1 t2 line boot_ms="" status=0 pid accel=$1
  shift
  t0=$(now)
  coproc LAUNCH { exec "$launch" --accel "$accel" --mem "$mem" --cpus "$cpus" "$@" 2>"$BENCH_WORK/stderr" 9>&-; }
  pid=$LAUNCH_PID child=$LAUNCH_PID
  exec 8<&"${LAUNCH[0]}" # bash drops the coproc's fds when it exits: keep our own
  while IFS= read -r -t 300 line <&8; do
    case $line in
      *'"type":"guest_start"'*'"role":"src"'* | *'"role":"src"'*'"type":"guest_start"'*)
        t1=$(now)
        boot_ms=$(jq -r '.boot_ms' <<<"$line")
        break
        ;;
    esac
  done
  if [ -z "$boot_ms" ]; then
    t1=$(now)
    kill -INT "$pid" 2>/dev/null || true # still booting after 300 s
    exec 8<&-
    wait "$pid" || status=$?
    child=""
    result=$(printf 'fail %s %s\n' "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')" \
      "$(tail -n1 "$BENCH_WORK/stderr" | tr '\n' ' ')(status $status)")
    return
  fi
  kill -INT "$pid"
  cat <&8 >/dev/null || true
  exec 8<&-
  wait "$pid" || status=$?
  child=""
  t2=$(now)
  result=$(awk -v b="$boot_ms" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v s="$status" \
    'BEGIN {printf "%.1f %.3f %.3f %d\n", b, t1 - t0, t2 - t1, s}')
}

# COUNT boots with one accelerator; appends per-boot JSON objects to $BENCH_WORK/LABEL.ndjson.
series() { # accel count [label options...]: label names the series (default: accel)
  local i r accel=$1 count=$2 label=${3:-$1}
  shift 2
  [ $# -gt 0 ] && shift
  for i in $(seq "$count"); do
    boot_once "$accel" "$@"
    r=$result
    if [ "${r%% *}" = fail ]; then
      say "  $label boot $i: failed after ${r#fail } "
      jq -n -c --arg m "${r#fail * }" --argjson s "$(cut -d' ' -f2 <<<"$r")" \
        '{failed: true, seconds: $s, message: $m}' >>"$BENCH_WORK/$label.ndjson"
      return 1
    fi
    read -r b l s st <<<"$r"
    say "$(printf '  %-6s boot %2d: boot_ms %7.1f   launch %6.3f s   stop %6.3f s   exit %d' "$label" "$i" "$b" "$l" "$s" "$st")"
    jq -n -c --argjson b "$b" --argjson l "$l" --argjson s "$s" --argjson st "$st" \
      '{boot_ms: $b, launch_s: $l, stop_s: $s, exit_status: $st}' >>"$BENCH_WORK/$label.ndjson"
  done
}

summary() { # accel -> JSON
  local f=$BENCH_WORK/$1.ndjson
  [ -s "$f" ] || { echo null; return; }
  jq -s -c --argjson boot "$(jq '.boot_ms // empty' "$f" | stats_json)" \
    --argjson launch "$(jq '.launch_s // empty' "$f" | stats_json)" \
    --argjson stop "$(jq '.stop_s // empty' "$f" | stats_json)" \
    '{boots: ., boot_ms: $boot, launch_s: $launch, stop_s: $stop}' "$f"
}

run_all() {
  say "TCG: $boots boots, --mem $mem --cpus $cpus"
  series tcg "$boots"
  say "TCG, PVH with SeaBIOS (--no-qboot): $boots boots"
  series tcg "$boots" seabios --no-qboot
  say "TCG, the bzImage as given with SeaBIOS (--no-pvh --no-qboot): $boots boots"
  series tcg "$boots" bzimage --no-pvh --no-qboot
  say "KVM: one try (--accel kvm)"
  if series kvm 1; then
    series kvm $((boots - 1)) || true
  fi
  say "auto (probe KVM, fall back to TCG): 3 boots"
  series auto 3 || true
}
vm_lock_hold
run_all
vm_lock_release

tcg=$(summary tcg) seabios=$(summary seabios) bzimage=$(summary bzimage) kvm=$(summary kvm) auto=$(summary auto)
kvm_works=$(jq -n --argjson k "$kvm" '$k != null and ($k.boots | all(.failed != true))')
say ""
say "$(printf '%-30s %10s %10s %10s %4s' "boot to workload (ms)" min median max n)"
for a in tcg seabios bzimage kvm auto; do
  s=$(summary "$a")
  [ "$s" = null ] && continue
  jq -r --arg a "$a" '.boot_ms | select(.n > 0) |
    "\($a) boot_ms\t\(.min)\t\(.median)\t\(.max)\t\(.n)"' <<<"$s" |
    awk -F'\t' '{printf "%-30s %10.0f %10.0f %10.0f %4d\n", $1, $2, $3, $4, $5}' >&2
  jq -r --arg a "$a" '.launch_s | select(.n > 0) |
    "\($a) launch_s (x1000)\t\(.min * 1000)\t\(.median * 1000)\t\(.max * 1000)\t\(.n)"' <<<"$s" |
    awk -F'\t' '{printf "%-30s %10.0f %10.0f %10.0f %4d\n", $1, $2, $3, $4, $5}' >&2
done
if [ "$kvm_works" = false ]; then
  say "KVM: $(jq -r '.boots[0].message' <<<"$kvm")"
fi

bench_write boot "$(jq -n -c --arg mem "$mem" --argjson cpus "$cpus" --argjson tcg "$tcg" \
  --argjson seabios "$seabios" --argjson bzimage "$bzimage" --argjson kvm "$kvm" --argjson auto "$auto" \
  --argjson kvm_works "$kvm_works" \
  '{settings: {mem: $mem, cpus: $cpus, boots: ($tcg.boots | length)},
    tcg: $tcg, tcg_seabios: $seabios, tcg_bzimage: $bzimage, kvm_works: $kvm_works, kvm: $kvm, auto: $auto}')"
