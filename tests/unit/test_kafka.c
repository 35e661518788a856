/* Unit tests for src/worker/kafka: error classification and the wake-up
 * pipe. (The handles themselves are exercised by the it_worker_* tests.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "worker/kafka.h"

#include <fcntl.h>
#include <unistd.h>

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(kafka_classify(NULL, RD_KAFKA_RESP_ERR__FATAL), KAFKA_ERR_FATAL);
    assert_int_equal(kafka_classify(NULL, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART),
                     KAFKA_ERR_TOPIC);
    assert_int_equal(kafka_classify(NULL, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC), KAFKA_ERR_TOPIC);
    assert_int_equal(kafka_classify(NULL, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED),
                     KAFKA_ERR_TOPIC);
    assert_int_equal(kafka_classify(NULL, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE), KAFKA_ERR_TOPIC);
    assert_int_equal(kafka_classify(NULL, RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION), KAFKA_ERR_TOPIC);
    assert_int_equal(kafka_classify(NULL, RD_KAFKA_RESP_ERR_INVALID_RECORD), KAFKA_ERR_TOPIC);
    assert_int_equal(kafka_classify(NULL, RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE),
                     KAFKA_ERR_TOPIC);
    /* A full local queue is no failure of the message: it never uses up its attempts. */
    assert_int_equal(kafka_classify(NULL, RD_KAFKA_RESP_ERR__QUEUE_FULL), KAFKA_ERR_QUEUE_FULL);
    /* Transient ones are retried. */
    assert_int_equal(kafka_classify(NULL, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT), KAFKA_ERR_RETRIABLE);
    assert_int_equal(kafka_classify(NULL, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION),
                     KAFKA_ERR_RETRIABLE);
    assert_int_equal(kafka_classify(NULL, RD_KAFKA_RESP_ERR_UNKNOWN), KAFKA_ERR_RETRIABLE);
    assert_int_equal(kafka_classify(NULL, RD_KAFKA_RESP_ERR__TRANSPORT), KAFKA_ERR_RETRIABLE);
}

static void test_drain_pipe(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe2(fds, O_NONBLOCK), 0);
    char buf[300] = {0};
    for (int i = 0; i < 10; i++)
        assert_int_equal(write(fds[1], buf, sizeof(buf)), (ssize_t)sizeof(buf));
    kafka_drain_pipe(fds[0]);
    assert_int_equal(read(fds[0], buf, 1), -1); /* empty, and it did not block */
    close(fds[0]);
    close(fds[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_drain_pipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
