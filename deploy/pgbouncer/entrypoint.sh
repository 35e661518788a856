#!/bin/sh
# Writes PgBouncer's database line and user list from the environment, then
# runs it in the foreground (see pgbouncer.ini).
#   PGBOUNCER_DB_HOST      PostgreSQL's host (default postgres)
#   PGBOUNCER_DB_PORT      its port (default 5432)
#   TALLY_WORKER_ROLE      the worker's login role (default tally_worker)
#   TALLY_WORKER_PASSWORD  its password (required; never printed)
set -eu
: "${TALLY_WORKER_PASSWORD:?set TALLY_WORKER_PASSWORD}"
dir=/run/pgbouncer
umask 077
printf '[databases]\ntally = host=%s port=%s dbname=tally\n' \
    "${PGBOUNCER_DB_HOST:-postgres}" "${PGBOUNCER_DB_PORT:-5432}" >"$dir/databases.ini"
# userlist.txt quotes with ", doubling any " inside.
role=$(printf '%s' "${TALLY_WORKER_ROLE:-tally_worker}" | sed 's/"/""/g')
password=$(printf '%s' "$TALLY_WORKER_PASSWORD" | sed 's/"/""/g')
printf '"%s" "%s"\n' "$role" "$password" >"$dir/userlist.txt"
exec pgbouncer /etc/pgbouncer/pgbouncer.ini
