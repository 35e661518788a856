#!/bin/sh
# Runs once, when the postgres container initialises an empty data directory:
# creates tally_owner (owns the "tally" database and may create roles, but is
# not a superuser) for the migrate service. The worker's own login role is
# created by the migrate service (deploy/migrate.sh), after the migrations
# made tally_app.
set -eu
psql -v ON_ERROR_STOP=1 -X -q --username postgres -v pw="$TALLY_OWNER_PASSWORD" <<'SQL'
CREATE ROLE tally_owner LOGIN CREATEROLE PASSWORD :'pw';
CREATE DATABASE tally OWNER tally_owner;
SQL
