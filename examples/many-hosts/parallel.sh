#!/usr/bin/env bash
# One gp-batch spread over several hosts by GNU parallel over ssh, gathered and merged here.
#
#   GP_HOSTS=lab1,lab2,lab3 examples/many-hosts/parallel.sh OUT [gp-batch options]
#
# Runs part {#} of N (N = the number of hosts) of the batch the options select on whichever host
# has a free slot (one job per host at a time), into GP_REMOTE_DIR/part-K on that host; then
# fetches each part over ssh into OUT/parts/HOST/part-K, and merges them into OUT/merged with
# `gp-batch --merge` (which lists any run missing or doubled, and refuses to pool runs of one
# scenario from different hardware). Rerun to resume: finished runs are kept on the hosts.
#
#   GP_HOSTS        comma-separated ssh hosts (GNU parallel --sshlogin names)
#   GP_SSH          the ssh command [default: ssh], e.g. 'ssh -F ~/.ssh/lab_config'
#   GP_REMOTE_DIR   where each host writes its part [default: /tmp/gp-batch-parts]
#
# Each host needs gp-batch and the stage binaries on its PATH, QEMU, the guest kernel and the
# stress initrd (docs/many-hosts.md). Tested by crates/guestperf/tests/many_hosts.rs on two
# ssh hosts in network namespaces.
set -euo pipefail

hosts=${GP_HOSTS:?set GP_HOSTS to the ssh hosts, comma-separated}
ssh_cmd=${GP_SSH:-ssh}
remote=${GP_REMOTE_DIR:-/tmp/gp-batch-parts}
out=${1:?usage: GP_HOSTS=h1,h2 $0 OUT [gp-batch options]}
shift

IFS=, read -r -a list <<<"$hosts"
n=${#list[@]}
logins=()
for h in "${list[@]}"; do logins+=(-S "1/$h"); done
mkdir -p "$out/parts"

# -q: the options reach gp-batch as given (globs in --filter stay globs on the remote shell).
status=0
parallel --will-cite -q --ssh "$ssh_cmd" "${logins[@]}" --joblog "$out/joblog" \
    gp-batch "$@" --shard "{#}/$n" --output "$remote/part-{#}" ::: $(seq "$n") || status=$?

# Gather every part that ran, from the host that ran it (parallel's job log says which).
tail -n +2 "$out/joblog" | while IFS=$'\t' read -r seq host _; do
    mkdir -p "$out/parts/$host"
    $ssh_cmd "$host" "tar -C '$remote' -cf - 'part-$seq'" </dev/null | tar -C "$out/parts/$host" -xf -
done

gp-batch --merge "$out"/parts/*/part-* --output "$out/merged" || status=$?
exit "$status"
