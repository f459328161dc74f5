#!/usr/bin/env bash
# How well `stress` holds a dirty rate: the achieved rate over every 100 ms window (sliding by
# 10 ms) against the target, on the host and in a TCG guest booted by gp-launch.
#
#   bench/stress-rate.sh [--host-only]
#
# Host: `stress --dirty-rate 200M --grain-ms 10 --duration-s 10.5`, 1 and 2 threads, ROUNDS
# rounds interleaved. Guest: `gp-launch --accel tcg --mem 256M --stress-ram 128M
# --stress-dirty-rate 32M --stress-wss 50% --stress-duration-s 12`, 1 and 2 vCPUs, GUEST_ROUNDS
# rounds, holding the VM lock; also each thread's first pass (guest_warm's elapsed_ms). The
# windows cover the time after every thread's first pass (progress without touched_bytes); the
# arithmetic is gp_records::stress::Written (docs/records.md, "Achieved dirty rate"), run by
# `cargo run -p stress --example dirty-rate`. Per run: the mean over the whole span, the median,
# 5th and 95th percentile, minimum and maximum window, and the share of windows within 5%, all
# as percent of the target. Writes bench/results/stress-rate.json.
#
# The guest boots the initrd of this source tree (initrd/build.sh --output
# target/gp-bench/initrd-stress.img), never the shared ~/.cache one; INITRD=PATH boots another.
# Knobs (environment): ROUNDS (3), GUEST_ROUNDS (2), HOST_RATE (200M), GUEST_RATE (32M).
set -euo pipefail
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
ROUNDS=${ROUNDS:-3}
GUEST_ROUNDS=${GUEST_ROUNDS:-2}
HOST_RATE=${HOST_RATE:-200M}
GUEST_RATE=${GUEST_RATE:-32M}
guest=true
[ "${1:-}" = --host-only ] && guest=false

bench_init stress-rate
target_dir=${CARGO_TARGET_DIR:-$BENCH_ROOT/target}
# The same static build initrd/build.sh makes, so the host runs the binary the guest runs.
say "building (release): stress (static), the dirty-rate example, gp-launch"
RUSTFLAGS="-C target-feature=+crt-static -C strip=debuginfo" \
  cargo build --quiet --release -p stress --target x86_64-unknown-linux-gnu
cargo build --quiet --release -p stress --example dirty-rate
stress="$target_dir/x86_64-unknown-linux-gnu/release/stress"
rate="$target_dir/release/examples/dirty-rate"

# --- host --------------------------------------------------------------------------------------
host_run() { # threads round
  local out
  out=$("$stress" --ramsize 256M --threads "$1" --grain-ms 10 --duration-s 10.5 \
    --dirty-rate "$HOST_RATE" | "$rate")
  jq -c --argjson t "$1" --argjson r "$2" '{threads: $t, round: $r} + .' <<<"$out"
}
say "host: --dirty-rate $HOST_RATE, 10 s, 1 and 2 threads, $ROUNDS rounds"
: >"$BENCH_WORK/host.ndjson"
for r in $(seq "$ROUNDS"); do
  for t in 1 2; do
    line=$(host_run "$t" "$r")
    echo "$line" >>"$BENCH_WORK/host.ndjson"
    say "  $(jq -r '"round \(.round), \(.threads) thread(s): mean \(.spread.mean_pct*10|round/10)%, windows \(.spread.min_pct*10|round/10)..\(.spread.max_pct*10|round/10)% (p5 \(.spread.p5_pct*10|round/10), median \(.spread.median_pct*10|round/10), p95 \(.spread.p95_pct*10|round/10)), \(.spread.within_5_pct*10|round/10)% of \(.spread.windows) windows within 5%"' <<<"$line")"
  done
done

# --- guest -------------------------------------------------------------------------------------
: >"$BENCH_WORK/guest.ndjson"
if $guest; then
  build_release gp-launch
  if [ -z "${INITRD:-}" ]; then
    INITRD="$target_dir/gp-bench/initrd-stress.img"
    CARGO_TARGET_DIR="$target_dir" initrd/build.sh --output "$INITRD" >/dev/null 2>&1
  fi
  guest_run() { # cpus round; appends one JSON line to guest.ndjson
    local records="$BENCH_WORK/records-$1-$2.ndjson" out warm
    "$BENCH_BIN/gp-launch" --accel tcg --mem 256M --cpus "$1" --initrd "$INITRD" \
      --stress-ram 128M --stress-dirty-rate "$GUEST_RATE" --stress-wss 50% \
      --stress-duration-s 12 >"$records" 2>"$BENCH_WORK/stderr" ||
      die "gp-launch failed: $(tail -n3 "$BENCH_WORK/stderr")"
    out=$("$rate" <"$records")
    warm=$(jq -s -c '[.[] | select(.type == "guest_warm" and .role == "src") | .elapsed_ms]' "$records")
    jq -c --argjson c "$1" --argjson r "$2" --argjson w "$warm" \
      '{vcpus: $c, round: $r, warm_elapsed_ms: $w} + .' <<<"$out" >>"$BENCH_WORK/guest.ndjson"
  }
  say "guest (TCG, gp-launch --stress-dirty-rate $GUEST_RATE --stress-wss 50%, 128 MiB): 1 and 2 vCPUs, $GUEST_ROUNDS rounds"
  vm_lock_hold
  for r in $(seq "$GUEST_ROUNDS"); do
    for c in 1 2; do
      guest_run "$c" "$r"
      line=$(tail -n1 "$BENCH_WORK/guest.ndjson")
      say "  $(jq -r '"round \(.round), \(.vcpus) vCPU(s): first pass \(.warm_elapsed_ms | map(round) | join("/")) ms; mean \(.spread.mean_pct*10|round/10)%, windows \(.spread.min_pct*10|round/10)..\(.spread.max_pct*10|round/10)% (p5 \(.spread.p5_pct*10|round/10), median \(.spread.median_pct*10|round/10), p95 \(.spread.p95_pct*10|round/10)), \(.spread.within_5_pct*10|round/10)% of \(.spread.windows) windows within 5%"' <<<"$line")"
    done
  done
  vm_lock_release
fi

result=$(jq -n -c --arg hr "$HOST_RATE" --arg gr "$GUEST_RATE" \
  --slurpfile host "$BENCH_WORK/host.ndjson" --slurpfile guest "$BENCH_WORK/guest.ndjson" \
  '{host_rate: $hr, guest_rate: $gr, window_ms: 100, step_ms: 10, host: $host, guest: $guest}')
bench_write stress-rate "$result"
