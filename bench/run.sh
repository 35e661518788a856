#!/usr/bin/env bash
# The benchmark in one command: builds a release configuration (no
# sanitizers) in build-bench/, then runs tally-bench, which starts the
# embedded stack itself (a private PostgreSQL, the embedded Kafka broker,
# migrations, tally-worker replicas) and prints the table; the last line is
# the ratio of Tally's throughput to PostgreSQL's batched limit.
#
#   bash bench/run.sh                 # every row (about 12 minutes)
#   bash bench/run.sh --smoke         # every row, tiny
#   bash bench/run.sh --rows limit,tally --n 20000
#   bash bench/run.sh --durable --rows hostile   # one account beside 100 (bench/README.md)
#   bash bench/run.sh --quiet-load 0.5   # first wait for a quiet machine
#
# Options are tally-bench's (bash bench/run.sh --help). The output is also
# kept in .bench/last.txt; the services' logs of a broken run stay under
# build-bench/bench-tmp/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${TALLY_BENCH_BUILD:-$root/build-bench}
jobs=${TALLY_JOBS:-2}
mkdir -p "$root/.bench"

echo "bench: building a release configuration (RelWithDebInfo, no sanitizers) in ${build#"$root"/}/" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTALLY_SANITIZE=OFF \
    >"$root/.bench/cmake.log" 2>&1 || { cat "$root/.bench/cmake.log" >&2; exit 1; }
cmake --build "$build" -j "$jobs" --target tally-bench tally-worker tallyctl \
    >>"$root/.bench/cmake.log" 2>&1 || { tail -40 "$root/.bench/cmake.log" >&2; exit 1; }

"$build/bench/tally-bench" "$@" | tee "$root/.bench/last.txt"
exit "${PIPESTATUS[0]}"
