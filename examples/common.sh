# Sourced by every example: finds the tools, the stress initrd, and an output directory, and
# turns the GP_* environment variables into extra options so the same scripts run quickly in CI.
#
#   GP_MEM=256M    guest RAM (--mem)           GP_SLEEP=2    settle seconds (--sleep)
#   GP_ACCEL=tcg   accelerator (--accel)       GP_CPUS=1     vCPUs (--cpus)
#   GP_OUT=DIR     where results go [default: ./results]
#   GP_COLD=1      migrate after --sleep alone (--cold), without waiting for a warm, steady guest
#   GP_BANDWIDTH=64  --bandwidth (MiB/s)      GP_DOWNTIME=1  --downtime (ms)
#
# Unset, an example runs exactly the command line it shows, with the original's defaults.

set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The tools: on PATH already, else the newest build in this checkout, else build them.
if ! command -v guestperf >/dev/null 2>&1; then
    for dir in "$repo/target/release" "$repo/target/debug"; do
        if [[ -x $dir/guestperf && -x $dir/gp-launch && -x $dir/gp-collect ]]; then
            PATH="$dir:$PATH"
            break
        fi
    done
fi
if ! command -v guestperf >/dev/null 2>&1; then
    echo "examples: building the tools (cargo build --release)..." >&2
    (cd "$repo" && cargo build --release -p gp-launch -p gp-sample -p gp-migrate -p gp-collect \
        -p gp-plot -p guestperf)
    PATH="$repo/target/release:$PATH"
fi
export PATH

# The guest: gp-launch needs the stress initrd (and a kernel: scripts/setup-host.sh).
initrd="${GUESTPERF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/guestperf}/initrd-stress.img"
if [[ ! -f $initrd ]]; then
    echo "examples: building the stress initrd (initrd/build.sh)..." >&2
    bash "$repo/initrd/build.sh" >&2
fi

out=${GP_OUT:-results}
mkdir -p "$out"

# Options for gp-launch (hw) and gp-migrate (sc) from the environment; empty when unset.
hw=()
sc=()
[[ -n ${GP_MEM:-} ]] && hw+=(--mem "$GP_MEM")
[[ -n ${GP_CPUS:-} ]] && hw+=(--cpus "$GP_CPUS")
[[ -n ${GP_ACCEL:-} ]] && hw+=(--accel "$GP_ACCEL")
[[ -n ${GP_SLEEP:-} ]] && sc+=(--sleep "$GP_SLEEP")
[[ -n ${GP_COLD:-} ]] && sc+=(--cold)
[[ -n ${GP_BANDWIDTH:-} ]] && sc+=(--bandwidth "$GP_BANDWIDTH")
[[ -n ${GP_DOWNTIME:-} ]] && sc+=(--downtime "$GP_DOWNTIME")
true
