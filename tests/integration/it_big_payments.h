/* it_big_payments — 100 payments of the largest size the contract allows
 * (description of 1000 characters, 50 metadata keys of 40 characters with
 * values of 500 '"', 1000 bytes each once escaped: about 53 KB of JSON a
 * payment), written straight into the table as the superuser, for the tests
 * of the 1 MiB bound on a list page (it_payments, it_worker_db_bounds). */
#ifndef TALLY_IT_BIG_PAYMENTS_H
#define TALLY_IT_BIG_PAYMENTS_H

#include "harness.h"

#include <stdio.h>

/* Inserts them into account (ids pay_big_001…100, newest last) and returns
 * their ids in list order (newest first), comma-separated (malloc'd). */
static inline char *it_insert_big_payments(th_pg_t *pg, const char *account)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "INSERT INTO stripe_payments (account_id, id, external_id, amount, currency, status,"
             " description, metadata, created_at)"
             " SELECT '%s', 'pay_big_' || lpad(g::text, 3, '0'), 'pi_big_' || g, 100,"
             "  'usd', 'succeeded', repeat('d', 1000),"
             "  (SELECT json_object_agg(lpad(k::text, 40, 'k'), repeat('\"', 500))"
             "     FROM generate_series(1, 50) k),"
             "  clock_timestamp() + g * interval '1 millisecond'"
             " FROM generate_series(1, 100) g",
             account);
    th_pg_exec(pg, "postgres", sql);
    snprintf(sql, sizeof(sql),
             "SELECT string_agg(id, ',' ORDER BY created_at DESC, id DESC)"
             " FROM stripe_payments WHERE account_id = '%s'",
             account);
    return th_pg_text(pg, "postgres", sql);
}

#endif
