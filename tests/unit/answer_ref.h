/* answer_ref — the jansson construction src/worker/answer.c used before
 * issue 14, kept verbatim as the reference that the direct writers are held
 * to: byte for byte in tests/unit/test_answer.c, for speed in
 * bench/answer_micro.c. Frozen: change it never, whatever answer.c becomes. */
#ifndef TALLY_TESTS_ANSWER_REF_H
#define TALLY_TESTS_ANSWER_REF_H

#include "common/clock.h"
#include "worker/answer.h"

#include <stdlib.h>
#include <string.h>

#define REF_DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)

static inline char *ref_dump_steal(json_t *obj)
{
    if (obj == NULL)
        return NULL;
    char *s = json_dumps(obj, REF_DUMP_FLAGS);
    json_decref(obj);
    return s;
}

static inline char *ref_stored_ok(const json_t *result)
{
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string("ok"));
    json_object_set_new(o, "result", json_deep_copy(result));
    return ref_dump_steal(o);
}

static inline json_t *ref_error_object(tally_errcode_t code, const char *message, const char *field)
{
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(tally_errcode_str(code)));
    json_object_set_new(e, "message", json_string(message != NULL ? message : ""));
    if (field != NULL && field[0] != '\0')
        json_object_set_new(e, "field", json_string(field));
    return e;
}

static inline char *ref_stored_error(tally_errcode_t code, const char *message, const char *field)
{
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string("error"));
    json_object_set_new(o, "error", ref_error_object(code, message, field));
    return ref_dump_steal(o);
}

static inline json_t *ref_str_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

static inline char *ref_result(const envelope_t *env, const char *stored, bool replayed,
                               int64_t at_ms)
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
    json_object_set_new(r, "type", ref_str_or_null(env->type));
    if (env->has_correlation_id)
        json_object_set_new(r, "correlation_id", json_string(env->correlation_id));
    json_object_set_new(r, "status", json_string(status));
    json_object_set(r, body_key, body);
    json_object_set_new(r, "replayed", json_boolean(replayed));
    json_object_set_new(r, "processed_at",
                        json_string(clock_format_rfc3339(at_ms, at, sizeof(at))));
    json_decref(s);
    return ref_dump_steal(r);
}

static inline char *ref_audit_event(const answer_audit_t *a)
{
    char at[CLOCK_RFC3339_LEN + 1];
    json_t *o = json_object();
    json_object_set_new(o, "v", json_integer(1));
    json_object_set_new(o, "account_id", json_string(a->env->account.id));
    json_object_set_new(o, "request_id", json_string(a->env->id));
    json_object_set_new(o, "type", ref_str_or_null(a->env->type));
    json_object_set_new(o, "status", json_string(a->ok ? "ok" : "error"));
    json_object_set_new(o, "error_code",
                        a->ok ? json_null() : json_string(tally_errcode_str(a->error_code)));
    json_object_set_new(o, "replayed", json_boolean(a->replayed));
    json_object_set_new(o, "at", json_string(clock_format_rfc3339(a->at_ms, at, sizeof(at))));
    json_object_set_new(o, "duration_ms",
                        json_real((double)(int64_t)(a->duration_ms * 1000.0 + 0.5) / 1000.0));
    json_object_set_new(o, "worker", json_string(a->worker != NULL ? a->worker : ""));
    json_object_set_new(o, "partition", json_integer(a->partition));
    json_object_set_new(o, "offset", json_integer(a->offset));
    return ref_dump_steal(o);
}

#endif
