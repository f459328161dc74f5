#!/usr/bin/env bash
# What QEMU's downtime tracepoints cost: the same pre-copy with gp-launch's default tracing (A)
# and with --no-trace (B), RUNS each, interleaved (bench/launch-ab.sh). Compares QEMU's downtime
# and total time and gp-launch's CPU time; writes bench/results/trace.json.
#
#   bench/trace.sh [RUNS=6]
exec "$(dirname "$0")/launch-ab.sh" trace "${1:-6}" "" "--no-trace"
