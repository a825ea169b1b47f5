#!/usr/bin/env bash
# Install what the selected tests need, then run them. CI (.ci/run) calls this.
#
#   scripts/test.sh [PYTEST ARGS...]        everything
#   scripts/test.sh -m "not slow"            the fast tier: no services venv, no Kolla
#                                            sources, no root, no devcloud
#
# - .venv: osception with its test extras (kubernetes-validate, ansible...).
# - Debian packages: cloud-init (its schema validator), shellcheck, sshd, uWSGI with its python3
#   plugin (as Kolla's API images run it: tests/test_uwsgi_pythonpath.py); with the slow tests
#   also debootstrap, the devcloud's MariaDB, memcached and QEMU (the guest image's boot
#   test) (installed when missing; needs root, else says what to install); the devcloud's
#   RabbitMQ runs from a Debian 13 root built once in the machine cache (rabbitmq/).
# - .venv-openstack-<release>: the real OpenStack services of each release, from the
#   locks osception ships (osception/locks/, by devcloud/services-venv/openstack-venv.sh), for
#   oslo-config-validator and the devcloud (the default release's cloud tests run in
#   the main run, every other release's on a fresh devcloud of its own after it).
# - .cache/kolla: the kolla and kolla-ansible sources each release is checked against.
# - the local cloud's pass (local-nodes): Debian 13 nodes under systemd-nspawn, their
#   base root and apt cache in the machine cache (~/.cache/osception/nodes, apt-cacher-ng).
# Which of these the selected tests need, pytest says (SLOW_FIXTURES in tests/conftest.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

# Which of these the selected tests need: pytest collects them and says.
tmp=$(mktemp -d)
rc=0
.venv/bin/python -m pytest --collect-only -q --needs-file="$tmp/needs" "$@" >"$tmp/log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then  # 5: no test selected
  cat "$tmp/log" >&2
  rm -rf "$tmp"
  exit "$rc"
fi
needed=$(cat "$tmp/needs" 2>/dev/null || true)
rm -rf "$tmp"
needs() { grep -qx "$1" <<<"$needed"; }

# openssh-server: a real sshd on loopback with the host keys osception makes
# (tests/test_host_keys.py starts its own; the package's service is never started here).
debs=(cloud-init shellcheck uwsgi-core uwsgi-plugin-python3 openssh-server)
if needs root; then debs+=(debootstrap); fi
# The devcloud's RabbitMQ is Debian 13's, whatever this machine runs: `devcloud up` builds
# its root once with debootstrap into the machine cache ($cache/rabbitmq/root-trixie).
if needs devcloud; then debs+=(mariadb-server memcached debootstrap); fi
# genisoimage: Nova's config drive (its mkisofs_cmd), as the compute nodes have it.
if needs qemu; then debs+=(qemu-system-x86 genisoimage); fi
missing=()
for pkg in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}; run: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  # No package's service is started by the install (invoke-rc.d's policy): the tests
  # start their own servers on their own ports (an sshd on port 22, say, never).
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [ -n "$made_policy" ]; then rm -f "$policy"; fi
fi

# The services venvs and the Kolla sources live in a cache of this machine
# ($OSCEPTION_CACHE, default ~/.cache/osception), linked into the checkout: a fresh
# clone reuses them. A venv is rebuilt only when its lock changed (its stamp).
cache=${OSCEPTION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/osception}
link() {  # link TARGET NAME: NAME in the checkout points at TARGET (a real NAME stays)
  mkdir -p "$(dirname "$2")"
  if [ ! -e "$2" ] || [ -L "$2" ]; then ln -sfn "$1" "$2"; fi
}
services_venv() {
  osception/devcloud/services-venv/openstack-venv.sh "$1" "$cache/venvs/openstack-$1"
  link "$cache/venvs/openstack-$1" ".venv-openstack-$1"
}
default=$(.venv/bin/python -c 'from osception import releases; print(releases.DEFAULT_RELEASE)')
if needs services-venv; then
  services_venv "$default"
fi
# Every release's services, for the validators.
if needs release-venvs; then
  for release in $(.venv/bin/python -c 'from osception import releases; print(*releases.RELEASES)'); do
    services_venv "$release"
  done
fi

# Fetched once and reused.
if needs kolla-sources; then
  mkdir -p "$cache/kolla"
  link "$cache/kolla" .cache/kolla
  .venv/bin/python -m tests.kolla.sources
fi

rc=0
.venv/bin/python -m pytest "$@" || rc=$?

# The devcloud's cloud tests once more on every other release of the table, each on a
# fresh devcloud of its own (one at a time: the devcloud's ports are fixed). The main
# run above used the default release ($OSCEPTION_DEVCLOUD_RELEASE picks another).
if needs devcloud && [ -z "${OSCEPTION_DEVCLOUD_RELEASE:-}" ]; then
  for release in $(.venv/bin/python -c 'from osception import releases; print(*releases.RELEASES)'); do
    [ "$release" = "$default" ] && continue
    home=$(mktemp -d)
    echo "== the devcloud's cloud tests on $release (fresh devcloud in $home)"
    start=$SECONDS
    OSCEPTION_DEVCLOUD_RELEASE=$release OSCEPTION_HOME=$home \
      .venv/bin/python -m pytest -q -p no:cacheprovider tests/devcloud/test_cloud.py || rc=1
    OSCEPTION_HOME=$home .venv/bin/osception devcloud down --purge >/dev/null || rc=1
    rm -rf "$home"
    echo "== $release: $((SECONDS - start)) s"
  done
fi
# The whole cloud on this machine (tests/devcloud/test_local_cloud.py): a fresh devcloud
# with local compute and network nodes, two computes so that guests meet across VXLAN.
if needs local-nodes && [ -z "${OSCEPTION_LOCAL_NODES:-}" ]; then
  home=$(mktemp -d)
  counts=2,1
  echo "== the local cloud: devcloud with nodes ($counts computes,network nodes) in $home"
  start=$SECONDS
  OSCEPTION_LOCAL_NODES=$counts OSCEPTION_HOME=$home \
    .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/devcloud/test_local_cloud.py || rc=1
  OSCEPTION_HOME=$home .venv/bin/osception devcloud down --purge >/dev/null || rc=1
  rm -rf "$home"
  echo "== the local cloud: $((SECONDS - start)) s"
fi
exit "$rc"
