#!/usr/bin/env bash
# Tests both ways to install guestperf-rs (docs/install.md) the way a new user meets them:
#
# 1. the Debian package: `cargo xtask deb`, `dpkg -i`, then from a directory outside the checkout,
#    with a fresh HOME that holds nothing but the cached guest kernel (so no initrd in a cache can
#    hide a missing installed one) and a PATH of system directories only (no cargo, no target/),
#    `guestperf --accel tcg --mem 256M --sleep 1` must give a completed report that used
#    /usr/share/guestperf/initrd-stress.img; `man gp-migrate` must show its options and bash
#    completion must offer them; `dpkg -r` must leave no file of the package behind;
# 2. `cargo xtask install --prefix` into a temporary prefix (the fresh HOME's ~/.local): the same run (the report must use the
#    prefix's initrd), man page and completion found through PATH, then `cargo xtask uninstall`
#    must leave the prefix empty.
#
# PROFILE=dev (what .ci/run sets) packages the debug build the test suite already made instead of
# a release build: the package's layout, dependencies and behaviour are what is tested, and a
# release build would add 4-7 minutes to CI (docs/performance.md). The default is release, what
# users get.
#
# Run as root (dpkg). Prints each step's time and the total on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$(pwd)
profile=${PROFILE:-release}
t0=$SECONDS

say() { printf 'test-package: %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
step_start=$SECONDS
step() { say "$1 ($((SECONDS - step_start)) s)"; step_start=$SECONDS; }

[ "$(id -u)" = 0 ] || fail "run as root: dpkg -i needs it"
for tool in dpkg-deb dpkg-shlibdeps man jq flock; do
  command -v "$tool" >/dev/null || fail "$tool is missing: run scripts/setup-host.sh"
done
[ -f /usr/share/bash-completion/bash_completion ] || fail "bash-completion is missing: run scripts/setup-host.sh"
if dpkg-query -W -f='${Status}' guestperf 2>/dev/null | grep -q 'ok installed'; then
  fail "a guestperf package is already installed; this test would replace and then remove it: dpkg -r guestperf first"
fi

# The user's cache: where set-up put the guest kernel, and the machine-wide VM lock the test suite
# takes (vm-tests.lock in the cache, see gp-testkit), taken here too around each run.
if [ -n "${GUESTPERF_CACHE:-}" ]; then real_cache=$GUESTPERF_CACHE
elif [ -n "${XDG_CACHE_HOME:-}" ]; then real_cache=$XDG_CACHE_HOME/guestperf
else real_cache=$HOME/.cache/guestperf; fi
kernel=$(ls -t "$real_cache"/kernel/vmlinuz-* 2>/dev/null | head -n1 || true)
[ -n "$kernel" ] || fail "no guest kernel in $real_cache/kernel: run scripts/setup-host.sh"
lock=$real_cache/vm-tests.lock

work=$(mktemp -d /tmp/gp-package.XXXXXX)
cleanup() {
  if dpkg-query -W -f='${Status}' guestperf 2>/dev/null | grep -q 'ok installed'; then
    dpkg -r guestperf >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A fresh HOME: the guest kernel in its cache, nothing else.
home=$work/home
mkdir -p "$home/.cache/guestperf/kernel" "$work/elsewhere"
cp "$kernel" "$home/.cache/guestperf/kernel/"

# Runs a command as a new user would: empty environment but HOME, PATH ($1) and a locale, from a
# directory outside the checkout.
clean() {
  local path=$1; shift
  (cd "$work/elsewhere" && env -i HOME="$home" PATH="$path" LANG=C.UTF-8 TERM=dumb "$@")
}
# The same under the machine-wide VM lock; writes the time it got the lock (epoch s) to $2.
clean_locked() {
  local path=$1 stamp=$2; shift 2
  # shellcheck disable=SC2016
  (cd "$work/elsewhere" && flock "$lock" sh -c 'date +%s >"$0"; exec "$@"' "$stamp" \
    env -i HOME="$home" PATH="$path" LANG=C.UTF-8 TERM=dumb "$@")
}

# guestperf under PATH $1 must complete and must have used initrd $2.
check_run() {
  local path=$1 initrd=$2 name=$3
  local report=$work/$name.json
  local asked got
  asked=$(date +%s)
  if ! clean_locked "$path" "$work/$name.locked" guestperf --accel tcg --mem 256M --sleep 1 \
      >"$report" 2>"$work/$name.err"; then
    tail -n 20 "$work/$name.err" >&2
    fail "$name: guestperf failed"
  fi
  local outcome used
  outcome=$(jq -r '.result.outcome' "$report")
  used=$(jq -r '.initrd' "$report")
  [ "$outcome" = completed ] || fail "$name: outcome $outcome ($(jq -r '.result.reason' "$report"))"
  [ "$used" = "$initrd" ] || fail "$name: the run used initrd $used, not the installed $initrd"
  case "$(jq -r '.kernel' "$report")" in
    "$home"/.cache/guestperf/kernel/vmlinuz-*) ;;
    *) fail "$name: the run did not use the cached kernel: $(jq -r '.kernel' "$report")" ;;
  esac
  got=$(cat "$work/$name.locked")
  run_note="waited $((got - asked)) s for the VM lock, ran $(($(date +%s) - got)) s"
}

# `man gp-migrate` under PATH $1 must be found at $2 and show its options.
check_man() {
  local path=$1 want=$2 found
  found=$(clean "$path" man -w gp-migrate) || fail "man -w gp-migrate found nothing (PATH=$path)"
  [ "$found" = "$want" ] || fail "man gp-migrate is $found, not $want"
  clean "$path" env MANPAGER=cat MANWIDTH=100 man gp-migrate 2>/dev/null | grep -- '--bandwidth' >/dev/null \
    || fail "man gp-migrate does not show --bandwidth"
  clean "$path" env MANPAGER=cat man gp-stress 2>/dev/null | grep -- '--dirty-rate' >/dev/null \
    || fail "man gp-stress does not show --dirty-rate"
}

# The installed workload runs on the host under PATH $1 and ends as asked.
check_stress() {
  clean "$1" gp-stress --ramsize 16M --threads 1 --grain-ms 0 --duration-s 1 | grep '^@gp done ' >/dev/null \
    || fail "gp-stress (PATH=$1) did not run for 1 s and print @gp done"
}

# bash-completion's loader under PATH $1 must find gp-migrate's completion in its standard place,
# and completing `gp-migrate --band` must offer --bandwidth.
check_completion() {
  local path=$1 out
  # shellcheck disable=SC2016
  out=$(clean "$path" bash --norc --noprofile -c '
    . /usr/share/bash-completion/bash_completion
    _completion_loader gp-migrate >/dev/null 2>&1 || true
    spec=$(complete -p gp-migrate 2>/dev/null) || { echo "no completion loaded"; exit 0; }
    fn=$(printf "%s\n" "$spec" | sed -n "s/.* -F \([^ ]*\) .*/\1/p")
    COMP_WORDS=(gp-migrate --band); COMP_CWORD=1
    COMP_LINE="gp-migrate --band"; COMP_POINT=${#COMP_LINE}
    "$fn" gp-migrate --band gp-migrate
    printf "%s\n" "${COMPREPLY[@]}"')
  printf '%s\n' "$out" | grep -qx -- '--bandwidth' \
    || fail "bash completion of 'gp-migrate --band' (PATH=$path) gave: $out"
}

# Before anything is installed, gp-launch says where it looked for the initrd.
if [ -x target/debug/gp-launch ]; then
  msg=$(clean /usr/bin:/bin "$checkout/target/debug/gp-launch" --accel tcg 2>&1 >/dev/null || true)
  case "$msg" in
    *"no stress initrd found (looked at $home/.cache/guestperf/initrd-stress.img"*"/usr/share/guestperf/initrd-stress.img"*) ;;
    *) fail "gp-launch without an initrd said: $msg" ;;
  esac
fi

# 1. The Debian package.
deb=$(cargo xtask deb --profile "$profile" --output "$work/deb")
deb_build_s=$((SECONDS - step_start))
step "built $(basename "$deb"): $(du -k "$deb" | cut -f1) KiB, Installed-Size $(dpkg-deb -f "$deb" Installed-Size) KiB, Depends: $(dpkg-deb -f "$deb" Depends)"
dpkg -i "$deb" >/dev/null
dpkg -L guestperf | sort >"$work/deb.files"
step "installed with dpkg ($(wc -l <"$work/deb.files") paths)"
sys_path=/usr/bin:/bin:/usr/sbin:/sbin
check_run "$sys_path" /usr/share/guestperf/initrd-stress.img deb
step "guestperf from the package: completed ($run_note)"
check_man "$sys_path" /usr/share/man/man1/gp-migrate.1.gz
check_completion "$sys_path"
check_stress "$sys_path"
[ -f /usr/share/doc/guestperf/copyright ] || fail "no /usr/share/doc/guestperf/copyright"
[ -f /usr/share/zsh/vendor-completions/_gp-migrate ] || fail "no zsh completion"
[ -f /usr/share/fish/vendor_completions.d/gp-migrate.fish ] || fail "no fish completion"
step "man pages, completions and gp-stress from the package"
dpkg --purge guestperf >/dev/null
left=()
while read -r f; do
  if [ -f "$f" ] || [ -L "$f" ]; then left+=("$f"); fi
done <"$work/deb.files"
for d in /usr/share/guestperf /usr/share/doc/guestperf; do [ -e "$d" ] && left+=("$d"); done
[ ${#left[@]} = 0 ] || fail "dpkg --purge left: ${left[*]}"
step "removed: no file of the package left"

# 2. From the checkout into a temporary prefix: the default one, ~/.local, of the fresh HOME, where
# bash-completion 2.11 (bookworm) looks without help ($XDG_DATA_HOME/bash-completion) and man
# finds the pages through PATH.
prefix=$home/.local
mkdir "$prefix"
cargo xtask install --profile "$profile" --prefix "$prefix"
step "cargo xtask install --prefix: $(find "$prefix" -type f | wc -l) files, $(du -sk "$prefix" | cut -f1) KiB"
pre_path=$prefix/bin:/usr/bin:/bin:/usr/sbin:/sbin
check_run "$pre_path" "$prefix/share/guestperf/initrd-stress.img" prefix
step "guestperf from the prefix: completed ($run_note)"
check_man "$pre_path" "$prefix/share/man/man1/gp-migrate.1"
check_completion "$pre_path"
check_stress "$pre_path"
step "man pages, completion and gp-stress from the prefix"
cargo xtask uninstall --prefix "$prefix"
left_files=$(find "$prefix" -mindepth 1)
[ -z "$left_files" ] || fail "cargo xtask uninstall left: $left_files"
step "uninstalled: the prefix is empty"

say "passed in $((SECONDS - t0)) s (of which the package build $deb_build_s s)"
