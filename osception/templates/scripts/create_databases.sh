#!/bin/bash
# Create a service's databases and its user on the service's MariaDB.
# Idempotent: safe to run on every Job retry. Waits until the server answers.
# Env: DB_HOST, DB_NAMES (space separated), DB_USER, DB_PASSWORD, DB_ROOT_PASSWORD.
set -euo pipefail

export MYSQL_PWD=$DB_ROOT_PASSWORD
until mysqladmin --host="$DB_HOST" --user=root --connect-timeout=5 ping >/dev/null 2>&1; do
  echo "waiting for MariaDB at $DB_HOST"
  sleep 3
done

sql="CREATE USER IF NOT EXISTS '$DB_USER'@'%' IDENTIFIED BY '$DB_PASSWORD';"
sql+=" ALTER USER '$DB_USER'@'%' IDENTIFIED BY '$DB_PASSWORD';"
for db in $DB_NAMES; do
  sql+=" CREATE DATABASE IF NOT EXISTS \`$db\`;"
  sql+=" GRANT ALL PRIVILEGES ON \`$db\`.* TO '$DB_USER'@'%';"
done
mysql --host="$DB_HOST" --user=root -e "$sql"
echo "databases ready on $DB_HOST: $DB_NAMES"
