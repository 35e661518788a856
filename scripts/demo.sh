#!/usr/bin/env bash
# The demo command: installs missing packages, builds a release configuration
# in build/, starts the whole stack on this machine (a private PostgreSQL under
# .demo/, the embedded Kafka broker, migrations, one tally-worker), sends the
# sample requests of scripts/demo-requests.jsonl, prints their results, and
# shuts everything down again, also on failure or Ctrl-C.
#
#   bash scripts/demo.sh
#
# Each step is a small function below; a step whose part of Tally is not built
# yet says so and is skipped. Logs stay in .demo/.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
demo="$root/.demo"
build="$root/build"
ctl="$build/tallyctl"
worker_bin="$build/tally-worker"
requests="$root/scripts/demo-requests.jsonl"
pgbin=${TALLY_PG_BINDIR:-/usr/lib/postgresql/15/bin}
jobs=${TALLY_JOBS:-2}

pg_pid="" broker_pid="" worker_pid=""
pg_port="" pg_data="" bootstrap="" http_port=""
have_schema=0 have_worker=0

if [ -t 1 ]; then
    bold=$'\033[1m' yellow=$'\033[33m' red=$'\033[31m' plain=$'\033[0m'
else
    bold="" yellow="" red="" plain=""
fi
say() { printf '%sdemo:%s %s\n' "$bold" "$plain" "$*"; }
skip() { printf '%sdemo:%s %sskipped:%s %s\n' "$bold" "$plain" "$yellow" "$plain" "$*"; }
die() {
    printf '%sdemo:%s %sfailed:%s %s\n' "$bold" "$plain" "$red" "$plain" "$*" >&2
    exit 1
}

# ---- shutdown (always runs) --------------------------------------------------

# Signals a process by PID and waits for it, at most $3 seconds, then SIGKILL.
stop_pid() {
    local pid=$1 sig=$2 secs=$3 name=$4
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null
    for _ in $(seq 1 $((secs * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name ignored SIG$sig for ${secs} s; killing it"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
}

shutdown() {
    trap - EXIT INT TERM
    say "stopping everything"
    stop_pid "$worker_pid" TERM 30 tally-worker
    stop_pid "$broker_pid" TERM 10 "tallyctl broker"
    stop_pid "$pg_pid" INT 30 PostgreSQL # SIGINT: fast shutdown
    [ -n "$pg_data" ] && rm -rf "$(dirname "$pg_data")" # fresh on every run
    say "stopped; logs are in ${demo#"$root"/}/"
}
trap 'shutdown' EXIT
trap 'echo; say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

# ---- helpers -----------------------------------------------------------------

# Prefix that runs a command as the postgres OS user when we are root (initdb
# refuses root). setpriv execs, so a background job's $! is the server itself.
as_postgres=()
if [ "$(id -u)" -eq 0 ]; then
    as_postgres=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi

# A loopback port with nothing listening on it.
free_port() {
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}

# Whether a built binary is still the placeholder ("not built yet").
not_built() {
    local out
    out=$("$@" --help 2>&1)
    grep -q "not built yet" <<<"$out"
}

# Whether `tallyctl <command>` exists.
ctl_has() {
    "$ctl" "$1" --help >/dev/null 2>&1
}

psql_as() {
    local role=$1
    shift
    "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U "$role" "$@"
}

# Status code of GET path on 127.0.0.1:port, with bash's /dev/tcp.
http_status() {
    local port=$1 path=$2 line
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
    read -r -t 2 line <&3
    exec 3<&-
    line=${line#HTTP/1.? }
    echo "${line%% *}"
}

# ---- steps -------------------------------------------------------------------

step_install() {
    say "checking packages"
    bash "$root/scripts/install-deps.sh" || die "installing packages failed"
}

step_build() {
    say "building a release configuration in build/"
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTALLY_SANITIZE=OFF \
        >"$demo/cmake.log" 2>&1 || { cat "$demo/cmake.log"; die "cmake failed"; }
    # Only the two programs: the demo needs no test binaries.
    cmake --build "$build" -j "$jobs" --target tally-worker tallyctl >>"$demo/cmake.log" 2>&1 ||
        { tail -40 "$demo/cmake.log"; die "the build failed (log: .demo/cmake.log)"; }
}

step_postgres() {
    pg_port=${TALLY_DEMO_PG_PORT:-$(free_port)}
    local dir="$demo/pg"
    rm -rf "$dir"
    mkdir -p "$dir"
    # The postgres user must be able to reach the data directory; a checkout
    # under a private home cannot be, so fall back to /tmp.
    if ! "${as_postgres[@]}" test -x "$dir"; then
        dir=$(mktemp -d /tmp/tally-demo-pg-XXXXXX)
        say "the postgres user cannot reach .demo/; its data goes to $dir"
    fi
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
    pg_data="$dir/data"
    say "starting a private PostgreSQL 15 on 127.0.0.1:$pg_port (data: ${pg_data#"$root"/})"
    "${as_postgres[@]}" "$pgbin/initdb" -D "$pg_data" --auth=trust -U postgres -E UTF8 --no-locale \
        --no-instructions >"$demo/initdb.log" 2>&1 || { cat "$demo/initdb.log"; die "initdb failed"; }
    "${as_postgres[@]}" "$pgbin/postgres" -D "$pg_data" -p "$pg_port" -k "" \
        -c listen_addresses=127.0.0.1 >"$demo/postgres.log" 2>&1 </dev/null &
    pg_pid=$!
    for _ in $(seq 1 300); do
        "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break
        kill -0 "$pg_pid" 2>/dev/null || { cat "$demo/postgres.log"; die "PostgreSQL exited"; }
        sleep 0.1
    done
    "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" || die "PostgreSQL did not start in 30 s"
    # The owner runs migrations and may create roles, but is no superuser.
    psql_as postgres -d postgres -c "CREATE ROLE tally_owner LOGIN CREATEROLE" \
        -c "CREATE ROLE tally_demo_worker LOGIN" || die "creating roles failed"
    psql_as postgres -d postgres -c "CREATE DATABASE tally OWNER tally_owner" ||
        die "creating the database failed"
}

step_broker() {
    say "starting the embedded Kafka broker (development only; production uses a real Kafka)"
    "$ctl" broker --partitions 3 </dev/null >"$demo/broker.out" 2>"$demo/broker.log" &
    broker_pid=$!
    for _ in $(seq 1 300); do
        bootstrap=$(head -1 "$demo/broker.out" 2>/dev/null)
        [ -n "$bootstrap" ] && break
        kill -0 "$broker_pid" 2>/dev/null || { cat "$demo/broker.log"; die "the broker exited"; }
        sleep 0.1
    done
    [ -n "$bootstrap" ] || die "the broker did not start in 30 s"
    say "broker at $bootstrap"
}

step_migrate() {
    if ! ctl_has migrate; then
        skip "tallyctl migrate is not built yet: no schema"
        return 0
    fi
    say "applying migrations as tally_owner"
    MIGRATION_DATABASE_URL="postgresql://tally_owner@127.0.0.1:$pg_port/tally" \
        TALLY_MIGRATIONS_DIR="$root/migrations" "$ctl" migrate || die "tallyctl migrate failed"
    psql_as tally_owner -d tally -c "GRANT tally_app TO tally_demo_worker" ||
        die "granting tally_app failed"
    have_schema=1
}

step_schema() {
    [ $have_schema -eq 1 ] || return 0
    say "tables and their row-level security (tenant tables: enabled and forced):"
    psql_as postgres -d tally -P footer=off -c "
        SELECT c.relname AS table, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
               count(p.polname) AS policies
        FROM pg_class c LEFT JOIN pg_policy p ON p.polrelid = c.oid
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
        GROUP BY 1, 2, 3 ORDER BY 1" || die "reading the catalog failed"
}

step_worker() {
    if not_built "$worker_bin"; then
        skip "tally-worker is not built yet"
        return 0
    fi
    if [ $have_schema -eq 0 ]; then
        skip "tally-worker needs the schema"
        return 0
    fi
    http_port=$(free_port)
    say "starting one tally-worker (HTTP on 127.0.0.1:$http_port)"
    DATABASE_URL="postgresql://tally_demo_worker@127.0.0.1:$pg_port/tally" \
        KAFKA_BOOTSTRAP_SERVERS="$bootstrap" TALLY_HTTP_ADDR="127.0.0.1:$http_port" \
        "$worker_bin" </dev/null >"$demo/worker.log" 2>&1 &
    worker_pid=$!
    for _ in $(seq 1 600); do
        [ "$(http_status "$http_port" /readyz 2>/dev/null)" = 200 ] && break
        kill -0 "$worker_pid" 2>/dev/null || { tail -20 "$demo/worker.log"; die "tally-worker exited"; }
        sleep 0.1
    done
    [ "$(http_status "$http_port" /readyz 2>/dev/null)" = 200 ] ||
        die "tally-worker was not ready within 60 s (log: .demo/worker.log)"
    have_worker=1
}

step_send() {
    if ! ctl_has enqueue; then
        skip "tallyctl enqueue is not built yet: no requests sent"
        return 0
    fi
    local n
    n=$(grep -c . "$requests")
    if [ $have_worker -eq 0 ]; then
        say "sending $n requests from scripts/demo-requests.jsonl (no worker to answer them)"
        KAFKA_BOOTSTRAP_SERVERS="$bootstrap" "$ctl" enqueue --quiet --file "$requests" ||
            die "tallyctl enqueue failed"
        skip "no worker, so no results to show"
        return 0
    fi
    say "sending $n requests from scripts/demo-requests.jsonl; their results:"
    # Some samples are meant to be refused (a conflict, a bad amount, an
    # unknown type), and then enqueue --wait exits 1: only its output says
    # whether something else went wrong.
    KAFKA_BOOTSTRAP_SERVERS="$bootstrap" "$ctl" enqueue --quiet --file "$requests" --wait \
        --timeout 60s
    local rc=$?
    [ $rc -le 1 ] || die "tallyctl enqueue failed (exit $rc)"
}

# ---- main --------------------------------------------------------------------

mkdir -p "$demo"
step_install
step_build
step_postgres
step_broker
step_migrate
step_schema
step_worker
step_send
say "done"
