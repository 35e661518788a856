/* it_e2e_money_rules — the money rules of CONTRACT.md §6 (amended) through
 * the real tally-worker: share reversals that never drift (the two
 * cases, each party's total read back with share.list after refunds and
 * compared with the tests' own model of the share rule), and ISO 4217
 * currencies checked everywhere a currency is accepted. */
#include "it_e2e_common.h"

#include "../share_model.h"

static int setup(void **state)
{
    *state = e2e_start(3, 1, NULL);
    return 0;
}

static int teardown(void **state)
{
    e2e_stop(*state);
    return 0;
}

static const int32_t half[] = {5000, 5000};
static const char *const parties[] = {"seller", "platform"};

/* A party's total in a payment, from share.list through the worker (every
 * page of the rows filtered on both). */
static int64_t listed_total(e2e_t *e, const char *acct, const char *pay, const char *party)
{
    int64_t total = 0;
    char after[64] = "";
    for (int pages = 0; pages < 50; pages++) {
        const json_t *res;
        if (after[0] == '\0')
            res = e2e_ok(e2e_call(e, acct, "share.list",
                                  "{'payment_id':'%s','party':'%s','limit':100}", pay, party));
        else
            res = e2e_ok(e2e_call(e, acct, "share.list",
                                  "{'payment_id':'%s','party':'%s','limit':100,"
                                  "'starting_after':'%s'}",
                                  pay, party, after));
        const json_t *d = json_object_get(res, "data");
        for (size_t i = 0; i < json_array_size(d); i++)
            total += e2e_int(json_array_get(d, i), "amount", NULL);
        if (!json_is_true(json_object_get(res, "has_more")))
            return total;
        snprintf(after, sizeof(after), "%s",
                 e2e_str(json_array_get(d, json_array_size(d) - 1), "id", NULL));
    }
    fail_msg("share.list of %s did not end", pay);
    return total;
}

/* Asserts, through share.list, that seller and platform hold their shares of net. */
static void expect_shares(e2e_t *e, const char *acct, const char *pay, int64_t net)
{
    int64_t want[2];
    share_model_split(net, half, 2, want);
    for (int i = 0; i < 2; i++) {
        int64_t got = listed_total(e, acct, pay, parties[i]);
        if (got != want[i])
            fail_msg("net %lld: %s holds %lld, its share is %lld", (long long)net, parties[i],
                     (long long)got, (long long)want[i]);
    }
}

/* A payment of amount in acct, allocated 50/50; its id goes to pay. */
static void allocated_payment(e2e_t *e, const char *acct, int64_t amount, char *pay, size_t size)
{
    const json_t *res = e2e_ok(e2e_call(e, acct, "payment.record",
                                        "{'external_id':'pi_%lld','amount':%lld,'currency':'usd'}",
                                        (long long)amount, (long long)amount));
    snprintf(pay, size, "%s", e2e_str(res, "payment", "id"));
    e2e_ok(e2e_call(e, acct, "share.allocate",
                    "{'payment_id':'%s','shares':[{'party':'seller','basis_points':5000},"
                    "{'party':'platform','basis_points':5000}]}",
                    pay));
}

/* 1001 at 50/50 refunded 333, 333, 333 and the rest ended at seller −1,
 * platform +1 under the per-refund rule; now every step is exact. */
static void test_drift_1001(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_drift_1001";
    char pay[64];
    allocated_payment(e, A, 1001, pay, sizeof(pay));
    expect_shares(e, A, pay, 1001);
    int64_t net = 1001;
    for (int k = 0; k < 3; k++) {
        e2e_ok(e2e_call(e, A, "payment.refund", "{'payment_id':'%s','amount':333}", pay));
        net -= 333;
        expect_shares(e, A, pay, net);
    }
    const json_t *res = e2e_ok(e2e_call(e, A, "payment.refund", "{'payment_id':'%s'}", pay));
    assert_string_equal(e2e_str(res, "payment", "status"), "refunded");
    expect_shares(e, A, pay, 0);
}

/* 100 at 50/50 refunded one unit at a time ended at −50/+50; now the
 * parties stay within a unit of each other and end at 0. */
static void test_drift_unit_by_unit(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_drift_100";
    char pay[64];
    allocated_payment(e, A, 100, pay, sizeof(pay));
    for (int64_t net = 99; net >= 0; net--) {
        e2e_ok(e2e_call(e, A, "payment.refund", "{'payment_id':'%s','amount':1}", pay));
        if (net % 10 == 9 || net == 0)
            expect_shares(e, A, pay, net);
    }
}

/* A code that is not an active ISO 4217 code is invalid_request, field
 * currency (default_currency for settings), for every type that takes one;
 * nothing is stored, no balance is opened. */
static void test_currencies_everywhere(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_iso";
    E2E_ERR(e, A, "invalid_request", "currency", "payment.record",
            "{'external_id':'pi_uds','amount':100,'currency':'uds'}");
    E2E_ERR(e, A, "invalid_request", "currency", "payout.create",
            "{'amount':100,'currency':'uds'}");
    E2E_ERR(e, A, "invalid_request", "currency", "route.upsert",
            "{'kind':'bank_account','destination':'ba','currency':'xyz'}");
    E2E_ERR(e, A, "invalid_request", "default_currency", "settings.update",
            "{'default_currency':'uds'}");
    E2E_ERR(e, A, "invalid_request", "currency", "code.create", "{'amount':100,'currency':'uds'}");
    E2E_ERR(e, A, "invalid_request", "currency", "balance.get", "{'currency':'xyz'}");
    /* The same with real codes works; the message says what is wrong. */
    const json_t *r =
        e2e_call(e, A, "payment.record", "{'external_id':'pi_uds','amount':100,'currency':'uds'}");
    assert_non_null(strstr(e2e_str(r, "error", "message"), "ISO 4217"));
    e2e_ok(
        e2e_call(e, A, "payment.record", "{'external_id':'pi_uds','amount':100,'currency':'usd'}"));
    e2e_ok(
        e2e_call(e, A, "payment.record", "{'external_id':'pi_jpy','amount':100,'currency':'jpy'}"));
    const json_t *d = json_object_get(e2e_ok(e2e_call(e, A, "balance.get", "{}")), "data");
    assert_int_equal(json_array_size(d), 2); /* jpy and usd, no uds */
    assert_int_equal(th_pg_i64(e->pg, "postgres",
                               "SELECT count(*) FROM account_balances WHERE account_id = 'acct_iso'"
                               " AND currency NOT IN ('usd', 'jpy')"),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drift_1001),
        cmocka_unit_test(test_drift_unit_by_unit),
        cmocka_unit_test(test_currencies_everywhere),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
