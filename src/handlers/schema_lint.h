/* schema_lint — checks a payload schema's declaration (schema.h) itself, so
 * that a mistake in a table fails a unit test rather than a request.
 *
 * Run by tests/unit/test_schema.c over every handler's schema. Pure. */
#ifndef TALLY_HANDLERS_SCHEMA_LINT_H
#define TALLY_HANDLERS_SCHEMA_LINT_H

#include "schema.h"

#include <stdbool.h>
#include <stddef.h>

/* Whether s is sound: bounds given and sane, enums non-empty, defaults valid
 * (and only on optional fields), names unique, charsets well-formed,
 * check_doc present with check, and the same for every array's items.
 * Otherwise writes the first problem to why. */
bool schema_lint_check(const schema_object_t *s, char *why, size_t size);

#endif
