#!/usr/bin/env bash
# Benchmarks the `stress` workload against a C reference of the original guestperf loop.
#
#   bench/stress.sh            host: ms per GB of stress vs C (gcc -O2), 1 thread and all threads
#   bench/stress.sh --guest    also boots the initrd under TCG: boot-to-first-record time and the
#                              cost of progress reporting (grain 0 vs the default grain)
#
# Host figures are medians of per-GB times (each thread owns MIB_PER_THREAD of memory; a few GB
# of work per run, ROUNDS rounds interleaved so load changes hit every variant alike). The
# "rmw-const" line is a streaming read-modify-write baseline (xor with a constant, same walk):
# the memory bandwidth ceiling of this access pattern. Prints a table on stderr and JSON on
# stdout, and writes the JSON to bench/results/stress.json.
#
# Knobs (environment): MIB_PER_THREAD (1024), GB_PER_RUN (6), ROUNDS (3), THREADS (nproc),
# GUEST_ROUNDS (3), GUEST_SECONDS (10).
set -euo pipefail
cd "$(dirname "$0")/.."

MIB_PER_THREAD=${MIB_PER_THREAD:-1024}
GB_PER_RUN=${GB_PER_RUN:-6}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-$(nproc)}
GUEST_ROUNDS=${GUEST_ROUNDS:-3}
GUEST_SECONDS=${GUEST_SECONDS:-10}
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
    run_stress "stress-$t" "$t" 20
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
      stress) label="stress (grain 20 ms)" ;;
      stress-nograin) label="stress (grain 0: per-GB only)" ;;
      c-const) label="C rmw-const (bandwidth baseline)" ;;
    esac
    say "$(printf '%-34s %10s %10s %8s' "$label" "$t" "$m" "$n")"
    host_json+="${host_json:+,}{\"variant\":\"$v\",\"threads\":$t,\"ms_per_gb_median\":$m,\"samples\":$n}"
  done
done

# --- guest (TCG) -------------------------------------------------------------------------------
guest_json=""
if $guest; then
  initrd/build.sh >/dev/null
  kernel=$(ls -1 "${GUESTPERF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/guestperf}"/kernel/vmlinuz-* 2>/dev/null | sort -V | tail -n1)
  [ -n "$kernel" ] || { say "no guest kernel in the cache: run scripts/setup-host.sh"; exit 1; }
  cache=${GUESTPERF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/guestperf}
  initrd="$cache/initrd-stress.img"
  lock="$cache/vm-tests.lock"
  base="console=ttyS0 quiet panic=-1 tsc=reliable ramsize=128M"
  # Boots once; prints "boot_to_start_s boot_to_first_p_s gb_per_s".
  guest_run() { # extra-cmdline
    flock "$lock" bash -c '
      t0=$EPOCHREALTIME; start=null; first=null; rate=null
      while IFS= read -r line; do
        line=${line%$'"'"'\r'"'"'}
        case $line in
          "@gp start "*) [ "$start" = null ] && start=$(awk -v a="$t0" -v b="$EPOCHREALTIME" "BEGIN {printf \"%.3f\", b - a}") ;;
          "@gp p "*) [ "$first" = null ] && first=$(awk -v a="$t0" -v b="$EPOCHREALTIME" "BEGIN {printf \"%.3f\", b - a}") ;;
          "@gp done "*) rate=$(sed -E "s/.*elapsed_ms=([0-9.]+) bytes=([0-9]+).*/\2 \1/" <<<"$line" | awk "{printf \"%.3f\", \$1 / \$2 / 1e6}") ;;
        esac
      done < <(qemu-system-x86_64 -accel tcg -smp 2 -m 256 -nodefaults -display none \
                 -no-user-config -no-reboot -serial stdio -kernel "$1" -initrd "$2" -append "$3" 2>/dev/null)
      echo "$start $first $rate"' _ "$kernel" "$initrd" "$base $1"
  }
  say ""
  say "bench/stress.sh: guest under TCG (-smp 2 -m 256, $base), $GUEST_ROUNDS rounds of $GUEST_SECONDS s"
  for r in $(seq "$GUEST_ROUNDS"); do
    for grain in 0 20; do
      read -r s p g < <(guest_run "stress.duration_s=$GUEST_SECONDS stress.grain_ms=$grain")
      say "  round $r grain $grain: boot-to-start ${s}s, first progress ${p}s, ${g} GB/s"
      echo "$s" >>"$work/g-start"
      echo "$g" >>"$work/g-rate-$grain"
    done
  done
  gs=$(median <"$work/g-start")
  g0=$(sort -g "$work/g-rate-0" | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.3f", m}')
  g20=$(sort -g "$work/g-rate-20" | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.3f", m}')
  cost=$(awk -v a="$g0" -v b="$g20" 'BEGIN {printf "%.1f", (a - b) / a * 100}')
  say "  median boot-to-start ${gs}s; GB/s grain 0: $g0, grain 20: $g20 (reporting cost ${cost}%)"
  guest_json=",\"guest\":{\"accel\":\"tcg\",\"cmdline\":\"$base\",\"boot_to_start_s_median\":$gs,\"gb_per_s_grain0_median\":$g0,\"gb_per_s_grain20_median\":$g20,\"reporting_cost_pct\":$cost,\"rounds\":$GUEST_ROUNDS,\"seconds\":$GUEST_SECONDS}"
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
