#!/usr/bin/env bash
# Installs what guestperf-rs needs on a Debian 12 host: QEMU (from bookworm-backports when the
# host already carries backports' qemu-utils, which Breaks bookworm's own qemu-system), a guest
# kernel (Debian's cloud kernel, unpacked into the tools' kernel cache), and the small tools the
# tests use (numactl, openssh, GNU parallel; dpkg-dev, man-db and bash-completion for the
# package test). Safe to run again: every step is skipped when already done.
set -euo pipefail

say() { printf 'setup: %s\n' "$*" >&2; }
need_root() { [ "$(id -u)" = 0 ] || { say "run as root (apt-get needs it): sudo $0"; exit 1; }; }

cache_dir() {
  if [ -n "${GUESTPERF_CACHE:-}" ]; then echo "$GUESTPERF_CACHE"
  elif [ -n "${XDG_CACHE_HOME:-}" ]; then echo "$XDG_CACHE_HOME/guestperf"
  else echo "$HOME/.cache/guestperf"; fi
}

# Adds the bookworm-backports suite using the mirror URI that debian.sources already names, so no
# registry host is written here.
add_backports() {
  local list=/etc/apt/sources.list.d/guestperf-backports.sources
  [ -f "$list" ] && return 0
  grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
  local uri
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  if [ -z "$uri" ]; then
    uri=$(awk '/^deb / && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  fi
  [ -n "$uri" ] || { say "cannot find a Debian mirror URI in /etc/apt; add bookworm-backports by hand"; return 1; }
  cat >"$list" <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  say "added bookworm-backports ($list)"
}

install_qemu() {
  if command -v qemu-system-x86_64 >/dev/null; then return 0; fi
  export DEBIAN_FRONTEND=noninteractive
  local utils_ver
  utils_ver=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
  if [[ "$utils_ver" == *bpo* ]] || apt-cache policy 2>/dev/null | grep -q bookworm-backports; then
    add_backports
    apt-get update -qq
    apt-get install -y -qq -t bookworm-backports qemu-system-x86 >/dev/null
  else
    add_backports || true
    apt-get update -qq
    if apt-cache policy qemu-system-x86 | grep -q bpo; then
      apt-get install -y -qq -t bookworm-backports qemu-system-x86 >/dev/null
    else
      apt-get install -y -qq qemu-system-x86 >/dev/null
    fi
  fi
  say "installed $(qemu-system-x86_64 --version | head -n1)"
}

install_tools() {
  local missing=()
  command -v numactl >/dev/null || missing+=(numactl)
  command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v ssh >/dev/null || missing+=(openssh-client)
  command -v jq >/dev/null || missing+=(jq)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v ssh-keygen >/dev/null || missing+=(openssh-client)
  command -v gcc >/dev/null || missing+=(gcc)
  command -v parallel >/dev/null || missing+=(parallel)
  python3 -c "import yaml" 2>/dev/null || missing+=(python3-yaml)
  # Packaging and its test (scripts/test-package.sh): dpkg-shlibdeps, strip, man, bash-completion.
  command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
  command -v strip >/dev/null || missing+=(binutils)
  command -v man >/dev/null || missing+=(man-db)
  [ -f /usr/share/bash-completion/bash_completion ] || missing+=(bash-completion)
  if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    say "installed ${missing[*]}"
  fi
}

# Debian's cloud kernel has the serial console, initramfs and devtmpfs built in.
install_kernel() {
  local dir
  dir="$(cache_dir)/kernel"
  if ls "$dir"/vmlinuz-* >/dev/null 2>&1; then return 0; fi
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  local pkg
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
  [ -n "$pkg" ] || { say "apt-cache knows no linux-image-cloud-amd64; run apt-get update"; return 1; }
  (chmod 755 "$tmp"; cd "$tmp" && apt-get download -qq "$pkg" >/dev/null)
  dpkg-deb -x "$tmp"/*.deb "$tmp/root"
  mkdir -p "$dir"
  cp "$tmp"/root/boot/vmlinuz-* "$dir"/
  chmod 0644 "$dir"/vmlinuz-*
  say "guest kernel: $(ls "$dir"/vmlinuz-*)"
}

need_root
apt_updated=0
if ! command -v qemu-system-x86_64 >/dev/null; then install_qemu; apt_updated=1; fi
if [ $apt_updated = 0 ]; then apt-get update -qq; fi
install_tools
install_kernel
