#!/bin/bash
# Create a service's databases and its user on the service's MariaDB.
# Idempotent: safe to run on every Job retry. Waits until the server answers.
# Env: DB_HOST, DB_NAMES (space separated), DB_USER, DB_PASSWORD, DB_ROOT_PASSWORD,
# DB_CLIENT and DB_ADMIN: the client programs the release's Kolla mariadb-server image
# ships, as Kolla's own extend_start.sh calls them (mariadb/mariadb-admin since Kolla
# 21, mysql/mysqladmin before). Passwords travel in the environment and on stdin,
# never in a process's arguments.
set -euo pipefail

export MYSQL_PWD=$DB_ROOT_PASSWORD
until error=$("$DB_ADMIN" --host="$DB_HOST" --user=root --connect-timeout=5 ping 2>&1); do
  echo "waiting for MariaDB at $DB_HOST: ${error##*$'\n'}"
  sleep 3
done

{
  echo "CREATE USER IF NOT EXISTS '$DB_USER'@'%' IDENTIFIED BY '$DB_PASSWORD';"
  echo "ALTER USER '$DB_USER'@'%' IDENTIFIED BY '$DB_PASSWORD';"
  for db in $DB_NAMES; do
    echo "CREATE DATABASE IF NOT EXISTS \`$db\`;"
    echo "GRANT ALL PRIVILEGES ON \`$db\`.* TO '$DB_USER'@'%';"
  done
} | "$DB_CLIENT" --host="$DB_HOST" --user=root
echo "databases ready on $DB_HOST: $DB_NAMES"
