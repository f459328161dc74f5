#!/usr/bin/env bash
# What pinning the two QEMUs to disjoint CPUs does to the figures and their noise: the same
# pre-copy RUNS times pinned (A: the source QEMU on CPU SRC_CPUS, the destination on DST_CPUS;
# 0 and 1 unless set, what gp-launch's first default did on a 2-core machine) and RUNS times
# unpinned (B: --no-pin), interleaved (bench/launch-ab.sh).
# Compares the median and spread (min, max, coefficient of variation) of QEMU's total time and
# downtime; writes bench/results/pinning.json.
#
#   bench/pinning.sh [RUNS=12]
exec "$(dirname "$0")/launch-ab.sh" pinning "${1:-12}" \
  "--src-cpu-bind ${SRC_CPUS:-0} --dst-cpu-bind ${DST_CPUS:-1}" "--no-pin"
