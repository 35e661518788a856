#!/usr/bin/env bash
# Proves that interrupting the test command leaves no PostgreSQL or
# `tallyctl broker` process behind. Runs scripts/test.sh on one integration
# test whose services hold still once up (TALLY_TEST_HOLD_MS), interrupts it
# with SIGTERM while PostgreSQL is up and with SIGINT while the broker is up,
# and checks that every process of that run is gone.
#
#   interrupt.sh TEST_SH CTEST_DIR
#
# A run's processes are those whose environment carries its marker
# (TALLY_RUN_MARKER, inherited from test.sh down to the services) and their
# descendants (PostgreSQL's children overwrite their environment).
set -uo pipefail
set -m

test_sh=$1
ctest_dir=$2
base=${TALLY_TEST_TMPDIR:-/tmp}
mkdir -p "$base"
work=$(mktemp -d "$base/interrupt-XXXXXX")
chmod 755 "$work" # so that the postgres user keeps the run's clusters in here
run=""
marker=""

fail() {
    echo "FAIL: $*"
    [ -n "$run" ] && kill -KILL -- "-$run" 2>/dev/null
    # Leave no debris: whatever of the run is left, by PID.
    [ -n "${marker:-}" ] && run_procs "$marker" | while read -r pid _; do
        kill -KILL "$pid" 2>/dev/null
    done
    exit 1
}

# "PID PPID STARTTIME COMM" for every process.
all_procs() {
    local d s comm rest
    for d in /proc/[0-9]*; do
        s=$(cat "$d/stat" 2>/dev/null) || continue
        comm=${s#*(}
        comm=${comm%)*}
        rest=${s##*) }
        # shellcheck disable=SC2086
        set -- $rest
        echo "${d#/proc/} $2 ${20} ${comm// /_}"
    done
}

# "PID STARTTIME COMM" of the run's processes.
run_procs() {
    local roots
    roots=$(grep -lzxF "TALLY_RUN_MARKER=$1" /proc/[0-9]*/environ 2>/dev/null |
        sed -E 's|/proc/([0-9]+)/environ|\1|' | tr '\n' ' ')
    all_procs | awk -v roots="$roots" '
        { pid[NR] = $1; ppid[$1] = $2; start[$1] = $3; comm[$1] = $4 }
        END {
            n = split(roots, r, " ")
            for (i = 1; i <= n; i++) in_run[r[i]] = 1
            do {
                grew = 0
                for (i in pid) {
                    p = pid[i]
                    if (!(p in in_run) && (ppid[p] in in_run)) { in_run[p] = 1; grew = 1 }
                }
            } while (grew)
            for (p in in_run) if (p in start) print p, start[p], comm[p]
        }'
}

starttime() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    local rest=${s##*) }
    # shellcheck disable=SC2086
    set -- $rest
    echo "${20}"
}

interrupt_round() {
    local sig=$1 group=$2 want=$3 expect_rc=$4
    local log="$work/$sig.log" procs="" left
    marker="interrupt-$$-$sig"
    echo "== SIG$sig while $want is up"
    TALLY_RUN_MARKER=$marker TALLY_TEST_HOLD_MS=120000 TALLY_TEST_TMPDIR="$work/$sig" \
        bash "$test_sh" --skip-deps --skip-build --no-valgrind --build-dir "$ctest_dir" \
        -- -R "^it_harness_$group\$" >"$log" 2>&1 &
    run=$!

    local deadline=$((SECONDS + 120))
    until grep -q " $want\$" <<<"$procs"; do
        if ! kill -0 "$run" 2>/dev/null; then
            cat "$log"
            fail "the run ended before $want was up"
        fi
        [ $SECONDS -lt $deadline ] || fail "$want did not come up within 120 s"
        sleep 0.2
        procs=$(run_procs "$marker")
    done
    sleep 0.5 # let the service start its own children, then take them in
    procs=$(run_procs "$marker")
    echo "processes of the run:"
    sed 's/^/  /' <<<"$procs"
    grep -q " $want\$" <<<"$procs" || fail "$want vanished before the interruption"

    kill "-$sig" "$run"
    for _ in $(seq 1 300); do
        kill -0 "$run" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$run" 2>/dev/null && fail "test.sh still runs 30 s after SIG$sig"
    wait "$run"
    local rc=$?
    run=""
    [ "$rc" -eq "$expect_rc" ] || {
        cat "$log"
        fail "test.sh exited $rc after SIG$sig, expected $expect_rc"
    }
    grep -q "interrupted by SIG$sig" "$log" || fail "test.sh did not report the interruption"
    tail -1 "$log" | grep -qE '^[0-9]+ passed, [0-9]+ failed$' || fail "no summary line at the end"

    # Gone means: no process with the same PID and start time, and nothing
    # new carrying the marker.
    for _ in $(seq 1 200); do
        left=""
        while read -r pid start comm; do
            [ -n "$pid" ] && [ "$(starttime "$pid")" = "$start" ] && left+=" $pid($comm)"
        done <<<"$procs"
        while read -r pid start comm; do
            [ -n "$pid" ] && left+=" $pid($comm, new)"
        done <<<"$(run_procs "$marker")"
        [ -z "$left" ] && break
        sleep 0.1
    done
    [ -z "$left" ] || fail "still running 20 s after SIG$sig:$left"
    echo "all gone after SIG$sig"
    # A killed test cannot remove its cluster; when the postgres user could
    # not reach $work, the harness put it in /tmp (it sweeps those later too).
    while read -r pid _ comm; do
        [ "$comm" = it_harness ] && rm -rf /tmp/tally-pg-"$pid"-*
    done <<<"$procs"
}

interrupt_round TERM postgres postgres 143
interrupt_round INT broker tallyctl 130
rm -rf "$work"
echo "PASS"
