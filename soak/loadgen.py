#!/usr/bin/python3
"""The soak's load: a steady mix of requests as JSON lines on stdout, at a
fixed rate, for soak/run.sh to pipe into `tallyctl enqueue`.

Accounts come in two kinds so that soak/check.py can recompute balances
exactly: "payout" accounts (even numbers) record succeeded payments only and
take payouts; "refund" accounts (odd numbers) record pending and succeeded
payments, move them on, refund them, and never pay out. Both allocate shares,
create and redeem purchase codes (past their limits too), link agents, change
settings and routes, read, send a few invalid requests, and resend earlier
requests unchanged (a producer retry: the answer must be a replay).

Payment and payout ids are made by Tally, so the generator follows the
results file (`tallyctl results --json`) to learn them. Every new request id
goes to --sent as "account<TAB>id<TAB>type", the list check.py answers for.

Usage: loadgen.py --rate R --seconds S --accounts N --results FILE --sent FILE
                  --types TYPE,TYPE,... [--seed K] [--progress FILE]
"""
import argparse
import json
import os
import random
import sys
import time


class Account:
    def __init__(self, name, payout):
        self.name = name
        self.payout = payout  # a payout account (no refunds) or a refund account
        self.payments = {}  # pay_id -> {"amount", "status", "refunded", "allocated"}
        self.available = 0  # the generator's estimate, for payout amounts
        self.pending_payouts = []
        self.codes = []  # (code, max_redemptions)
        self.n = 0


class Generator:
    def __init__(self, args):
        self.rng = random.Random(args.seed)
        self.types = set(args.types.split(","))
        self.accounts = [Account("soak_%03d" % i, i % 2 == 0) for i in range(args.accounts)]
        self.by_name = {a.name: a for a in self.accounts}
        self.sent_lines = []  # earlier lines, for resends
        self.pending = {}  # request id -> (account, type, payload)
        self.seq = 0
        self.results = open(args.results, "rb") if args.results else None
        self.partial = b""
        self.sent = open(args.sent, "w", buffering=1)

    # ---- learning from results ------------------------------------------------

    def learn(self):
        if self.results is None:
            return
        chunk = self.results.read()
        if not chunk:
            return
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            sent = self.pending.pop(r.get("id"), None)
            if sent is None or r.get("status") != "ok":
                continue
            acct, type_, payload = sent
            res = r.get("result", {})
            if type_ == "payment.record":
                p = res["payment"]
                acct.payments[p["id"]] = {"amount": p["amount"], "status": p["status"],
                                          "refunded": 0, "allocated": False}
                if p["status"] == "succeeded":
                    acct.available += p["amount"]
            elif type_ == "payout.create":
                acct.pending_payouts.append(res["payout"]["id"])

    # ---- requests ----------------------------------------------------------------

    def pick(self, acct, want):
        ids = [k for k, p in acct.payments.items() if want(p)]
        if not ids:
            return None, None
        k = self.rng.choice(ids)
        return k, acct.payments[k]

    def make(self, acct):
        """One request for acct: (type, payload), or None to fall back."""
        r = self.rng.random() * 100
        rng = self.rng
        if r < 34:
            status = "succeeded" if acct.payout or rng.random() < 0.7 else "pending"
            acct.n += 1
            return "payment.record", {
                "external_id": "ext_%s_%d" % (acct.name, acct.n),
                "amount": rng.randint(100, 100000), "currency": "usd", "status": status,
                "metadata": {"order": str(acct.n)}}
        if r < 38 and not acct.payout:
            k, p = self.pick(acct, lambda p: p["status"] == "pending")
            if k:
                p["status"] = rng.choice(["succeeded", "succeeded", "failed"])
                return "payment.update_status", {"payment_id": k, "status": p["status"]}
        if r < 48 and not acct.payout:
            k, p = self.pick(acct, lambda p: p["status"] == "succeeded")
            if k:
                rest = p["amount"] - p["refunded"]
                amount = rest if rng.random() < 0.3 else rng.randint(1, max(1, rest // 2))
                p["refunded"] += amount
                if p["refunded"] >= p["amount"]:
                    p["status"] = "refunded"
                payload = {"payment_id": k}
                if amount != rest or rng.random() < 0.5:
                    payload["amount"] = amount
                return "payment.refund", payload
        if r < 56:
            k, p = self.pick(acct, lambda p: p["status"] == "succeeded" and not p["allocated"])
            if k:
                p["allocated"] = True
                n = rng.randint(1, 5)
                cuts = sorted(rng.sample(range(1, 10000), n - 1))
                bps = [b - a for a, b in zip([0] + cuts, cuts + [10000])]
                return "share.allocate", {"payment_id": k, "shares": [
                    {"party": "party_%d" % i, "basis_points": bp} for i, bp in enumerate(bps)]}
        if r < 59:
            code = "SOAK-%s-%d" % (acct.name[-3:], len(acct.codes))
            limit = rng.choice([1, 2, 3, 5])
            acct.codes.append((code, limit))
            return "code.create", {"code": code, "max_redemptions": limit, "amount": 500,
                                   "currency": "usd"}
        if r < 69 and acct.codes:
            code, _ = rng.choice(acct.codes)
            return "code.redeem", {"code": code, "redeemer": "cust_%d" % rng.randint(1, 50)}
        if r < 77 and acct.payout and "payout.create" in self.types:
            if acct.available > 0:
                # Mostly within the estimate; now and then beyond it.
                amount = rng.randint(1, max(1, acct.available // 3))
                if rng.random() < 0.15:
                    amount = acct.available * 2 + 1
                else:
                    acct.available -= amount
                return "payout.create", {"amount": amount, "currency": "usd"}
        if r < 81 and acct.payout and acct.pending_payouts and "payout.update_status" in self.types:
            po = acct.pending_payouts.pop(rng.randrange(len(acct.pending_payouts)))
            return "payout.update_status", {"payout_id": po,
                                            "status": rng.choice(["paid", "paid", "failed"])}
        if r < 83 and "route.upsert" in self.types:
            return "route.upsert", {"kind": "bank_account", "destination": "ba_%d" % rng.randint(1, 9),
                                    "currency": "usd", "is_default": rng.random() < 0.5}
        if r < 85 and "settings.update" in self.types:
            return "settings.update", {"payout_schedule": rng.choice(["manual", "daily", "weekly"]),
                                       "min_payout_amount": rng.choice([1, 50, 100])}
        if r < 87:
            return "agent.link", {"agent_id": "agent_%d" % rng.randint(1, 5),
                                  "share_basis_points": rng.randint(0, 10000)}
        if r < 91:
            k, _ = self.pick(acct, lambda p: True)
            choice = rng.random()
            if k and choice < 0.4:
                return "payment.get", {"payment_id": k}
            if choice < 0.7 and "balance.get" in self.types:
                return "balance.get", {}
            return "payment.list", {"limit": rng.randint(1, 20)}
        if r < 93:
            return "payment.record", {"external_id": "bad", "amount": 0, "currency": "usd"}
        return None

    def line(self):
        """The next JSON line: a resend now and then, else a new request."""
        if self.sent_lines and self.rng.random() < 0.04:
            return self.rng.choice(self.sent_lines)
        acct = self.rng.choice(self.accounts)
        made = None
        for _ in range(3):
            made = self.make(acct)
            if made is not None and made[0] in self.types:
                break
            made = None
        if made is None:
            acct.n += 1
            made = ("payment.record", {"external_id": "ext_%s_%d" % (acct.name, acct.n),
                                       "amount": self.rng.randint(100, 100000), "currency": "usd"})
        type_, payload = made
        self.seq += 1
        rid = "soak_%d" % self.seq
        self.pending[rid] = (acct, type_, payload)
        self.sent.write("%s\t%s\t%s\n" % (acct.name, rid, type_))
        text = json.dumps({"id": rid, "account_id": acct.name, "type": type_, "payload": payload},
                          separators=(",", ":"))
        if len(self.sent_lines) < 5000:
            self.sent_lines.append(text)
        else:
            self.sent_lines[self.rng.randrange(5000)] = text
        return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--accounts", type=int, default=100)
    ap.add_argument("--results")
    ap.add_argument("--sent", required=True)
    ap.add_argument("--types", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--progress", help="file that holds the number of lines written so far")
    args = ap.parse_args()
    gen = Generator(args)
    out = sys.stdout
    start = time.monotonic()
    emitted = 0
    last_progress = -1
    while True:
        now = time.monotonic() - start
        if now >= args.seconds:
            break
        gen.learn()
        due = int(args.rate * now) - emitted
        for _ in range(due):
            out.write(gen.line() + "\n")
        emitted += max(due, 0)
        out.flush()
        if args.progress and emitted != last_progress:
            last_progress = emitted
            with open(args.progress + ".tmp", "w") as f:
                f.write("%d\n" % emitted)
            os.replace(args.progress + ".tmp", args.progress)
        time.sleep(0.02)
    out.flush()
    gen.sent.close()
    if args.progress:
        with open(args.progress, "w") as f:
            f.write("%d\n" % emitted)
    print("loadgen: %d lines in %.0f s (%d new requests)" % (emitted, args.seconds, gen.seq),
          file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        os._exit(1)
