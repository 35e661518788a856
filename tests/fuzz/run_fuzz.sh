#!/usr/bin/env bash
# A bounded libFuzzer run for ctest (fuzz.envelope): a fresh corpus directory,
# the generated seeds, the dictionary and every past finding, a fixed seed;
# at most SECONDS seconds and a bounded number of runs. Exits non-zero on any
# finding (crash, broken invariant, leak, timeout, out of memory) and then
# says how to reproduce it. The whole libFuzzer output stays in WORK/fuzz.log.
#
#   run_fuzz.sh FUZZER WORK SEEDS DICT REGRESSIONS SECONDS [LIBFUZZER_FLAGS...]
set -u
if [ $# -lt 6 ]; then
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
fuzzer=$1 work=$2 seeds=$3 dict=$4 regressions=$5 seconds=$6
shift 6

rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
"$fuzzer" -seed=1 -max_total_time="$seconds" -runs=5000000 -dict="$dict" -max_len=16384 \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    "$@" "$work/corpus" "$seeds" "$regressions" >"$work/fuzz.log" 2>&1
rc=$?

# The summary: start, corpus, end and final statistics.
grep -E '^(INFO: Seed|INFO: Loaded|#[0-9]+[[:space:]]+(INITED|DONE)|Done |stat::)' "$work/fuzz.log"
if [ $rc -ne 0 ]; then
    echo "run_fuzz: the fuzzer exited $rc; the end of its log:"
    tail -n 60 "$work/fuzz.log"
    for a in "$work"/artifacts/*; do
        [ -e "$a" ] || continue
        echo "run_fuzz: finding $a; reproduce with: fuzz_replay $a"
        echo "run_fuzz: after the fix, keep it as a regression: cp $a tests/fuzz/regressions/<what-it-was>"
    done
fi
exit $rc
