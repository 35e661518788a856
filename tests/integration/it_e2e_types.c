/* it_e2e_types — every job type of CONTRACT.md §6 through the real
 * tally-worker: requests produced to tally.requests, answers read from
 * tally.results. For each type at least one ok and one error answer, each
 * checked as §3 says (envelope keys and order, echoes, replayed,
 * processed_at, key and headers) and each result's shape as §6 gives it
 * (member names and types, nothing more). Also: replays of stored answers,
 * idempotency conflicts, another tenant's ids answered not_found, and list
 * paging. One stack (PostgreSQL, broker, one worker) for the whole binary;
 * each test uses accounts of its own. */
#include "it_e2e_common.h"

#include "handlers/handler.h"

/* ---- the shapes of §6 (and of what the contract leaves to Tally) ---------- */

#define PAYMENT                                                                                    \
    "id:s external_id:s amount:i currency:s status:s amount_refunded:i description:s? "            \
    "metadata:o created_at:t updated_at:t"
#define REFUND     "id:s payment_id:s amount:i created_at:t"
#define ALLOCATION "party:s basis_points:i amount:i"
#define SHARE_ROW                                                                                  \
    "id:s payment_id:s kind:s refund_id:s? party:s basis_points:i amount:i currency:s "            \
    "created_at:t"
#define BALANCE  "currency:s available:i pending_payouts:i paid_out:i"
#define PAYOUT   "id:s amount:i currency:s status:s route_id:s? description:s? created_at:t"
#define ROUTE    "id:s kind:s destination:s currency:s? is_default:b created_at:t updated_at:t"
#define SETTINGS "default_currency:s payout_schedule:s min_payout_amount:i statement_descriptor:s?"
#define CODE                                                                                       \
    "id:s code:s amount:i? currency:s? max_redemptions:i redeemed_count:i status:s "               \
    "expires_at:t? revoked_at:t? created_at:t"
#define REDEMPTION "id:s redeemer:s? redeemed_at:t"
#define AGENT      "id:s agent_id:s role:s? share_basis_points:i linked_at:t updated_at:t"
#define AUDIT_ROW  "id:s request_id:s type:s status:s error_code:s? replayed:b at:t"

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

/* The single object `name` of an ok answer, checked against shape. */
static const json_t *one(const json_t *answer, const char *name, const char *shape)
{
    const json_t *res = e2e_ok(answer);
    char top[64];
    snprintf(top, sizeof(top), "%s:o", name);
    e2e_shape(res, top);
    const json_t *o = json_object_get(res, name);
    e2e_shape(o, shape);
    return o;
}

/* The data of an ok list answer: {"data", "has_more"} exactly, n items of
 * item_shape, has_more as given. */
static const json_t *page(const json_t *answer, const char *item_shape, size_t n, bool has_more)
{
    const json_t *res = e2e_ok(answer);
    e2e_shape(res, "data:a has_more:b");
    const json_t *data = json_object_get(res, "data");
    if (json_array_size(data) != n) {
        char *dump = json_dumps(res, JSON_COMPACT);
        fail_msg("expected %zu items, got %s", n, dump);
    }
    assert_int_equal(json_is_true(json_object_get(res, "has_more")), has_more);
    size_t i;
    const json_t *item;
    json_array_foreach(data, i, item) e2e_shape(item, item_shape);
    return data;
}

static const char *item_id(const json_t *data, size_t i)
{
    return e2e_str(json_array_get(data, i), "id", NULL);
}

static void assert_prefix(const char *s, const char *prefix)
{
    assert_non_null(s);
    if (strncmp(s, prefix, strlen(prefix)) != 0)
        fail_msg("\"%s\" lacks the prefix %s", s, prefix);
}

/* Copies a string member (answers stay alive, but ids read better copied). */
static void copy(char *dst, size_t size, const char *src)
{
    assert_non_null(src);
    snprintf(dst, size, "%s", src);
}

/* Records a payment and returns its id in id. */
static void record(e2e_t *e, const char *acct, const char *ext, int64_t amount,
                   const char *currency, const char *status, char *id, size_t size)
{
    const json_t *p =
        one(e2e_call(e, acct, "payment.record",
                     "{'external_id':'%s','amount':%lld,'currency':'%s','status':'%s'}", ext,
                     (long long)amount, currency, status),
            "payment", PAYMENT);
    assert_string_equal(e2e_str(p, "status", NULL), status);
    if (id != NULL)
        copy(id, size, e2e_str(p, "id", NULL));
}

/* ---- payments -------------------------------------------------------------- */

static void test_payment_record(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_e2e_pay";
    const json_t *r =
        e2e_call(e, A, "payment.record",
                 "{'external_id':'pi_1','amount':1999,'currency':'usd',"
                 "'description':'Order #1','metadata':{'order':'1','channel':'web'}}");
    const json_t *p = one(r, "payment", PAYMENT);
    assert_prefix(e2e_str(p, "id", NULL), "pay_");
    assert_string_equal(e2e_str(p, "external_id", NULL), "pi_1");
    assert_int_equal(e2e_int(p, "amount", NULL), 1999);
    assert_string_equal(e2e_str(p, "currency", NULL), "usd");
    assert_string_equal(e2e_str(p, "status", NULL), "succeeded"); /* the default */
    assert_int_equal(e2e_int(p, "amount_refunded", NULL), 0);
    assert_string_equal(e2e_str(p, "description", NULL), "Order #1");
    assert_string_equal(e2e_str(p, "metadata", "channel"), "web");
    assert_int_equal(json_object_size(json_object_get(p, "metadata")), 2);

    /* Without description and metadata: null and {}. */
    p = one(e2e_call(e, A, "payment.record",
                     "{'external_id':'pi_2','amount':1000000000000000,'currency':'eur',"
                     "'status':'pending'}"),
            "payment", PAYMENT);
    assert_true(json_is_null(json_object_get(p, "description")));
    assert_int_equal(json_object_size(json_object_get(p, "metadata")), 0);
    assert_int_equal(e2e_int(p, "amount", NULL), 1000000000000000LL);

    /* The same external_id again: conflict, stored, and replayed as such. */
    r = e2e_call(e, A, "payment.record", "{'external_id':'pi_1','amount':5,'currency':'usd'}");
    e2e_err(r, "conflict", "external_id");
    e2e_err(e2e_again(e, A, "payment.record", r), "conflict", "external_id");
    /* The same id with another payload: idempotency_conflict, not stored. */
    e2e_err(e2e_call_id(e, A, e->last_id, 2, false, "payment.record",
                        "{\"external_id\":\"pi_1\",\"amount\":6,\"currency\":\"usd\"}"),
            "idempotency_conflict", "id");

    /* Validation names the field. */
    E2E_ERR(e, A, "invalid_request", "amount", "payment.record",
            "{'external_id':'pi_3','amount':0,'currency':'usd'}");
    E2E_ERR(e, A, "invalid_request", "amount", "payment.record",
            "{'external_id':'pi_3','amount':1000000000000001,'currency':'usd'}");
    E2E_ERR(e, A, "invalid_request", "amount", "payment.record",
            "{'external_id':'pi_3','amount':19.99,'currency':'usd'}");
    E2E_ERR(e, A, "invalid_request", "currency", "payment.record",
            "{'external_id':'pi_3','amount':1,'currency':'USD'}");
    E2E_ERR(e, A, "invalid_request", "external_id", "payment.record",
            "{'external_id':'','amount':1,'currency':'usd'}");
    E2E_ERR(e, A, "invalid_request", "status", "payment.record",
            "{'external_id':'pi_3','amount':1,'currency':'usd','status':'refunded'}");
    E2E_ERR(e, A, "invalid_request", "metadata.order", "payment.record",
            "{'external_id':'pi_3','amount':1,'currency':'usd','metadata':{'order':1}}");
    E2E_ERR(e, A, "invalid_request", "tip", "payment.record",
            "{'external_id':'pi_3','amount':1,'currency':'usd','tip':5}");
    E2E_ERR(e, A, "invalid_request", "currency", "payment.record",
            "{'external_id':'pi_3','amount':1}");
    /* Nothing of the refused ones was stored. */
    assert_int_equal(th_pg_i64(e->pg, "postgres",
                               "SELECT count(*) FROM stripe_payments WHERE account_id = "
                               "'acct_e2e_pay'"),
                     2);
}

static void test_payment_update_status(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_e2e_status", *B = "acct_e2e_status_b";
    char pend[64], fail[64], other[64];
    record(e, A, "pi_p", 700, "usd", "pending", pend, sizeof(pend));
    record(e, A, "pi_f", 800, "usd", "pending", fail, sizeof(fail));
    record(e, B, "pi_b", 900, "usd", "pending", other, sizeof(other));

    const json_t *p = one(
        e2e_call(e, A, "payment.update_status", "{'payment_id':'%s','status':'succeeded'}", pend),
        "payment", PAYMENT);
    assert_string_equal(e2e_str(p, "id", NULL), pend);
    assert_string_equal(e2e_str(p, "status", NULL), "succeeded");
    /* The same status again is a no-op. */
    p = one(
        e2e_call(e, A, "payment.update_status", "{'payment_id':'%s','status':'succeeded'}", pend),
        "payment", PAYMENT);
    assert_string_equal(e2e_str(p, "status", NULL), "succeeded");
    p = one(e2e_call(e, A, "payment.update_status", "{'payment_id':'%s','status':'failed'}", fail),
            "payment", PAYMENT);
    assert_string_equal(e2e_str(p, "status", NULL), "failed");

    /* Anything else is a conflict. */
    E2E_ERR(e, A, "conflict", "status", "payment.update_status",
            "{'payment_id':'%s','status':'pending'}", pend);
    E2E_ERR(e, A, "conflict", "status", "payment.update_status",
            "{'payment_id':'%s','status':'succeeded'}", fail);
    /* Another tenant's payment is not found, and stays untouched. */
    E2E_ERR(e, A, "not_found", "payment_id", "payment.update_status",
            "{'payment_id':'%s','status':'succeeded'}", other);
    E2E_ERR(e, A, "invalid_request", "status", "payment.update_status",
            "{'payment_id':'%s','status':'refunded'}", pend);
    p = one(e2e_call(e, B, "payment.get", "{'payment_id':'%s'}", other), "payment", PAYMENT);
    assert_string_equal(e2e_str(p, "status", NULL), "pending");
}

static void test_payment_refund(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_e2e_refund", *B = "acct_e2e_refund_b";
    char pay[64], pend[64], other[64];
    record(e, A, "pi_r", 1999, "usd", "succeeded", pay, sizeof(pay));
    record(e, A, "pi_rp", 500, "usd", "pending", pend, sizeof(pend));
    record(e, B, "pi_rb", 500, "usd", "succeeded", other, sizeof(other));

    const json_t *res =
        e2e_ok(e2e_call(e, A, "payment.refund", "{'payment_id':'%s','amount':500}", pay));
    e2e_shape(res, "payment:o refund:o");
    const json_t *p = json_object_get(res, "payment"), *re = json_object_get(res, "refund");
    e2e_shape(p, PAYMENT);
    e2e_shape(re, REFUND);
    assert_prefix(e2e_str(re, "id", NULL), "re_");
    assert_string_equal(e2e_str(re, "payment_id", NULL), pay);
    assert_int_equal(e2e_int(re, "amount", NULL), 500);
    assert_int_equal(e2e_int(p, "amount_refunded", NULL), 500);
    assert_string_equal(e2e_str(p, "status", NULL), "succeeded");

    /* Beyond the unrefunded 1499: conflict on amount. */
    const json_t *r = e2e_call(e, A, "payment.refund", "{'payment_id':'%s','amount':1500}", pay);
    e2e_err(r, "conflict", "amount");
    e2e_err(e2e_again(e, A, "payment.refund", r), "conflict", "amount");

    /* Without amount: the rest, and the payment is refunded. */
    res = e2e_ok(e2e_call(e, A, "payment.refund", "{'payment_id':'%s'}", pay));
    assert_int_equal(e2e_int(res, "refund", "amount"), 1499);
    assert_int_equal(e2e_int(res, "payment", "amount_refunded"), 1999);
    assert_string_equal(e2e_str(res, "payment", "status"), "refunded");

    /* Only succeeded payments. */
    E2E_ERR(e, A, "conflict", NULL, "payment.refund", "{'payment_id':'%s'}", pay);
    E2E_ERR(e, A, "conflict", NULL, "payment.refund", "{'payment_id':'%s','amount':1}", pend);
    E2E_ERR(e, A, "not_found", "payment_id", "payment.refund", "{'payment_id':'%s'}", other);
    E2E_ERR(e, A, "not_found", "payment_id", "payment.refund", "{'payment_id':'pay_nope'}");
    E2E_ERR(e, A, "invalid_request", "amount", "payment.refund", "{'payment_id':'%s','amount':-5}",
            pay);
    /* Two refunds in the table, summing to the amount. */
    assert_int_equal(th_pg_i64(e->pg, "postgres",
                               "SELECT sum(amount) FROM stripe_payment_refunds WHERE account_id = "
                               "'acct_e2e_refund'"),
                     1999);
    /* B's payment is untouched. */
    assert_int_equal(e2e_int(e2e_ok(e2e_call(e, B, "payment.get", "{'payment_id':'%s'}", other)),
                             "payment", "amount_refunded"),
                     0);
}

static void test_payment_get(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_e2e_get", *B = "acct_e2e_get_b";
    char pay[64], other[64];
    record(e, A, "pi_g", 1234, "gbp", "succeeded", pay, sizeof(pay));
    record(e, B, "pi_g", 1234, "gbp", "succeeded", other, sizeof(other));
    const json_t *p =
        one(e2e_call(e, A, "payment.get", "{'payment_id':'%s'}", pay), "payment", PAYMENT);
    assert_string_equal(e2e_str(p, "id", NULL), pay);
    assert_string_equal(e2e_str(p, "currency", NULL), "gbp");
    /* Another tenant's payment and a missing one answer the same. */
    const json_t *r1 = e2e_call(e, A, "payment.get", "{'payment_id':'%s'}", other);
    const json_t *r2 = e2e_call(e, A, "payment.get", "{'payment_id':'pay_doesnotexist'}");
    e2e_err(r1, "not_found", "payment_id");
    e2e_err(r2, "not_found", "payment_id");
    assert_true(json_equal(json_object_get(r1, "error"), json_object_get(r2, "error")));
    /* not_found is stored: the same request again replays it. */
    e2e_err(e2e_again(e, A, "payment.get", r2), "not_found", "payment_id");
    E2E_ERR(e, A, "invalid_request", "payment_id", "payment.get", "{'payment_id':'pay x'}");
    E2E_ERR(e, A, "invalid_request", "payment_id", "payment.get", "{}");
}

static void test_payment_list_paging(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_e2e_list", *B = "acct_e2e_list_b";
    char ids[5][64], ext[16], other[64];
    for (int i = 0; i < 5; i++) {
        snprintf(ext, sizeof(ext), "pi_l%d", i);
        record(e, A, ext, 100 + i, "usd", i == 2 ? "pending" : "succeeded", ids[i], sizeof(ids[i]));
    }
    record(e, B, "pi_lb", 100, "usd", "succeeded", other, sizeof(other));

    /* Newest first, two at a time. */
    const json_t *d = page(e2e_call(e, A, "payment.list", "{'limit':2}"), PAYMENT, 2, true);
    assert_string_equal(item_id(d, 0), ids[4]);
    assert_string_equal(item_id(d, 1), ids[3]);
    d = page(e2e_call(e, A, "payment.list", "{'limit':2,'starting_after':'%s'}", ids[3]), PAYMENT,
             2, true);
    assert_string_equal(item_id(d, 0), ids[2]);
    assert_string_equal(item_id(d, 1), ids[1]);
    d = page(e2e_call(e, A, "payment.list", "{'limit':2,'starting_after':'%s'}", ids[1]), PAYMENT,
             1, false);
    assert_string_equal(item_id(d, 0), ids[0]);
    d = page(e2e_call(e, A, "payment.list", "{'starting_after':'%s'}", ids[0]), PAYMENT, 0, false);
    /* Default limit 20: all five; a status filter. */
    page(e2e_call(e, A, "payment.list", "{}"), PAYMENT, 5, false);
    d = page(e2e_call(e, A, "payment.list", "{'status':'pending'}"), PAYMENT, 1, false);
    assert_string_equal(item_id(d, 0), ids[2]);
    /* Only the account's own payments. */
    d = page(e2e_call(e, B, "payment.list", "{}"), PAYMENT, 1, false);
    assert_string_equal(item_id(d, 0), other);

    E2E_ERR(e, A, "not_found", "starting_after", "payment.list", "{'starting_after':'%s'}", other);
    E2E_ERR(e, A, "invalid_request", "limit", "payment.list", "{'limit':101}");
    E2E_ERR(e, A, "invalid_request", "limit", "payment.list", "{'limit':0}");
    E2E_ERR(e, A, "invalid_request", "status", "payment.list", "{'status':'lost'}");
}

/* ---- shares ------------------------------------------------------------------- */

static void test_share_allocate_and_list(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_e2e_share", *B = "acct_e2e_share_b";
    char pay[64], one_unit[64], pend[64], other[64];
    record(e, A, "pi_s", 100, "usd", "succeeded", pay, sizeof(pay));
    record(e, A, "pi_s1", 1, "usd", "succeeded", one_unit, sizeof(one_unit));
    record(e, A, "pi_sp", 100, "usd", "pending", pend, sizeof(pend));
    record(e, B, "pi_sb", 100, "usd", "succeeded", other, sizeof(other));

    const json_t *res = e2e_ok(e2e_call(e, A, "share.allocate",
                                        "{'payment_id':'%s','shares':[{'party':'a','basis_points':"
                                        "3333},{'party':'b','basis_points':3333},{'party':'c',"
                                        "'basis_points':3334}]}",
                                        pay));
    e2e_shape(res, "payment_id:s currency:s net_amount:i allocations:a");
    assert_string_equal(e2e_str(res, "payment_id", NULL), pay);
    assert_string_equal(e2e_str(res, "currency", NULL), "usd");
    assert_int_equal(e2e_int(res, "net_amount", NULL), 100);
    const json_t *al = json_object_get(res, "allocations");
    assert_int_equal(json_array_size(al), 3);
    const int64_t want[] = {33, 33, 34};
    const char *parties[] = {"a", "b", "c"};
    for (size_t i = 0; i < 3; i++) {
        e2e_shape(json_array_get(al, i), ALLOCATION);
        assert_string_equal(e2e_str(json_array_get(al, i), "party", NULL), parties[i]);
        assert_int_equal(e2e_int(json_array_get(al, i), "amount", NULL), want[i]);
    }
    /* One unit split 50/50: the tie goes to the earlier share. */
    res = e2e_ok(e2e_call(e, A, "share.allocate",
                          "{'payment_id':'%s','shares':[{'party':'x','basis_points':5000},"
                          "{'party':'y','basis_points':5000}]}",
                          one_unit));
    al = json_object_get(res, "allocations");
    assert_int_equal(e2e_int(json_array_get(al, 0), "amount", NULL), 1);
    assert_int_equal(e2e_int(json_array_get(al, 1), "amount", NULL), 0);

    /* Allocated once only; only succeeded payments; not another tenant's. */
    const json_t *r =
        e2e_call(e, A, "share.allocate",
                 "{'payment_id':'%s','shares':[{'party':'a','basis_points':10000}]}", pay);
    e2e_err(r, "conflict", "payment_id");
    e2e_err(e2e_again(e, A, "share.allocate", r), "conflict", "payment_id");
    E2E_ERR(e, A, "conflict", "payment_id", "share.allocate",
            "{'payment_id':'%s','shares':[{'party':'a','basis_points':10000}]}", pend);
    E2E_ERR(e, A, "not_found", "payment_id", "share.allocate",
            "{'payment_id':'%s','shares':[{'party':'a','basis_points':10000}]}", other);
    E2E_ERR(e, A, "invalid_request", "shares", "share.allocate",
            "{'payment_id':'%s','shares':[{'party':'a','basis_points':5000},"
            "{'party':'b','basis_points':4999}]}",
            pend);
    E2E_ERR(e, A, "invalid_request", "shares[1].basis_points", "share.allocate",
            "{'payment_id':'%s','shares':[{'party':'a','basis_points':10000},"
            "{'party':'b','basis_points':0}]}",
            pend);
    E2E_ERR(e, A, "invalid_request", "shares", "share.allocate", "{'payment_id':'%s','shares':[]}",
            pend);

    /* A refund of an allocated payment appends reversals split by the same
     * rule: -10 → -3, -3, -4 (the largest remainder, 0.334, gets the unit). */
    e2e_ok(e2e_call(e, A, "payment.refund", "{'payment_id':'%s','amount':10}", pay));
    const json_t *d =
        page(e2e_call(e, A, "share.list", "{'payment_id':'%s'}", pay), SHARE_ROW, 6, false);
    int64_t sum = 0, reversal = 0;
    for (size_t i = 0; i < 6; i++) {
        const json_t *row = json_array_get(d, i);
        const char *kind = e2e_str(row, "kind", NULL);
        assert_prefix(e2e_str(row, "id", NULL), "sh_");
        assert_string_equal(e2e_str(row, "payment_id", NULL), pay);
        assert_string_equal(e2e_str(row, "currency", NULL), "usd");
        /* Newest first: the three reversals, then the three allocations. */
        assert_string_equal(kind, i < 3 ? "reversal" : "allocation");
        assert_int_equal(json_is_null(json_object_get(row, "refund_id")), i >= 3);
        if (i < 3) {
            assert_prefix(e2e_str(row, "refund_id", NULL), "re_");
            reversal += e2e_int(row, "amount", NULL);
            if (strcmp(e2e_str(row, "party", NULL), "c") == 0)
                assert_int_equal(e2e_int(row, "amount", NULL), -4);
            else
                assert_int_equal(e2e_int(row, "amount", NULL), -3);
        }
        sum += e2e_int(row, "amount", NULL);
    }
    assert_int_equal(reversal, -10);
    assert_int_equal(sum, 90); /* the net amount */
    /* Filters and paging. */
    d = page(e2e_call(e, A, "share.list", "{'party':'c'}"), SHARE_ROW, 2, false);
    d = page(e2e_call(e, A, "share.list", "{'limit':4}"), SHARE_ROW, 4, true);
    page(e2e_call(e, A, "share.list", "{'limit':4,'starting_after':'%s'}", item_id(d, 3)),
         SHARE_ROW, 4, false); /* 6 rows of pay + 2 of one_unit */
    page(e2e_call(e, B, "share.list", "{}"), SHARE_ROW, 0, false);
    E2E_ERR(e, A, "invalid_request", "limit", "share.list", "{'limit':0}");
    E2E_ERR(e, A, "not_found", "starting_after", "share.list", "{'starting_after':'sh_nope'}");
}

/* ---- balance and payouts --------------------------------------------------------- */

static void expect_balance(e2e_t *e, const char *acct, const char *currency, int64_t available,
                           int64_t pending, int64_t paid)
{
    const json_t *d = json_object_get(
        e2e_ok(e2e_call(e, acct, "balance.get", "{'currency':'%s'}", currency)), "data");
    assert_int_equal(json_array_size(d), 1);
    const json_t *b = json_array_get(d, 0);
    e2e_shape(b, BALANCE);
    assert_string_equal(e2e_str(b, "currency", NULL), currency);
    assert_int_equal(e2e_int(b, "available", NULL), available);
    assert_int_equal(e2e_int(b, "pending_payouts", NULL), pending);
    assert_int_equal(e2e_int(b, "paid_out", NULL), paid);
}

static void test_balance_get(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_e2e_bal";
    /* No money yet: one zero row in the default currency. */
    const json_t *res = e2e_ok(e2e_call(e, A, "balance.get", "{}"));
    e2e_shape(res, "data:a");
    assert_int_equal(json_array_size(json_object_get(res, "data")), 1);
    e2e_shape(json_array_get(json_object_get(res, "data"), 0), BALANCE);
    expect_balance(e, A, "usd", 0, 0, 0);

    char pay[64];
    record(e, A, "pi_b1", 10000, "usd", "succeeded", pay, sizeof(pay));
    record(e, A, "pi_b2", 5000, "usd", "pending", NULL, 0); /* not available yet */
    record(e, A, "pi_b3", 700, "eur", "succeeded", NULL, 0);
    record(e, A, "pi_b4", 300, "eur", "failed", NULL, 0);
    e2e_ok(e2e_call(e, A, "payment.refund", "{'payment_id':'%s','amount':1000}", pay));

    /* One row per currency, by currency. */
    const json_t *d = json_object_get(e2e_ok(e2e_call(e, A, "balance.get", "{}")), "data");
    assert_int_equal(json_array_size(d), 2);
    assert_string_equal(e2e_str(json_array_get(d, 0), "currency", NULL), "eur");
    assert_int_equal(e2e_int(json_array_get(d, 0), "available", NULL), 700);
    assert_string_equal(e2e_str(json_array_get(d, 1), "currency", NULL), "usd");
    assert_int_equal(e2e_int(json_array_get(d, 1), "available", NULL), 9000);
    expect_balance(e, A, "gbp", 0, 0, 0);

    E2E_ERR(e, A, "invalid_request", "currency", "balance.get", "{'currency':'USD'}");
    E2E_ERR(e, A, "invalid_request", "currency", "balance.get", "{'currency':'usdx'}");
}

static void test_payouts(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_e2e_po", *B = "acct_e2e_po_b";
    record(e, A, "pi_po", 10000, "usd", "succeeded", NULL, 0);
    record(e, B, "pi_po", 10000, "usd", "succeeded", NULL, 0);

    const json_t *po =
        one(e2e_call(e, A, "payout.create",
                     "{'amount':2500,'currency':'usd','description':'Weekly payout'}"),
            "payout", PAYOUT);
    char id1[64];
    copy(id1, sizeof(id1), e2e_str(po, "id", NULL));
    assert_prefix(id1, "po_");
    assert_int_equal(e2e_int(po, "amount", NULL), 2500);
    assert_string_equal(e2e_str(po, "status", NULL), "pending");
    assert_true(json_is_null(json_object_get(po, "route_id"))); /* no default route */
    assert_string_equal(e2e_str(po, "description", NULL), "Weekly payout");
    expect_balance(e, A, "usd", 7500, 2500, 0);

    /* Beyond available: insufficient_funds, stored and replayed. */
    const json_t *r = e2e_call(e, A, "payout.create", "{'amount':7501,'currency':'usd'}");
    e2e_err(r, "insufficient_funds", "amount");
    e2e_err(e2e_again(e, A, "payout.create", r), "insufficient_funds", "amount");
    /* Below min_payout_amount (100 by default): invalid_request on amount. */
    E2E_ERR(e, A, "invalid_request", "amount", "payout.create", "{'amount':99,'currency':'usd'}");
    E2E_ERR(e, A, "not_found", "route_id", "payout.create",
            "{'amount':100,'currency':'usd','route_id':'rt_nope'}");
    E2E_ERR(e, A, "insufficient_funds", "amount", "payout.create",
            "{'amount':100,'currency':'eur'}");
    E2E_ERR(e, A, "invalid_request", "currency", "payout.create", "{'amount':100}");
    expect_balance(e, A, "usd", 7500, 2500, 0);

    /* pending → paid; again is a no-op; paid → failed is a conflict. */
    po = one(e2e_call(e, A, "payout.update_status", "{'payout_id':'%s','status':'paid'}", id1),
             "payout", PAYOUT);
    assert_string_equal(e2e_str(po, "status", NULL), "paid");
    expect_balance(e, A, "usd", 7500, 0, 2500);
    one(e2e_call(e, A, "payout.update_status", "{'payout_id':'%s','status':'paid'}", id1), "payout",
        PAYOUT);
    E2E_ERR(e, A, "conflict", "status", "payout.update_status",
            "{'payout_id':'%s','status':'failed'}", id1);
    E2E_ERR(e, A, "invalid_request", "status", "payout.update_status",
            "{'payout_id':'%s','status':'pending'}", id1);

    /* A failed payout gives its amount back. */
    po = one(e2e_call(e, A, "payout.create", "{'amount':7500,'currency':'usd'}"), "payout", PAYOUT);
    char id2[64];
    copy(id2, sizeof(id2), e2e_str(po, "id", NULL));
    expect_balance(e, A, "usd", 0, 7500, 2500);
    E2E_ERR(e, A, "insufficient_funds", "amount", "payout.create",
            "{'amount':100,'currency':'usd'}");
    one(e2e_call(e, A, "payout.update_status", "{'payout_id':'%s','status':'failed'}", id2),
        "payout", PAYOUT);
    expect_balance(e, A, "usd", 7500, 0, 2500);

    /* get: own ones only. */
    po = one(e2e_call(e, A, "payout.get", "{'payout_id':'%s'}", id1), "payout", PAYOUT);
    assert_string_equal(e2e_str(po, "status", NULL), "paid");
    E2E_ERR(e, B, "not_found", "payout_id", "payout.get", "{'payout_id':'%s'}", id1);
    E2E_ERR(e, B, "not_found", "payout_id", "payout.update_status",
            "{'payout_id':'%s','status':'paid'}", id2);

    /* list: newest first, status filter, paging. */
    const json_t *d = page(e2e_call(e, A, "payout.list", "{}"), PAYOUT, 2, false);
    assert_string_equal(item_id(d, 0), id2);
    assert_string_equal(item_id(d, 1), id1);
    d = page(e2e_call(e, A, "payout.list", "{'status':'paid'}"), PAYOUT, 1, false);
    assert_string_equal(item_id(d, 0), id1);
    d = page(e2e_call(e, A, "payout.list", "{'limit':1}"), PAYOUT, 1, true);
    d = page(e2e_call(e, A, "payout.list", "{'limit':1,'starting_after':'%s'}", id2), PAYOUT, 1,
             false);
    assert_string_equal(item_id(d, 0), id1);
    page(e2e_call(e, B, "payout.list", "{}"), PAYOUT, 0, false);
    E2E_ERR(e, A, "invalid_request", "status", "payout.list", "{'status':'sent'}");
    E2E_ERR(e, B, "not_found", "starting_after", "payout.list", "{'starting_after':'%s'}", id1);
}

/* ---- routes --------------------------------------------------------------------- */

static void test_routes(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_e2e_rt", *B = "acct_e2e_rt_b";
    const json_t *rt = one(e2e_call(e, A, "route.upsert",
                                    "{'kind':'bank_account','destination':'ba_123',"
                                    "'currency':'usd','is_default':true}"),
                           "route", ROUTE);
    char r1[64], r2[64];
    copy(r1, sizeof(r1), e2e_str(rt, "id", NULL));
    assert_prefix(r1, "rt_");
    assert_string_equal(e2e_str(rt, "kind", NULL), "bank_account");
    assert_string_equal(e2e_str(rt, "destination", NULL), "ba_123");
    assert_string_equal(e2e_str(rt, "currency", NULL), "usd");
    assert_true(json_is_true(json_object_get(rt, "is_default")));

    /* A new default demotes the old one. */
    rt = one(e2e_call(e, A, "route.upsert",
                      "{'kind':'stripe_connect','destination':'acct_1Abc','is_default':true}"),
             "route", ROUTE);
    copy(r2, sizeof(r2), e2e_str(rt, "id", NULL));
    assert_true(json_is_null(json_object_get(rt, "currency")));
    rt = one(e2e_call(e, A, "route.get", "{'route_id':'%s'}", r1), "route", ROUTE);
    assert_true(json_is_false(json_object_get(rt, "is_default")));

    /* Update by route_id: what is absent keeps its value. */
    rt = one(e2e_call(e, A, "route.upsert",
                      "{'route_id':'%s','kind':'bank_account','destination':'ba_456'}", r1),
             "route", ROUTE);
    assert_string_equal(e2e_str(rt, "id", NULL), r1);
    assert_string_equal(e2e_str(rt, "destination", NULL), "ba_456");
    assert_string_equal(e2e_str(rt, "currency", NULL), "usd");
    assert_true(json_is_false(json_object_get(rt, "is_default")));

    const json_t *d = page(e2e_call(e, A, "route.list", "{}"), ROUTE, 2, false);
    assert_string_equal(item_id(d, 0), r2);
    assert_string_equal(item_id(d, 1), r1);
    d = page(e2e_call(e, A, "route.list", "{'limit':1}"), ROUTE, 1, true);
    page(e2e_call(e, B, "route.list", "{}"), ROUTE, 0, false);

    E2E_ERR(e, A, "invalid_request", "kind", "route.upsert", "{'kind':'paypal','destination':'x'}");
    E2E_ERR(e, A, "invalid_request", "destination", "route.upsert",
            "{'kind':'bank_account','destination':''}");
    E2E_ERR(e, A, "not_found", "route_id", "route.upsert",
            "{'route_id':'rt_nope','kind':'bank_account','destination':'x'}");
    E2E_ERR(e, B, "not_found", "route_id", "route.upsert",
            "{'route_id':'%s','kind':'bank_account','destination':'stolen'}", r1);
    E2E_ERR(e, B, "not_found", "route_id", "route.get", "{'route_id':'%s'}", r1);
    E2E_ERR(e, B, "not_found", "route_id", "route.delete", "{'route_id':'%s'}", r1);
    E2E_ERR(e, A, "invalid_request", "limit", "route.list", "{'limit':500}");

    /* Payouts take the default route; a route with a pending payout stays. */
    record(e, A, "pi_rt", 10000, "usd", "succeeded", NULL, 0);
    const json_t *po =
        one(e2e_call(e, A, "payout.create", "{'amount':1000,'currency':'usd'}"), "payout", PAYOUT);
    assert_string_equal(e2e_str(po, "route_id", NULL), r2);
    char poid[64];
    copy(poid, sizeof(poid), e2e_str(po, "id", NULL));
    E2E_ERR(e, A, "not_found", "route_id", "payout.create",
            "{'amount':1000,'currency':'usd','route_id':'%s'}", "rt_elsewhere");
    /* r1 takes usd only. */
    E2E_ERR(e, A, "conflict", "route_id", "payout.create",
            "{'amount':1000,'currency':'eur','route_id':'%s'}", r1);
    const json_t *r = e2e_call(e, A, "route.delete", "{'route_id':'%s'}", r2);
    e2e_err(r, "conflict", "route_id");
    e2e_err(e2e_again(e, A, "route.delete", r), "conflict", "route_id");

    one(e2e_call(e, A, "payout.update_status", "{'payout_id':'%s','status':'paid'}", poid),
        "payout", PAYOUT);
    const json_t *res = e2e_ok(e2e_call(e, A, "route.delete", "{'route_id':'%s'}", r2));
    e2e_shape(res, "route:o deleted:b");
    e2e_shape(json_object_get(res, "route"), ROUTE);
    assert_string_equal(e2e_str(res, "route", "id"), r2);
    assert_true(json_is_true(json_object_get(res, "deleted")));
    /* Deleted: gone from get, list, delete and payouts; the account has no default now. */
    E2E_ERR(e, A, "not_found", "route_id", "route.get", "{'route_id':'%s'}", r2);
    E2E_ERR(e, A, "not_found", "route_id", "route.delete", "{'route_id':'%s'}", r2);
    E2E_ERR(e, A, "not_found", "route_id", "payout.create",
            "{'amount':100,'currency':'usd','route_id':'%s'}", r2);
    page(e2e_call(e, A, "route.list", "{}"), ROUTE, 1, false);
    po = one(e2e_call(e, A, "payout.create", "{'amount':100,'currency':'usd'}"), "payout", PAYOUT);
    assert_true(json_is_null(json_object_get(po, "route_id")));
    /* The paid payout still names its route. */
    po = one(e2e_call(e, A, "payout.get", "{'payout_id':'%s'}", poid), "payout", PAYOUT);
    assert_string_equal(e2e_str(po, "route_id", NULL), r2);
}

/* ---- settings ------------------------------------------------------------------------ */

static void test_settings(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_e2e_set";
    const json_t *s = one(e2e_call(e, A, "settings.get", "{}"), "settings", SETTINGS);
    assert_string_equal(e2e_str(s, "default_currency", NULL), "usd");
    assert_string_equal(e2e_str(s, "payout_schedule", NULL), "manual");
    assert_int_equal(e2e_int(s, "min_payout_amount", NULL), 100);
    assert_true(json_is_null(json_object_get(s, "statement_descriptor")));

    s = one(e2e_call(e, A, "settings.update",
                     "{'default_currency':'eur','payout_schedule':'weekly',"
                     "'min_payout_amount':500,'statement_descriptor':'TALLY DEMO'}"),
            "settings", SETTINGS);
    assert_string_equal(e2e_str(s, "default_currency", NULL), "eur");
    assert_string_equal(e2e_str(s, "payout_schedule", NULL), "weekly");
    assert_int_equal(e2e_int(s, "min_payout_amount", NULL), 500);
    assert_string_equal(e2e_str(s, "statement_descriptor", NULL), "TALLY DEMO");
    /* A subset changes only itself; null clears the descriptor. */
    s = one(e2e_call(e, A, "settings.update", "{'statement_descriptor':null}"), "settings",
            SETTINGS);
    assert_true(json_is_null(json_object_get(s, "statement_descriptor")));
    assert_string_equal(e2e_str(s, "payout_schedule", NULL), "weekly");
    s = one(e2e_call(e, A, "settings.get", "{}"), "settings", SETTINGS);
    assert_string_equal(e2e_str(s, "default_currency", NULL), "eur");
    assert_int_equal(e2e_int(s, "min_payout_amount", NULL), 500);
    /* The new default currency names the empty balance, the minimum binds payouts. */
    const json_t *d = json_object_get(e2e_ok(e2e_call(e, A, "balance.get", "{}")), "data");
    assert_string_equal(e2e_str(json_array_get(d, 0), "currency", NULL), "eur");
    E2E_ERR(e, A, "invalid_request", "amount", "payout.create", "{'amount':499,'currency':'eur'}");

    E2E_ERR(e, A, "invalid_request", "x", "settings.get", "{'x':1}");
    E2E_ERR(e, A, "invalid_request", "statement_descriptor", "settings.update",
            "{'statement_descriptor':'12345'}");
    E2E_ERR(e, A, "invalid_request", "statement_descriptor", "settings.update",
            "{'statement_descriptor':'ABCD'}");
    E2E_ERR(e, A, "invalid_request", "statement_descriptor", "settings.update",
            "{'statement_descriptor':'TALLY*DEMO'}");
    E2E_ERR(e, A, "invalid_request", "payout_schedule", "settings.update",
            "{'payout_schedule':'hourly'}");
    E2E_ERR(e, A, "invalid_request", "min_payout_amount", "settings.update",
            "{'min_payout_amount':0}");
    s = one(e2e_call(e, A, "settings.get", "{}"), "settings", SETTINGS);
    assert_string_equal(e2e_str(s, "payout_schedule", NULL), "weekly");
}

/* ---- purchase codes ------------------------------------------------------------------ */

static void test_codes(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_e2e_code", *B = "acct_e2e_code_b";
    const json_t *c = one(e2e_call(e, A, "code.create",
                                   "{'code':'SPRING-2026','amount':500,'currency':'usd',"
                                   "'max_redemptions':2}"),
                          "code", CODE);
    assert_prefix(e2e_str(c, "id", NULL), "pc_");
    assert_string_equal(e2e_str(c, "code", NULL), "SPRING-2026");
    assert_int_equal(e2e_int(c, "amount", NULL), 500);
    assert_int_equal(e2e_int(c, "max_redemptions", NULL), 2);
    assert_int_equal(e2e_int(c, "redeemed_count", NULL), 0);
    assert_string_equal(e2e_str(c, "status", NULL), "active");
    assert_true(json_is_null(json_object_get(c, "expires_at")));

    /* Generated: XXXX-XXXX-XXXX, no value, one redemption. */
    c = one(e2e_call(e, A, "code.create", "{}"), "code", CODE);
    char gen[32];
    copy(gen, sizeof(gen), e2e_str(c, "code", NULL));
    assert_int_equal(strlen(gen), 14);
    for (int i = 0; i < 14; i++) {
        if (i == 4 || i == 9)
            assert_int_equal(gen[i], '-');
        else
            assert_non_null(strchr("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", gen[i]));
    }
    assert_true(json_is_null(json_object_get(c, "amount")));
    assert_true(json_is_null(json_object_get(c, "currency")));
    assert_int_equal(e2e_int(c, "max_redemptions", NULL), 1);
    /* A past expires_at is refused (a code born expired could never be
     * redeemed); OLD-1 is made with a future one and then expired in the
     * database, as time would. */
    E2E_ERR(e, A, "invalid_request", "expires_at", "code.create",
            "{'code':'OLD-1','expires_at':'2020-01-01T00:00:00Z','max_redemptions':5}");
    c = one(e2e_call(e, A, "code.create",
                     "{'code':'OLD-1','expires_at':'2099-01-01T00:00:00Z','max_redemptions':5}"),
            "code", CODE);
    assert_string_equal(e2e_str(c, "status", NULL), "active");
    th_pg_exec(e->pg, "postgres",
               "UPDATE ppu SET expires_at = '2020-01-01T00:00:00Z' WHERE code = 'OLD-1'");
    c = json_object_get(e2e_ok(e2e_call(e, A, "code.get", "{'code':'OLD-1'}")), "code");
    assert_string_equal(e2e_str(c, "status", NULL), "expired");
    assert_string_equal(e2e_str(c, "expires_at", NULL), "2020-01-01T00:00:00.000Z");
    /* B may use the same code string: codes are per account. */
    one(e2e_call(e, B, "code.create", "{'code':'SPRING-2026'}"), "code", CODE);

    const json_t *r = e2e_call(e, A, "code.create", "{'code':'SPRING-2026'}");
    e2e_err(r, "conflict", "code");
    e2e_err(e2e_again(e, A, "code.create", r), "conflict", "code");
    E2E_ERR(e, A, "invalid_request", "code", "code.create", "{'code':'spring'}");
    E2E_ERR(e, A, "invalid_request", "code", "code.create", "{'code':'ABC'}");
    E2E_ERR(e, A, "invalid_request", "currency", "code.create", "{'amount':100}");
    E2E_ERR(e, A, "invalid_request", "max_redemptions", "code.create", "{'max_redemptions':0}");
    E2E_ERR(e, A, "invalid_request", "expires_at", "code.create",
            "{'expires_at':'2026-02-30T00:00:00Z'}");

    /* Redeem twice, then it is exhausted. */
    const json_t *res =
        e2e_ok(e2e_call(e, A, "code.redeem", "{'code':'SPRING-2026','redeemer':'cust_1'}"));
    e2e_shape(res, "code:o redemption:o");
    e2e_shape(json_object_get(res, "code"), CODE);
    e2e_shape(json_object_get(res, "redemption"), REDEMPTION);
    assert_prefix(e2e_str(res, "redemption", "id"), "red_");
    assert_string_equal(e2e_str(res, "redemption", "redeemer"), "cust_1");
    assert_int_equal(e2e_int(res, "code", "redeemed_count"), 1);
    res = e2e_ok(e2e_call(e, A, "code.redeem", "{'code':'SPRING-2026'}"));
    assert_true(json_is_null(json_object_get(json_object_get(res, "redemption"), "redeemer")));
    assert_int_equal(e2e_int(res, "code", "redeemed_count"), 2);
    assert_string_equal(e2e_str(res, "code", "status"), "exhausted");
    r = e2e_call(e, A, "code.redeem", "{'code':'SPRING-2026','redeemer':'cust_3'}");
    e2e_err(r, "conflict", "code");
    e2e_err(e2e_again(e, A, "code.redeem", r), "conflict", "code");
    E2E_ERR(e, A, "conflict", "code", "code.redeem", "{'code':'OLD-1'}");
    E2E_ERR(e, A, "not_found", "code", "code.redeem", "{'code':'NOPE-NOPE'}");
    E2E_ERR(e, B, "not_found", "code", "code.redeem", "{'code':'%s'}", gen);
    E2E_ERR(e, A, "invalid_request", "redeemer", "code.redeem",
            "{'code':'SPRING-2026','redeemer':''}");

    /* get: the code and its redemptions, newest first. */
    res = e2e_ok(e2e_call(e, A, "code.get", "{'code':'SPRING-2026'}"));
    e2e_shape(res, "code:o redemptions:a");
    e2e_shape(json_object_get(res, "code"), CODE);
    const json_t *reds = json_object_get(res, "redemptions");
    assert_int_equal(json_array_size(reds), 2);
    e2e_shape(json_array_get(reds, 0), REDEMPTION);
    e2e_shape(json_array_get(reds, 1), REDEMPTION);
    assert_true(json_is_null(json_object_get(json_array_get(reds, 0), "redeemer")));
    assert_string_equal(e2e_str(json_array_get(reds, 1), "redeemer", NULL), "cust_1");
    res = e2e_ok(e2e_call(e, A, "code.get", "{'code':'%s'}", gen));
    assert_int_equal(json_array_size(json_object_get(res, "redemptions")), 0);
    E2E_ERR(e, A, "not_found", "code", "code.get", "{'code':'NOPE-NOPE'}");
    E2E_ERR(e, A, "invalid_request", "code", "code.get", "{}");

    /* list: newest first. */
    const json_t *d = page(e2e_call(e, A, "code.list", "{}"), CODE, 3, false);
    assert_string_equal(e2e_str(json_array_get(d, 0), "code", NULL), "OLD-1");
    assert_string_equal(e2e_str(json_array_get(d, 2), "code", NULL), "SPRING-2026");
    d = page(e2e_call(e, A, "code.list", "{'limit':2}"), CODE, 2, true);
    d = page(e2e_call(e, A, "code.list", "{'starting_after':'%s'}", item_id(d, 1)), CODE, 1, false);
    assert_string_equal(e2e_str(json_array_get(d, 0), "code", NULL), "SPRING-2026");
    page(e2e_call(e, B, "code.list", "{}"), CODE, 1, false);
    E2E_ERR(e, A, "invalid_request", "limit", "code.list", "{'limit':101}");

    /* revoke: then no redemption; revoking again keeps the first time. */
    c = one(e2e_call(e, A, "code.revoke", "{'code':'%s'}", gen), "code", CODE);
    assert_string_equal(e2e_str(c, "status", NULL), "revoked");
    char at[32];
    copy(at, sizeof(at), e2e_str(c, "revoked_at", NULL));
    c = one(e2e_call(e, A, "code.revoke", "{'code':'%s'}", gen), "code", CODE);
    assert_string_equal(e2e_str(c, "revoked_at", NULL), at);
    E2E_ERR(e, A, "conflict", "code", "code.redeem", "{'code':'%s'}", gen);
    E2E_ERR(e, A, "not_found", "code", "code.revoke", "{'code':'NOPE-NOPE'}");
    E2E_ERR(e, B, "not_found", "code", "code.revoke", "{'code':'%s'}", gen);
    assert_int_equal(th_pg_i64(e->pg, "postgres",
                               "SELECT count(*) FROM ppu_redemptions WHERE account_id = "
                               "'acct_e2e_code'"),
                     2);
}

/* ---- agents ------------------------------------------------------------------------- */

static void test_agents(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_e2e_ag", *B = "acct_e2e_ag_b";
    const json_t *a = one(e2e_call(e, A, "agent.link",
                                   "{'agent_id':'agent_7','role':'reseller',"
                                   "'share_basis_points':1500}"),
                          "agent", AGENT);
    char id7[64], linked[32];
    copy(id7, sizeof(id7), e2e_str(a, "id", NULL));
    copy(linked, sizeof(linked), e2e_str(a, "linked_at", NULL));
    assert_prefix(id7, "ag_");
    assert_string_equal(e2e_str(a, "agent_id", NULL), "agent_7");
    assert_string_equal(e2e_str(a, "role", NULL), "reseller");
    assert_int_equal(e2e_int(a, "share_basis_points", NULL), 1500);

    /* Linking again updates what is given and keeps the rest and the link. */
    a = one(e2e_call(e, A, "agent.link", "{'agent_id':'agent_7','share_basis_points':2000}"),
            "agent", AGENT);
    assert_string_equal(e2e_str(a, "id", NULL), id7);
    assert_string_equal(e2e_str(a, "linked_at", NULL), linked);
    assert_string_equal(e2e_str(a, "role", NULL), "reseller");
    assert_int_equal(e2e_int(a, "share_basis_points", NULL), 2000);
    a = one(e2e_call(e, A, "agent.link", "{'agent_id':'agent_7','role':null}"), "agent", AGENT);
    assert_true(json_is_null(json_object_get(a, "role")));
    assert_int_equal(e2e_int(a, "share_basis_points", NULL), 2000);
    a = one(e2e_call(e, A, "agent.link", "{'agent_id':'agent_8','role':'support'}"), "agent",
            AGENT);
    assert_int_equal(e2e_int(a, "share_basis_points", NULL), 0);
    one(e2e_call(e, B, "agent.link", "{'agent_id':'agent_7'}"), "agent", AGENT);

    const json_t *d = page(e2e_call(e, A, "agent.list", "{}"), AGENT, 2, false);
    assert_string_equal(e2e_str(json_array_get(d, 0), "agent_id", NULL), "agent_8");
    assert_string_equal(item_id(d, 1), id7);
    d = page(e2e_call(e, A, "agent.list", "{'role':'support'}"), AGENT, 1, false);
    d = page(e2e_call(e, A, "agent.list", "{'limit':1}"), AGENT, 1, true);
    page(e2e_call(e, A, "agent.list", "{'limit':1,'starting_after':'%s'}", item_id(d, 0)), AGENT, 1,
         false);
    E2E_ERR(e, A, "not_found", "starting_after", "agent.list", "{'starting_after':'ag_nope'}");

    E2E_ERR(e, A, "invalid_request", "share_basis_points", "agent.link",
            "{'agent_id':'agent_9','share_basis_points':10001}");
    E2E_ERR(e, A, "invalid_request", "agent_id", "agent.link", "{'agent_id':''}");

    /* unlink answers the link as it was; then it is gone, B's stays. */
    a = one(e2e_call(e, A, "agent.unlink", "{'agent_id':'agent_7'}"), "agent", AGENT);
    assert_string_equal(e2e_str(a, "id", NULL), id7);
    const json_t *r = e2e_call(e, A, "agent.unlink", "{'agent_id':'agent_7'}");
    e2e_err(r, "not_found", "agent_id");
    e2e_err(e2e_again(e, A, "agent.unlink", r), "not_found", "agent_id");
    page(e2e_call(e, A, "agent.list", "{}"), AGENT, 1, false);
    page(e2e_call(e, B, "agent.list", "{}"), AGENT, 1, false);
    /* Linked again: a new link. */
    a = one(e2e_call(e, A, "agent.link", "{'agent_id':'agent_7'}"), "agent", AGENT);
    assert_string_not_equal(e2e_str(a, "id", NULL), id7);
    assert_int_equal(e2e_int(a, "share_basis_points", NULL), 0);
}

/* ---- audit ----------------------------------------------------------------------------- */

static void test_audit_list(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_e2e_aud";
    const json_t *r1 = e2e_call(e, A, "settings.get", "{}");
    e2e_ok(r1);
    const json_t *r2 = e2e_call(e, A, "payment.get", "{'payment_id':'pay_missing'}");
    e2e_err(r2, "not_found", "payment_id");
    e2e_again(e, A, "payment.get", r2);
    const json_t *r4 = e2e_call(e, A, "no.such.type", "{}");
    e2e_err(r4, "unknown_type", "type");

    /* Newest first: the unknown type, the replay, the not_found, the ok. */
    const json_t *d = page(e2e_call(e, A, "audit.list", "{'limit':3}"), AUDIT_ROW, 3, true);
    const json_t *row = json_array_get(d, 0);
    assert_prefix(e2e_str(row, "id", NULL), "log_");
    assert_string_equal(e2e_str(row, "request_id", NULL), e2e_str(r4, "id", NULL));
    assert_string_equal(e2e_str(row, "type", NULL), "no.such.type");
    assert_string_equal(e2e_str(row, "status", NULL), "error");
    assert_string_equal(e2e_str(row, "error_code", NULL), "unknown_type");
    row = json_array_get(d, 1);
    assert_string_equal(e2e_str(row, "request_id", NULL), e2e_str(r2, "id", NULL));
    assert_true(json_is_true(json_object_get(row, "replayed")));
    assert_string_equal(e2e_str(row, "error_code", NULL), "not_found");
    row = json_array_get(d, 2);
    assert_string_equal(e2e_str(row, "request_id", NULL), e2e_str(r2, "id", NULL));
    assert_true(json_is_false(json_object_get(row, "replayed")));
    d = page(e2e_call(e, A, "audit.list", "{'limit':3,'starting_after':'%s'}", item_id(d, 2)),
             AUDIT_ROW, 1, false);
    row = json_array_get(d, 0);
    assert_string_equal(e2e_str(row, "request_id", NULL), e2e_str(r1, "id", NULL));
    assert_string_equal(e2e_str(row, "status", NULL), "ok");
    assert_true(json_is_null(json_object_get(row, "error_code")));
    /* The row's time is the answer's processed_at. */
    assert_string_equal(e2e_str(row, "at", NULL), e2e_str(r1, "processed_at", NULL));

    /* By type; and this account's rows only (the earlier audit.list included). */
    page(e2e_call(e, A, "audit.list", "{'type':'payment.get'}"), AUDIT_ROW, 2, false);
    page(e2e_call(e, A, "audit.list", "{'type':'audit.list'}"), AUDIT_ROW, 3, false);
    page(e2e_call(e, "acct_e2e_aud_b", "audit.list", "{}"), AUDIT_ROW, 0, false);
    E2E_ERR(e, A, "invalid_request", "limit", "audit.list", "{'limit':0}");
    E2E_ERR(e, A, "not_found", "starting_after", "audit.list", "{'starting_after':'log_nope'}");
}

/* Every registered job type was asked in this binary, ok and error both:
 * the audit rows of the e2e accounts say so. */
static void test_every_type_covered(void **state)
{
    e2e_t *e = *state;
    assert_int_equal(handler_count(), 27); /* CONTRACT.md §6 */
    char values[4096] = "";
    size_t len = 0;
    for (size_t i = 0; i < handler_count(); i++)
        len += (size_t)snprintf(values + len, sizeof(values) - len, "%s('%s')", i ? ", " : "",
                                handler_name(handler_at(i)));
    assert_true(len < sizeof(values));
    char sql[8192];
    snprintf(sql, sizeof(sql),
             "SELECT string_agg(t || '/' || s, ' ') FROM (VALUES %s) types(t),"
             " (VALUES ('ok'), ('error')) st(s) WHERE NOT EXISTS (SELECT 1 FROM"
             " payment_system_logs l WHERE l.type = t AND l.status = s AND"
             " l.account_id LIKE 'acct_e2e_%%')",
             values);
    char *missing = th_pg_text(e->pg, "postgres", sql);
    if (missing != NULL)
        fail_msg("job types without an ok or error answer: %s", missing);
    assert_int_equal(th_pg_i64(e->pg, "postgres",
                               "SELECT count(*) FROM payment_system_logs WHERE "
                               "error_code = 'internal'"),
                     0);
}

/* The demo (scripts/demo-requests.jsonl) sends every registered job type. */
static void test_demo_sends_every_type(void **state)
{
    (void)state;
    const char *migrations = getenv("TALLY_MIGRATIONS_DIR");
    assert_non_null(migrations);
    char path[1024];
    snprintf(path, sizeof(path), "%s/../scripts/demo-requests.jsonl", migrations);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    bool *seen = calloc(handler_count(), sizeof(*seen));
    char line[4096];
    while (fgets(line, sizeof(line), f) != NULL) {
        json_t *req = json_loads(line, 0, NULL);
        const handler_t *h = handler_find(e2e_str(req, "type", NULL));
        for (size_t i = 0; h != NULL && i < handler_count(); i++)
            seen[i] |= handler_at(i) == h;
        json_decref(req);
    }
    fclose(f);
    for (size_t i = 0; i < handler_count(); i++) {
        if (!seen[i])
            fail_msg("the demo does not send %s", handler_name(handler_at(i)));
    }
    free(seen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payment_record),
        cmocka_unit_test(test_payment_update_status),
        cmocka_unit_test(test_payment_refund),
        cmocka_unit_test(test_payment_get),
        cmocka_unit_test(test_payment_list_paging),
        cmocka_unit_test(test_share_allocate_and_list),
        cmocka_unit_test(test_balance_get),
        cmocka_unit_test(test_payouts),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_codes),
        cmocka_unit_test(test_agents),
        cmocka_unit_test(test_audit_list),
        cmocka_unit_test(test_every_type_covered),
        cmocka_unit_test(test_demo_sends_every_type),
    };
    if (getenv("IT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("IT_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
