#!/usr/bin/env bash
# The soak (not in CI): a release build, a private PostgreSQL, the embedded
# broker and two tally-workers under a steady mixed load (soak/loadgen.py) for
# a while, with a worker restarted now and then (SIGTERM and SIGKILL in
# turn). Every few seconds it samples the workers' RSS, throughput, lag and
# error counts into a CSV; at the end it prints a table, draws a gnuplot PNG
# and checks the invariants from the database and the result topic
# (soak/check.py). Exits non-zero when an invariant fails.
#
#   bash soak/run.sh [--minutes M] [--rate R] [--accounts N] [--restart-every S]
#                    [--sample-every S] [--png PATH]
#
# Defaults: 10 minutes, 200 requests/s, 100 accounts, a restart every 60 s,
# a sample every 5 s, the plot in .soak/soak.png. Everything else stays in
# .soak/ (git-ignored): soak.csv, the logs, the sent requests and results.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/.soak"
build="$root/build-soak"
pgbin=${TALLY_PG_BINDIR:-/usr/lib/postgresql/15/bin}
py=/usr/bin/python3
minutes=10 rate=200 accounts=100 restart_every=60 sample_every=5 png=""

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) minutes=$2; shift ;;
    --rate) rate=$2; shift ;;
    --accounts) accounts=$2; shift ;;
    --restart-every) restart_every=$2; shift ;;
    --sample-every) sample_every=$2; shift ;;
    --png) png=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "soak: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$png" ] || png="$out/soak.png"
seconds=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')

say() { printf 'soak: %s\n' "$*"; }
die() { printf 'soak: failed: %s\n' "$*" >&2; exit 1; }

pg_pid="" broker_pid="" results_pid="" load_pid="" pg_data=""
worker_pid=("" "") http_port=("" "")

stop_pid() { # pid signal seconds
    local pid=$1 sig=$2 secs=$3
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null
    for _ in $(seq 1 $((secs * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}

shutdown() {
    trap - EXIT INT TERM
    [ -n "$load_pid" ] && kill -TERM -- "-$load_pid" 2>/dev/null
    stop_pid "${worker_pid[0]}" TERM 30
    stop_pid "${worker_pid[1]}" TERM 30
    stop_pid "$results_pid" TERM 10
    stop_pid "$broker_pid" TERM 10
    stop_pid "$pg_pid" INT 30
    [ -n "$pg_data" ] && rm -rf "$(dirname "$pg_data")"
}
trap shutdown EXIT
trap 'say interrupted; exit 130' INT
trap 'say terminated; exit 143' TERM

as_postgres=()
[ "$(id -u)" -eq 0 ] && as_postgres=(setpriv --reuid=postgres --regid=postgres --init-groups --)

free_port() {
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "no free port"
}

# ---- the stack ------------------------------------------------------------------

rm -rf "$out"
mkdir -p "$out"
bash "$root/scripts/install-deps.sh" || die "installing packages failed"
say "building a release configuration in ${build#"$root"/}/"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTALLY_SANITIZE=OFF -DTALLY_TESTS=OFF \
    >"$out/build.log" 2>&1 && cmake --build "$build" -j 2 --target tally-worker tallyctl \
    >>"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; die "the build failed"; }
ctl="$build/tallyctl"

pg_port=$(free_port)
pg_dir=$(mktemp -d /tmp/tally-soak-pg-XXXXXX)
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$pg_dir"
pg_data="$pg_dir/data"
"${as_postgres[@]}" "$pgbin/initdb" -D "$pg_data" --auth=trust -U postgres -E UTF8 --no-locale \
    --no-instructions >"$out/initdb.log" 2>&1 || die "initdb failed"
# fsync off: the soak is about memory, correctness and restarts, not the disk.
"${as_postgres[@]}" "$pgbin/postgres" -D "$pg_data" -p "$pg_port" -k "" -c listen_addresses=127.0.0.1 \
    -c fsync=off -c max_connections=50 >"$out/postgres.log" 2>&1 </dev/null &
pg_pid=$!
for _ in $(seq 1 300); do
    "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break
    sleep 0.1
done
psql=("$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port")
"${psql[@]}" -U postgres -d postgres -c "CREATE ROLE tally_owner LOGIN CREATEROLE" \
    -c "CREATE ROLE tally_soak_worker LOGIN" -c "CREATE DATABASE tally OWNER tally_owner" ||
    die "creating roles failed"
MIGRATION_DATABASE_URL="postgresql://tally_owner@127.0.0.1:$pg_port/tally" \
    "$ctl" migrate >"$out/migrate.log" 2>&1 || die "tallyctl migrate failed"
"${psql[@]}" -U tally_owner -d tally -c "GRANT tally_app TO tally_soak_worker" || die "grant failed"

"$ctl" broker --partitions 12 </dev/null >"$out/broker.out" 2>"$out/broker.log" &
broker_pid=$!
bootstrap=""
for _ in $(seq 1 300); do
    bootstrap=$(head -1 "$out/broker.out" 2>/dev/null)
    [ -n "$bootstrap" ] && break
    sleep 0.1
done
[ -n "$bootstrap" ] || die "the broker did not start"
export KAFKA_BOOTSTRAP_SERVERS=$bootstrap
say "PostgreSQL on 127.0.0.1:$pg_port, broker at $bootstrap"

# Results from the start (the topic is empty now), followed for the whole run.
"$ctl" results --from-beginning --json -X fetch.wait.max.ms=20 >"$out/results.jsonl" \
    2>"$out/results.log" </dev/null &
results_pid=$!

start_worker() { # index
    local i=$1
    [ -n "${http_port[$i]}" ] || http_port[$i]=$(free_port)
    DATABASE_URL="postgresql://tally_soak_worker@127.0.0.1:$pg_port/tally" \
        TALLY_HTTP_ADDR="127.0.0.1:${http_port[$i]}" KAFKA_SESSION_TIMEOUT_MS=6000 \
        KAFKA_HEARTBEAT_INTERVAL_MS=1500 KAFKA_FETCH_WAIT_MAX_MS=20 \
        "$build/tally-worker" </dev/null >>"$out/worker$i.log" 2>&1 &
    worker_pid[$i]=$!
}
start_worker 0
start_worker 1
for _ in $(seq 1 600); do
    r0=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${http_port[0]}/readyz")
    r1=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${http_port[1]}/readyz")
    [ "$r0$r1" = 200200 ] && break
    sleep 0.1
done
[ "$r0$r1" = 200200 ] || die "the workers were not ready within 60 s"

# Job types of this build: the payout, route and settings parts of the load
# run only where they exist.
types=$(cd "$root/docs/schemas" && ls *.json | sed 's/\.json$//' | grep -v '^envelope$' | paste -sd,)

# ---- the load and the samples ---------------------------------------------------

say "load: $rate requests/s for $minutes min over $accounts accounts; a restart every $restart_every s"
set -m
("$py" "$root/soak/loadgen.py" --rate "$rate" --seconds "$seconds" --accounts "$accounts" \
    --results "$out/results.jsonl" --sent "$out/sent.tsv" --types "$types" \
    --progress "$out/emitted" 2>"$out/loadgen.log" |
    "$ctl" enqueue --quiet --file - >"$out/enqueue.log" 2>&1) &
load_pid=$!
set +m

# metric NAME PORT: the sum of a metric's samples on one worker ("" when down).
metric() {
    curl -s --max-time 2 "http://127.0.0.1:$2/metrics" 2>/dev/null |
        awk -v m="$1" '($1 == m || index($1, m "{") == 1) && $2 >= 0 { s += $2; n++ }
                       END { if (n) printf "%d", s }'
}
rss_mb() {
    awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null
}

csv="$out/soak.csv"
# requests: new request ids sent; produced: messages sent (with resends);
# results: result messages received; backlog = produced - results;
# kafka_lag: the workers' tally_consumer_lag (librdkafka's, refreshed slowly).
echo "t_s,requests,produced,results,results_per_s,rss0_mb,rss1_mb,backlog,kafka_lag,in_flight,error_results,retries,dlq,restarts,event" >"$csv"
t0=$(date +%s)
last_answered=0 last_t=0 restarts=0 next_restart=$restart_every
max_restarts=$(((seconds - 1) / restart_every)) # none at the very end
drain_deadline=""
while :; do
    sleep "$sample_every"
    now=$(($(date +%s) - t0))
    event=""
    # Restarts, bounded: SIGTERM (drain, exit 0) and SIGKILL in turn, workers in turn.
    if [ -z "$drain_deadline" ] && [ "$now" -ge "$next_restart" ] && [ $restarts -lt $max_restarts ]; then
        i=$((restarts % 2))
        if [ $((restarts / 2 % 2)) -eq 0 ]; then sig=TERM; else sig=KILL; fi
        stop_pid "${worker_pid[$i]}" "$sig" 30
        start_worker "$i"
        restarts=$((restarts + 1))
        next_restart=$((next_restart + restart_every))
        event="SIG$sig worker$i"
    fi
    sent=$(wc -l <"$out/sent.tsv" 2>/dev/null || echo 0)
    produced=$(cat "$out/emitted" 2>/dev/null || echo 0)
    answered=$(wc -l <"$out/results.jsonl")
    errors=$(grep -c '"status":"error"' "$out/results.jsonl")
    rate_now=$(awk -v a="$answered" -v b="$last_answered" -v t="$now" -v u="$last_t" \
        'BEGIN { printf "%.0f", (t > u) ? (a - b) / (t - u) : 0 }')
    lag=0 inflight=0 retries=0 dlq=0
    for i in 0 1; do
        lag=$((lag + $(metric tally_consumer_lag "${http_port[$i]}") + 0))
        inflight=$((inflight + $(metric tally_in_flight_requests "${http_port[$i]}") + 0))
        retries=$((retries + $(metric tally_retries_total "${http_port[$i]}") + 0))
        dlq=$((dlq + $(metric tally_dlq_messages_total "${http_port[$i]}") + 0))
    done
    echo "$now,$sent,$produced,$answered,$rate_now,$(rss_mb "${worker_pid[0]}"),$(rss_mb "${worker_pid[1]}"),$((produced > answered ? produced - answered : 0)),$lag,$inflight,$errors,$retries,$dlq,$restarts,$event" >>"$csv"
    last_answered=$answered last_t=$now
    if [ -z "$drain_deadline" ] && ! kill -0 "$load_pid" 2>/dev/null; then
        wait "$load_pid" 2>/dev/null
        drain_deadline=$((now + 180))
        say "load done after $now s; waiting for the last answers"
    fi
    if [ -n "$drain_deadline" ]; then
        unanswered=$("$py" - "$out/sent.tsv" "$out/results.jsonl" <<'EOF'
import json, sys
sent = {tuple(l.split("\t")[:2]) for l in open(sys.argv[1])}
got = set()
for l in open(sys.argv[2], "rb"):
    try:
        r = json.loads(l)
        got.add((r["account_id"], r["id"]))
    except ValueError:
        pass
print(len(sent - got))
EOF
        )
        [ "$unanswered" -eq 0 ] && break
        [ "$now" -ge "$drain_deadline" ] && { say "$unanswered requests still unanswered after 180 s"; break; }
    fi
done
grep -q . "$out/enqueue.log" && { say "tallyctl enqueue said:"; tail -5 "$out/enqueue.log"; }

# ---- report -----------------------------------------------------------------------

stop_pid "${worker_pid[0]}" TERM 30
stop_pid "${worker_pid[1]}" TERM 30
worker_pid=("" "")
sleep 1
stop_pid "$results_pid" TERM 10
results_pid=""

say "samples (one row a minute; all of them in .soak/soak.csv):"
awk -F, '
    function row(tag) { printf "%6d %9d %9d %6d %8s %8s %8d %7d %8d %4d %9d %s\n", f[1], f[2], f[4], f[5],
                        f[6], f[7], f[8], f[11], f[12], f[13], f[14], tag }
    NR == 1 { printf "%6s %9s %9s %6s %8s %8s %8s %7s %8s %4s %9s\n", "t_s", "requests", "results",
              "res/s", "rss0_MB", "rss1_MB", "backlog", "errors", "retries", "dlq", "restarts"; next }
    { split($0, f, ","); if (f[15] != "") ev = ev sprintf("%s at %d s; ", f[15], f[1]) }
    $1 >= next_t { row(""); next_t += 60; printed = NR }
    END { if (printed != NR) row("(end)"); print "restarts: " ev }' "$csv"
awk -F, 'NR > 1 { for (i = 6; i <= 7; i++) if ($i != "" && $i + 0 > max) max = $i + 0;
                  if ($5 + 0 > peak) peak = $5 + 0; if ($8 + 0 > backlog) backlog = $8 + 0 }
         END { printf "soak: peak worker RSS %.1f MB, peak result rate %d/s, peak backlog %d\n", max, peak, backlog }' "$csv"

# A dashed line at every restart.
arrows=$(awk -F, 'NR > 1 && $15 != "" { printf "set arrow from %d, graph 0 to %d, graph 1 nohead dt 2 lc rgb \"#c00000\"\n", $1, $1 }' "$csv")
gnuplot <<EOF || say "gnuplot failed"
set datafile separator ","
set terminal pngcairo size 1000,700 font ",10"
set output "$png"
set multiplot layout 2,1 title "Tally soak: 2 workers, $rate req/s for $minutes min; dashed: a worker restarted (SIGTERM and SIGKILL in turn)"
set key top left
set grid
$arrows
set ylabel "RSS (MB)"
set yrange [0:*]
plot "$csv" using 1:6 with lines lw 2 title "worker 0", "" using 1:7 with lines lw 2 title "worker 1"
set xlabel "seconds"
set ylabel "results/s, backlog"
plot "$csv" using 1:5 with lines lw 2 title "results/s", "" using 1:8 with lines title "backlog (produced - results)"
unset multiplot
EOF
[ -f "$png" ] && say "plot: ${png#"$root"/}"

say "checking the invariants"
"$py" "$root/soak/check.py" --sent "$out/sent.tsv" --results "$out/results.jsonl" \
    --psql "$pgbin/psql -h 127.0.0.1 -p $pg_port -U postgres -d tally" | tee "$out/invariants.txt"
rc=${PIPESTATUS[0]}
[ $rc -eq 0 ] && say "all invariants hold" || say "an invariant FAILED"
exit $rc
