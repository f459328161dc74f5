#!/usr/bin/env bash
# Benchmarks the `stress` workload against a C reference of the original guestperf loop.
#
#   bench/stress.sh            host: ms per GB of stress vs C (gcc -O2), 1 thread and all threads
#   bench/stress.sh --guest    also boots the initrd under TCG: boot-to-first-record time and the
#                              cost of progress reporting (grain 0 against 5 and 30 ms)
#
# Host figures are medians of per-GB times (each thread owns MIB_PER_THREAD of memory; a few GB
# of work per run, ROUNDS rounds interleaved so load changes hit every variant alike). The
# "rmw-const" line is a streaming read-modify-write baseline (xor with a constant, same walk):
# the memory bandwidth ceiling of this access pattern. Prints a table on stderr and JSON on
# stdout, and writes the JSON to bench/results/stress.json.
#
# Knobs (environment): MIB_PER_THREAD (1024), GB_PER_RUN (6), ROUNDS (3), THREADS (nproc),
# GUEST_ROUNDS (3), GUEST_SECONDS (10), GUEST_GRAINS ("5 30": grains compared with grain 0).
set -euo pipefail
cd "$(dirname "$0")/.."

MIB_PER_THREAD=${MIB_PER_THREAD:-1024}
GB_PER_RUN=${GB_PER_RUN:-6}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-$(nproc)}
GUEST_ROUNDS=${GUEST_ROUNDS:-3}
GUEST_SECONDS=${GUEST_SECONDS:-10}
GUEST_GRAINS=${GUEST_GRAINS:-5 30}
guest=false
[ "${1:-}" = --guest ] && guest=true

say() { printf '%s\n' "$*" >&2; }
target_dir=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- build -------------------------------------------------------------------------------------
mkdir -p "$target_dir/bench" bench/results
gcc -O2 -pthread -o "$target_dir/bench/stress-ref" bench/stress-ref.c
ref="$target_dir/bench/stress-ref"
# The same static build initrd/build.sh makes, so this measures the binary the guest runs.
RUSTFLAGS="-C target-feature=+crt-static -C strip=debuginfo" \
  cargo build --quiet --release -p stress --target x86_64-unknown-linux-gnu
stress="$target_dir/x86_64-unknown-linux-gnu/release/stress"

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "null"; exit} m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.1f\n", m}'; }

# One run; appends its per-GB ms to $work/<name>.
run_ref() { # name mode threads
  "$ref" "$2" "$MIB_PER_THREAD" "$3" "$GB_PER_RUN" | awk '{print $3}' >>"$work/$1"
}
run_stress() { # name threads grain
  # Long enough for GB_PER_RUN GB per thread at ~15 GB/s, then cut by the duration.
  local ram=$((MIB_PER_THREAD * $2))M secs
  secs=$(awk -v g="$GB_PER_RUN" 'BEGIN {printf "%.1f", g * 0.12 + 0.5}')
  "$stress" --ramsize "$ram" --threads "$2" --grain-ms "$3" --duration-s "$secs" |
    awk '$2 == "gb" {print $6}' >>"$work/$1"
}

say "bench/stress.sh: host, $MIB_PER_THREAD MiB per thread, $GB_PER_RUN GB per run, $ROUNDS rounds, 1 and $THREADS threads"
load_before=$(cut -d' ' -f1 /proc/loadavg)
for r in $(seq "$ROUNDS"); do
  say "  round $r/$ROUNDS"
  for t in 1 "$THREADS"; do
    run_ref "c-xor-$t" xor "$t"
    run_stress "stress-$t" "$t" 30
    run_stress "stress-nograin-$t" "$t" 0
    run_ref "c-const-$t" const "$t"
  done
done
load_after=$(cut -d' ' -f1 /proc/loadavg)

host_json=""
say ""
say "$(printf '%-34s %10s %10s %8s' variant threads 'ms/GB' samples)"
for t in 1 "$THREADS"; do
  for v in c-xor stress stress-nograin c-const; do
    f="$work/$v-$t"
    m=$(median <"$f")
    n=$(wc -l <"$f")
    case $v in
      c-xor) label="C reference (gcc -O2), xor 4 KiB" ;;
      stress) label="stress (grain 30 ms)" ;;
      stress-nograin) label="stress (grain 0: per-GB only)" ;;
      c-const) label="C rmw-const (bandwidth baseline)" ;;
    esac
    say "$(printf '%-34s %10s %10s %8s' "$label" "$t" "$m" "$n")"
    host_json+="${host_json:+,}{\"variant\":\"$v\",\"threads\":$t,\"ms_per_gb_median\":$m,\"samples\":$n}"
  done
done

# --- guest (TCG) -------------------------------------------------------------------------------
# Throughput under TCG swings with host load, so the reporting cost is measured per GB of QEMU's
# own CPU time (utime + stime between the start and done lines): a descheduled QEMU uses none.
# cost per line = (QEMU CPU - baseline CPU per byte x bytes) / lines, baseline from grain 0.
guest_json=""
if $guest; then
  initrd/build.sh >/dev/null
  cache=${GUESTPERF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/guestperf}
  kernel=$(ls -1 "$cache"/kernel/vmlinuz-* 2>/dev/null | sort -V | tail -n1)
  [ -n "$kernel" ] || { say "no guest kernel in $cache/kernel: run scripts/setup-host.sh"; exit 1; }
  command -v qemu-system-x86_64 >/dev/null || { say "no QEMU: run scripts/setup-host.sh"; exit 1; }
  initrd="$cache/initrd-stress.img"
  lock="$cache/vm-tests.lock"
  base="console=ttyS0 quiet panic=-1 tsc=reliable cryptomgr.notests no_timer_check ramsize=128M"
  ticks=$(getconf CLK_TCK)
  # Boots once (holding the machine-wide VM test lock); prints
  # "boot_to_start_s boot_to_first_p_s cpu_s bytes lines".
  guest_run() { # extra kernel command line
    local fifo="$work/console" line t0 start=null first=null cpu0 pid lockfd
    rm -f "$fifo"; mkfifo "$fifo"
    exec {lockfd}>>"$lock"; flock "$lockfd"
    t0=$EPOCHREALTIME
    qemu-system-x86_64 -accel tcg -smp 2 -m 256 -nodefaults -display none -no-user-config \
      -no-reboot -serial stdio -kernel "$kernel" -initrd "$initrd" -append "$base $1" \
      >"$fifo" 2>/dev/null </dev/null &
    pid=$!
    {
      # bash reads the boot up to the start line; awk, which reads in blocks, does the rest.
      while IFS= read -r line; do
        case $line in "@gp start "*)
          start=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}')
          cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat"); break ;;
        esac
      done
      awk -v pid="$pid" -v cpu0="${cpu0:-0}" -v hz="$ticks" -v start="$start" '
        /^@gp p / { lines++ }
        /^@gp done / {
          getline stat < ("/proc/" pid "/stat"); split(stat, f, " ")
          for (i = 1; i <= NF; i++) if ($i ~ /^bytes=/) { bytes = substr($i, 7) }
          printf "%s %.3f %s %d\n", start, (f[14] + f[15] - cpu0) / hz, bytes, lines
        }'
    } <"$fifo"
    wait "$pid" || true
    flock -u "$lockfd"; exec {lockfd}>&-
  }
  say ""
  say "bench/stress.sh: guest under TCG (-smp 2 -m 256, $base), $GUEST_ROUNDS rounds of $GUEST_SECONDS s"
  for r in $(seq "$GUEST_ROUNDS"); do
    for grain in 0 $GUEST_GRAINS; do
      read -r s c b l < <(guest_run "stress.duration_s=$GUEST_SECONDS stress.grain_ms=$grain") || true
      [ -n "${l:-}" ] || { say "guest run (grain $grain) gave no @gp done line; try initrd/build.sh and cargo test -p gp-initrd --test boot"; exit 1; }
      say "  round $r grain $grain ms: boot-to-start ${s}s, $l progress lines, $b bytes in ${c} QEMU CPU-s"
      echo "$s" >>"$work/g-start"
      echo "$c $b $l" >>"$work/g-$grain"
    done
  done
  gs=$(median <"$work/g-start")
  med3() { sort -g | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.3f", m}'; }
  # Baseline QEMU CPU per byte, and QEMU CPU-s per second of run, over the grain-0 runs.
  k0=$(awk '{printf "%.6e\n", $1 / $2}' "$work/g-0" | sort -g | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.6e", m}')
  cps=$(awk -v d="$GUEST_SECONDS" '{print $1 / d}' "$work/g-0" | med3)
  # The smallest grain has the most lines, so its per-line cost stands out of the noise best;
  # the direct cost of coarser grains is within run-to-run noise (a few %), so it is also
  # extrapolated from that per-line cost: lines/s x cost per line / QEMU CPU-s per s.
  ref_grain=$(tr ' ' '\n' <<<"$GUEST_GRAINS" | grep . | sort -g | head -n1)
  ref_us=$(awk -v k0="$k0" '{print ($1 - k0 * $2) / $3 * 1e6}' "$work/g-$ref_grain" | median)
  grains_json=""
  for grain in $GUEST_GRAINS; do
    per_line=$(awk -v k0="$k0" '{print ($1 - k0 * $2) / $3 * 1e6}' "$work/g-$grain" | median)
    cost=$(awk -v k0="$k0" '{print ($1 - k0 * $2) / $1 * 100}' "$work/g-$grain" | med3)
    lps=$(awk -v d="$GUEST_SECONDS" '{print $3 / d}' "$work/g-$grain" | median)
    est=$(awk -v l="$lps" -v u="$ref_us" -v c="$cps" 'BEGIN {printf "%.2f", l * u / 1e6 / c * 100}')
    say "  grain $grain ms: $lps lines/s, ${per_line} us of QEMU CPU per line, cost ${cost}% measured, ${est}% from ${ref_us} us/line"
    grains_json+="${grains_json:+,}{\"grain_ms\":$grain,\"lines_per_s\":$lps,\"qemu_cpu_us_per_line\":$per_line,\"cost_pct_measured\":$cost,\"cost_pct_from_per_line\":$est}"
  done
  say "  median boot-to-start ${gs}s (host time from spawning QEMU to the @gp start line)"
  guest_json=",\"guest\":{\"accel\":\"tcg\",\"cmdline\":\"$base\",\"boot_to_start_s_median\":$gs,\"rounds\":$GUEST_ROUNDS,\"seconds\":$GUEST_SECONDS,\"qemu_cpu_s_per_gb_grain0\":$(awk -v k="$k0" 'BEGIN {printf "%.4f", k * 2^30}'),\"qemu_cpu_s_per_s_grain0\":$cps,\"per_line_ref_grain_ms\":$ref_grain,\"grains\":[$grains_json]}"
fi

# --- provenance and JSON -----------------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- initrd bench 2>/dev/null || rev="$rev-dirty"
json=$(printf '{"bench":"stress","time":"%s","cpu_model":"%s","cpus":%s,"kernel":"%s","git_rev":"%s","gcc":"%s","rustc":"%s","load_avg_before":%s,"load_avg_after":%s,"mib_per_thread":%s,"gb_per_run":%s,"rounds":%s,"host":[%s]%s}' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$cpu" "$(nproc)" "$(uname -r)" "$rev" \
  "$(gcc -dumpfullversion)" "$(rustc --version | cut -d' ' -f2)" "$load_before" "$load_after" \
  "$MIB_PER_THREAD" "$GB_PER_RUN" "$ROUNDS" "$host_json" "$guest_json")
echo "$json" >bench/results/stress.json
echo "$json"
