/* it_worker_scale — more replicas than partitions (CONTRACT.md §7): every
 * replica is ready, the ones without a partition say partitions: 0, and when
 * the replica holding the partition leaves (a rollout), another takes it over
 * and every request is answered. */
#include "it_worker_common.h"

#include <unistd.h>

#define NWORKERS 3

/* /readyz of w: the HTTP status, and the partitions it reports in *parts. */
static int readyz(th_worker_t *w, int *parts)
{
    char *body = NULL;
    int code = th_worker_http_get(w, "/readyz", &body, 5000);
    *parts = -1;
    if (body != NULL) {
        json_t *j = json_loads(body, 0, NULL);
        json_t *v = json_object_get(j, "partitions");
        if (json_is_integer(v))
            *parts = (int)json_integer_value(v);
        assert_true(json_is_array(json_object_get(j, "reasons")));
        json_decref(j);
    }
    free(body);
    return code;
}

/* Waits until the live workers (w[i] != NULL) hold `partitions` between
 * them, every one of them ready; returns the index of one that holds some. */
static int wait_spread(th_worker_t **w, int partitions)
{
    int64_t end = it_now_ms() + 90000;
    while (it_now_ms() < end) {
        int sum = 0, all_ready = 1, holder = -1;
        for (int i = 0; i < NWORKERS; i++) {
            if (w[i] == NULL)
                continue;
            int n;
            if (readyz(w[i], &n) != 200)
                all_ready = 0;
            if (n > 0) {
                sum += n;
                holder = i;
            }
        }
        if (all_ready && sum == partitions)
            return holder;
        usleep(200 * 1000);
    }
    fail_msg("the workers did not settle on %d partition(s), all ready, within 90 s", partitions);
    return -1;
}

static void test_more_workers_than_partitions(void **state)
{
    (void)state;
    th_pg_t *pg = th_pg_start();
    th_pg_migrate(pg);
    th_broker_t *b = th_broker_start(1);
    th_worker_t *w[NWORKERS];
    for (int i = 0; i < NWORKERS; i++)
        w[i] = th_worker_start(pg, b, NULL);

    /* Readiness comes without a partition: each is ready on its own. */
    for (int i = 0; i < NWORKERS; i++)
        assert_true(th_worker_wait_ready(w[i], 60000));
    int holder = wait_spread(w, 1);
    int idle = 0;
    for (int i = 0; i < NWORKERS; i++) {
        int n;
        assert_int_equal(readyz(w[i], &n), 200);
        idle += n == 0;
    }
    assert_int_equal(idle, NWORKERS - 1);

    th_producer_t *p = th_producer_new(b);
    collector_t *results = collector_new(b, RESULT_TOPIC);
    for (int i = 0; i < 20; i++)
        send_request(p, -1, "acct_scale",
                     "{\"id\":\"a-%d\",\"account_id\":\"acct_scale\",\"type\":\"payment.record\","
                     "\"payload\":{\"external_id\":\"x-%d\",\"amount\":100,\"currency\":\"usd\"}}",
                     i, i);
    th_producer_flush(p);
    assert_int_equal(wait_answered(results, "a", 20, 60000), 20);

    /* A rollout takes the holder away: another replica takes the partition,
     * every remaining one stays ready, and new requests are answered. */
    th_worker_stop(w[holder]);
    w[holder] = NULL;
    wait_spread(w, 1);
    for (int i = 0; i < 20; i++)
        send_request(p, -1, "acct_scale",
                     "{\"id\":\"b-%d\",\"account_id\":\"acct_scale\",\"type\":\"payment.record\","
                     "\"payload\":{\"external_id\":\"y-%d\",\"amount\":100,\"currency\":\"usd\"}}",
                     i, i);
    th_producer_flush(p);
    assert_int_equal(wait_answered(results, "b", 20, 60000), 20);
    assert_int_equal(th_pg_i64(pg, "postgres", "SELECT count(*) FROM stripe_payments"), 40);

    collector_free(results);
    th_producer_free(p);
    for (int i = 0; i < NWORKERS; i++)
        th_worker_stop(w[i]);
    th_broker_stop(b);
    th_pg_stop(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_more_workers_than_partitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
