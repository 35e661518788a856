/* it_agents — the agent.* job types end to end below the worker: link,
 * relink (update in place), unlink, paging and the role filter, and tenant
 * isolation, on a real PostgreSQL as the worker's role. */
#include "it_handlers.h"

#include "common/clock.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

static void test_link_and_relink(void **state)
{
    it_fixture_t *f = *state;
    json_t *r = it_ok(f->pool, "acct_ag", "agent.link", "{\"agent_id\": \"agt_7\"}");
    assert_int_equal(json_object_size(r), 1);
    json_t *a = json_object_get(r, "agent");
    assert_int_equal(json_object_size(a), 6);
    char id[64], linked_at[32];
    snprintf(id, sizeof(id), "%s", it_str(a, "id"));
    snprintf(linked_at, sizeof(linked_at), "%s", it_str(a, "linked_at"));
    assert_memory_equal(id, "ag_", 3);
    assert_string_equal(it_str(a, "agent_id"), "agt_7");
    assert_true(json_is_null(json_object_get(a, "role")));
    assert_int_equal(it_int(a, "share_basis_points"), 0);
    assert_string_equal(it_str(a, "updated_at"), linked_at);
    int64_t ms;
    assert_int_equal(clock_parse_rfc3339(linked_at, &ms), 0);
    json_decref(r);

    /* Linking again updates in place: same id and linked_at. */
    r = it_ok(f->pool, "acct_ag", "agent.link",
              "{\"agent_id\": \"agt_7\", \"role\": \"reseller\", \"share_basis_points\": 1500}");
    assert_string_equal(it_str(r, "agent.id"), id);
    assert_string_equal(it_str(r, "agent.linked_at"), linked_at);
    assert_string_equal(it_str(r, "agent.role"), "reseller");
    assert_int_equal(it_int(r, "agent.share_basis_points"), 1500);
    json_decref(r);

    /* What is not given stays; null clears the role. */
    r = it_ok(f->pool, "acct_ag", "agent.link",
              "{\"agent_id\": \"agt_7\", \"share_basis_points\": 10000}");
    assert_string_equal(it_str(r, "agent.role"), "reseller");
    assert_int_equal(it_int(r, "agent.share_basis_points"), 10000);
    json_decref(r);
    r = it_ok(f->pool, "acct_ag", "agent.link", "{\"agent_id\": \"agt_7\", \"role\": null}");
    assert_true(json_is_null(it_get(r, "agent.role")));
    assert_int_equal(it_int(r, "agent.share_basis_points"), 10000);
    json_decref(r);
    assert_int_equal(
        it_sql_i64(f, "SELECT count(*) FROM account_agents WHERE account_id = 'acct_ag'"), 1);

    /* Any characters, up to 64. */
    r = it_ok(f->pool, "acct_ag", "agent.link",
              "{\"agent_id\": \"Agënt Smith\", \"role\": \"référent\", \"share_basis_points\": 0}");
    assert_string_equal(it_str(r, "agent.agent_id"), "Agënt Smith");
    assert_string_equal(it_str(r, "agent.role"), "référent");
    json_decref(r);

    it_reject(TALLY_ERR_INVALID_REQUEST, "share_basis_points", f->pool, "acct_ag", "agent.link",
              "{\"agent_id\": \"agt_7\", \"share_basis_points\": 10001}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "role", f->pool, "acct_ag", "agent.link",
              "{\"agent_id\": \"agt_7\", \"role\": \"\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "agent_id", f->pool, "acct_ag", "agent.link", "{}");
}

static void test_unlink(void **state)
{
    it_fixture_t *f = *state;
    json_t *r = it_ok(f->pool, "acct_ul", "agent.link",
                      "{\"agent_id\": \"agt_1\", \"role\": \"referrer\"}");
    char id[64];
    snprintf(id, sizeof(id), "%s", it_str(r, "agent.id"));
    json_decref(r);

    /* The answer is the link as it was. */
    r = it_ok(f->pool, "acct_ul", "agent.unlink", "{\"agent_id\": \"agt_1\"}");
    assert_string_equal(it_str(r, "agent.id"), id);
    assert_string_equal(it_str(r, "agent.role"), "referrer");
    json_decref(r);
    assert_int_equal(
        it_sql_i64(f, "SELECT count(*) FROM account_agents WHERE account_id = 'acct_ul'"), 0);

    handler_error_t e = it_reject(TALLY_ERR_NOT_FOUND, "agent_id", f->pool, "acct_ul",
                                  "agent.unlink", "{\"agent_id\": \"agt_1\"}");
    assert_non_null(strstr(e.message, "no agent"));
    it_reject(TALLY_ERR_NOT_FOUND, "agent_id", f->pool, "acct_ul", "agent.unlink",
              "{\"agent_id\": \"never\"}");

    /* Linking after an unlink starts afresh. */
    r = it_ok(f->pool, "acct_ul", "agent.link", "{\"agent_id\": \"agt_1\"}");
    assert_string_not_equal(it_str(r, "agent.id"), id);
    assert_true(json_is_null(it_get(r, "agent.role")));
    json_decref(r);
}

static void test_list(void **state)
{
    it_fixture_t *f = *state;
    char ids[5][64];
    for (int i = 0; i < 5; i++) {
        json_t *r =
            it_ok(f->pool, "acct_al", "agent.link", "{\"agent_id\": \"agt_%d\", \"role\": \"%s\"}",
                  i, i % 2 == 0 ? "reseller" : "referrer");
        snprintf(ids[i], sizeof(ids[i]), "%s", it_str(r, "agent.id"));
        json_decref(r);
    }
    /* Relinking does not move a link in the list (ordered by linked_at). */
    json_decref(it_ok(f->pool, "acct_al", "agent.link",
                      "{\"agent_id\": \"agt_0\", \"share_basis_points\": 5}"));

    json_t *r = it_ok(f->pool, "acct_al", "agent.list", "{\"limit\": 2}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 2);
    assert_true(json_is_true(json_object_get(r, "has_more")));
    assert_string_equal(it_str(r, "data.0.id"), ids[4]);
    assert_string_equal(it_str(r, "data.1.id"), ids[3]);
    json_decref(r);
    r = it_ok(f->pool, "acct_al", "agent.list", "{\"limit\": 3, \"starting_after\": \"%s\"}",
              ids[3]);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 3);
    assert_string_equal(it_str(r, "data.2.id"), ids[0]);
    assert_int_equal(it_int(r, "data.2.share_basis_points"), 5);
    assert_true(json_is_false(json_object_get(r, "has_more")));
    json_decref(r);

    r = it_ok(f->pool, "acct_al", "agent.list", "{\"role\": \"reseller\"}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 3);
    assert_string_equal(it_str(r, "data.0.agent_id"), "agt_4");
    assert_string_equal(it_str(r, "data.1.agent_id"), "agt_2");
    assert_string_equal(it_str(r, "data.2.agent_id"), "agt_0");
    json_decref(r);
    r = it_ok(f->pool, "acct_al", "agent.list",
              "{\"role\": \"reseller\", \"starting_after\": \"%s\"}", ids[4]);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 2);
    json_decref(r);

    it_reject(TALLY_ERR_NOT_FOUND, "starting_after", f->pool, "acct_al", "agent.list",
              "{\"starting_after\": \"ag_nope\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "limit", f->pool, "acct_al", "agent.list",
              "{\"limit\": 101}");
}

/* Another tenant's agent link answers exactly like a missing one. */
static void test_tenant_isolation(void **state)
{
    it_fixture_t *f = *state;
    json_t *r =
        it_ok(f->pool, "acct_aa", "agent.link", "{\"agent_id\": \"shared\", \"role\": \"theirs\"}");
    char theirs[64];
    snprintf(theirs, sizeof(theirs), "%s", it_str(r, "agent.id"));
    json_decref(r);

    it_answer_t foreign = it_run(f->pool, "acct_ab", "agent.unlink", "{\"agent_id\": \"shared\"}");
    it_answer_t missing = it_run(f->pool, "acct_ab", "agent.unlink", "{\"agent_id\": \"other\"}");
    assert_int_equal(foreign.status, HANDLER_REJECTED);
    assert_int_equal(foreign.err.code, TALLY_ERR_NOT_FOUND);
    assert_int_equal(missing.err.code, foreign.err.code);
    assert_string_equal(missing.err.field, foreign.err.field);
    assert_string_equal(missing.err.message, foreign.err.message);
    it_reject(TALLY_ERR_NOT_FOUND, "starting_after", f->pool, "acct_ab", "agent.list",
              "{\"starting_after\": \"%s\"}", theirs);
    r = it_ok(f->pool, "acct_ab", "agent.list", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
    json_decref(r);

    /* The same agent_id in another account is a link of its own. */
    r = it_ok(f->pool, "acct_ab", "agent.link", "{\"agent_id\": \"shared\", \"role\": \"mine\"}");
    assert_string_not_equal(it_str(r, "agent.id"), theirs);
    json_decref(r);
    r = it_ok(f->pool, "acct_aa", "agent.list", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 1);
    assert_string_equal(it_str(r, "data.0.id"), theirs);
    assert_string_equal(it_str(r, "data.0.role"), "theirs");
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_link_and_relink),
        cmocka_unit_test(test_unlink),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_tenant_isolation),
    };
    return cmocka_run_group_tests(tests, it_setup, it_teardown);
}
