#!/usr/bin/env bash
# Installs the Debian packages Tally needs to build, test and run the demo.
# Idempotent and quick: when everything is there it only asks dpkg; otherwise
# it runs apt-get update and installs what is missing, non-interactively.
set -euo pipefail

packages=(
    # build
    cmake make gcc pkg-config
    libpq-dev librdkafka-dev libjansson-dev libuv1-dev libcmocka-dev
    # run and test: a private PostgreSQL per test, valgrind, clang's sanitizer runtime
    postgresql-15 postgresql-client-15 valgrind clang libclang-rt-14-dev
    # it_pooler and the bench's pgbouncer row: Debian's PgBouncer (1.18), started
    # by the harness as the postgres user on a free port
    pgbouncer
    # tests/schemas (jsonschema) and tests/deploy (YAML), with Debian's python3
    python3 python3-jsonschema python3-yaml
    # ISO 4217 currencies: scripts/gen-currencies.py and tests/unit/test_currency.c
    iso-codes
    # tests/deploy: promtool (alert rules; the package also holds the server,
    # which only a systemd machine starts) and docker-compose 1.29 (compose.yaml);
    # its npm packages come from tests/deploy/package-lock.json (npm ci in ctest)
    prometheus docker-compose
    # soak/run.sh's plot
    gnuplot-nox
)

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
done
# clients/typescript and tests/deploy: Node.js (18 or later) and npm. A node
# already on the PATH (such as NodeSource's 20, which brings its own npm) is
# kept; without one, Debian's nodejs and npm.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    missing+=(nodejs npm)
fi
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
