#include "worker/answer.h"

#include "common/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keys stay in insertion order, which is the contract's order. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)

static char *dump_steal(json_t *obj)
{
    if (obj == NULL)
        return NULL;
    char *s = json_dumps(obj, DUMP_FLAGS);
    json_decref(obj);
    return s;
}

char *answer_stored_ok(const json_t *result)
{
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string("ok"));
    json_object_set_new(o, "result", json_deep_copy(result));
    return dump_steal(o);
}

static json_t *error_object(tally_errcode_t code, const char *message, const char *field)
{
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(tally_errcode_str(code)));
    json_object_set_new(e, "message", json_string(message != NULL ? message : ""));
    if (field != NULL && field[0] != '\0')
        json_object_set_new(e, "field", json_string(field));
    return e;
}

char *answer_stored_error(tally_errcode_t code, const char *message, const char *field)
{
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string("error"));
    json_object_set_new(o, "error", error_object(code, message, field));
    return dump_steal(o);
}

bool answer_stored_status(const char *stored, bool *ok, tally_errcode_t *code)
{
    json_t *s = json_loads(stored, 0, NULL);
    bool good = false;
    const char *status = json_string_value(json_object_get(s, "status"));
    if (status != NULL && strcmp(status, "ok") == 0 && json_object_get(s, "result") != NULL) {
        *ok = true;
        *code = TALLY_ERR_NONE;
        good = true;
    } else if (status != NULL && strcmp(status, "error") == 0) {
        const char *c = json_string_value(json_object_get(json_object_get(s, "error"), "code"));
        *ok = false;
        good = c != NULL && tally_errcode_parse(c, code);
    }
    json_decref(s);
    return good;
}

static json_t *str_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

char *answer_result(const envelope_t *env, const char *stored, bool replayed, int64_t at_ms)
{
    json_t *s = json_loads(stored, 0, NULL);
    const char *status = json_string_value(json_object_get(s, "status"));
    json_t *body = NULL;
    const char *body_key = NULL;
    if (status != NULL && strcmp(status, "ok") == 0)
        body = json_object_get(s, body_key = "result");
    else if (status != NULL && strcmp(status, "error") == 0)
        body = json_object_get(s, body_key = "error");
    if (body == NULL) {
        json_decref(s);
        return NULL;
    }
    char at[CLOCK_RFC3339_LEN + 1];
    json_t *r = json_object();
    json_object_set_new(r, "v", json_integer(1));
    json_object_set_new(r, "id", json_string(env->id));
    json_object_set_new(r, "account_id", json_string(env->account.id));
    json_object_set_new(r, "type", str_or_null(env->type));
    if (env->has_correlation_id)
        json_object_set_new(r, "correlation_id", json_string(env->correlation_id));
    json_object_set_new(r, "status", json_string(status));
    json_object_set(r, body_key, body);
    json_object_set_new(r, "replayed", json_boolean(replayed));
    json_object_set_new(r, "processed_at",
                        json_string(clock_format_rfc3339(at_ms, at, sizeof(at))));
    json_decref(s);
    return dump_steal(r);
}

char *answer_unpublishable(const envelope_t *env, size_t size, const char *why, bool replayed,
                           int64_t at_ms)
{
    char message[256];
    snprintf(message, sizeof(message),
             "the result (%zu bytes) could not be published: %.120s; the request is in the "
             "dead-letter topic",
             size, why);
    char *stored = answer_stored_error(TALLY_ERR_INTERNAL, message, NULL);
    char *text = stored != NULL ? answer_result(env, stored, replayed, at_ms) : NULL;
    free(stored);
    return text;
}

char *answer_audit_event(const answer_audit_t *a)
{
    char at[CLOCK_RFC3339_LEN + 1];
    json_t *o = json_object();
    json_object_set_new(o, "v", json_integer(1));
    json_object_set_new(o, "account_id", json_string(a->env->account.id));
    json_object_set_new(o, "request_id", json_string(a->env->id));
    json_object_set_new(o, "type", str_or_null(a->env->type));
    json_object_set_new(o, "status", json_string(a->ok ? "ok" : "error"));
    json_object_set_new(o, "error_code",
                        a->ok ? json_null() : json_string(tally_errcode_str(a->error_code)));
    json_object_set_new(o, "replayed", json_boolean(a->replayed));
    json_object_set_new(o, "at", json_string(clock_format_rfc3339(a->at_ms, at, sizeof(at))));
    /* Microsecond precision is plenty and keeps the text short and stable. */
    json_object_set_new(o, "duration_ms",
                        json_real((double)(int64_t)(a->duration_ms * 1000.0 + 0.5) / 1000.0));
    json_object_set_new(o, "worker", json_string(a->worker != NULL ? a->worker : ""));
    json_object_set_new(o, "partition", json_integer(a->partition));
    json_object_set_new(o, "offset", json_integer(a->offset));
    return dump_steal(o);
}
