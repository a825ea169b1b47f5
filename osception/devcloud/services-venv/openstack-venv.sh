#!/usr/bin/env bash
# Create a virtualenv holding exactly the OpenStack service set of one release.
#
#   openstack-venv.sh RELEASE DEST
#
# Installs the release's lock, osception/locks/openstack-RELEASE.txt (a full
# `pip freeze`), with --no-deps, then runs `pip check`. Idempotent: when DEST already holds a venv
# whose stamp file matches the lock's sha256, nothing is done. A DEST with a
# stale or missing stamp is rebuilt, but only if it looks like a venv (has
# pyvenv.cfg) or is empty — any other existing directory is refused.
#
# Environment: PYTHON (default python3) picks the interpreter.
set -euo pipefail

usage() {
    echo "usage: $0 RELEASE DEST   (e.g. $0 2026.1 /tmp/venv-2026.1)" >&2
    exit 2
}

[ "$#" -eq 2 ] || usage
release=$1
dest=$2
[ -n "$release" ] && [ -n "$dest" ] || usage

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lock="$here/../../locks/openstack-$release.txt"  # osception/locks, in a clone as installed
if [ ! -f "$lock" ]; then
    echo "openstack-venv: no lock for release '$release' ($lock)" >&2
    exit 2
fi

python=${PYTHON:-python3}
stamp_name=.osception-lock.sha256
want=$(sha256sum "$lock" | cut -d' ' -f1)

# Serialise concurrent callers (e.g. parallel test workers) on the same DEST,
# with a lock file outside the work tree.
mkdir -p "$(dirname "$dest")"
dest=$(cd "$(dirname "$dest")" && pwd)/$(basename "$dest")
if command -v flock >/dev/null 2>&1; then
    lockfile="${TMPDIR:-/tmp}/openstack-venv-$(printf '%s' "$dest" | sha256sum | cut -c1-16).lock"
    exec 9>"$lockfile"
    flock 9
fi

is_current() {
    [ -f "$dest/$stamp_name" ] &&
        [ "$(cat "$dest/$stamp_name")" = "$want" ] &&
        [ -x "$dest/bin/python" ] &&
        "$dest/bin/python" -c 'import sys' >/dev/null 2>&1
}

if is_current; then
    echo "openstack-venv: $dest is up to date with openstack-$release.txt"
    exit 0
fi

if [ -e "$dest" ]; then
    if [ -f "$dest/pyvenv.cfg" ] || [ -z "$(ls -A "$dest" 2>/dev/null)" ]; then
        echo "openstack-venv: rebuilding $dest (stamp missing or stale)"
        rm -rf -- "$dest"
    else
        echo "openstack-venv: $dest exists and is not a venv; refusing to touch it" >&2
        exit 1
    fi
fi

start=$SECONDS
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$python" -m venv "$dest"
# The lock is a complete freeze, so --no-deps installs exactly it; pip check
# then proves nothing is missing or conflicting.
"$dest/bin/pip" install --no-deps --no-input -r "$lock"
"$dest/bin/pip" check
echo "$want" >"$dest/$stamp_name"
echo "openstack-venv: built $dest from openstack-$release.txt in $((SECONDS - start)) s ($(du -sh "$dest" | cut -f1))"
