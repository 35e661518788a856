/* it_e2e_common — requests through the real tally-worker for the it_e2e_*
 * tests: a stack (private PostgreSQL, embedded broker, one or more workers),
 * a synchronous call (produce one request, wait for its result), and
 * checkers for the result envelope (CONTRACT.md §3) and the shapes of §6.
 * Header-only (static functions), so each test binary stays one .c file. */
#ifndef TALLY_IT_E2E_COMMON_H
#define TALLY_IT_E2E_COMMON_H

#include "it_worker_common.h"

#include <ctype.h>
#include <unistd.h>

#define E2E_WAIT_MS 30000 /* the longest a single answer may take */

typedef struct e2e {
    th_pg_t *pg;
    th_broker_t *b;
    th_worker_t *w[2];
    int nworkers;
    int partitions;
    th_producer_t *p;
    collector_t *results;
    int seq;          /* request ids "e2e-<seq>" */
    char last_id[32]; /* of the last e2e_call, for e2e_again */
    char last_payload[8192];
} e2e_t;

/* ---- the stack ------------------------------------------------------------ */

/* The partitions a worker reports assigned in /readyz, or -1. */
static inline int e2e_assigned(th_worker_t *w)
{
    char *body = NULL;
    int n = -1;
    if (th_worker_http_get(w, "/readyz", &body, 2000) > 0 && body != NULL) {
        json_t *j = json_loads(body, 0, NULL);
        if (json_is_integer(json_object_get(j, "partitions")))
            n = (int)json_integer_value(json_object_get(j, "partitions"));
        json_decref(j);
    }
    free(body);
    return n;
}

/* PostgreSQL, a broker with `partitions` request partitions and nworkers
 * (1 or 2) workers in one group; returns once every partition is assigned
 * and, with two, each worker holds some. */
static inline e2e_t *e2e_start(int partitions, int nworkers, const char *const *worker_env)
{
    e2e_t *e = calloc(1, sizeof(*e));
    e->partitions = partitions;
    e->pg = th_pg_start();
    th_pg_migrate(e->pg);
    e->b = th_broker_start(partitions);
    e->nworkers = nworkers;
    for (int i = 0; i < nworkers; i++)
        e->w[i] = th_worker_start(e->pg, e->b, worker_env);
    for (int i = 0; i < nworkers; i++) {
        if (!th_worker_wait_ready(e->w[i], 60000))
            fail_msg("worker %d not ready", i);
    }
    /* A second member makes the group rebalance; wait until it settled. */
    int64_t end = it_now_ms() + 60000;
    for (;;) {
        int sum = 0, least = partitions;
        for (int i = 0; i < nworkers; i++) {
            int n = e2e_assigned(e->w[i]);
            sum += n;
            least = n < least ? n : least;
        }
        if (sum == partitions && least > 0)
            break;
        if (it_now_ms() > end)
            fail_msg("partitions not shared by %d workers (%d assigned)", nworkers, sum);
        usleep(200 * 1000);
    }
    e->p = th_producer_new(e->b);
    e->results = collector_new(e->b, RESULT_TOPIC);
    return e;
}

static inline void e2e_stop(e2e_t *e)
{
    collector_free(e->results);
    th_producer_free(e->p);
    for (int i = 0; i < e->nworkers; i++)
        th_worker_stop(e->w[i]);
    th_broker_stop(e->b);
    th_pg_stop(e->pg);
    free(e);
}

/* ---- sending and waiting -------------------------------------------------- */

/* The payload text from a printf format in which ' stands for " (test
 * payloads then read as JSON: "{'amount':100}"). */
static inline void e2e_format(char *out, size_t size, const char *fmt, va_list ap)
{
    int n = vsnprintf(out, size, fmt, ap);
    assert_true(n >= 0 && (size_t)n < size);
    for (char *c = out; *c != '\0'; c++) {
        if (*c == '\'')
            *c = '"';
    }
}

/* Produces one request; corr (may be NULL) becomes its correlation_id and
 * key (may be NULL: keyless) its message key; partition -1 lets the key
 * choose. The payload is JSON text. */
static inline void e2e_send_raw(e2e_t *e, int32_t partition, const char *key, const char *acct,
                                const char *id, const char *type, const char *corr,
                                const char *payload)
{
    json_t *env =
        json_pack("{s:i, s:s, s:s, s:s}", "v", 1, "id", id, "account_id", acct, "type", type);
    json_t *pl = json_loads(payload, 0, NULL);
    if (pl == NULL)
        fail_msg("test payload is not JSON: %s", payload);
    json_object_set_new(env, "payload", pl);
    if (corr != NULL)
        json_object_set_new(env, "correlation_id", json_string(corr));
    char *text = json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER);
    th_produce(e->p, REQ_TOPIC, partition, key, text, strlen(text));
    free(text);
    json_decref(env);
}

/* Whether a collected message is the answer to (acct, id). */
static inline bool e2e_is_answer(const th_msg_t *m, const char *acct, const char *id)
{
    const char *a = msg_str(m, "account_id"), *i = msg_str(m, "id");
    return a != NULL && i != NULL && strcmp(a, acct) == 0 && strcmp(i, id) == 0;
}

/* The nth (0-based, in arrival order) answer to (acct, id), waiting up to
 * timeout_ms; NULL when it did not arrive. Borrowed: the collector keeps
 * every message until e2e_stop. */
static inline const json_t *e2e_await_nth(e2e_t *e, const char *acct, const char *id, int nth,
                                          int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    int from = 0, seen = 0;
    for (;;) {
        for (; from < e->results->n; from++) {
            const th_msg_t *m = &e->results->msgs[from];
            if (e2e_is_answer(m, acct, id) && seen++ == nth)
                return m->json;
        }
        int64_t left = end - it_now_ms();
        if (left <= 0)
            return NULL;
        collector_poll(e->results, 1, left < 100 ? (int)left : 100);
    }
}

/* The collected message of that answer (for its key and headers). */
static inline const th_msg_t *e2e_msg_of(const e2e_t *e, const json_t *answer)
{
    for (int i = 0; i < e->results->n; i++) {
        if (e->results->msgs[i].json == answer)
            return &e->results->msgs[i];
    }
    return NULL;
}

/* ---- checkers ---------------------------------------------------------------- */

/* "2026-11-22T10:00:00.123Z": RFC 3339 UTC with milliseconds. */
static inline bool e2e_is_time(const json_t *v)
{
    const char *s = json_string_value(v);
    const char *pat = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (s == NULL || strlen(s) != strlen(pat))
        return false;
    for (size_t i = 0; pat[i] != '\0'; i++) {
        if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pat[i])
            return false;
    }
    return true;
}

/* Asserts that obj has exactly the members of spec, each of its type. spec
 * is "name:T ..." with T one of s (string), i (integer), b (boolean),
 * o (object), a (array), t (RFC 3339 time with ms, UTC), and a trailing ?
 * admitting null: "id:s amount:i description:s? created_at:t". */
static inline void e2e_shape(const json_t *obj, const char *spec)
{
    if (!json_is_object(obj))
        fail_msg("not an object where {%s} was expected", spec);
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", spec);
    size_t count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
        char *colon = strchr(tok, ':');
        assert_non_null(colon);
        *colon = '\0';
        const char *t = colon + 1;
        bool nullable = t[1] == '?';
        const json_t *v = json_object_get(obj, tok);
        count++;
        if (v == NULL) {
            char *dump = json_dumps(obj, JSON_COMPACT);
            fail_msg("member %s missing in %s", tok, dump);
        }
        if (json_is_null(v) && nullable)
            continue;
        bool good = false;
        switch (t[0]) {
        case 's':
            good = json_is_string(v);
            break;
        case 'i':
            good = json_is_integer(v);
            break;
        case 'b':
            good = json_is_boolean(v);
            break;
        case 'o':
            good = json_is_object(v);
            break;
        case 'a':
            good = json_is_array(v);
            break;
        case 't':
            good = e2e_is_time(v);
            break;
        default:
            fail_msg("bad shape type %s", t);
        }
        if (!good) {
            char *dump = json_dumps(obj, JSON_COMPACT);
            fail_msg("member %s is not of type %s in %s", tok, t, dump);
        }
    }
    if (json_object_size(obj) != count) {
        char *dump = json_dumps(obj, JSON_COMPACT);
        fail_msg("members beyond {%s} in %s", spec, dump);
    }
}

/* Asserts the result envelope of §3 for a request (acct, id, type, corr):
 * exactly the contract's keys in its order, echoes, replayed, processed_at,
 * and the message's key and headers. */
static inline void e2e_check_envelope(const e2e_t *e, const json_t *r, const char *acct,
                                      const char *id, const char *type, const char *corr,
                                      bool replayed)
{
    const char *status = json_string_value(json_object_get(r, "status"));
    assert_non_null(status);
    bool ok = strcmp(status, "ok") == 0;
    if (!ok)
        assert_string_equal(status, "error");
    const char *keys[10];
    size_t nk = 0;
    keys[nk++] = "v";
    keys[nk++] = "id";
    keys[nk++] = "account_id";
    keys[nk++] = "type";
    if (corr != NULL)
        keys[nk++] = "correlation_id";
    keys[nk++] = "status";
    keys[nk++] = ok ? "result" : "error";
    keys[nk++] = "replayed";
    keys[nk++] = "processed_at";
    assert_int_equal(json_object_size(r), nk);
    size_t i = 0;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)r, k, v) assert_string_equal(k, keys[i++]);

    assert_int_equal(json_integer_value(json_object_get(r, "v")), 1);
    assert_string_equal(json_string_value(json_object_get(r, "id")), id);
    assert_string_equal(json_string_value(json_object_get(r, "account_id")), acct);
    assert_string_equal(json_string_value(json_object_get(r, "type")), type);
    if (corr != NULL)
        assert_string_equal(json_string_value(json_object_get(r, "correlation_id")), corr);
    assert_true(json_is_boolean(json_object_get(r, "replayed")));
    assert_int_equal(json_is_true(json_object_get(r, "replayed")), replayed);
    assert_true(e2e_is_time(json_object_get(r, "processed_at")));
    if (ok) {
        assert_true(json_is_object(json_object_get(r, "result")));
    } else {
        const json_t *err = json_object_get(r, "error");
        const json_t *field = json_object_get(err, "field");
        e2e_shape(err, field != NULL ? "code:s message:s field:s" : "code:s message:s");
        assert_true(json_string_length(json_object_get(err, "message")) > 0);
    }

    const th_msg_t *m = e2e_msg_of(e, r);
    assert_non_null(m);
    assert_non_null(m->key);
    assert_string_equal(m->key, acct);
    assert_string_equal(msg_header(m, "tally-account-id"), acct);
    assert_string_equal(msg_header(m, "tally-request-id"), id);
    assert_string_equal(msg_header(m, "tally-status"), status);
}

/* A string member along a path of keys ("payment", "id"); borrowed. */
static inline const char *e2e_str(const json_t *o, const char *k1, const char *k2)
{
    const json_t *v = json_object_get(o, k1);
    if (k2 != NULL)
        v = json_object_get(v, k2);
    return json_string_value(v);
}

static inline int64_t e2e_int(const json_t *o, const char *k1, const char *k2)
{
    const json_t *v = json_object_get(o, k1);
    if (k2 != NULL)
        v = json_object_get(v, k2);
    if (!json_is_integer(v))
        fail_msg("%s%s%s is not an integer", k1, k2 ? "." : "", k2 ? k2 : "");
    return (int64_t)json_integer_value(v);
}

/* ---- calls ------------------------------------------------------------------- */

/* One request with the given id and its first answer, envelope checked
 * (replayed: what the answer must say). Every other request carries a
 * correlation_id, so both ways of §3's echo rule are exercised. Returns
 * the answer (borrowed, see e2e_await_nth). */
static inline const json_t *e2e_call_id(e2e_t *e, const char *acct, const char *id, int nth,
                                        bool replayed, const char *type, const char *payload)
{
    char corr[96];
    bool with_corr = (e->seq % 2) == 0;
    snprintf(corr, sizeof(corr), "corr-%s", id);
    e2e_send_raw(e, -1, acct, acct, id, type, with_corr ? corr : NULL, payload);
    th_producer_flush(e->p);
    const json_t *r = e2e_await_nth(e, acct, id, nth, E2E_WAIT_MS);
    if (r == NULL)
        fail_msg("no answer to %s/%s (%s)", acct, id, type);
    e2e_check_envelope(e, r, acct, id, type, with_corr ? corr : NULL, replayed);
    return r;
}

/* A fresh request ("e2e-<n>") of type with a payload from a printf format
 * (' for "); returns its checked answer. */
static inline const json_t *e2e_call(e2e_t *e, const char *acct, const char *type, const char *fmt,
                                     ...) __attribute__((format(printf, 4, 5)));
static inline const json_t *e2e_call(e2e_t *e, const char *acct, const char *type, const char *fmt,
                                     ...)
{
    char payload[8192], id[32];
    va_list ap;
    va_start(ap, fmt);
    e2e_format(payload, sizeof(payload), fmt, ap);
    va_end(ap);
    snprintf(id, sizeof(id), "e2e-%d", ++e->seq);
    snprintf(e->last_id, sizeof(e->last_id), "%s", id);
    snprintf(e->last_payload, sizeof(e->last_payload), "%s", payload);
    return e2e_call_id(e, acct, id, 0, false, type, payload);
}

/* The answer's "result", asserting status ok (borrowed from r). */
static inline const json_t *e2e_ok(const json_t *r)
{
    const char *status = json_string_value(json_object_get(r, "status"));
    if (status == NULL || strcmp(status, "ok") != 0) {
        char *dump = json_dumps(r, JSON_COMPACT);
        fail_msg("expected ok, got %s", dump);
    }
    return json_object_get(r, "result");
}

/* Asserts an error answer with code and field (NULL: no field). */
static inline void e2e_err(const json_t *r, const char *code, const char *field)
{
    const json_t *err = json_object_get(r, "error");
    const char *c = json_string_value(json_object_get(err, "code"));
    const char *f = json_string_value(json_object_get(err, "field"));
    if (c == NULL || strcmp(c, code) != 0 || (field == NULL) != (f == NULL) ||
        (field != NULL && strcmp(field, f) != 0)) {
        char *dump = json_dumps(r, JSON_COMPACT);
        fail_msg("expected error %s (field %s), got %s", code, field ? field : "none", dump);
    }
}

/* A call that must be answered with an error code and field (NULL: none). */
#define E2E_ERR(e, acct, code, field, type, ...)                                                   \
    do {                                                                                           \
        e2e_err(e2e_call((e), (acct), (type), __VA_ARGS__), (code), (field));                      \
    } while (0)

/* The last e2e_call's request once more (same id and payload): its answer
 * must be the stored one, replayed. Returns that second answer. */
static inline const json_t *e2e_again(e2e_t *e, const char *acct, const char *type,
                                      const json_t *first)
{
    const json_t *r = e2e_call_id(e, acct, e->last_id, 1, true, type, e->last_payload);
    const char *body = json_object_get(first, "result") != NULL ? "result" : "error";
    assert_true(json_equal(json_object_get(first, body), json_object_get(r, body)));
    assert_string_equal(e2e_str(first, "status", NULL), e2e_str(r, "status", NULL));
    return r;
}

#endif
