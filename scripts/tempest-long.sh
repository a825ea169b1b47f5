#!/usr/bin/env bash
# The long tier, not in CI (an hour or more a release): Tempest's compute and network API
# tests and its scenario tests on the whole cloud on this machine, for each RELEASE
# (default: the default release and 2025.1), each on a fresh devcloud with 2 computes
# and 1 network node, Tempest run where the cloud's users are (osception devcloud
# tempest: the outer network's namespace, the guests logged into over SSH).
#
#   scripts/tempest-long.sh [RELEASE...]        CONCURRENCY=2 by default
#
# Prints, per release: devcloud up's time, smoke, then for each group (one Tempest run
# each, so that a group's results stand even if a later one is stopped) its counts, its
# time and the machine's memory peak while it ran, and where its reports were copied
# (.cache/tempest-long/<release>-<time>/<group>/: junit.xml, report.html, tempest.conf,
# tempest.out, and memory.log, free(1)'s "used" each 10 s). Needs root, as the local
# cloud pass does. TEMPEST_GROUPS="scenario api.network" runs only those.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# What the local cloud needs (Debian packages, .venv) is what scripts/test.sh installs;
# `devcloud up` makes the rest (the release's services venv, the nodes' roots).
if [ ! -x .venv/bin/osception ]; then
  echo "tempest-long: no .venv here: run scripts/test.sh once first (it installs what the local cloud needs)" >&2
  exit 2
fi
osception=.venv/bin/osception
if [ "$#" -gt 0 ]; then
  releases=("$@")
else
  releases=("$(.venv/bin/python -c 'from osception import releases; print(releases.DEFAULT_RELEASE)')" 2025.1)
fi
# Tempest's groups, the quickest first: its scenarios, the network API, the compute API.
read -r -a groups <<<"${TEMPEST_GROUPS:-scenario api.network api.compute}"
rc=0
for release in "${releases[@]}"; do
  home=$(mktemp -d)
  reports=.cache/tempest-long/$release-$(date +%Y%m%dT%H%M)
  mkdir -p "$reports"
  export OSCEPTION_HOME=$home
  echo "== $release: devcloud with 2 computes and 1 network node in $home"
  start=$SECONDS
  $osception devcloud up --release "$release" --computes 2 --network-nodes 1 | tail -1
  echo "== $release: up in $((SECONDS - start)) s"
  $osception devcloud smoke || rc=1
  for group in "${groups[@]}"; do
    out=$reports/$group
    mkdir -p "$out"
    (while sleep 10; do echo "$(date +%T) $(free -m | awk '/^Mem:/ { print $3 }')"; done) >"$out/memory.log" &
    sampler=$!
    start=$SECONDS
    $osception devcloud tempest --regex "^tempest\.${group//./\\.}\." --concurrency "${CONCURRENCY:-2}" || rc=1
    took=$((SECONDS - start))
    kill "$sampler"
    peak=$(sort -k2 -n "$out/memory.log" | tail -1 | awk '{ print $2 }')
    run=$(find "$home" -name tempest.conf -path '*/runs/*' -printf '%T@ %h\n' | sort -n | tail -1 | cut -d' ' -f2-)
    if [ -n "$run" ]; then cp -r "$run"/. "$out"/; fi
    echo "== $release tempest.$group: $took s; the machine's memory peak while it ran: ${peak:-?} MB used; reports in $out"
  done
  $osception devcloud down --purge >/dev/null || rc=1
  rm -rf "$home"
done
exit "$rc"
