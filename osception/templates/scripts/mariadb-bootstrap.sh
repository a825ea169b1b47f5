#!/bin/bash
# Kolla's MariaDB bootstrap (kolla_start with KOLLA_BOOTSTRAP: mariadb-install-db, then
# the root password), once per volume. The volume is marked only after the bootstrap
# succeeded: a volume without the mark is empty or holds a bootstrap that died
# half-way, and is emptied and bootstrapped again.
set -euo pipefail
marker=/var/lib/mysql/.osception-bootstrapped
if [ -e "$marker" ]; then
  echo "MariaDB already bootstrapped"
  exit 0
fi
rm -rf /var/lib/mysql/* /var/lib/mysql/.[!.]*
kolla_start
touch "$marker"
