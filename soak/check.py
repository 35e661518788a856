#!/usr/bin/python3
"""The soak's invariant checks, from the database and the result topic.

Reads the requests loadgen.py sent (--sent), every result published during
the run (--results, `tallyctl results --json`), and the tables (as the
database superuser, so row-level security hides nothing). Prints one line
per invariant, "invariant <name>: ok (…)" or "… FAILED (…)", and exits 1
when any failed.

Usage: check.py --sent FILE --results FILE --psql "psql -h … -p … -U postgres -d tally"
"""
import argparse
import collections
import json
import shlex
import subprocess
import sys


def query(psql, sql):
    out = subprocess.run(shlex.split(psql) + ["-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                                              "-c", sql],
                         check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


class Checker:
    def __init__(self):
        self.failed = 0

    def report(self, name, ok, detail):
        if not ok:
            self.failed += 1
        print("invariant %-24s %s (%s)" % (name + ":", "ok" if ok else "FAILED", detail))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sent", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--psql", required=True)
    args = ap.parse_args()
    c = Checker()

    sent = {}
    with open(args.sent) as f:
        for line in f:
            acct, rid, type_ = line.rstrip("\n").split("\t")
            sent[(acct, rid)] = type_
    results = collections.defaultdict(list)
    with open(args.results, "rb") as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            results[(r["account_id"], r["id"])].append(r)

    # 1. Every request answered.
    missing = [k for k in sent if k not in results]
    c.report("every request answered", not missing,
             "%d requests, %d answered, %d result messages%s" % (
                 len(sent), len(sent) - len(missing), sum(len(v) for v in results.values()),
                 ", missing e.g. %s" % missing[:3] if missing else ""))

    # 2. Deliveries of one request carry one answer (replays repeat the stored one).
    def body(r):
        return json.dumps([r["status"], r.get("result"), r.get("error")], sort_keys=True)
    differ = [k for k, rs in results.items() if len({body(r) for r in rs}) > 1]
    replays = sum(1 for rs in results.values() for r in rs if r.get("replayed"))
    c.report("one answer per request", not differ,
             "%d replayed deliveries%s" % (replays, ", differing e.g. %s" % differ[:3] if differ else ""))

    ok = {k: rs[0] for k, rs in results.items() if rs[0]["status"] == "ok"}
    by_type = collections.defaultdict(list)
    for (acct, rid), r in ok.items():
        by_type[r["type"]].append((acct, r))
    errors = collections.Counter(rs[0]["error"]["code"] for rs in results.values()
                                 if rs[0]["status"] == "error")

    # 3. Payments: one row per ok payment.record, the same ids and amounts.
    want = {(a, r["result"]["payment"]["id"]): r["result"]["payment"]["amount"]
            for a, r in by_type["payment.record"]}
    rows = {(a, i): int(amt) for a, i, amt in query(
        args.psql, "SELECT account_id, id, amount FROM stripe_payments")}
    c.report("payments applied once", want == rows,
             "%d ok payment.record, %d rows, sum %d vs %d" % (
                 len(want), len(rows), sum(want.values()), sum(rows.values())))

    # 4. Refunds: one row per ok payment.refund; amount_refunded is their sum.
    want = {(a, r["result"]["refund"]["id"]): r["result"]["refund"]["amount"]
            for a, r in by_type["payment.refund"]}
    rows = {(a, i): int(amt) for a, i, amt in query(
        args.psql, "SELECT account_id, id, amount FROM stripe_payment_refunds")}
    bad = query(args.psql, """
        SELECT p.account_id, p.id FROM stripe_payments p
        LEFT JOIN (SELECT account_id, payment_id, sum(amount) s FROM stripe_payment_refunds
                   GROUP BY 1, 2) r ON r.account_id = p.account_id AND r.payment_id = p.id
        WHERE p.amount_refunded <> coalesce(r.s, 0) OR p.amount_refunded > p.amount
           OR (p.status = 'refunded') <> (p.amount_refunded = p.amount AND p.amount_refunded > 0)""")
    c.report("refunds applied once", want == rows and not bad,
             "%d ok payment.refund, %d rows, sum %d vs %d, %d payments off" % (
                 len(want), len(rows), sum(want.values()), sum(rows.values()), len(bad)))

    # 5. Allocations sum to the net amount; one allocation per payment.
    allocated = collections.Counter((a, r["result"]["payment_id"]) for a, r in by_type["share.allocate"])
    twice = [k for k, n in allocated.items() if n > 1]
    bad = query(args.psql, """
        SELECT p.account_id, p.id, p.amount - p.amount_refunded, coalesce(sum(t.amount), 0)
        FROM stripe_payments p
        LEFT JOIN payment_share_tracking t ON t.account_id = p.account_id AND t.payment_id = p.id
        WHERE p.allocated_at IS NOT NULL
        GROUP BY p.account_id, p.id HAVING p.amount - p.amount_refunded <> coalesce(sum(t.amount), 0)""")
    n_alloc = query(args.psql, "SELECT count(*) FROM stripe_payments WHERE allocated_at IS NOT NULL")[0][0]
    c.report("allocations sum to net", not bad and not twice and int(n_alloc) == len(allocated),
             "%s allocated payments, %d ok share.allocate, %d off%s" % (
                 n_alloc, len(allocated), len(bad), ", e.g. %s" % bad[:2] if bad else ""))

    # 6. Codes: never beyond their limit; one redemption row per ok code.redeem.
    redeemed = collections.Counter((a, r["result"]["code"]["code"]) for a, r in by_type["code.redeem"])
    rows = {(a, code): (int(n), int(cnt), int(mx)) for a, code, n, cnt, mx in query(args.psql, """
        SELECT c.account_id, c.code, c.redeemed_count, count(r.id), c.max_redemptions FROM ppu c
        LEFT JOIN ppu_redemptions r ON r.account_id = c.account_id AND r.code_id = c.id
        GROUP BY c.account_id, c.id""")}
    beyond = [k for k, (n, cnt, mx) in rows.items() if n > mx or n != cnt]
    mismatch = [k for k, (n, _, _) in rows.items() if n != redeemed.get(k, 0)]
    c.report("codes within limits", not beyond and not mismatch,
             "%d codes, %d redemptions, %d refused as exhausted or conflicting, %d off" % (
                 len(rows), sum(redeemed.values()), errors.get("conflict", 0), len(beyond) + len(mismatch)))

    # 7. Audit: every answered request has a row; a stored outcome has exactly one first answer.
    audited = {(a, i) for a, i in query(args.psql, "SELECT DISTINCT account_id, request_id FROM payment_system_logs")}
    unaudited = [k for k in sent if k in results and k not in audited]
    firsts = query(args.psql, """
        SELECT o.account_id, o.request_id, count(l.id) FILTER (WHERE NOT l.replayed)
        FROM tally_request_outcomes o
        LEFT JOIN payment_system_logs l ON l.account_id = o.account_id AND l.request_id = o.request_id
        WHERE o.response IS NOT NULL GROUP BY 1, 2 HAVING count(l.id) FILTER (WHERE NOT l.replayed) <> 1""")
    c.report("audited once", not unaudited and not firsts,
             "%d audited requests, %d unaudited, %d stored outcomes without exactly one first answer" % (
                 len(audited), len(unaudited), len(firsts)))

    # 8. Payouts: recompute every payout account's balance from the rows, in time order.
    has_payouts = query(args.psql, "SELECT to_regclass('pay_out') IS NOT NULL")[0][0] == "t"
    if not has_payouts:
        print("invariant %-24s skipped (no payouts in this build)" % "no payout overdrew:")
    else:
        events = collections.defaultdict(list)
        for a, cur, at, delta in query(args.psql, """
            SELECT account_id, currency, created_at, amount - amount_refunded FROM stripe_payments
             WHERE status IN ('succeeded', 'refunded')
            UNION ALL SELECT account_id, currency, created_at, -amount FROM pay_out
            UNION ALL SELECT account_id, currency, updated_at, amount FROM pay_out WHERE status = 'failed'
            ORDER BY 3"""):
            events[(a, cur)].append(int(delta))
        refunded_payout_accounts = query(args.psql, """
            SELECT DISTINCT r.account_id FROM stripe_payment_refunds r
            JOIN pay_out o ON o.account_id = r.account_id""")
        lowest, overdrew = 0, []
        for k, deltas in events.items():
            bal = 0
            for d in deltas:
                bal += d
                if d < 0 and bal < 0:
                    overdrew.append(k)
                lowest = min(lowest, bal)
        books = query(args.psql, """
            SELECT b.account_id, b.currency, b.available,
                   coalesce((SELECT sum(amount - amount_refunded) FROM stripe_payments p
                              WHERE p.account_id = b.account_id AND p.currency = b.currency
                                AND status IN ('succeeded', 'refunded')), 0)
                 - coalesce((SELECT sum(amount) FROM pay_out o
                              WHERE o.account_id = b.account_id AND o.currency = b.currency
                                AND status IN ('pending', 'paid')), 0)
            FROM account_balances b""")
        off = [r for r in books if int(r[2]) != int(r[3]) or int(r[3]) < 0]
        n_payouts = query(args.psql, "SELECT count(*), count(*) FILTER (WHERE status = 'failed') FROM pay_out")[0]
        c.report("no payout overdrew", not overdrew and not off and not refunded_payout_accounts,
                 "%s payouts (%s failed), %d refused insufficient_funds, lowest running balance %d, "
                 "%d balances off the contract formula" % (
                     n_payouts[0], n_payouts[1], errors.get("insufficient_funds", 0), lowest, len(off)))

    print("answers by code: ok %d, %s" % (len(ok), ", ".join("%s %d" % kv for kv in sorted(errors.items()))))
    sys.exit(1 if c.failed else 0)


if __name__ == "__main__":
    main()
