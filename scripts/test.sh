#!/usr/bin/env bash
# Install everything the tests need, then run them all. CI (.ci/run) calls this.
#
#   scripts/test.sh [PYTEST ARGS...]
#
# - Debian packages: cloud-init (its schema validator), shellcheck, debootstrap
#   (installed when missing; needs root, else says what to install).
# - .venv: osception with its test extras (kubernetes-validate, ansible...).
# - .venv-openstack-2026.1: the real OpenStack services of the default release,
#   from osception/devcloud/services-venv/openstack-2026.1.txt, for oslo-config-validator.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

debs=(cloud-init shellcheck debootstrap mariadb-server rabbitmq-server memcached)
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
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

osception/devcloud/services-venv/openstack-venv.sh 2026.1 .venv-openstack-2026.1

# The kolla and kolla-ansible sources each release is checked against (tests/kolla),
# fetched once into .cache/kolla/ and reused.
.venv/bin/python -m tests.kolla.sources

exec .venv/bin/python -m pytest "$@"
