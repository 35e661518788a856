#!/usr/bin/env bash
# Before/after: runs the same tally-bench rows against the tally-worker of
# several steps, each a git revision plus optional worker environment, so
# that every speed change can be measured on its own. The benchmark itself
# (and so the rig: PostgreSQL, broker, client) is always this checkout's.
#
#   bash bench/compare.sh [--step LABEL=REV[,KEY=VALUE...]]... [-- tally-bench options]
#
#   bash bench/compare.sh --step before=7505aa1 --step after=HEAD \
#       -- --rows tally,halfrate --n 30000
#
# Each revision's worker is built (RelWithDebInfo, no tests) from `git
# archive` into build-bench/compare/<rev>/ and runs on that revision's
# migrations; the steps run one after the other and their tables are printed
# under "== step LABEL". Output is also kept in .bench/compare.txt.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${TALLY_BENCH_BUILD:-$root/build-bench}
jobs=${TALLY_JOBS:-2}
steps=()
while [ $# -gt 0 ]; do
    case $1 in
    --step)
        steps+=("$2")
        shift 2
        ;;
    --)
        shift
        break
        ;;
    -h | --help)
        sed -n '2,16p' "$0"
        exit 0
        ;;
    *)
        echo "compare.sh: unknown argument $1 (see --help)" >&2
        exit 2
        ;;
    esac
done
[ ${#steps[@]} -gt 0 ] || { echo "compare.sh: no --step given (see --help)" >&2; exit 2; }

mkdir -p "$root/.bench"
echo "compare: building the benchmark" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTALLY_SANITIZE=OFF \
    >"$root/.bench/cmake.log" 2>&1 || { cat "$root/.bench/cmake.log" >&2; exit 1; }
cmake --build "$build" -j "$jobs" --target tally-bench tally-worker tallyctl \
    >>"$root/.bench/cmake.log" 2>&1 || { tail -40 "$root/.bench/cmake.log" >&2; exit 1; }

# Builds the worker of a revision once; prints its path.
worker_of() {
    local rev sha dir
    rev=$1
    sha=$(git -C "$root" rev-parse --short=12 "$rev^{commit}")
    dir="$build/compare/$sha"
    if [ ! -x "$dir/b/tally-worker" ]; then
        echo "compare: building tally-worker at $rev ($sha)" >&2
        rm -rf "$dir"
        mkdir -p "$dir/src"
        git -C "$root" archive "$sha" | tar -x -C "$dir/src"
        cmake -S "$dir/src" -B "$dir/b" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTALLY_SANITIZE=OFF \
            -DTALLY_TESTS=OFF >"$dir/cmake.log" 2>&1 &&
            cmake --build "$dir/b" -j "$jobs" --target tally-worker >>"$dir/cmake.log" 2>&1 ||
            { tail -40 "$dir/cmake.log" >&2; exit 1; }
    fi
    echo "$dir/b/tally-worker"
}

: >"$root/.bench/compare.txt"
status=0
for step in "${steps[@]}"; do
    label=${step%%=*}
    spec=${step#*=}
    IFS=, read -r -a parts <<<"$spec"
    bin=$(worker_of "${parts[0]}") || exit 1
    envs=()
    for kv in "${parts[@]:1}"; do
        envs+=(--worker-env "$kv")
    done
    echo "== step $label: ${parts[0]} ${parts[*]:1}" | tee -a "$root/.bench/compare.txt"
    TALLY_WORKER_BIN=$bin TALLY_MIGRATIONS_DIR=$(dirname "$(dirname "$bin")")/src/migrations \
        "$build/bench/tally-bench" "${envs[@]}" "$@" |
        tee -a "$root/.bench/compare.txt" || status=1
done
exit $status
