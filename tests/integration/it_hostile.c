/* it_hostile — one hostile account beside 100 well-behaved ones, on one
 * worker (issue 11; CONTRACT.md §2–§5, §7).
 *
 * The hostile account sends th_hostile.h's mix: 100 payments of the
 * largest size the contract allows, listed 100 at a time; reply_to naming
 * Tally's own topics, a name the operator's pattern refuses and no topic at
 * all; 2^63, 1e400, a duplicate key and \u0000 in payload fields; a value
 * over 1 MiB and one that is not JSON; two payments whose balance row an
 * outside session keeps locked (one until its retry budget ends, one
 * released after its first failed attempt); a burst of 20 000 requests;
 * and a payment whose first attempt runs into the statement timeout.
 * Meanwhile 100 accounts send ordinary traffic in rounds until the hostile
 * account is answered: a payment, then a refund, a refund beyond the
 * payment (conflict), a payout, a payment.get and a balance.get; ten of
 * them to a reply_to topic.
 *
 * Asserted: every request of either kind is answered exactly once with the
 * answer expected of it (none of the well-behaved ones `internal`); list
 * pages stay within 1 MiB; the DLQ holds exactly the hostile account's three
 * dead letters; each well-behaved account's balance is what its rounds
 * make, with one audit row a request; /readyz answers 200 with no stuck
 * delivery at every sample, /livez too; the worker's peak memory stays
 * under a generous bound; and a worker started afterwards in the group
 * redelivers nothing (offsets were committed). Nothing is timed: every wait
 * is bounded generously; the phases' durations are printed. */
#include "it_worker_common.h"
#include "th_hostile.h"

#include <unistd.h>

enum {
    WELL = 100,            /* well-behaved accounts */
    WELL_REPLY_EVERY = 10, /* every tenth sends to REPLY_TOPIC */
    MIN_ROUNDS = 2,
    MAX_ROUNDS = 40,
    ROUND_EVERY_MS = 2000, /* an account starts a round at most this often */
    BIG = 100,             /* payments of the largest size */
    LISTS = 3,
    BURST = 20000,
    PARTITIONS = 4,
    TABLE = 1 << 17, /* the ledger's hash table: a power of two above every request */
    RUN_MS = 300000, /* bound of the whole run (it takes about a minute) */
};

#define HOSTILE     "acct_hostile"
#define REPLY_TOPIC "well.replies"
#define MIB         (1024 * 1024)
#define PAYMENT     10000 /* each round: a payment of 10000, a refund of 1000, a payout of 2000 */
#define REFUND      1000
#define PAYOUT      2000

/* Peak resident memory allowed the worker: far above what it needs (the
 * read-ahead is bounded by TALLY_MAX_IN_FLIGHT and 64 MiB of request bytes,
 * a result by 1 MiB); AddressSanitizer's shadow memory and quarantine
 * (capped for this test, below) come on top. */
#define ASAN_QUARANTINE_MB 32
#if defined(__SANITIZE_ADDRESS__)
#define RSS_BOUND_MB 384
#else
#define RSS_BOUND_MB 256
#endif

typedef enum step { STEP_OTHER, STEP_RECORD, STEP_FOLLOW } step_t;

#define HOSTILE_REQ (-1)
#define MARKER_REQ  (-2)

/* One request sent, and what came back. */
typedef struct req {
    char id[48];
    int well; /* index of the well-behaved account; HOSTILE_REQ or MARKER_REQ */
    step_t step;
    bool reply;        /* answered on REPLY_TOPIC */
    bool list;         /* a page of big payments */
    const char *want;  /* "ok" or an error code */
    const char *field; /* the error's field, or NULL when not checked */
    int answers;
    bool replayed;
    char wrong[200]; /* the first answer that was not the one expected */
} req_t;

typedef struct well {
    char acct[32];
    int rounds; /* started */
    int pending;
    int64_t next_ms;
} well_t;

typedef struct hstack {
    th_pg_t *pg;
    th_broker_t *b;
    th_worker_t *w;
    th_producer_t *p, *hp; /* well-behaved; hostile (lz4: the burst is compact in its partition) */
    th_consumer_t *results, *replies, *dlq;
    req_t *reqs;
    int nreqs;
    int *table; /* index + 1 into reqs, by id */
    well_t well[WELL];
    int hostile_sent, hostile_answered;
    int unknown; /* results for ids never sent */
    char unknown_id[64];
    PGconn *lock;   /* the outside session holding the hostile's usd balance row */
    int lock_state; /* 0 held for h-locked-0, 1 for h-locked-1's first retry, 2 released */
    long long retries_mark;
    int64_t rss_peak_kb;
    int readyz_bad;
    char readyz_body[256];
    char asan[512];
    const char *env[4];
} hstack_t;

/* The worker's settings: defaults but for the pattern, a shorter lock
 * timeout (a locked request ends after its retries within ~15 s) and, in
 * the sanitizer build, a smaller ASan quarantine (freed memory waits there
 * before reuse, 256 MB by default, which would hide what the worker holds;
 * other builds ignore it). */
static void worker_env(hstack_t *s)
{
    const char *asan = getenv("ASAN_OPTIONS");
    snprintf(s->asan, sizeof(s->asan), "ASAN_OPTIONS=%s%squarantine_size_mb=%d", asan ? asan : "",
             asan && *asan ? ":" : "", ASAN_QUARANTINE_MB);
    s->env[0] = "TALLY_REPLY_TO_PATTERN=" TH_HOSTILE_REPLY_TO_PATTERN;
    s->env[1] = "TALLY_LOCK_TIMEOUT_MS=500";
    s->env[2] = s->asan;
    s->env[3] = NULL;
}

/* ---- the ledger ------------------------------------------------------------ */

static uint32_t hash_id(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static req_t *find_req(hstack_t *s, const char *id)
{
    for (uint32_t i = hash_id(id) & (TABLE - 1);; i = (i + 1) & (TABLE - 1)) {
        if (s->table[i] == 0)
            return NULL;
        if (strcmp(s->reqs[s->table[i] - 1].id, id) == 0)
            return &s->reqs[s->table[i] - 1];
    }
}

static req_t *add_req(hstack_t *s, const char *id, int well, step_t step, const char *want,
                      const char *field)
{
    assert_true(s->nreqs < TABLE / 2);
    assert_null(find_req(s, id));
    req_t *r = &s->reqs[s->nreqs++];
    *r = (req_t){.well = well, .step = step, .want = want, .field = field};
    snprintf(r->id, sizeof(r->id), "%s", id);
    uint32_t i = hash_id(id) & (TABLE - 1);
    while (s->table[i] != 0)
        i = (i + 1) & (TABLE - 1);
    s->table[i] = s->nreqs;
    if (well == HOSTILE_REQ)
        s->hostile_sent++;
    return r;
}

/* ---- sending ---------------------------------------------------------------- */

static void well_send(hstack_t *s, int a, step_t step, const char *id, const char *type,
                      const char *payload, const char *want, const char *field)
{
    well_t *w = &s->well[a];
    bool reply = a % WELL_REPLY_EVERY == 0;
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "{\"id\":\"%s\",\"account_id\":\"%s\",\"type\":\"%s\",\"payload\":%s%s}", id,
                     w->acct, type, payload, reply ? ",\"reply_to\":\"" REPLY_TOPIC "\"" : "");
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    th_produce(s->p, REQ_TOPIC, -1, w->acct, buf, (size_t)n);
    req_t *r = add_req(s, id, a, step, want, field);
    r->reply = reply;
    w->pending++;
}

static void well_round(hstack_t *s, int a)
{
    well_t *w = &s->well[a];
    char id[48], payload[128];
    w->rounds++;
    w->next_ms = it_now_ms() + ROUND_EVERY_MS;
    snprintf(id, sizeof(id), "w%d-%d-rec", a, w->rounds);
    snprintf(payload, sizeof(payload),
             "{\"external_id\":\"%s\",\"amount\":%d,\"currency\":\"usd\"}", id, PAYMENT);
    well_send(s, a, STEP_RECORD, id, "payment.record", payload, "ok", NULL);
}

/* After a round's payment: a refund, one beyond what is left (conflict), a
 * payout, and two reads, in this order (one account: processed in order). */
static void well_follow(hstack_t *s, int a, const char *payment_id)
{
    well_t *w = &s->well[a];
    char id[48], payload[160];
    snprintf(id, sizeof(id), "w%d-%d-refund", a, w->rounds);
    snprintf(payload, sizeof(payload), "{\"payment_id\":\"%s\",\"amount\":%d}", payment_id, REFUND);
    well_send(s, a, STEP_FOLLOW, id, "payment.refund", payload, "ok", NULL);
    snprintf(id, sizeof(id), "w%d-%d-over", a, w->rounds);
    snprintf(payload, sizeof(payload), "{\"payment_id\":\"%s\",\"amount\":%d}", payment_id,
             PAYMENT);
    well_send(s, a, STEP_FOLLOW, id, "payment.refund", payload, "conflict", "amount");
    snprintf(id, sizeof(id), "w%d-%d-payout", a, w->rounds);
    snprintf(payload, sizeof(payload), "{\"amount\":%d,\"currency\":\"usd\"}", PAYOUT);
    well_send(s, a, STEP_FOLLOW, id, "payout.create", payload, "ok", NULL);
    snprintf(id, sizeof(id), "w%d-%d-get", a, w->rounds);
    snprintf(payload, sizeof(payload), "{\"payment_id\":\"%s\"}", payment_id);
    well_send(s, a, STEP_FOLLOW, id, "payment.get", payload, "ok", NULL);
    snprintf(id, sizeof(id), "w%d-%d-balance", a, w->rounds);
    well_send(s, a, STEP_FOLLOW, id, "balance.get", "{\"currency\":\"usd\"}", "ok", NULL);
}

/* ---- the hostile mix --------------------------------------------------------- */

/* Expects each hostile request's answer: the first locked payment ends
 * `internal` (its lock outlasts its retries), the second is ok (the lock
 * goes after its first attempt failed); dead letters get no result. */
static void expect_hostile(const th_hostile_req_t *h, void *arg)
{
    hstack_t *s = arg;
    const char *want = h->want;
    if (h->kind == TH_HOSTILE_DEAD)
        return;
    if (h->kind == TH_HOSTILE_LOCKED)
        want = strcmp(h->id, "h-locked-0") == 0 ? "internal" : "ok";
    add_req(s, h->id, HOSTILE_REQ, STEP_OTHER, want, h->field)->list = h->kind == TH_HOSTILE_LIST;
}

static void send_hostile_mix(hstack_t *s)
{
    th_hostile_config_t cfg = {.account = HOSTILE,
                               .topic = REQ_TOPIC,
                               .big = BIG,
                               .lists = LISTS,
                               .locked = 2,
                               .burst = BURST};
    th_hostile_send(s->hp, &cfg, expect_hostile, s);
    /* A statement gone slow (slow_first_attempt): cancelled at the
     * statement timeout, then run again. */
    const char *slow = "{\"id\":\"h-slow\",\"account_id\":\"" HOSTILE "\",\"type\":"
                       "\"payment.record\",\"payload\":{\"external_id\":\"h-slow\","
                       "\"amount\":500,\"currency\":\"eur\"}}";
    th_produce(s->hp, REQ_TOPIC, -1, HOSTILE, slow, strlen(slow));
    th_producer_flush(s->hp);
    add_req(s, "h-slow", HOSTILE_REQ, STEP_OTHER, "ok", NULL);
}

/* ---- results ------------------------------------------------------------------- */

static void mismatch(req_t *r, const th_msg_t *m, const char *why)
{
    if (r->wrong[0] == '\0')
        snprintf(r->wrong, sizeof(r->wrong), "%s: %.150s", why, m->value);
}

/* A page of big payments: within 1 MiB, cut short, has_more. */
static void check_list(req_t *r, const th_msg_t *m)
{
    json_t *res = json_object_get(m->json, "result");
    size_t n = json_array_size(json_object_get(res, "data"));
    if (m->value_len > MIB || n == 0 || n >= BIG || !json_is_true(json_object_get(res, "has_more")))
        mismatch(r, m, "a list page not cut to 1 MiB");
    else if (strcmp(r->id, "h-list-0") == 0)
        print_message("a page of big payments: %zu of %d, %zu bytes\n", n, BIG, m->value_len);
}

static void on_result(hstack_t *s, const th_msg_t *m, bool reply_topic)
{
    const char *id = msg_str(m, "id");
    req_t *r = id != NULL ? find_req(s, id) : NULL;
    if (r == NULL) {
        if (s->unknown++ == 0)
            snprintf(s->unknown_id, sizeof(s->unknown_id), "%.60s", id ? id : m->value);
        return;
    }
    r->answers++;
    if (json_is_true(json_object_get(m->json, "replayed")))
        r->replayed = true;
    if (r->answers > 1)
        return;
    const char *status = msg_str(m, "status");
    json_t *e = json_object_get(m->json, "error");
    const char *code = strcmp(status ? status : "", "ok") == 0
                           ? "ok"
                           : json_string_value(json_object_get(e, "code"));
    const char *field = json_string_value(json_object_get(e, "field"));
    if (code == NULL || strcmp(code, r->want) != 0)
        mismatch(r, m, r->want);
    else if (r->field != NULL && (field == NULL || strcmp(field, r->field) != 0))
        mismatch(r, m, r->field);
    else if (reply_topic != r->reply)
        mismatch(r, m, "answered on the wrong topic");
    else if (r->list)
        check_list(r, m);
    if (r->well < 0) {
        s->hostile_answered += r->well == HOSTILE_REQ;
        return;
    }
    well_t *w = &s->well[r->well];
    w->pending--;
    if (r->step == STEP_RECORD) {
        json_t *pay = json_object_get(json_object_get(m->json, "result"), "payment");
        const char *pid = json_string_value(json_object_get(pay, "id"));
        if (pid != NULL)
            well_follow(s, r->well, pid);
    }
}

static void drain(hstack_t *s, th_consumer_t *c, bool reply_topic, int wait_ms)
{
    th_msg_t msgs[256];
    int n = th_consume(c, msgs, 256, wait_ms);
    for (int i = 0; i < n; i++) {
        on_result(s, &msgs[i], reply_topic);
        th_msg_clear(&msgs[i]);
    }
}

/* ---- the worker's side --------------------------------------------------------- */

static long long metric(hstack_t *s, const char *name)
{
    char *body = NULL, needle[96];
    long long v = -1;
    snprintf(needle, sizeof(needle), "\n%s ", name);
    if (th_worker_http_get(s->w, "/metrics", &body, 10000) == 200 && body != NULL &&
        strstr(body, needle) != NULL)
        v = atoll(strstr(body, needle) + strlen(needle));
    free(body);
    return v;
}

/* VmRSS or VmHWM of the worker, in kB (-1 when unreadable). */
static int64_t worker_mem_kb(hstack_t *s, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)th_worker_pid(s->w));
    FILE *f = fopen(path, "r");
    int64_t kb = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, field, strlen(field)) == 0)
            kb = strtoll(line + strlen(field) + 1, NULL, 10);
    if (f != NULL)
        fclose(f);
    return kb;
}

/* /readyz's in_flight, or -1. */
static int64_t in_flight(hstack_t *s)
{
    char *body = NULL;
    th_worker_http_get(s->w, "/readyz", &body, 10000);
    json_t *j = json_loads(body != NULL ? body : "", 0, NULL);
    json_t *v = json_object_get(j, "in_flight");
    int64_t n = json_is_integer(v) ? json_integer_value(v) : -1;
    json_decref(j);
    free(body);
    return n;
}

/* Ready, nothing stuck, alive; and its memory. */
static void sample_worker(hstack_t *s)
{
    char *body = NULL;
    int st = th_worker_http_get(s->w, "/readyz", &body, 10000);
    json_t *j = json_loads(body != NULL ? body : "", 0, NULL);
    json_t *stuck = json_object_get(j, "stuck_deliveries");
    if (st != 200 || !json_is_integer(stuck) || json_integer_value(stuck) != 0 ||
        th_worker_http_get(s->w, "/livez", NULL, 10000) != 200) {
        if (s->readyz_bad++ == 0)
            snprintf(s->readyz_body, sizeof(s->readyz_body), "%d %.200s", st, body ? body : "");
    }
    json_decref(j);
    free(body);
    int64_t rss = worker_mem_kb(s, "VmRSS:");
    if (rss > s->rss_peak_kb)
        s->rss_peak_kb = rss;
}

/* The outside lock: held until h-locked-0 is answered (internal, its retries
 * spent), then until h-locked-1's first attempt failed on it (a retry more),
 * then released, so h-locked-1 is answered ok on a later attempt. */
static void step_lock(hstack_t *s)
{
    req_t *first = find_req(s, "h-locked-0");
    if (s->lock_state == 0 && first->answers > 0) {
        s->retries_mark = metric(s, "tally_retries_total");
        s->lock_state = 1;
    } else if (s->lock_state == 1 && metric(s, "tally_retries_total") > s->retries_mark) {
        PQclear(PQexec(s->lock, "ROLLBACK"));
        PQfinish(s->lock);
        s->lock = NULL;
        s->lock_state = 2;
    }
}

/* The first attempt at inserting the payment h-slow sleeps far beyond the
 * statement timeout (default, 5 s); a sequence, which no rollback undoes,
 * counts the attempts. */
static void slow_first_attempt(hstack_t *s)
{
    th_pg_exec(s->pg, "postgres",
               "CREATE SEQUENCE it_slow_attempts;"
               "GRANT USAGE ON SEQUENCE it_slow_attempts TO PUBLIC;"
               "CREATE FUNCTION it_slow() RETURNS trigger LANGUAGE plpgsql AS $$"
               " BEGIN IF nextval('it_slow_attempts') = 1 THEN PERFORM pg_sleep(60); END IF;"
               " RETURN NEW; END $$;"
               "CREATE TRIGGER it_slow BEFORE INSERT ON stripe_payments FOR EACH ROW"
               " WHEN (NEW.external_id = 'h-slow') EXECUTE FUNCTION it_slow()");
}

static PGconn *lock_balance(hstack_t *s)
{
    th_pg_exec(s->pg, "postgres",
               "INSERT INTO account_balances (account_id, currency) VALUES ('" HOSTILE "', 'usd')");
    PGconn *c = th_pg_connect(s->pg, "postgres");
    PQclear(PQexec(c, "BEGIN"));
    PGresult *r = PQexec(c, "SELECT 1 FROM account_balances WHERE account_id = '" HOSTILE
                            "' AND currency = 'usd' FOR UPDATE");
    assert_int_equal(PQntuples(r), 1);
    PQclear(r);
    return c;
}

/* ---- setup ---------------------------------------------------------------------- */

static int setup(void **state)
{
    hstack_t *s = calloc(1, sizeof(*s));
    s->reqs = calloc(TABLE / 2, sizeof(*s->reqs));
    s->table = calloc(TABLE, sizeof(*s->table));
    s->pg = th_pg_start();
    th_pg_migrate(s->pg);
    s->b = th_broker_start(PARTITIONS);
    worker_env(s);
    th_broker_command(s->b, "topic " REPLY_TOPIC " %d", PARTITIONS);
    s->w = th_worker_start(s->pg, s->b, s->env);
    if (th_worker_wait_partitions(s->w, PARTITIONS, 60000) < 0)
        fail_msg("worker not ready");
    s->p = th_producer_new(s->b);
    const char *hconf[] = {"compression.codec=lz4", "message.max.bytes=4000000", NULL};
    s->hp = th_producer_new_with(s->b, hconf);
    s->results = th_consumer_new(s->b, RESULT_TOPIC);
    s->replies = th_consumer_new(s->b, REPLY_TOPIC);
    s->dlq = th_consumer_new(s->b, DLQ_TOPIC);
    for (int a = 0; a < WELL; a++)
        snprintf(s->well[a].acct, sizeof(s->well[a].acct), "acct_well_%d", a);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    hstack_t *s = *state;
    if (s == NULL) /* the setup failed */
        return 0;
    if (s->lock != NULL)
        PQfinish(s->lock);
    th_consumer_free(s->results);
    th_consumer_free(s->replies);
    th_consumer_free(s->dlq);
    th_producer_free(s->p);
    th_producer_free(s->hp);
    th_worker_stop(s->w);
    th_broker_stop(s->b);
    th_pg_stop(s->pg);
    free(s->reqs);
    free(s->table);
    free(s);
    return 0;
}

/* ---- the test ------------------------------------------------------------------- */

static bool well_done(const hstack_t *s)
{
    for (int a = 0; a < WELL; a++)
        if (s->well[a].pending > 0 || s->well[a].rounds < MIN_ROUNDS)
            return false;
    return true;
}

/* Runs both kinds of traffic until everything is answered (or RUN_MS). */
static void run(hstack_t *s)
{
    int64_t t0 = it_now_ms(), end = t0 + RUN_MS, next_sample = 0, hostile_ms = -1;
    for (int a = 0; a < WELL; a++)
        well_round(s, a);
    th_producer_flush(s->p);
    while (it_now_ms() < end) {
        drain(s, s->results, false, 50);
        drain(s, s->replies, true, 5);
        bool hostile_done = s->hostile_answered == s->hostile_sent;
        if (hostile_done && hostile_ms < 0)
            hostile_ms = it_now_ms() - t0;
        int64_t now = it_now_ms();
        for (int a = 0; a < WELL; a++) {
            well_t *w = &s->well[a];
            if (w->pending == 0 && now >= w->next_ms && w->rounds < MAX_ROUNDS &&
                (!hostile_done || w->rounds < MIN_ROUNDS))
                well_round(s, a);
        }
        th_producer_flush(s->p);
        if (s->lock_state < 2)
            step_lock(s);
        if (now >= next_sample) {
            sample_worker(s);
            next_sample = now + 500;
        }
        if (hostile_done && well_done(s))
            break;
    }
    int rounds = 0;
    for (int a = 0; a < WELL; a++)
        rounds += s->well[a].rounds;
    if (it_now_ms() >= end) {
        char *body = NULL;
        th_worker_http_get(s->w, "/readyz", &body, 10000);
        print_message("not done after %d ms; /readyz: %s\n", RUN_MS, body ? body : "-");
        free(body);
        for (int i = 0, shown = 0; i < s->nreqs && shown < 10; i++)
            if (s->reqs[i].answers == 0)
                print_message("unanswered: %s\n", s->reqs[i].id), shown++;
    }
    print_message("hostile: %d of %d answered in %lld ms; well-behaved: %d requests in %d rounds, "
                  "all done after %lld ms; worker VmRSS peak %lld MB\n",
                  s->hostile_answered, s->hostile_sent, (long long)hostile_ms,
                  s->nreqs - s->hostile_sent, rounds, (long long)(it_now_ms() - t0),
                  (long long)(s->rss_peak_kb / 1024));
}

/* Every request answered once, as expected; nothing else answered. */
static void expect_answers(hstack_t *s, const char *when)
{
    int missing = 0, twice = 0, wrong = 0, replayed = 0;
    const req_t *first = NULL;
    for (int i = 0; i < s->nreqs; i++) {
        const req_t *r = &s->reqs[i];
        missing += r->answers == 0;
        twice += r->answers > 1;
        wrong += r->wrong[0] != '\0';
        replayed += r->replayed;
        if (first == NULL && (r->answers != 1 || r->wrong[0] != '\0' || r->replayed))
            first = r;
    }
    if (first != NULL || s->unknown > 0)
        fail_msg("%s: of %d requests %d unanswered, %d answered more than once, %d replayed, "
                 "%d answered wrongly; %d results for ids never sent (%s). First: %s, %d "
                 "answers, %s",
                 when, s->nreqs, missing, twice, replayed, wrong, s->unknown, s->unknown_id,
                 first ? first->id : "-", first ? first->answers : 0,
                 first && first->wrong[0] ? first->wrong : "");
}

/* The DLQ holds the hostile account's three dead letters and nothing else:
 * read until they came, then a second more. */
static void expect_dlq(hstack_t *s)
{
    int hostile = 0, other = 0;
    bool locked = false, oversize = false, junk = false;
    int64_t end = it_now_ms() + 60000, quiet_end = -1;
    th_msg_t msgs[16];
    while (it_now_ms() < (quiet_end > 0 ? quiet_end : end)) {
        int n = th_consume(s->dlq, msgs, 16, 200);
        for (int i = 0; i < n; i++) {
            const th_msg_t *m = &msgs[i];
            const char *code = msg_header(m, "tally-error-code");
            if (m->key == NULL || strcmp(m->key, HOSTILE) != 0) {
                if (other++ == 0)
                    print_message("a dead letter of %s: %.200s\n", m->key ? m->key : "(no key)",
                                  m->value);
            } else {
                hostile++;
                locked |= strstr(m->value, "\"h-locked-0\"") && code && !strcmp(code, "internal");
                oversize |= m->value_len > MIB && strstr(m->value, "\"h-oversize\"") != NULL;
                junk |= strstr(m->value, "\"h-junk\"") != NULL;
            }
            th_msg_clear(&msgs[i]);
        }
        if (hostile + other >= 3 && quiet_end < 0)
            quiet_end = it_now_ms() + 1000;
    }
    assert_int_equal(other, 0);
    assert_int_equal(hostile, 3);
    assert_true(locked && oversize && junk);
}

/* Each well-behaved account's balance is its rounds', and each request left
 * one audit row. */
static void expect_books(hstack_t *s)
{
    int64_t want_rows = 0;
    char sql[256];
    for (int a = 0; a < WELL; a++) {
        const well_t *w = &s->well[a];
        snprintf(sql, sizeof(sql),
                 "SELECT available || '/' || pending_payouts FROM account_balances"
                 " WHERE account_id = '%s' AND currency = 'usd'",
                 w->acct);
        char *got = th_pg_text(s->pg, "postgres", sql), want[64];
        snprintf(want, sizeof(want), "%d/%d", w->rounds * (PAYMENT - REFUND - PAYOUT),
                 w->rounds * PAYOUT);
        if (got == NULL || strcmp(got, want) != 0)
            fail_msg("%s: balance %s, expected %s after %d rounds", w->acct, got ? got : "none",
                     want, w->rounds);
        free(got);
        want_rows += w->rounds * 6;
    }
    assert_int_equal(th_pg_i64(s->pg, "postgres",
                               "SELECT count(*) FROM payment_system_logs"
                               " WHERE account_id LIKE 'acct\\_well\\_%'"),
                     want_rows);
}

/* A new worker in the group starts where the first one committed: markers
 * on every partition are answered, and nothing else is. */
static void expect_committed(hstack_t *s)
{
    th_worker_signal(s->w, SIGTERM);
    int st = th_worker_wait(s->w, 60000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    th_worker_stop(s->w);
    s->w = th_worker_start(s->pg, s->b, s->env);
    if (th_worker_wait_partitions(s->w, PARTITIONS, 60000) < 0)
        fail_msg("the second worker got no partitions");
    req_t *markers[PARTITIONS];
    for (int p = 0; p < PARTITIONS; p++) {
        char acct[32], id[32], buf[256];
        snprintf(acct, sizeof(acct), "acct_marker_%d", p);
        snprintf(id, sizeof(id), "marker-%d", p);
        int n = snprintf(buf, sizeof(buf),
                         "{\"id\":\"%s\",\"account_id\":\"%s\",\"type\":\"balance.get\","
                         "\"payload\":{}}",
                         id, acct);
        th_produce(s->p, REQ_TOPIC, p, acct, buf, (size_t)n);
        markers[p] = add_req(s, id, MARKER_REQ, STEP_OTHER, "ok", NULL);
    }
    th_producer_flush(s->p);
    int64_t end = it_now_ms() + 60000;
    for (int p = 0; p < PARTITIONS && it_now_ms() < end; p++)
        while (markers[p]->answers == 0 && it_now_ms() < end)
            drain(s, s->results, false, 100);
    /* Anything redelivered came before a marker in its partition: once
     * nothing is in flight, it would have been answered too. */
    while (in_flight(s) != 0 && it_now_ms() < end)
        drain(s, s->results, false, 100);
    drain(s, s->results, false, 500);
    drain(s, s->replies, true, 200);
    expect_answers(s, "after a restart");
    /* One audit row a request answered (the dead letters have none): a
     * replay would have added one. */
    assert_int_equal(th_pg_i64(s->pg, "postgres", "SELECT count(*) FROM payment_system_logs"),
                     s->nreqs);
}

static void test_hostile_neighbour(void **state)
{
    hstack_t *s = *state;
    s->lock = lock_balance(s);
    slow_first_attempt(s);
    send_hostile_mix(s);
    run(s);
    expect_answers(s, "hostile beside well-behaved");
    if (s->readyz_bad > 0)
        fail_msg("%d samples of /readyz or /livez not ready or with stuck deliveries; first: %s",
                 s->readyz_bad, s->readyz_body);
    assert_int_equal(s->lock_state, 2);
    /* h-slow's first attempt was cancelled (else it would sleep a minute). */
    assert_true(th_pg_i64(s->pg, "postgres", "SELECT last_value FROM it_slow_attempts") >= 2);
    int64_t hwm = worker_mem_kb(s, "VmHWM:");
    print_message("worker VmHWM %lld MB (bound %d MB)\n", (long long)(hwm / 1024), RSS_BOUND_MB);
    assert_true(hwm > 0 && hwm < (int64_t)RSS_BOUND_MB * 1024);
    expect_dlq(s);
    expect_books(s);
    expect_committed(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_neighbour),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
