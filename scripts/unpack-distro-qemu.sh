#!/usr/bin/env bash
# Unpacks the distribution's own QEMU (bookworm's 7.2, not the backports 10.x that
# setup-host.sh installs) beside the installed one, without installing it, for A/B runs of two
# QEMU builds and for testing the tools against an old QEMU. Writes
#   $CACHE/qemu-<version>/bin/qemu-system-x86_64
# a wrapper that runs the unpacked binary with its own firmware and data paths (-L), so it can
# be given to any tool as --binary. Prints the wrapper's path. Safe to run again.
#
#   scripts/unpack-distro-qemu.sh            # the newest qemu-system-x86 not from backports
#   scripts/unpack-distro-qemu.sh 1:7.2+dfsg-7+deb12u18+b3   # a version apt-cache madison lists
set -euo pipefail

say() { printf 'unpack-distro-qemu: %s\n' "$*" >&2; }

cache_dir() {
  if [ -n "${GUESTPERF_CACHE:-}" ]; then echo "$GUESTPERF_CACHE"
  elif [ -n "${XDG_CACHE_HOME:-}" ]; then echo "$XDG_CACHE_HOME/guestperf"
  else echo "$HOME/.cache/guestperf"; fi
}

# The newest version of $1 that apt knows from a suite other than backports.
distro_version() {
  apt-cache madison "$1" | awk -F'|' '$3 !~ /backports/ {gsub(/ /, "", $2); print $2; exit}'
}

# The version of package $1 whose upstream part matches $2's (data is arch-independent and
# can lack the binNMU suffix, +b3, of the arch package).
matching_version() {
  local want=${2%+b*}
  apt-cache madison "$1" | awk -F'|' -v w="$want" '{gsub(/ /, "", $2)} $2 == w || index($2, w "+b") == 1 {print $2; exit}'
}

version=${1:-$(distro_version qemu-system-x86)}
[ -n "$version" ] || { say "apt knows no qemu-system-x86 outside backports; run apt-get update"; exit 1; }
upstream=${version#*:}
upstream=${upstream%%+*}
dest="$(cache_dir)/qemu-$upstream"
wrapper="$dest/bin/qemu-system-x86_64"
if [ -x "$wrapper" ] && "$wrapper" --version >/dev/null 2>&1; then
  echo "$wrapper"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
pkgs=("qemu-system-x86=$version")
for p in qemu-system-common qemu-system-data; do
  v=$(matching_version "$p" "$version")
  [ -n "$v" ] || { say "apt knows no $p matching $version"; exit 1; }
  pkgs+=("$p=$v")
done
v=$(distro_version seabios)
[ -n "$v" ] && pkgs+=("seabios=$v")
(cd "$tmp" && apt-get download -qq "${pkgs[@]}" >/dev/null 2>&1) ||
  { say "apt-get download ${pkgs[*]} failed"; exit 1; }
rm -rf "$dest"
mkdir -p "$dest/bin"
for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$dest/root"; done
real="$dest/root/usr/bin/qemu-system-x86_64"
missing=$(ldd "$real" | awk '/not found/ {print $1}')
[ -z "$missing" ] || { say "the unpacked QEMU needs libraries this host lacks: $missing"; exit 1; }
cat >"$wrapper" <<WRAP
#!/bin/sh
# QEMU $version unpacked by scripts/unpack-distro-qemu.sh, with its own data paths.
exec "$real" -L "$dest/root/usr/share/qemu" -L "$dest/root/usr/share/seabios" "\$@"
WRAP
chmod 755 "$wrapper"
say "unpacked $("$wrapper" --version | head -n1) into $dest"
echo "$wrapper"
