#!/usr/bin/env bash
# What gp-launch's default pinning does to the noise: the same pre-copy RUNS times with the
# default placement (A: on this 2-core machine with --cpus 1, the source QEMU on CPU 0 and the
# destination on CPU 1) and RUNS times with --no-pin (B), interleaved (bench/launch-ab.sh).
# Compares the median and spread (min, max, coefficient of variation) of QEMU's total time and
# downtime; writes bench/results/pinning.json.
#
#   bench/pinning.sh [RUNS=12]
exec "$(dirname "$0")/launch-ab.sh" pinning "${1:-12}" "" "--no-pin"
