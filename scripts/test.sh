#!/usr/bin/env bash
# The test command. Installs missing packages (npm ci for clients/typescript),
# builds the AddressSanitizer + UndefinedBehaviorSanitizer configuration in
# build-test/ and runs the whole suite (ctest, in parallel), then builds a
# plain configuration in build-valgrind/ and runs the unit tests under
# valgrind, then builds the libFuzzer target with clang in build-fuzz/ and
# fuzzes for about 30 s (tests/fuzz). Exits non-zero on any failure; the last
# line is "N passed, N failed". A Release build (-O3, -Werror, tests included) in
# build-release/ runs the unit tests too, so the build a user picks compiles.
#
# Interrupted (Ctrl-C, SIGTERM), it stops what it started: every long step
# runs in its own process group, which the traps kill by id. Services started
# by tests also die with their test process (PR_SET_PDEATHSIG).
#
#   bash scripts/test.sh [--skip-deps] [--skip-build] [--no-valgrind] [--no-fuzz] [--no-release]
#                        [--build-dir DIR] [-- CTEST_ARGS...]
set -uo pipefail
set -m # background jobs get their own process group, with default signals

root=$(cd "$(dirname "$0")/.." && pwd)
jobs=${TALLY_JOBS:-2}
build="$root/build-test"
vgbuild="$root/build-valgrind"
fuzzbuild="$root/build-fuzz"
relbuild="$root/build-release"
do_deps=1 do_build=1 do_valgrind=1 do_fuzz=1 do_release=1
ctest_args=()

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
    --skip-deps) do_deps=0 ;;
    --skip-build) do_build=0 ;;
    --no-valgrind) do_valgrind=0 ;;
    --no-fuzz) do_fuzz=0 ;;
    --no-release) do_release=0 ;;
    --build-dir)
        [ $# -ge 2 ] || { echo "test.sh: --build-dir needs a directory" >&2; exit 2; }
        build=$2
        shift
        ;;
    --help | -h) usage; exit 0 ;;
    --) shift; ctest_args=("$@"); break ;;
    *) echo "test.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

passed=0 failed=0 child=""
started=$(date +%s)

say() { printf 'test.sh: %s\n' "$*"; }

summary() {
    say "wall time $(($(date +%s) - started)) s"
    echo "$passed passed, $failed failed"
}

# Stops the running step's whole process group: TERM, up to 10 s, then KILL.
stop_child() {
    [ -n "$child" ] || return 0
    if kill -0 -- "-$child" 2>/dev/null; then
        kill -TERM -- "-$child" 2>/dev/null
        for _ in $(seq 1 100); do
            kill -0 -- "-$child" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$child" 2>/dev/null
    fi
    wait "$child" 2>/dev/null
    child=""
}

on_signal() {
    trap - INT TERM
    echo
    say "interrupted by SIG$1; stopping what runs"
    stop_child
    failed=$((failed + 1))
    summary
    [ "$1" = INT ] && exit 130
    exit 143
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'stop_child' EXIT

# Runs a command as a background job (its own process group) and waits, so
# that a signal reaches the trap at once and the trap can stop the group.
run() {
    "$@" &
    child=$!
    wait "$child"
    local rc=$?
    child=""
    return $rc
}

# Runs ctest and adds its counts to the totals.
run_ctest() {
    local dir=$1
    shift
    local log="$dir/ctest-output.log"
    rm -f "$log"
    run ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$jobs" -O "$log" "$@"
    local rc=$?
    local line total nfailed
    line=$(grep -E '[0-9]+ tests? failed out of [0-9]+' "$log" 2>/dev/null | tail -1)
    if [ -n "$line" ]; then
        nfailed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
        total=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
        passed=$((passed + total - nfailed))
        failed=$((failed + nfailed))
        [ "$nfailed" -eq 0 ] && [ $rc -ne 0 ] && failed=$((failed + 1)) # ctest itself failed
    elif [ $rc -ne 0 ]; then
        failed=$((failed + 1))
    fi
    return $rc
}

# Configures and builds dir with the given cmake options; a failure counts once.
build_config() {
    local dir=$1
    shift
    local t0=$(date +%s)
    say "building $dir ($*)"
    mkdir -p "$dir"
    if ! run cmake -S "$root" -B "$dir" "$@" >"$dir/configure.log" 2>&1; then
        cat "$dir/configure.log"
        say "cmake configure of $dir failed"
        failed=$((failed + 1))
        return 1
    fi
    if ! run cmake --build "$dir" -j "$jobs"; then
        say "build of $dir failed"
        failed=$((failed + 1))
        return 1
    fi
    say "built $dir in $(($(date +%s) - t0)) s"
}

if [ $do_deps -eq 1 ]; then
    run bash "$root/scripts/install-deps.sh" || { say "installing packages failed"; failed=1; summary; exit 1; }
    # The TypeScript client's locked packages, from the npm registry only (no
    # install scripts download anything); its test is client.typescript.
    say "installing clients/typescript's packages (npm ci)"
    run npm ci --prefix "$root/clients/typescript" --no-audit --no-fund --loglevel=error ||
        { say "npm ci in clients/typescript failed"; failed=1; summary; exit 1; }
fi

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

ok=1
if [ $do_build -eq 1 ]; then
    build_config "$build" -DTALLY_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug || ok=0
    # Directories of test processes that were killed before their cleanup.
    rm -rf "$build"/test-tmp/it-* "$build"/test-tmp/interrupt-*
fi
if [ $ok -eq 1 ]; then
    t0=$(date +%s)
    say "running the suite in $build"
    run_ctest "$build" "${ctest_args[@]}"
    say "suite ran in $(($(date +%s) - t0)) s"
fi

if [ $do_valgrind -eq 1 ]; then
    emulator="valgrind;-q;--error-exitcode=99;--leak-check=full;--errors-for-leak-kinds=definite,indirect"
    # Optimized on purpose: -O2 is where GCC's flow-sensitive warnings
    # (maybe-uninitialized, format-truncation) appear, so -Werror sees them here.
    if build_config "$vgbuild" -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CROSSCOMPILING_EMULATOR=$emulator"; then
        t0=$(date +%s)
        say "running the unit tests under valgrind"
        run_ctest "$vgbuild" -L unit
        say "valgrind run took $(($(date +%s) - t0)) s"
    fi
fi

# The Release configuration (what `cmake -DCMAKE_BUILD_TYPE=Release` gives a
# user): -O3 brings warnings of its own, and -Werror must hold there too.
if [ $do_release -eq 1 ]; then
    if build_config "$relbuild" -DCMAKE_BUILD_TYPE=Release; then
        say "running the unit tests of the Release build"
        run_ctest "$relbuild" -L unit
    fi
fi

# ---- Fuzzing (tests/fuzz) ------------------------------------------------------
# A clang build of the libFuzzer target only (not the whole tree), then
# ctest -L fuzz: a bounded run (TALLY_FUZZ_SECONDS, 30 s) that fails on any
# finding. The corpus replay already ran above as unit.fuzz_replay.
if [ $do_fuzz -eq 1 ]; then
    t0=$(date +%s)
    say "building the fuzz target in $fuzzbuild (clang)"
    mkdir -p "$fuzzbuild"
    if ! run cmake -S "$root" -B "$fuzzbuild" -DCMAKE_C_COMPILER=clang -DTALLY_FUZZ=ON \
        -DTALLY_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$fuzzbuild/configure.log" 2>&1; then
        cat "$fuzzbuild/configure.log"
        say "cmake configure of $fuzzbuild failed"
        failed=$((failed + 1))
    elif ! run cmake --build "$fuzzbuild" -j "$jobs" --target fuzz_envelope; then
        say "build of the fuzz target failed"
        failed=$((failed + 1))
    else
        say "fuzzing"
        run_ctest "$fuzzbuild" -L fuzz
        say "fuzz step took $(($(date +%s) - t0)) s"
    fi
fi

summary
[ "$failed" -eq 0 ]
