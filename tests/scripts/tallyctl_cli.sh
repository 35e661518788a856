#!/usr/bin/env bash
# tallyctl's command line: help, clear errors with exit code 2 for bad
# commands, flags and values, and `tallyctl broker` run as the demo runs it
# (stdin from /dev/null, stopped by a signal).
#
#   tallyctl_cli.sh TALLYCTL
set -uo pipefail

ctl=$1
out=$(mktemp)
err=$(mktemp)
failures=0
trap 'rm -f "$out" "$err"' EXIT

check() { # description, expected exit code, command...
    local what=$1 want=$2
    shift 2
    "$@" >"$out" 2>"$err"
    local rc=$?
    if [ "$rc" -ne "$want" ]; then
        echo "FAIL: $what: exit $rc, expected $want"
        sed 's/^/  stderr: /' "$err"
        failures=$((failures + 1))
        return 1
    fi
    echo "ok: $what"
}

expect_in() { # description, file, text
    if ! grep -qF -- "$3" "$2"; then
        echo "FAIL: $1: '$3' not in output"
        failures=$((failures + 1))
    fi
}

check "tallyctl --help" 0 "$ctl" --help
expect_in "--help lists broker" "$out" "broker"
check "no command" 2 "$ctl"
check "unknown command" 2 "$ctl" frobnicate
expect_in "unknown command named" "$err" "unknown command 'frobnicate'"
check "--version" 0 "$ctl" --version
expect_in "--version" "$out" "tallyctl "

check "broker --help" 0 "$ctl" broker --help
expect_in "broker --help: dev only" "$out" "development and tests only"
expect_in "broker --help: production" "$out" "production uses a real Kafka cluster"
expect_in "broker --help: auto-create" "$out" "created, with 4 partitions"
expect_in "broker --help: protocol" "$out" "request-errors APIKEY ERR"
check "broker unknown flag" 2 "$ctl" broker --frob
expect_in "unknown flag named" "$err" "unknown option '--frob'"
check "broker stray argument" 2 "$ctl" broker extra
check "broker --partitions 0" 2 "$ctl" broker --partitions 0
check "broker --partitions abc" 2 "$ctl" broker --partitions abc
check "broker --partitions missing value" 2 "$ctl" broker --partitions
check "broker --brokers 99" 2 "$ctl" broker --brokers 99
check "broker --topic bad name" 2 "$ctl" broker --topic 'bad/name'
check "broker --topic zero partitions" 2 "$ctl" broker --topic x:0
expect_in "bad values named" "$err" "x:0"

check "payouts --help" 0 "$ctl" payouts --help
expect_in "payouts --help: weekly key" "$out" "auto_weekly_2026-W49_usd"
expect_in "payouts --help: the role" "$out" "tally_scheduler"
check "payouts without subcommand" 2 "$ctl" payouts
check "payouts due without --schedule" 2 "$ctl" payouts due --dry-run
check "payouts due --schedule manual" 2 "$ctl" payouts due --schedule manual --dry-run
expect_in "bad schedule named" "$err" "not \"manual\""
check "payouts due --at 2026-02-30" 2 env PAYOUTS_DATABASE_URL=x "$ctl" payouts due \
    --schedule daily --at 2026-02-30 --dry-run
expect_in "bad date named" "$err" "2026-02-30"
check "payouts due without PAYOUTS_DATABASE_URL" 2 env -u PAYOUTS_DATABASE_URL "$ctl" payouts due \
    --schedule daily --dry-run
expect_in "the variable named" "$err" "PAYOUTS_DATABASE_URL"

# Runs the broker with stdin from /dev/null, as the demo does: EOF on stdin
# must not stop it; a signal must, with exit 0.
broker_until_signal() {
    local sig=$1
    local fifo
    fifo=$(mktemp -u)
    mkfifo "$fifo"
    TALLY_REQUEST_TOPIC=custom.requests "$ctl" broker --brokers 2 --partitions 3 \
        </dev/null >"$fifo" 2>"$err" &
    local pid=$!
    local first=""
    exec 3<"$fifo"
    rm -f "$fifo"
    read -r -t 30 first <&3
    if ! [[ "$first" =~ ^127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+$ ]]; then
        echo "FAIL: broker's first line is '$first', not two bootstrap servers"
        failures=$((failures + 1))
        kill -KILL "$pid" 2>/dev/null
        exec 3<&-
        return
    fi
    echo "ok: broker printed $first"
    # Still serving a moment after EOF on stdin (it saw EOF at once): not a
    # zombie, and a Kafka client's TCP connect is accepted.
    sleep 0.5
    local port=${first%%,*} state
    port=${port##*:}
    state=$(sed -E 's/.*\) ([A-Z]).*/\1/' "/proc/$pid/stat" 2>/dev/null)
    if [ -n "$state" ] && [ "$state" != Z ] && (exec 4<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "ok: broker serves after EOF on stdin"
    else
        echo "FAIL: broker stopped after EOF on stdin"
        failures=$((failures + 1))
    fi
    kill "-$sig" "$pid"
    local rc=0
    wait "$pid" || rc=$?
    exec 3<&-
    if [ "$rc" -ne 0 ]; then
        echo "FAIL: broker exited $rc on SIG$sig"
        failures=$((failures + 1))
    else
        echo "ok: broker exits 0 on SIG$sig"
    fi
    expect_in "contract topic name from the environment" "$err" "topic custom.requests, 3 partitions"
}

set -m # so that the background broker does not start with SIGINT ignored
broker_until_signal TERM
broker_until_signal INT

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "PASS"
