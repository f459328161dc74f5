#!/bin/sh
# Builds the static `stress` and packs it as /init into the initrd with gp-initrd.
#
#   initrd/build.sh [gp-initrd options]      e.g. --output /tmp/initrd.img
#
# Default output: ~/.cache/guestperf/initrd-stress.img ($GUESTPERF_CACHE or $XDG_CACHE_HOME move
# it). Fast when nothing changed: cargo rebuilds nothing and gp-initrd leaves an identical image
# alone. stress is linked statically (glibc, crt-static; the image has no loader or libc) and its
# debug info is stripped to keep the image small.
set -eu
cd "$(dirname "$0")/.."

# Only the --target build sees these flags, so host builds in target/release are not disturbed.
RUSTFLAGS="-C target-feature=+crt-static -C strip=debuginfo" \
  cargo build --quiet --release -p stress --target x86_64-unknown-linux-gnu
cargo build --quiet --release -p gp-initrd
target_dir=${CARGO_TARGET_DIR:-target}
exec "$target_dir/release/gp-initrd" --stress "$target_dir/x86_64-unknown-linux-gnu/release/stress" "$@"
