#!/usr/bin/env bash
# The demo command: installs missing packages, builds a release configuration
# in build/, starts the whole stack on this machine (a private PostgreSQL under
# .demo/, the embedded Kafka broker, migrations, one tally-worker), sends the
# sample requests of scripts/demo-requests.jsonl (every job type, a few
# deliberate errors and replays, a payment refunded in parts whose parties'
# shares never drift) and prints their results, runs the scheduled payouts
# twice (the second run is all replays), holds one account and releases it,
# shows one malformed message in the dead-letter topic and the worker's
# request counters, and shuts everything down again, also on failure or
# Ctrl-C.
#
#   bash scripts/demo.sh          # one readable line per result
#   bash scripts/demo.sh --json   # the results as published, one JSON object per line
#
# Each step is a small function below; any failure stops the demo. Logs stay
# in .demo/.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
demo="$root/.demo"
build="$root/build"
ctl="$build/tallyctl"
worker_bin="$build/tally-worker"
requests="$root/scripts/demo-requests.jsonl"
pgbin=${TALLY_PG_BINDIR:-/usr/lib/postgresql/15/bin}
jobs=${TALLY_JOBS:-2}

raw_json=0
case "${1:-}" in
"") ;;
--json) raw_json=1 ;;
-h | --help)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "usage: bash scripts/demo.sh [--json]" >&2
    exit 2
    ;;
esac

pg_pid="" broker_pid="" worker_pid=""
pg_port="" pg_data="" bootstrap="" http_port=""

if [ -t 1 ]; then
    bold=$'\033[1m' red=$'\033[31m' plain=$'\033[0m'
else
    bold="" red="" plain=""
fi
say() { printf '%sdemo:%s %s\n' "$bold" "$plain" "$*"; }
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
    say "applying migrations as tally_owner"
    MIGRATION_DATABASE_URL="postgresql://tally_owner@127.0.0.1:$pg_port/tally" \
        TALLY_MIGRATIONS_DIR="$root/migrations" "$ctl" migrate || die "tallyctl migrate failed"
    psql_as tally_owner -d tally -c "GRANT tally_app TO tally_demo_worker" ||
        die "granting tally_app failed"
}

step_schema() {
    say "tables and their row-level security (tenant tables: enabled and forced):"
    psql_as postgres -d tally -P footer=off -c "
        SELECT c.relname AS table, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
               count(p.polname) AS policies
        FROM pg_class c LEFT JOIN pg_policy p ON p.polrelid = c.oid
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
        GROUP BY 1, 2, 3 ORDER BY 1" || die "reading the catalog failed"
}

step_worker() {
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
}

step_send() {
    local n
    n=$(grep -c . "$requests")
    say "sending $n requests from scripts/demo-requests.jsonl, round by round; their results:"
    KAFKA_BOOTSTRAP_SERVERS="$bootstrap" DEMO_RAW_JSON=$raw_json \
        python3 - "$ctl" "$requests" <<'PY' || die "sending the requests failed"
# Sends the demo's requests round by round (rounds are separated by blank
# lines) with `tallyctl enqueue --wait --json`, and prints one line per
# request in file order: request id, account, status, type, the interesting
# fields, and the correlation_id, which names the deliberate cases. A string
# "{{demo-004.payment.id}}" in a payload is replaced by that member of the
# result of request demo-004 from an earlier round (ids Tally generates).
import json, os, re, subprocess, sys, tempfile

ctl, path = sys.argv[1], sys.argv[2]
raw = os.environ.get("DEMO_RAW_JSON") == "1"
tty = sys.stdout.isatty()
PLACEHOLDER = re.compile(r"^\{\{([^.{}]+)\.([^{}]+)\}\}$")


def color(s, code):
    return f"\033[{code}m{s}\033[0m" if tty else s


def money(amount, currency):
    if not isinstance(amount, int):
        return "-"
    if currency in ("usd", "eur", "gbp", "cad", "aud", "chf"):  # two decimals
        sign = "-" if amount < 0 else ""
        return f"{sign}{abs(amount) // 100}.{abs(amount) % 100:02d} {currency}"
    return f"{amount} {currency or ''}".strip()


def short(i):
    """pay_01M80X866JYACTNQCMX3314VG6 -> pay_…314VG6"""
    if isinstance(i, str) and "_" in i and len(i) > 16:
        return i[: i.index("_") + 1] + "…" + i[-6:]
    return str(i)


def payment(p):
    s = f"{short(p['id'])} {p['external_id']} {money(p['amount'], p['currency'])} {p['status']}"
    if p.get("amount_refunded"):
        s += f" (refunded {money(p['amount_refunded'], p['currency'])})"
    return s


def payout(p):
    via = f" via {short(p['route_id'])}" if p.get("route_id") else ""
    return f"{short(p['id'])} {money(p['amount'], p['currency'])} {p['status']}{via}"


def route(r):
    d = " default" if r.get("is_default") else ""
    return f"{short(r['id'])} {r['kind']} {r['destination']} {r.get('currency') or 'any currency'}{d}"


def code(c):
    value = money(c["amount"], c["currency"]) + " " if c.get("amount") else ""
    return f"{c['code']} {value}{c['redeemed_count']}/{c['max_redemptions']} redeemed, {c['status']}"


def agent(a):
    return f"{a['agent_id']} role={a.get('role')} share={a['share_basis_points']} bp ({short(a['id'])})"


def share(s):
    return f"{s['kind']} {s['party']} {money(s['amount'], s['currency'])}"


def items(data, fmt, more):
    shown = "; ".join(fmt(x) for x in data)
    return f"{len(data)} item(s){', has_more' if more else ''}: {shown}" if data else "no items"


def share_totals(data, more):
    """Each party's total (allocation + reversals) when the page holds all rows."""
    if more or not data:
        return ""
    totals = {}
    for row in reversed(data):  # oldest first: the allocation's party order
        totals[row["party"]] = totals.get(row["party"], 0) + row["amount"]
    cur = data[0]["currency"]
    return "; totals: " + ", ".join(f"{p} {money(t, cur)}" for p, t in totals.items())


def summary(kind, res):
    if kind in ("payment.record", "payment.update_status", "payment.get"):
        return payment(res["payment"])
    if kind == "payment.refund":
        r, p = res["refund"], res["payment"]
        return f"{short(r['id'])} {money(r['amount'], p['currency'])} back; payment now {payment(p)}"
    if kind == "share.allocate":
        parts = ", ".join(f"{a['party']} {money(a['amount'], res['currency'])}" for a in res["allocations"])
        return f"net {money(res['net_amount'], res['currency'])} -> {parts}"
    if kind == "balance.get":
        return "; ".join(
            f"{b['currency']}: available {money(b['available'], b['currency'])}, pending payouts "
            f"{money(b['pending_payouts'], b['currency'])}, paid out {money(b['paid_out'], b['currency'])}"
            for b in res["data"])
    if kind in ("payout.create", "payout.update_status", "payout.get"):
        return payout(res["payout"])
    if kind in ("route.upsert", "route.get"):
        return route(res["route"])
    if kind == "route.delete":
        return f"deleted {route(res['route'])}"
    if kind in ("settings.get", "settings.update"):
        s = res["settings"]
        return (f"default_currency={s['default_currency']} payout_schedule={s['payout_schedule']} "
                f"min_payout_amount={s['min_payout_amount']} statement_descriptor={json.dumps(s['statement_descriptor'])}")
    if kind in ("code.create", "code.revoke"):
        return code(res["code"])
    if kind == "code.redeem":
        return f"{code(res['code'])}; redeemed by {res['redemption'].get('redeemer')}"
    if kind == "code.get":
        who = ", ".join(str(r.get("redeemer")) for r in res["redemptions"])
        return f"{code(res['code'])}; redemptions (newest first): {who or 'none'}"
    if kind in ("agent.link", "agent.unlink"):
        return ("unlinked " if kind == "agent.unlink" else "") + agent(res["agent"])
    lists = {"payment.list": payment, "payout.list": payout, "route.list": route, "code.list": code,
             "agent.list": agent, "share.list": share,
             "audit.list": lambda r: f"{r['type']} {r['status']}{' ' + r['error_code'] if r['error_code'] else ''}"
                                     f"{' (replayed)' if r['replayed'] else ''}"}
    if kind in lists:
        text = items(res["data"], lists[kind], res["has_more"])
        if kind == "share.list":
            text += share_totals(res["data"], res["has_more"])
        return text
    text = json.dumps(res, separators=(",", ":"))
    return text if len(text) < 120 else text[:117] + "..."


def resolve(value, results, missing):
    if isinstance(value, dict):
        return {k: resolve(v, results, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, results, missing) for v in value]
    m = PLACEHOLDER.match(value) if isinstance(value, str) else None
    if not m:
        return value
    node = results.get(m.group(1), {}).get("result")
    for step in m.group(2).split("."):
        if isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        elif isinstance(node, dict):
            node = node.get(step)
        else:
            node = None
    if node is None:
        missing.append(value)
    return node


def line(req, res):
    rid, acct, kind = req["id"], req["account_id"], req["type"]
    corr = f"  [{req['correlation_id']}]" if "correlation_id" in req else ""
    if res is None:
        return f"{rid:<9} {acct:<12} {color('??', '31'):<5}  {kind:<22} no result arrived{corr}"
    replay = " (replayed)" if res.get("replayed") else ""
    if res["status"] == "ok":
        status, text = color("ok   ", "32"), summary(kind, res["result"])
    else:
        e = res["error"]
        field = f" ({e['field']})" if e.get("field") else ""
        status, text = color("error", "33"), f"{e['code']}{field}: {e['message']}"
    return f"{rid:<9} {acct:<12} {status}  {kind:<22} {text}{replay}{corr}"


rounds, current = [], []
with open(path, encoding="utf-8") as f:
    for text in f:
        if text.strip():
            current.append(json.loads(text))
        elif current:
            rounds.append(current)
            current = []
if current:
    rounds.append(current)

results = {}  # request id -> its first result
answered = errors = 0
for number, batch in enumerate(rounds, 1):
    to_send, skipped = [], {}
    for req in batch:
        missing = []
        req = dict(req, payload=resolve(req.get("payload"), results, missing))
        if missing:
            skipped[id(req)] = missing
        to_send.append(req)
    sendable = [r for r in to_send if id(r) not in skipped]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as tmp:
        for req in sendable:
            tmp.write(json.dumps(req) + "\n")
    proc = subprocess.run([ctl, "enqueue", "--quiet", "--file", tmp.name, "--wait", "--json",
                           "--timeout", "60s"], capture_output=True, text=True)
    os.unlink(tmp.name)
    if proc.returncode > 1:  # 1: some answers are errors, as intended
        sys.stderr.write(proc.stderr)
        sys.exit(1)
    got = {}
    for text in proc.stdout.splitlines():
        res = json.loads(text)
        got[(res["account_id"], res["id"])] = res
    if not raw:
        print(f"-- round {number}: {len(sendable)} request(s)")
    for req in to_send:
        res = got.get((req["account_id"], req["id"]))
        if id(req) in skipped:
            print(f"{req['id']:<9} {req['account_id']:<12} skipped: no value for "
                  f"{', '.join(skipped[id(req)])}")
            continue
        if res is not None:
            answered += 1
            errors += res["status"] != "ok"
            results.setdefault(req["id"], res)
        print(json.dumps(res, separators=(",", ":")) if raw else line(req, res))
total = sum(len(b) for b in rounds)
print(f"-- {answered} of {total} requests answered: {answered - errors} ok, {errors} error",
      file=sys.stderr if raw else sys.stdout)
sys.exit(0 if answered == total else 1)
PY
}

# Scheduled payouts: acct_demo_b (daily, a default route) is paid out, and
# acct_demo_c (daily, no route) is listed and skipped. tallyctl connects as a
# login role granted only tally_scheduler. The second run in the same period
# sends the same request again, which the worker answers as a replay.
step_payouts() {
    say "scheduled payouts: tallyctl payouts due --schedule daily, twice (as tally_scheduler)"
    psql_as tally_owner -d tally -c "CREATE ROLE tally_demo_payouts LOGIN" \
        -c "GRANT tally_scheduler TO tally_demo_payouts" || die "creating the payouts role failed"
    local day json=()
    day=$(date -u +%F)
    [ $raw_json -eq 1 ] && json=(--json)
    for run in 1 2; do
        say "run $run:"
        PAYOUTS_DATABASE_URL="postgresql://tally_demo_payouts@127.0.0.1:$pg_port/tally" \
            KAFKA_BOOTSTRAP_SERVERS="$bootstrap" "$ctl" payouts due --schedule daily --at "$day" \
            "${json[@]}" || die "tallyctl payouts due failed"
    done
    say "their answers (the second is a replay):"
    KAFKA_BOOTSTRAP_SERVERS="$bootstrap" "$ctl" results --from-beginning --account acct_demo_b \
        --id "auto_daily_${day}_eur" --count 2 --timeout 60s "${json[@]}" ||
        die "the scheduled payout's answers did not arrive"
}

# Waits up to 10 s until the worker counts $1 held accounts (the contract's
# bound is 5 s; through NOTIFY it takes milliseconds).
await_held() {
    for _ in $(seq 1 100); do
        [ "$(metric tally_held_accounts)" = "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

# An operator's hold: acct_demo_c is held, its request is answered
# account_held (audited, nothing applied); after the release the same request
# is applied. tallyctl connects as tally_owner, like migrate.
step_holds() {
    local owner="postgresql://tally_owner@127.0.0.1:$pg_port/tally" json=()
    [ $raw_json -eq 1 ] && json=(--json)
    say "holds: tallyctl hold acct_demo_c, one request, tallyctl release, the same request again"
    MIGRATION_DATABASE_URL="$owner" "$ctl" hold acct_demo_c --reason "demo: a tenant paused" \
        --by demo || die "tallyctl hold failed"
    MIGRATION_DATABASE_URL="$owner" "$ctl" holds || die "tallyctl holds failed"
    await_held 1 || die "the worker did not see the hold in 10 s"
    # Answered account_held: enqueue --wait exits 1 for an error answer.
    KAFKA_BOOTSTRAP_SERVERS="$bootstrap" "$ctl" enqueue --quiet --account acct_demo_c \
        --type balance.get --id demo-held-1 --payload '{}' --wait "${json[@]}" &&
        die "a held account's request was applied"
    MIGRATION_DATABASE_URL="$owner" "$ctl" release acct_demo_c || die "tallyctl release failed"
    await_held 0 || die "the worker did not see the release in 10 s"
    KAFKA_BOOTSTRAP_SERVERS="$bootstrap" "$ctl" enqueue --quiet --account acct_demo_c \
        --type balance.get --id demo-held-1 --payload '{}' --wait "${json[@]}" ||
        die "the released account's request was not applied"
}

# One malformed message (no account_id), sent unchecked: the worker cannot
# answer it, so it goes to the dead-letter topic.
step_dlq() {
    say "sending one malformed message (no account_id); the dead-letter topic then holds:"
    printf '%s\n' '{"v":1,"id":"demo-dlq-1","type":"payment.get","payload":{}}' |
        KAFKA_BOOTSTRAP_SERVERS="$bootstrap" "$ctl" enqueue --quiet --raw >/dev/null ||
        die "tallyctl enqueue --raw failed"
    local out=""
    for _ in $(seq 1 50); do
        out=$(KAFKA_BOOTSTRAP_SERVERS="$bootstrap" "$ctl" dlq list 2>/dev/null)
        [ -n "$out" ] && break
        sleep 0.2
    done
    [ -n "$out" ] || die "the malformed message did not reach the dead-letter topic in 10 s"
    if [ $raw_json -eq 1 ]; then
        KAFKA_BOOTSTRAP_SERVERS="$bootstrap" "$ctl" dlq list --json
    else
        printf '%s\n' "$out"
    fi
}

# The worker's /metrics body.
metrics_body() {
    local body
    exec 3<>"/dev/tcp/127.0.0.1/$http_port" || die "cannot reach the worker's HTTP port"
    printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
    body=$(timeout 5 cat <&3)
    exec 3<&-
    printf '%s\n' "$body"
}

# The value of an unlabelled metric.
metric() { metrics_body | awk -v m="$1" '$1 == m { print $2 }'; }

# The worker's request counters, from its Prometheus endpoint.
step_metrics() {
    say "the worker's /metrics, tally_requests_total (counters at zero left out):"
    local body
    body=$(metrics_body)
    grep -q '^tally_requests_total' <<<"$body" || die "no tally_requests_total in /metrics"
    grep '^tally_requests_total' <<<"$body" | grep -v ' 0$'

}

# ---- TypeScript producer (clients/typescript) ---------------------------------
# The typed client from the npm registry's packages (npm ci), compiled, sends a
# few requests with call() and prints their results: examples/demo.ts.
step_typescript() {
    local pkg="$root/clients/typescript"
    say "a TypeScript producer: clients/typescript/examples/demo.ts, call() and its results"
    npm ci --prefix "$pkg" --no-audit --no-fund --loglevel=error >"$demo/npm.log" 2>&1 ||
        { cat "$demo/npm.log"; die "npm ci in clients/typescript failed"; }
    (cd "$pkg" && node node_modules/typescript/bin/tsc -p tsconfig.json) >>"$demo/npm.log" 2>&1 ||
        { cat "$demo/npm.log"; die "compiling clients/typescript failed"; }
    local args=()
    [ $raw_json -eq 1 ] && args=(--json)
    KAFKA_BOOTSTRAP_SERVERS="$bootstrap" timeout 120 node "$pkg/dist/examples/demo.js" "${args[@]}" ||
        die "the TypeScript producer failed"
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
step_payouts
step_holds
step_typescript
step_dlq
step_metrics
say "done"
