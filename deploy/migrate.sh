#!/bin/sh
# tally-migrate — the one-shot schema job (compose's migrate service, the
# Kubernetes migrate Job): applies migrations/ as the role that owns the
# database, then creates or updates the worker's login role and grants it
# tally_app (CONTRACT.md §7). Safe to run again at every deploy.
#
#   MIGRATION_DATABASE_URL  the owning role's URL (falls back to DATABASE_URL)
#   TALLY_WORKER_ROLE       the worker's login role (default tally_worker)
#   TALLY_WORKER_PASSWORD   its password; when empty the role is left as it is
#                           (create it yourself, e.g. with a certificate login)
#   TALLY_MIGRATIONS_DIR    default /usr/share/tally/migrations (the image's)
set -eu

url="${MIGRATION_DATABASE_URL:-${DATABASE_URL:-}}"
if [ -z "$url" ]; then
    echo "tally-migrate: set MIGRATION_DATABASE_URL (the role that owns the database)" >&2
    exit 2
fi
export MIGRATION_DATABASE_URL="$url"

tallyctl migrate --dir "${TALLY_MIGRATIONS_DIR:-/usr/share/tally/migrations}"

role="${TALLY_WORKER_ROLE:-tally_worker}"
if [ -n "${TALLY_WORKER_PASSWORD:-}" ]; then
    # psql variables quote the role and the password; the password is passed
    # through the environment, never on a command line.
    PGPW="$TALLY_WORKER_PASSWORD" psql "$url" -X -q -v ON_ERROR_STOP=1 -v role="$role" <<'SQL'
\getenv pw PGPW
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN PASSWORD :'pw';
GRANT tally_app TO :"role";
SQL
    echo "tally-migrate: role $role can log in and is a member of tally_app" >&2
fi
