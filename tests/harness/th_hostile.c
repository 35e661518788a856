/* th_hostile — see th_hostile.h. */
#include "th_hostile.h"
#include "th_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024 * 1024)

typedef struct sender {
    th_producer_t *p;
    const th_hostile_config_t *cfg;
    th_hostile_cb cb;
    void *arg;
    int sent;
} sender_t;

/* Produces the envelope {"id","account_id","type",<extra>"payload"} and
 * reports it. */
static void hsend(sender_t *s, th_hostile_kind_t kind, const char *id, const char *type,
                  const char *payload, const char *extra, const char *want, const char *field)
{
    size_t cap = strlen(payload) + strlen(extra) + 512;
    char *buf = malloc(cap);
    if (buf == NULL)
        fail_msg("harness: out of memory");
    int n =
        snprintf(buf, cap, "{\"id\":\"%s\",\"account_id\":\"%s\",\"type\":\"%s\",%s\"payload\":%s}",
                 id, s->cfg->account, type, extra, payload);
    if (n < 0 || (size_t)n >= cap)
        fail_msg("harness: hostile request %s too long", id);
    th_produce(s->p, s->cfg->topic, -1, s->cfg->account, buf, (size_t)n);
    free(buf);
    th_hostile_req_t r = {.kind = kind, .want = want, .field = field};
    snprintf(r.id, sizeof(r.id), "%s", id);
    if (s->cb != NULL)
        s->cb(&r, s->arg);
    s->sent++;
}

static void send_big(sender_t *s, int i)
{
    size_t cap = 64 * 1024, n = 0;
    char *p = malloc(cap), id[32];
    if (p == NULL)
        fail_msg("harness: out of memory");
    snprintf(id, sizeof(id), "h-big-%d", i);
    n += (size_t)snprintf(p + n, cap - n,
                          "{\"external_id\":\"%s\",\"amount\":100,\"currency\":\"eur\","
                          "\"description\":\"%01000d\",\"metadata\":{",
                          id, i);
    for (int k = 0; k < 50; k++)
        n += (size_t)snprintf(p + n, cap - n, "%s\"%040d\":\"%0500d\"", k ? "," : "", k, i);
    snprintf(p + n, cap - n, "}}");
    hsend(s, TH_HOSTILE_BIG, id, "payment.record", p, "", "ok", NULL);
    free(p);
}

static void send_reply_tos(sender_t *s)
{
    static const char *const names[][2] = {
        {"h-rt-requests", "tally.requests"}, {"h-rt-results", "tally.results"},
        {"h-rt-audit", "tally.audit"},       {"h-rt-dlq", "tally.dlq"},
        {"h-rt-pattern", "other.replies"},   {"h-rt-invalid", "no such topic"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char extra[96];
        snprintf(extra, sizeof(extra), "\"reply_to\":\"%s\",", names[i][1]);
        hsend(s, TH_HOSTILE_REPLY_TO, names[i][0], "balance.get", "{}", extra, "invalid_request",
              "reply_to");
    }
}

static void send_numbers(sender_t *s)
{
    static const char *const cases[][4] = {
        {"h-2p63", "payment.record",
         "{\"external_id\":\"n1\",\"amount\":9223372036854775808,\"currency\":\"usd\"}", "amount"},
        {"h-1e400", "payment.record",
         "{\"external_id\":\"n2\",\"amount\":1e400,\"currency\":\"usd\"}", "amount"},
        {"h-neg1e400", "payout.create", "{\"amount\":-1e400,\"currency\":\"usd\"}", "amount"},
        {"h-2p53", "payment.record",
         "{\"external_id\":\"n3\",\"amount\":9007199254740993,\"currency\":\"usd\"}", "amount"},
        {"h-dup", "payment.record",
         "{\"external_id\":\"n4\",\"amount\":5,\"amount\":6,\"currency\":\"usd\"}", "amount"},
        {"h-nul", "payment.record",
         "{\"external_id\":\"n5\",\"amount\":5,\"currency\":\"usd\",\"description\":\"a\\u0000b\"}",
         "description"},
        {"h-share", "share.allocate",
         "{\"payment_id\":\"pay_x\",\"shares\":[{\"party\":\"a\",\"basis_points\":1e999}]}",
         "shares[0].basis_points"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        hsend(s, TH_HOSTILE_NUMBER, cases[i][0], cases[i][1], cases[i][2], "", "invalid_request",
              cases[i][3]);
}

/* A value over 1 MiB (readable, but the size limit comes first) and one
 * that is not JSON. */
static void send_dead_letters(sender_t *s)
{
    size_t len = MIB + 200 * 1024;
    char *v = malloc(len), head[160];
    if (v == NULL)
        fail_msg("harness: out of memory");
    int n = snprintf(head, sizeof(head),
                     "{\"id\":\"h-oversize\",\"account_id\":\"%s\",\"type\":\"balance.get\","
                     "\"payload\":{}}",
                     s->cfg->account);
    memset(v, ' ', len);
    memcpy(v, head, (size_t)n);
    th_produce(s->p, s->cfg->topic, -1, s->cfg->account, v, len);
    free(v);
    n = snprintf(head, sizeof(head), "{\"id\":\"h-junk\",\"account_id\":\"%s\",", s->cfg->account);
    th_produce(s->p, s->cfg->topic, -1, s->cfg->account, head, (size_t)n);
    th_hostile_req_t r = {.kind = TH_HOSTILE_DEAD, .id = "h-oversize"};
    if (s->cb != NULL) {
        s->cb(&r, s->arg);
        snprintf(r.id, sizeof(r.id), "h-junk");
        s->cb(&r, s->arg);
    }
    s->sent += 2;
}

int th_hostile_send(th_producer_t *p, const th_hostile_config_t *cfg, th_hostile_cb cb, void *arg)
{
    sender_t s = {.p = p, .cfg = cfg, .cb = cb, .arg = arg};
    char id[48], payload[96];
    for (int i = 0; i < cfg->big; i++)
        send_big(&s, i);
    for (int i = 0; i < cfg->lists; i++) {
        snprintf(id, sizeof(id), "h-list-%d", i);
        hsend(&s, TH_HOSTILE_LIST, id, "payment.list", "{\"limit\":100}", "", "ok", NULL);
    }
    send_reply_tos(&s);
    send_numbers(&s);
    send_dead_letters(&s);
    for (int i = 0; i < cfg->locked; i++) {
        snprintf(id, sizeof(id), "h-locked-%d", i);
        snprintf(payload, sizeof(payload),
                 "{\"external_id\":\"%s\",\"amount\":500,\"currency\":\"usd\"}", id);
        hsend(&s, TH_HOSTILE_LOCKED, id, "payment.record", payload, "", NULL, NULL);
    }
    for (int i = 0; i < cfg->burst; i++) {
        snprintf(id, sizeof(id), "h-burst-%d", i);
        if (i % 10 == 0)
            hsend(&s, TH_HOSTILE_BURST, id, "payment.get", "{\"payment_id\":\"pay_none\"}", "",
                  "not_found", NULL);
        else
            hsend(&s, TH_HOSTILE_BURST, id, "balance.get", "{}", "", "ok", NULL);
    }
    th_producer_flush(p);
    return s.sent;
}
