/* share_model — the tests' own model of CONTRACT.md §6's share rule, written
 * apart from src/handlers/alloc.c so that the tests check the code against
 * the contract, not against itself: exact products in 128 bits, then the
 * leftover units by a full ranking (remainder descending, list order on
 * ties). Header-only, for the unit and the integration tests. */
#ifndef TALLY_TESTS_SHARE_MODEL_H
#define TALLY_TESTS_SHARE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARE_MODEL_MAX 50

/* Splits amount (either sign) among the n (≤ 50) shares bp[] (summing to
 * 10000) into out[]. */
static inline void share_model_split(int64_t amount, const int32_t *bp, size_t n, int64_t *out)
{
    bool neg = amount < 0;
    __int128 a = neg ? -(__int128)amount : amount;
    __int128 rem[SHARE_MODEL_MAX];
    __int128 given = 0;
    for (size_t i = 0; i < n; i++) {
        __int128 p = a * bp[i];
        out[i] = (int64_t)(p / 10000);
        rem[i] = p % 10000;
        given += out[i];
    }
    size_t order[SHARE_MODEL_MAX];
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = 1; i < n; i++) { /* insertion sort: stable, so ties keep list order */
        size_t k = order[i];
        size_t j = i;
        while (j > 0 && rem[order[j - 1]] < rem[k]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = k;
    }
    for (__int128 k = 0; k < a - given; k++)
        out[order[k]] += 1;
    if (neg) {
        for (size_t i = 0; i < n; i++)
            out[i] = -out[i];
    }
}

/* SQL (into out) whose one value lists, refund by refund of payment_id in
 * the order they committed (refunds of one payment queue on its row lock,
 * so created_at orders them), each of its n parties' total after that
 * refund: "a1 b1 c1 a2 b2 c2 …". Run it as a role that sees the rows. */
static inline void share_model_running_sql(char *out, size_t size, const char *payment_id, int n)
{
    snprintf(out, size,
             "SELECT string_agg(t::text, ' ' ORDER BY at, rid, pos) FROM ("
             " SELECT r.created_at AS at, r.id AS rid, p.pos,"
             "  (SELECT sum(s.amount) FROM payment_share_tracking s LEFT JOIN"
             "   stripe_payment_refunds q ON q.account_id = s.account_id AND q.id = s.refund_id"
             "   WHERE s.account_id = r.account_id AND s.payment_id = r.payment_id"
             "     AND s.position = p.pos"
             "     AND (q.id IS NULL OR (q.created_at, q.id) <= (r.created_at, r.id))) AS t"
             " FROM stripe_payment_refunds r CROSS JOIN generate_series(0, %d) p(pos)"
             " WHERE r.payment_id = '%s') x",
             n - 1, payment_id);
}

/* Checks a running-total list (share_model_running_sql's value) of k
 * refunds: after refund j the parties hold the split of nets[j]. Returns
 * NULL when it holds, else a malloc'd description of the first difference. */
static inline char *share_model_check_running(const char *list, const int64_t *nets, int k,
                                              const int32_t *bp, size_t n)
{
    char *copy = strdup(list != NULL ? list : ""), *save = NULL;
    char *tok = strtok_r(copy, " ", &save), *why = NULL;
    for (int j = 0; j < k && why == NULL; j++) {
        int64_t want[SHARE_MODEL_MAX];
        share_model_split(nets[j], bp, n, want);
        for (size_t i = 0; i < n && why == NULL; i++) {
            if (tok == NULL || strtoll(tok, NULL, 10) != want[i]) {
                if (asprintf(&why,
                             "after refund %d (net %lld) party %zu holds %s, its share is "
                             "%lld",
                             j + 1, (long long)nets[j], i, tok != NULL ? tok : "nothing",
                             (long long)want[i]) < 0)
                    why = strdup("out of memory");
            }
            tok = strtok_r(NULL, " ", &save);
        }
    }
    if (why == NULL && tok != NULL && asprintf(&why, "more refunds than %d", k) < 0)
        why = strdup("out of memory");
    free(copy);
    return why;
}

#endif
